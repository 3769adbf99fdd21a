//! Confinement of file paths named in task configs to the configured data roots (SPEC §5):
//! relative paths are taken from the first root; `..` may not climb out, and neither may a
//! symlink anywhere along the path.

use std::path::{Component, Path, PathBuf};

/// Resolves `raw` under `roots`, or says why it is refused.
pub fn confine(roots: &[PathBuf], raw: &str) -> Result<PathBuf, String> {
    let first = roots.first().ok_or("no data roots are configured")?;
    if raw.trim().is_empty() {
        return Err("the path is empty".into());
    }
    let given = Path::new(raw);
    let joined = if given.is_absolute() {
        given.to_path_buf()
    } else {
        absolute(first).join(given)
    };
    let lexical =
        normalize(&joined).ok_or_else(|| format!("'{raw}' climbs above the filesystem root"))?;
    let resolved = resolve_existing_prefix(&lexical);
    let inside = roots.iter().any(|root| {
        let root = std::fs::canonicalize(root)
            .unwrap_or_else(|_| normalize(&absolute(root)).unwrap_or_default());
        resolved.starts_with(&root)
    });
    if inside {
        Ok(lexical)
    } else {
        Err(format!(
            "'{raw}' is outside the data roots ({})",
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Removes `.` and resolves `..` without touching the filesystem.
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// Canonicalizes the longest existing prefix (following symlinks) and appends the rest.
fn resolve_existing_prefix(p: &Path) -> PathBuf {
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match existing.file_name() {
            Some(name) => {
                rest.push(name.to_os_string());
                existing.pop();
            }
            None => break,
        }
    }
    let mut resolved = std::fs::canonicalize(&existing).unwrap_or(existing);
    for name in rest.into_iter().rev() {
        resolved.push(name);
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_under_the_first_root_and_escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let roots = vec![root.clone()];
        assert_eq!(confine(&roots, "a/b.csv").unwrap(), root.join("a/b.csv"));
        assert_eq!(
            confine(&roots, &root.join("x").display().to_string()).unwrap(),
            root.join("x")
        );
        assert!(confine(&roots, "../etc/passwd").is_err());
        assert!(confine(&roots, "/etc/passwd").is_err());
        assert!(confine(&roots, "a/../../x").is_err());
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        assert!(
            confine(&roots, "link/passwd").is_err(),
            "symlinks may not lead out"
        );
    }
}

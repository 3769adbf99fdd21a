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
    let resolved = resolve_existing_prefix(&lexical, 0)
        .ok_or_else(|| format!("'{raw}' goes through a loop of symlinks"))?;
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

/// How many symlinks whose target does not exist one path may go through.
const MAX_DANGLING_HOPS: u32 = 40;

/// Canonicalizes the longest existing prefix (following symlinks) and appends the rest. A
/// symlink whose target does not exist yet counts as its target (writing through it creates
/// the target), so it cannot lead out either; `None` for a loop of such links.
fn resolve_existing_prefix(p: &Path, hops: u32) -> Option<PathBuf> {
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        if let Ok(target) = std::fs::read_link(&existing) {
            if hops >= MAX_DANGLING_HOPS {
                return None;
            }
            let target = match existing.parent() {
                Some(dir) if target.is_relative() => dir.join(target),
                _ => target,
            };
            let mut resolved = resolve_existing_prefix(&normalize(&target)?, hops + 1)?;
            for name in rest.into_iter().rev() {
                resolved.push(name);
            }
            return Some(resolved);
        }
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
    Some(resolved)
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
        // A link to a file that does not exist yet: writing through it would create it.
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("new.json"), root.join("dang.json"))
            .unwrap();
        assert!(confine(&roots, "dang.json").is_err(), "a dangling link out");
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink("../kept.json", root.join("sub/rel.json")).unwrap();
        assert_eq!(
            confine(&roots, "sub/rel.json").unwrap(),
            root.join("sub/rel.json"),
            "a dangling link that stays inside is fine"
        );
        std::os::unix::fs::symlink(root.join("loop-b"), root.join("loop-a")).unwrap();
        std::os::unix::fs::symlink(root.join("loop-a"), root.join("loop-b")).unwrap();
        assert!(confine(&roots, "loop-a").is_err(), "a loop of links");
    }
}

//! Files that `video_processing` and `database_backup` produce, and the habits they share:
//! work happens in hidden temporaries beside the output (named after the task, so a recovered
//! run finds its own and two tasks never share one), the output appears by an atomic rename
//! only when complete, and a cancelled or failed run removes every temporary. Also: finding
//! tools on `PATH`, naming a full disk plainly, and killing a tool a crashed server left behind.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

use crate::domain::TaskId;

/// The program's path when it is an executable file on `PATH`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `Ok` when every tool is on `PATH`, else a sentence naming what is missing.
pub fn require_tools(tools: &[&str], install_hint: &str) -> Result<(), String> {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find_tool(t).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} not found on this server's PATH; {install_hint}",
            missing.join(" and ")
        ))
    }
}

/// Whether a tool's error text means the disk is full.
pub fn says_disk_full(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("no space left on device") || t.contains("disk quota exceeded")
}

/// An I/O error as a person reads it: a full disk says so first.
pub fn describe_io(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::StorageFull || says_disk_full(&e.to_string()) {
        format!("disk full ({e})")
    } else {
        e.to_string()
    }
}

/// A tool's failure: "disk full: …" when its words say so, else the words as they are.
pub fn describe_tool_failure(tool: &str, why: &str, stderr_tail: &str) -> String {
    let detail = if stderr_tail.trim().is_empty() {
        why.to_string()
    } else {
        format!("{why}: {}", stderr_tail.trim())
    };
    if says_disk_full(stderr_tail) {
        format!("disk full: {tool} could not write its output ({detail})")
    } else {
        format!("{tool} failed ({detail})")
    }
}

/// A hidden temporary beside `output`: `.<name>.<task>.<suffix>`.
pub fn temp_beside(output: &Path, task: TaskId, suffix: &str) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let id = task.to_string();
    output.with_file_name(format!(".{name}.{}.{suffix}", &id[id.len() - 12..]))
}

/// Removes files that may or may not exist (and SQLite's side files beside them).
pub fn remove_files(paths: &[PathBuf]) {
    for p in paths {
        for side in ["", "-journal", "-wal", "-shm"] {
            let mut os = p.clone().into_os_string();
            os.push(side);
            let path = PathBuf::from(os);
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    log::warn!("cannot remove {}: {e}", path.display());
                }
            }
        }
    }
}

/// Removes a directory of temporaries, if it exists.
pub fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != io::ErrorKind::NotFound {
            log::warn!("cannot remove {}: {e}", dir.display());
        }
    }
}

/// Kills the process group of `pid` if that process is still running with `marker` (one of
/// this task's temporary paths) on its command line: a tool the previous, crashed server
/// started, which would otherwise keep running (or stay stopped) forever.
pub fn kill_leftover(pid: u64, marker: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let marker = marker.as_os_str().as_encoded_bytes();
    let ours = !marker.is_empty() && cmdline.windows(marker.len()).any(|w| w == marker);
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    ours && killpg(Pid::from_raw(raw), Signal::SIGKILL).is_ok()
}

/// A writer that hashes what passes through it.
pub struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The writer, the SHA-256 (hex) and the length of everything written.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes handled between two steps of a long copy (compressing, hashing).
pub const COPY_STEP_BYTES: u64 = 8 * 1024 * 1024;

/// Copies `src` into `out` in steps of [`COPY_STEP_BYTES`], calling `step(done, total)`
/// after each; a step that says stop ends the copy early with `Ok(false)`.
pub fn copy_in_steps(
    src: &Path,
    out: &mut impl Write,
    mut step: impl FnMut(u64, u64) -> bool,
) -> io::Result<bool> {
    let mut input = File::open(src)?;
    let total = input.metadata()?.len();
    let mut buf = vec![0u8; 1024 * 1024];
    let (mut done, mut since_step) = (0u64, 0u64);
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(true);
        }
        out.write_all(&buf[..n])?;
        done += n as u64;
        since_step += n as u64;
        if since_step >= COPY_STEP_BYTES {
            since_step = 0;
            if !step(done, total) {
                return Ok(false);
            }
        }
    }
}

/// Gzips `src` into a new `dst`; returns the SHA-256 (hex) and length of `dst`, or `None`
/// when a step said stop.
pub fn gzip_file(
    src: &Path,
    dst: &Path,
    step: impl FnMut(u64, u64) -> bool,
) -> io::Result<Option<(String, u64)>> {
    let out = Hashing::new(BufWriter::with_capacity(1024 * 1024, File::create(dst)?));
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    if !copy_in_steps(src, &mut gz, step)? {
        return Ok(None);
    }
    let (file, hex, len) = gz.finish()?.finish();
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(Some((hex, len)))
}

/// Decompresses a gzip file into a new `dst`.
pub fn gunzip_file(src: &Path, dst: &Path) -> io::Result<()> {
    let mut gz = flate2::read::GzDecoder::new(io::BufReader::new(File::open(src)?));
    let mut out = BufWriter::new(File::create(dst)?);
    io::copy(&mut gz, &mut out)?;
    out.flush()
}

/// The SHA-256 (hex) and length of a file, or `None` when a step said stop.
pub fn hash_file(
    path: &Path,
    step: impl FnMut(u64, u64) -> bool,
) -> io::Result<Option<(String, u64)>> {
    let mut sink = Hashing::new(io::sink());
    if !copy_in_steps(path, &mut sink, step)? {
        return Ok(None);
    }
    let (_, hex, len) = sink.finish();
    Ok(Some((hex, len)))
}

/// `<output>.sha256`.
pub fn checksum_path(output: &Path) -> PathBuf {
    let mut os = output.as_os_str().to_owned();
    os.push(".sha256");
    PathBuf::from(os)
}

/// Moves the finished temporary into place (after syncing it), then writes the checksum file
/// beside it in `sha256sum` format: `<hex>  <file name>`.
pub fn publish(part: &Path, output: &Path, sha256: Option<&str>) -> io::Result<()> {
    File::open(part)?.sync_all()?;
    std::fs::rename(part, output)?;
    if let Some(hex) = sha256 {
        let name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sum = checksum_path(output);
        let mut tmp = sum.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = File::create(&tmp)?;
        writeln!(f, "{hex}  {name}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &sum)?;
    }
    if let Some(dir) = output.parent() {
        // Makes the renames durable; some filesystems refuse to sync a directory.
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// [`publish`] on the blocking pool (it syncs the file, which can take a while).
pub async fn publish_blocking(part: &Path, output: &Path, sha256: Option<&str>) -> io::Result<()> {
    let (part, output) = (part.to_path_buf(), output.to_path_buf());
    let sha256 = sha256.map(String::from);
    tokio::task::spawn_blocking(move || publish(&part, &output, sha256.as_deref()))
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_called_a_full_disk() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, vec![7u8; 200_000]).unwrap();
        let err = gzip_file(&src, Path::new("/dev/full"), |_, _| true).unwrap_err();
        assert!(describe_io(&err).starts_with("disk full"), "{err}");
        assert!(
            describe_tool_failure("ffmpeg", "exit code 1", "out.mp4: No space left on device")
                .starts_with("disk full")
        );
        assert!(
            !describe_tool_failure("ffmpeg", "exit code 1", "Invalid data").starts_with("disk")
        );
    }

    #[test]
    fn gzip_round_trips_and_the_checksum_is_of_the_compressed_file() {
        let dir = tempfile::tempdir().unwrap();
        let (src, gz, back) = (
            dir.path().join("a"),
            dir.path().join("a.gz"),
            dir.path().join("b"),
        );
        let data: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let mut steps = 0;
        let (hex, len) = gzip_file(&src, &gz, |_, _| {
            steps += 1;
            true
        })
        .unwrap()
        .unwrap();
        assert!(steps >= 2, "a 20 MB copy takes several steps");
        assert_eq!(len, std::fs::metadata(&gz).unwrap().len());
        assert_eq!(hash_file(&gz, |_, _| true).unwrap().unwrap().0, hex);
        gunzip_file(&gz, &back).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), data);
        assert_eq!(gzip_file(&src, &gz, |_, _| false).unwrap(), None);
    }

    #[test]
    fn published_output_has_a_sha256sum_file() {
        let dir = tempfile::tempdir().unwrap();
        let (part, out) = (dir.path().join(".x.part"), dir.path().join("x.db"));
        std::fs::write(&part, b"abc").unwrap();
        publish(&part, &out, Some("ba7816bf")).unwrap();
        assert!(!part.exists());
        assert_eq!(std::fs::read(&out).unwrap(), b"abc");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("x.db.sha256")).unwrap(),
            "ba7816bf  x.db\n"
        );
    }
}

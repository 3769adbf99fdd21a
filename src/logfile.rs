//! An optional log file beside stderr: `log_dir/steward.log`, rotated by size
//! (`log_max_bytes`) into `steward.log.1` … `steward.log.N` (`log_max_files`), the oldest
//! dropped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A size-rotated log file.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_files: usize,
    file: File,
    size: u64,
}

impl RotatingFile {
    pub fn open(dir: &Path, max_bytes: u64, max_files: usize) -> io::Result<RotatingFile> {
        fs::create_dir_all(dir)?;
        let path = dir.join("steward.log");
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            max_bytes: max_bytes.max(1024),
            max_files: max_files.max(1),
            file,
            size,
        })
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let _ = fs::remove_file(self.numbered(self.max_files));
        for n in (1..self.max_files).rev() {
            let from = self.numbered(n);
            if from.exists() {
                fs::rename(&from, self.numbered(n + 1))?;
            }
        }
        fs::rename(&self.path, self.numbered(1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Writes every log record to stderr and to the file.
pub struct Tee {
    pub file: RotatingFile,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        self.file.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_rotates_by_size_and_keeps_at_most_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path(), 1024, 2).unwrap();
        let line = [b'x'; 300];
        for _ in 0..20 {
            f.write_all(&line).unwrap();
        }
        f.flush().unwrap();
        let names: Vec<String> = {
            let mut v: Vec<String> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names, ["steward.log", "steward.log.1", "steward.log.2"]);
        for n in &names {
            assert!(
                fs::metadata(dir.path().join(n)).unwrap().len() <= 1024,
                "{n} too big"
            );
        }
    }
}

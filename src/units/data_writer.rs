//! The blocking half of `data_processing`: a CSV reader positioned by byte offset, the output
//! and rejects writers with their byte counts, and the checkpoint that ties the three together.
//! Everything here runs on the blocking pool.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::data_rules::{Bound, Rule};

/// Where a run stopped: rows consumed, the input offset after them, and the output lengths
/// that hold exactly their results.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    pub row: u64,
    pub input_offset: u64,
    pub output_bytes: u64,
    pub rejects_bytes: u64,
    pub valid: u64,
    pub invalid: u64,
}

/// How valid rows are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    JsonLines,
    /// One JSON array of objects (closed when the run finishes).
    JsonArray,
}

impl Format {
    pub fn for_path(path: &str) -> Format {
        if path.to_ascii_lowercase().ends_with(".json") {
            Format::JsonArray
        } else {
            Format::JsonLines
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::JsonLines => "jsonl",
            Format::JsonArray => "json",
        }
    }
}

/// A writer that counts what it has been given.
struct Counted {
    inner: BufWriter<File>,
    bytes: u64,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens `path` for appending after its first `keep` bytes (0: a fresh file).
fn open_at(path: &Path, keep: u64) -> io::Result<Counted> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(keep == 0)
        .open(path)?;
    f.set_len(keep)?;
    f.seek(SeekFrom::Start(keep))?;
    Ok(Counted {
        inner: BufWriter::with_capacity(256 * 1024, f),
        bytes: keep,
    })
}

pub struct Work {
    reader: csv::Reader<BufReader<File>>,
    /// The file offset the reader started at.
    base: u64,
    input_len: u64,
    /// `"header":` prefixes, JSON-escaped once.
    keys: Vec<String>,
    rules: Bound,
    format: Format,
    out: Counted,
    rejects: Counted,
    cp: Checkpoint,
    record: csv::StringRecord,
}

impl Work {
    /// Opens the input (seeking to the checkpoint, if any) and the outputs (truncated to the
    /// checkpoint's lengths). Returns warnings worth logging.
    pub fn open(
        input: &Path,
        output: &Path,
        rejects: &Path,
        format: Format,
        rules: &[Rule],
        checkpoint: Option<Checkpoint>,
    ) -> Result<(Work, Vec<String>), String> {
        let what = |e: &dyn std::fmt::Display| format!("{}: {e}", input.display());
        let file = File::open(input).map_err(|e| what(&e))?;
        let input_len = file.metadata().map_err(|e| what(&e))?.len();
        let mut head = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(BufReader::new(file));
        let headers: Vec<String> = head
            .headers()
            .map_err(|e| what(&e))?
            .iter()
            .map(String::from)
            .collect();
        let header_end = head.position().byte();
        let mut notes = Vec::new();
        let existing = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let cp = match checkpoint {
            Some(cp)
                if cp.input_offset >= header_end
                    && cp.input_offset <= input_len
                    && existing(output) >= cp.output_bytes
                    && existing(rejects) >= cp.rejects_bytes =>
            {
                cp
            }
            Some(_) => {
                notes.push(
                    "the checkpoint does not match the files on disk; starting over".to_string(),
                );
                Checkpoint::default()
            }
            None => Checkpoint::default(),
        };
        let start = if cp.row == 0 && cp.input_offset == 0 {
            header_end
        } else {
            cp.input_offset
        };
        let mut file = head.into_inner().into_inner();
        file.seek(SeekFrom::Start(start)).map_err(|e| what(&e))?;
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(BufReader::with_capacity(256 * 1024, file));
        let (bound, unmatched) = Bound::bind(rules, &headers);
        for u in unmatched {
            notes.push(format!("validation rule '{u}' matches no column"));
        }
        let out =
            open_at(output, cp.output_bytes).map_err(|e| format!("{}: {e}", output.display()))?;
        let rej = open_at(rejects, cp.rejects_bytes)
            .map_err(|e| format!("{}: {e}", rejects.display()))?;
        let keys = headers
            .iter()
            .map(|h| format!("{}:", Value::String(h.clone())))
            .collect();
        let mut work = Work {
            reader,
            base: start,
            input_len,
            keys,
            rules: bound,
            format,
            out,
            rejects: rej,
            cp: Checkpoint {
                input_offset: start,
                ..cp
            },
            record: csv::StringRecord::new(),
        };
        if work.out.bytes == 0 && format == Format::JsonArray {
            work.out.write_all(b"[").map_err(|e| e.to_string())?;
        }
        Ok((work, notes))
    }

    pub fn row(&self) -> u64 {
        self.cp.row
    }
    pub fn valid(&self) -> u64 {
        self.cp.valid
    }
    pub fn invalid(&self) -> u64 {
        self.cp.invalid
    }

    /// Input consumed, in percent.
    pub fn percent(&self) -> f64 {
        if self.input_len == 0 {
            100.0
        } else {
            (self.cp.input_offset as f64 / self.input_len as f64 * 100.0).min(100.0)
        }
    }

    /// The checkpoint as of the last flush.
    pub fn checkpoint_json(&self) -> Value {
        serde_json::to_value(&self.cp).unwrap_or(Value::Null)
    }

    /// Flushes both outputs; afterwards the checkpoint describes what is on disk.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.rejects.flush()?;
        self.cp.output_bytes = self.out.bytes;
        self.cp.rejects_bytes = self.rejects.bytes;
        Ok(())
    }

    /// Processes up to `n` rows; false when the input is exhausted.
    pub fn run_batch(&mut self, n: u64) -> io::Result<bool> {
        for _ in 0..n {
            let ok = match self.reader.read_record(&mut self.record) {
                Ok(false) => return Ok(false),
                Ok(true) => Ok(()),
                Err(e) if e.is_io_error() => return Err(io::Error::other(e.to_string())),
                Err(e) => Err(e.to_string()),
            };
            self.cp.row += 1;
            self.cp.input_offset = self.base + self.reader.position().byte();
            let mut failures: Vec<String> = match ok {
                Ok(()) => self
                    .rules
                    .failures(&self.record)
                    .into_iter()
                    .map(String::from)
                    .collect(),
                Err(e) => vec![format!("unreadable: {e}")],
            };
            if self.record.len() != self.keys.len() && failures.is_empty() {
                failures.push(format!(
                    "field_count: {} fields, the header has {}",
                    self.record.len(),
                    self.keys.len()
                ));
            }
            if failures.is_empty() {
                self.write_valid()?;
            } else {
                self.write_reject(&failures)?;
            }
        }
        Ok(true)
    }

    fn write_object(
        w: &mut Counted,
        keys: &[String],
        record: &csv::StringRecord,
    ) -> io::Result<()> {
        w.write_all(b"{")?;
        for (i, (key, field)) in keys.iter().zip(record.iter()).enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            w.write_all(key.as_bytes())?;
            serde_json::to_writer(&mut *w, field)?;
        }
        w.write_all(b"}")
    }

    fn write_valid(&mut self) -> io::Result<()> {
        if self.format == Format::JsonArray {
            self.out
                .write_all(if self.cp.valid == 0 { b"\n" } else { b",\n" })?;
        }
        Self::write_object(&mut self.out, &self.keys, &self.record)?;
        if self.format == Format::JsonLines {
            self.out.write_all(b"\n")?;
        }
        self.cp.valid += 1;
        Ok(())
    }

    fn write_reject(&mut self, failures: &[String]) -> io::Result<()> {
        write!(self.rejects, "{{\"row\":{},\"errors\":", self.cp.row)?;
        serde_json::to_writer(&mut self.rejects, failures)?;
        self.rejects.write_all(b",\"record\":")?;
        Self::write_object(&mut self.rejects, &self.keys, &self.record)?;
        self.rejects.write_all(b"}\n")?;
        self.cp.invalid += 1;
        Ok(())
    }

    /// Closes the array (if any), flushes and syncs both outputs.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.format == Format::JsonArray {
            self.out.write_all(b"\n]\n")?;
        }
        self.flush()?;
        self.out.inner.get_ref().sync_all()?;
        self.rejects.inner.get_ref().sync_all()
    }
}

//! Resource use of a process group from /proc (Linux): CPU time, resident memory and I/O,
//! summed over every process of the group, so a shell's children count too.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One reading of a process group.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupUsage {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub processes: u32,
}

fn clock_ticks() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux ABI steward builds for.
    100.0
}

const PAGE_SIZE: u64 = 4096;

/// Fields of /proc/<pid>/stat after the command name: (pgrp, utime + stime ticks, rss pages).
fn parse_stat(stat: &str) -> Option<(i64, u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): pgrp is field 5, utime 14, stime 15, rss 24.
    let pgrp = f.get(2)?.parse().ok()?;
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let rss = f.get(21)?.parse().ok()?;
    Some((pgrp, ticks, rss))
}

fn io_bytes(pid: u32) -> (u64, u64) {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let get = |k: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("read_bytes:"), get("write_bytes:"))
}

/// How old a /proc scan may be and still answer: every running `command` task samples its
/// group each second, and one scan serves them all (a scan per task made a thousand tasks
/// read a million /proc files a second).
const SCAN_FRESH: Duration = Duration::from_millis(500);

/// One pass over /proc: each process group's processes as `(pid, cpu ticks, rss pages)`,
/// and the I/O of the groups asked about so far.
struct Scan {
    at: Instant,
    groups: HashMap<i64, Vec<(u32, u64, u64)>>,
    io: HashMap<i64, (u64, u64)>,
}

impl Scan {
    fn take() -> Scan {
        let mut groups: HashMap<i64, Vec<(u32, u64, u64)>> = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    continue;
                };
                if let Some((pgrp, ticks, rss)) = parse_stat(&stat) {
                    groups.entry(pgrp).or_default().push((pid, ticks, rss));
                }
            }
        }
        Scan {
            at: Instant::now(),
            groups,
            io: HashMap::new(),
        }
    }

    fn usage(&mut self, pgid: i64) -> GroupUsage {
        let mut u = GroupUsage::default();
        let Some(procs) = self.groups.get(&pgid) else {
            return u;
        };
        let (read_bytes, write_bytes) = *self.io.entry(pgid).or_insert_with(|| {
            procs.iter().fold((0, 0), |(r, w), (pid, _, _)| {
                let (r2, w2) = io_bytes(*pid);
                (r + r2, w + w2)
            })
        });
        for (_, ticks, rss) in procs {
            u.cpu_seconds += *ticks as f64 / clock_ticks();
            u.rss_bytes += rss * PAGE_SIZE;
            u.processes += 1;
        }
        u.read_bytes = read_bytes;
        u.write_bytes = write_bytes;
        u
    }
}

static LAST_SCAN: Mutex<Option<Scan>> = Mutex::new(None);

/// Sums the usage of every process in group `pgid` (blocking: a /proc scan, shared by the
/// callers of the next [`SCAN_FRESH`]).
pub fn group_usage(pgid: i64) -> GroupUsage {
    let mut last = match LAST_SCAN.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let fresh = last.as_ref().is_some_and(|s| s.at.elapsed() < SCAN_FRESH);
    if !fresh {
        *last = Some(Scan::take());
    }
    last.as_mut().map(|s| s.usage(pgid)).unwrap_or_default()
}

/// The task's `resources` value from two readings `secs` apart.
pub fn resources(now: GroupUsage, before: GroupUsage, secs: f64, peak_rss: u64) -> Value {
    let cpu_percent = if secs > 0.0 {
        ((now.cpu_seconds - before.cpu_seconds) / secs * 100.0).max(0.0)
    } else {
        0.0
    };
    json!({
        "cpu_seconds": now.cpu_seconds,
        "cpu_percent": cpu_percent,
        "memory_rss_bytes": now.rss_bytes,
        "memory_peak_rss_bytes": peak_rss.max(now.rss_bytes),
        "io_read_bytes": now.read_bytes,
        "io_write_bytes": now.write_bytes,
        "processes": now.processes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_spaces_in_the_name() {
        let line = "42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000000 300 18446744073709551615";
        assert_eq!(parse_stat(line), Some((42, 300, 300)));
    }

    #[test]
    fn this_process_group_is_measurable() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (pgrp, _, _) = parse_stat(&stat).unwrap();
        let u = group_usage(pgrp);
        assert!(u.processes >= 1 && u.rss_bytes > 0, "{u:?}");
    }
}

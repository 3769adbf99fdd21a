//! Resource use of a process group from /proc (Linux): CPU time, resident memory and I/O,
//! summed over every process of the group, so a shell's children count too.

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

fn io_bytes(pid: &str) -> (u64, u64) {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let get = |k: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("read_bytes:"), get("write_bytes:"))
}

/// Sums the usage of every process in group `pgid` (blocking; a /proc scan).
pub fn group_usage(pgid: i64) -> GroupUsage {
    let mut u = GroupUsage::default();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return u;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((pgrp, ticks, rss)) = parse_stat(&stat) else {
            continue;
        };
        if pgrp != pgid {
            continue;
        }
        let (r, w) = io_bytes(pid);
        u.cpu_seconds += ticks as f64 / clock_ticks();
        u.rss_bytes += rss * PAGE_SIZE;
        u.read_bytes += r;
        u.write_bytes += w;
        u.processes += 1;
    }
    u
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

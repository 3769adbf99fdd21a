//! System resource sampling (sysinfo) for admission control: CPU and memory use in percent.

use std::sync::{Arc, Mutex};

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// Keeps the sysinfo state between samples (CPU use is measured between two refreshes).
#[derive(Clone)]
pub struct Sampler {
    sys: Arc<Mutex<System>>,
}

/// One reading.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Usage {
    pub cpu_percent: f64,
    pub memory_percent: f64,
    pub memory_total: u64,
    pub memory_used: u64,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    pub fn new() -> Self {
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        Sampler {
            sys: Arc::new(Mutex::new(sys)),
        }
    }

    /// Refreshes and reads; blocking (call it from the blocking pool).
    pub fn sample(&self) -> Usage {
        let mut sys = match self.sys.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        sys.refresh_cpu_usage();
        sys.refresh_memory();
        let total = sys.total_memory();
        let used = sys.used_memory();
        Usage {
            cpu_percent: f64::from(sys.global_cpu_usage()),
            memory_percent: if total > 0 {
                used as f64 / total as f64 * 100.0
            } else {
                0.0
            },
            memory_total: total,
            memory_used: used,
        }
    }
}

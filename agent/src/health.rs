//! Process and system readings for heartbeats and birth messages (Linux `/proc`).

use std::time::Instant;

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> u64 {
    proc_status_kib("/proc/self/status", "VmRSS:") * 1024
}

/// Memory available to new work, in bytes.
pub fn available_memory_bytes() -> u64 {
    proc_status_kib("/proc/meminfo", "MemAvailable:") * 1024
}

/// Physical memory, in bytes.
pub fn total_memory_bytes() -> u64 {
    proc_status_kib("/proc/meminfo", "MemTotal:") * 1024
}

fn proc_status_kib(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time of this process (user + system), in clock ticks.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Measures this process's CPU use between successive calls.
#[derive(Debug)]
pub struct CpuMeter {
    last_ticks: u64,
    last_at: Instant,
}

impl Default for CpuMeter {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuMeter {
    /// Starts measuring now.
    pub fn new() -> Self {
        Self { last_ticks: cpu_ticks().unwrap_or(0), last_at: Instant::now() }
    }

    /// Percent of one core used since the previous call (Linux USER_HZ is 100).
    pub fn sample(&mut self) -> f32 {
        let ticks = cpu_ticks().unwrap_or(self.last_ticks);
        let elapsed = self.last_at.elapsed().as_secs_f32();
        let used = ticks.saturating_sub(self.last_ticks) as f32 / 100.0;
        self.last_ticks = ticks;
        self.last_at = Instant::now();
        if elapsed > 0.0 { 100.0 * used / elapsed } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn readings_are_plausible() {
        assert!(rss_bytes() > 1024 * 1024);
        assert!(total_memory_bytes() >= available_memory_bytes());
        let disk = crate::deploy::fsutil::FileSystem;
        assert!(crate::deploy::fsutil::DiskSpace::available(&disk, Path::new("/")).unwrap() > 0);
        let mut meter = CpuMeter::new();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 50 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        let pct = meter.sample();
        assert!((0.0..=250.0).contains(&pct), "{pct}");
    }
}

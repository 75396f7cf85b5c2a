//! The process collector's readings (Prometheus' standard `process_*` metrics), from `/proc`.

use std::time::{SystemTime, UNIX_EPOCH};

/// This process's resources now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessReading {
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
    /// Virtual memory, in bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The open-files limit.
    pub max_fds: u64,
    /// Threads.
    pub threads: u64,
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Start time, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

fn status_field(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Reads `/proc/self` (`None` where `/proc` is not mounted).
pub fn read() -> Option<ProcessReading> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command (which may hold spaces) start at the last ')'.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')': state is field 3 of stat(5); utime 14, stime 15, starttime 22.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<u64>().ok())));
    let start_time_seconds = match (boot, field(22)) {
        (Some(boot), Some(start)) => boot as f64 + start as f64 / ticks,
        _ => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
    };
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill.
    let max_fds = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 { limit.rlim_cur } else { 0 };
    Some(ProcessReading {
        resident_bytes: status_field(&status, "VmRSS:").unwrap_or(0) * 1024,
        virtual_bytes: status_field(&status, "VmSize:").unwrap_or(0) * 1024,
        open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
        max_fds,
        threads: status_field(&status, "Threads:").unwrap_or(0),
        cpu_seconds: (field(14).unwrap_or(0) + field(15).unwrap_or(0)) as f64 / ticks,
        start_time_seconds,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_read() {
        let reading = super::read().expect("/proc is mounted on Linux");
        assert!(reading.resident_bytes > 1024 * 1024, "{reading:?}");
        assert!(reading.open_fds >= 3 && reading.open_fds <= reading.max_fds, "{reading:?}");
        assert!(reading.threads >= 1, "{reading:?}");
        assert!(reading.start_time_seconds > 1.5e9, "{reading:?}");
    }
}

//! The process's peak resident memory, for the epoch bench and `tests/memory.rs`.

/// The process's peak resident memory so far (`VmHWM` in `/proc/self/status`), in MiB; `None`
/// where there is no such file (not Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

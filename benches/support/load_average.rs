//! What else the machine was doing during a run, printed beside the figures.

/// The 1, 5 and 15 minute load averages, and the share of the last minute some task waited for
/// a core (/proc/pressure/cpu): how much of the box other work took.
pub fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let pressure = std::fs::read_to_string("/proc/pressure/cpu").unwrap_or_default();
    let waited = pressure
        .lines()
        .find_map(|l| l.strip_prefix("some "))
        .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("avg60=")))
        .unwrap_or("?");
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{} (CPU pressure: a task waited for a core {waited}% of the last minute)",
        load.join(" ")
    )
}

//! CPU time of a process from `/proc`, for the benchmarks' per-request CPU figures.

/// CPU time (user + system) of process `pid` so far, in seconds, from `/proc/PID/stat` (clock
/// ticks: 10 ms resolution; threads that have exited are counted).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // the fields after the command name (which may hold spaces) start after the last ')'
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| f.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// CPU time of the live threads of process `pid` so far, in seconds, from the scheduler's
/// nanosecond counters (`/proc/PID/task/*/schedstat`, first field). Finer than [`cpu_secs`], but
/// a thread that exits between two readings takes its time with it: compare both.
#[allow(dead_code)] // not every bench that reads CPU time needs the fine figure
pub fn cpu_secs_fine(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

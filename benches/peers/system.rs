//! What the process reads about itself and the machine (Linux `/proc`).

use std::fs;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The machine a report came from.
pub struct Machine {
    /// Logical CPUs available to the process (`nproc`).
    pub cpus: usize,
    /// The first `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// The kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// The peer crates' versions.
    pub peers: String,
    /// The commit of the crate measured, marked when the tree had changes.
    pub commit: String,
    /// When the run started, UTC.
    pub date: String,
}

impl Machine {
    /// Reads it all; what cannot be read is "unknown".
    pub fn read() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
            .map_or("unknown".to_string(), |(_, model)| model.trim().to_string());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or("unknown".to_string(), |release| {
                format!("Linux {}", release.trim())
            });
        let commit = match command_output("git", &["rev-parse", "--short", "HEAD"]) {
            Some(commit) => {
                let dirty = command_output("git", &["status", "--porcelain", "--", "src"])
                    .is_some_and(|changes| !changes.is_empty());
                if dirty {
                    format!("{commit} with uncommitted changes in src/")
                } else {
                    commit
                }
            }
            None => "unknown".to_string(),
        };
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel,
            rustc: command_output("rustc", &["--version"]).unwrap_or("unknown".to_string()),
            peers: peer_versions(),
            commit,
            date: utc_now(),
        }
    }
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The locked versions of the peer crates, from `Cargo.lock`.
pub fn peer_versions() -> String {
    let lock =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap_or_default();
    [
        "threadpool",
        "rayon",
        "rayon-core",
        "rusty_pool",
        "crossbeam-channel",
    ]
    .iter()
    .map(|name| {
        let version = lock
            .split("[[package]]")
            .find(|package| package.contains(&format!("name = \"{name}\"\n")))
            .and_then(|package| package.split("version = \"").nth(1))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("unknown");
        format!("{name} {version}")
    })
    .collect::<Vec<_>>()
    .join(", ")
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg").map_or("unknown".to_string(), |avg| {
        avg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    })
}

/// A `kB` field of `/proc/self/status`, such as `VmRSS` or `VmHWM`.
pub fn status_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|line| line.split(':').next() == Some(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time used so far by the threads of this process that are alive now,
/// at sub-microsecond resolution.
///
/// The sum of `se.sum_exec_runtime` (milliseconds, with six decimals) over
/// every `/proc/self/task/*/sched`: the pool's threads live through the
/// whole W8 window, so their sum over it is the CPU they burned.
/// (`utime + stime` in `/proc/self/stat` count in 10 ms ticks, ten times the
/// 1 ms per idle second that W8 looks for; `schedstat` reads 0 on kernels
/// built without scheduler statistics.)
#[cfg(target_os = "linux")]
pub fn process_cpu_time() -> Duration {
    let mut total_ms = 0f64;
    let tasks = fs::read_dir("/proc/self/task").expect("/proc/self/task is readable");
    for task in tasks.flatten() {
        let Ok(sched) = fs::read_to_string(task.path().join("sched")) else {
            continue; // the thread exited while we listed them
        };
        let runtime = sched
            .lines()
            .find(|line| line.starts_with("se.sum_exec_runtime"))
            .and_then(|line| line.split(':').nth(1))
            .and_then(|ms| ms.trim().parse::<f64>().ok());
        total_ms += runtime.expect("/proc/<tid>/sched has se.sum_exec_runtime");
    }
    Duration::from_secs_f64(total_ms / 1e3)
}

/// Not measured off Linux.
#[cfg(not(target_os = "linux"))]
pub fn process_cpu_time() -> Duration {
    Duration::ZERO
}

/// The current date and time, UTC, as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let minutes = secs % 86_400 / 60;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

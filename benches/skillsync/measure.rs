//! What the OS says a process cost: wall time and user + system CPU time of
//! a child from `wait4(2)` (which folds in the children it reaped, so a
//! shell script counts its skopeo and tar processes), its peak RSS from
//! `/proc/PID/status` (`VmHWM`, sampled while it runs), and the same
//! figures of a running process from `/proc`. Plus the statistics the table
//! prints: median, min and max of several runs.
//!
//! Why not `ru_maxrss`: Linux carries a process's RSS high-water mark
//! across `execve`, and a child spawned with `vfork` (as `std::process`
//! does) execs from its parent's memory, so `ru_maxrss` reports at least
//! this harness's own peak (hundreds of MiB once the 100 MiB skill is
//! built). `VmHWM` belongs to the memory image the child runs in.

use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one finished child cost.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// From spawn to exit.
    pub wall: Duration,
    /// User + system CPU time of the child and the children it reaped.
    pub cpu: Duration,
    /// The child's largest resident set (`VmHWM`, its own process only),
    /// KiB.
    pub peak_rss_kib: u64,
}

/// Runs `command` to completion, its stdout and stderr appended to `log`,
/// and measures it. Panics, showing the end of `log`, unless it exits 0.
pub fn run(command: &mut Command, log: &Path) -> Usage {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    let err = out
        .try_clone()
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let start = Instant::now();
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        let id = child.id();
        // Until the child exits: a zombie's status has no VmHWM line.
        std::thread::spawn(move || {
            while let Some(hwm) = vm_hwm(id) {
                peak.fetch_max(hwm, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our unreaped child; both pointers are to live locals.
    // `child` is then dropped without waiting (std does not reap on drop).
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    drop(child);
    let _ = sampler.join();
    assert_eq!(
        reaped,
        pid,
        "wait4 {pid}: {}",
        std::io::Error::last_os_error()
    );
    let exited_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    assert!(
        exited_ok,
        "{command:?} failed (wait status {status}); the end of {}:\n{}",
        log.display(),
        tail(log, 40)
    );
    Usage {
        wall,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        peak_rss_kib: peak.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// `VmHWM` of `pid` in KiB; `None` once it has exited.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(tv.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(tv.tv_usec).unwrap_or(0))
}

/// The last `lines` lines of a log file, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running process's figures from `/proc/PID`.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// User + system CPU time so far, every thread (exited ones included).
    pub cpu: Duration,
    /// Resident set now (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Peak resident set (`VmHWM`), KiB.
    pub hwm_kib: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`.
pub fn proc_sample(pid: u32) -> ProcSample {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // Fields after the command name (which may hold spaces, in parentheses):
    // state is field 3, utime 14, stime 15.
    let after = &stat[stat.rfind(')').expect("stat has the command name") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> u64 { fields[i - 3].parse().expect("a tick count") };
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .unwrap_or(100)
        .max(1);
    let cpu_ticks = ticks(14) + ticks(15);
    let cpu = Duration::from_micros(cpu_ticks * 1_000_000 / hz);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    ProcSample {
        cpu,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    }
}

/// Several runs' values of one figure.
#[derive(Debug, Clone, Default)]
pub struct Sample(pub Vec<f64>);

impl Sample {
    /// Adds a value.
    pub fn push(&mut self, value: f64) {
        self.0.push(value);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// The median (the mean of the middle two for an even count).
    pub fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// The smallest value.
    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }

    /// The largest value.
    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
}

/// `threads` keep-alive connections to `addr`, each sending `HEAD path`
/// (with the OCI `Accept` types distribution needs) for its share of
/// `paths`, round-robin, until `total` requests are answered. Returns the
/// wall time; panics on any answer but 200.
pub fn head_loop(addr: SocketAddr, paths: &[String], threads: usize, total: usize) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                let stream =
                    TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
                stream.set_nodelay(true).expect("set TCP_NODELAY");
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                for i in (t..total).step_by(threads) {
                    let path = &paths[i % paths.len()];
                    let request = format!(
                        "HEAD {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {}\r\n\r\n",
                        super::support::skillimage::MANIFEST_ACCEPT
                    );
                    reader
                        .get_mut()
                        .write_all(request.as_bytes())
                        .unwrap_or_else(|e| panic!("send to {addr}: {e}"));
                    line.clear();
                    reader.read_line(&mut line).expect("read a status line");
                    assert!(
                        line.split_whitespace().nth(1) == Some("200"),
                        "HEAD {path}: {line:?}"
                    );
                    // Headers until the blank line; a HEAD answer has no body.
                    loop {
                        line.clear();
                        reader.read_line(&mut line).expect("read a header");
                        if line == "\r\n" || line.is_empty() {
                            break;
                        }
                    }
                }
            });
        }
    });
    start.elapsed()
}

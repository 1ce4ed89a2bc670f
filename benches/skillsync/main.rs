//! skillsyncd's benchmark (`./scripts/bench`, see BENCHMARKS.md): a real
//! `docker-registry` on loopback, synthetic skills in skillctl's format,
//! the release binaries (`skillsyncd --once`, the daemon with
//! `skillsyncctl sync --wait`) and the skopeo + tar script a user would
//! write instead, measured from the OS and printed as one table.
//!
//! Consumers (skillsyncd, skopeo, the HEAD load loop) reach the registry
//! through the counting proxy of the integration tests, so every figure
//! comes with its request counts and every side pays the same hop; the
//! publisher talks to the registry directly.
//!
//! Options (after `--`): `--runs N` (default 5; at most 3 at the largest
//! scaling size), `--baseline-runs N`
//! (default 3), `--idle-secs N` (default 60), `--max-skills N` (skip the
//! scaling runs above N skills; default 5000), `--only LIST` (a
//! comma-separated subset of `cold,steady,latency,large`). To profile the
//! `--once` runs, set `SKILLSYNC_BENCH_WRAP` to a command prefix such as
//! `perf record -g -o /tmp/perf.data --`.

#[path = "../../tests/integration/support/mod.rs"]
mod support;

mod measure;
mod workload;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use measure::{proc_sample, run, Sample, Usage};
use support::proxy::{Counts, Proxy};
use support::registry::Registry;
use support::skillimage::Publisher;
use support::{KillOnDrop, TestEnv};
use workload::{Follow, NAMESPACE, VERSION};

/// The baseline script.
const BASELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench-baseline");
/// Skills in the cold sync.
const COLD_SKILLS: usize = 200;
/// Targets of the cold sync and the latency run.
const THREE_TARGETS: &[&str] = &["claude", "cursor", "windsurf"];
/// Runs of each skillsyncd measurement at the largest scaling size (at
/// most; `--runs` applies below it).
const LARGEST_RUNS: usize = 3;
/// Skill counts of the scaling runs; the middle one is the steady state.
const SCALES: [usize; 3] = [100, 1000, 5000];
/// The steady state's skill count.
const STEADY: usize = 1000;
/// Distinct contents among the steady-state skills.
const POOL: usize = 25;
/// Concurrency of the HEAD load loop: skillsyncd's per-registry limit.
const CEILING_CONCURRENCY: usize = 4;
/// The large skill's payload.
const LARGE_BYTES: usize = 100 * 1024 * 1024;

/// Command-line options.
#[derive(Debug)]
struct Options {
    runs: usize,
    baseline_runs: usize,
    idle_secs: u64,
    max_skills: usize,
    only: Option<Vec<String>>,
}

impl Options {
    fn parse() -> Options {
        let mut options = Options {
            runs: 5,
            baseline_runs: 3,
            idle_secs: 60,
            max_skills: 5000,
            only: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .unwrap_or_else(|| usage(&format!("{name} needs a value")))
            };
            let number = |name: &str, v: String| -> usize {
                v.parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage(&format!("{name}: {v:?} is not a positive number")))
            };
            match arg.as_str() {
                "--runs" => options.runs = number("--runs", value("--runs")),
                "--baseline-runs" => {
                    options.baseline_runs = number("--baseline-runs", value("--baseline-runs"))
                }
                "--idle-secs" => {
                    options.idle_secs = number("--idle-secs", value("--idle-secs")) as u64
                }
                "--max-skills" => {
                    options.max_skills = number("--max-skills", value("--max-skills"))
                }
                "--only" => {
                    options.only = Some(value("--only").split(',').map(str::to_owned).collect())
                }
                // cargo bench passes --bench to every harness-less target.
                "--bench" => {}
                other => usage(&format!("unknown option {other:?}")),
            }
        }
        options
    }

    fn wants(&self, part: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == part))
    }
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "skillsync bench: {problem}\n\
         usage: scripts/bench [--runs N] [--baseline-runs N] [--idle-secs N] \
         [--max-skills N] [--only cold,steady,latency,large]"
    );
    std::process::exit(2)
}

/// One line of the table.
#[derive(Debug)]
struct Row {
    what: String,
    unit: &'static str,
    sample: Sample,
    goal: String,
}

/// The shared pieces: the registry, the proxy in front of it, the
/// publisher, a scratch directory, and the rows measured so far.
struct Bench {
    options: Options,
    registry: Registry,
    proxy: Proxy,
    publisher: Publisher,
    scratch: tempfile::TempDir,
    rows: Vec<Row>,
    started: Instant,
}

impl Bench {
    fn row(&mut self, what: impl Into<String>, unit: &'static str, sample: Sample, goal: &str) {
        let row = Row {
            what: what.into(),
            unit,
            sample,
            goal: goal.to_owned(),
        };
        eprintln!(
            "  {}: {} {} (min {}, max {})",
            row.what,
            fmt(row.sample.median()),
            row.unit,
            fmt(row.sample.min()),
            fmt(row.sample.max())
        );
        self.rows.push(row);
    }

    fn single(&mut self, what: impl Into<String>, unit: &'static str, value: f64, goal: &str) {
        self.row(what, unit, Sample(vec![value]), goal);
    }

    fn progress(&self, what: &str) {
        eprintln!("[{:>5.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    /// The registry as consumers see it: through the proxy.
    fn host(&self) -> String {
        self.proxy.host()
    }

    fn log(&self, name: &str) -> PathBuf {
        self.scratch.path().join(format!("{name}.log"))
    }

    /// `skillsyncd --once` in `env`, measured, with the proxy's counts of
    /// the run.
    /// `SKILLSYNC_BENCH_WRAP` (e.g. `perf record -g --`) is put before the
    /// binary, for profiling (the figures are then the wrapper's).
    fn once(&self, env: &TestEnv, log: &str) -> (Usage, Counts) {
        self.proxy.reset();
        let wrap = std::env::var("SKILLSYNC_BENCH_WRAP").unwrap_or_default();
        let mut wrap = wrap.split_whitespace();
        let mut command = match wrap.next() {
            Some(program) => {
                let mut command = env.command(program);
                command.args(wrap).arg(support::SKILLSYNCD);
                command
            }
            None => env.daemon(),
        };
        command.arg("--once").env_remove("RUST_LOG");
        let usage = run(&mut command, &self.log(log));
        (usage, self.proxy.counts())
    }
}

fn fmt(value: f64) -> String {
    if !value.is_finite() {
        "-".to_owned()
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

/// `n` skills, half on the published channel (`c-*`), half following a tag
/// (`t-*`).
fn steady_skills(n: usize) -> Vec<(String, Follow)> {
    let mut skills: Vec<(String, Follow)> = names("c", n / 2)
        .into_iter()
        .map(|s| (s, Follow::Channel))
        .collect();
    skills.extend(names("t", n - n / 2).into_iter().map(|s| (s, Follow::Tag)));
    skills
}

fn main() {
    let options = Options::parse();
    for (program, package) in [
        (support::registry::REGISTRY_BINARY, "docker-registry"),
        (support::SKOPEO, "skopeo"),
    ] {
        if !Path::new(program).exists() {
            usage(&format!(
                "{program} not found: install {package} (scripts/bench does)"
            ));
        }
    }
    let registry = Registry::start();
    let proxy = Proxy::start(&registry.host());
    let publisher = Publisher::new(registry.host());
    let mut bench = Bench {
        options,
        publisher,
        proxy,
        registry,
        scratch: tempfile::Builder::new()
            .prefix("skillsync-bench-")
            .tempdir()
            .expect("create the benchmark's scratch directory"),
        rows: Vec::new(),
        started: Instant::now(),
    };
    bench.progress(&format!(
        "registry at {}, proxy at {}",
        bench.registry.host(),
        bench.proxy.host()
    ));
    if bench.options.wants("cold") {
        cold(&mut bench);
    }
    if bench.options.wants("steady") {
        steady(&mut bench);
    }
    if bench.options.wants("latency") {
        latency(&mut bench);
    }
    if bench.options.wants("large") {
        large(&mut bench);
    }
    bench.progress("done");
    print_table(&bench);
}

/// Measurement 1: cold sync: 200 skills × 3 targets from empty, skillsyncd against the
/// skopeo + tar script.
fn cold(bench: &mut Bench) {
    let names = names("u", COLD_SKILLS);
    bench.progress(&format!("publishing {COLD_SKILLS} skills"));
    let digests = workload::publish_unique(&bench.publisher, &names);
    let host = bench.host();
    let skills: Vec<(String, Follow)> =
        names.iter().map(|n| (n.clone(), Follow::Channel)).collect();
    let toml = workload::config(&host, THREE_TARGETS, &skills, "");

    bench.progress("cold sync: skillsyncd --once");
    let (mut wall, mut cpu, mut rss, mut requests) = Default::default();
    let mut counts = Counts::default();
    // Each run's sandbox is kept until the section ends: on ext4 without
    // a journal, inode allocation skips (one by one) every inode freed in
    // the last minutes, so deleting 8,000 of them between runs made each
    // run slower than the one before.
    let mut sandboxes = Vec::new();
    for _ in 0..bench.options.runs {
        let env = TestEnv::new();
        env.write_config(&toml);
        let (usage, c) = bench.once(&env, "cold-skillsyncd");
        for target in THREE_TARGETS {
            for name in &names {
                let skill_md = env.skill_dir(target, name).join("SKILL.md");
                assert!(skill_md.is_file(), "{} missing", skill_md.display());
            }
        }
        push_usage(&mut wall, &mut cpu, &mut rss, usage);
        Sample::push(&mut requests, c.total() as f64);
        counts = c;
        sandboxes.push(env);
    }
    let skillsyncd_wall = wall.median();
    let title = format!("1. cold sync, {COLD_SKILLS} skills × 3 targets, skillsyncd --once");
    bench.row(format!("{title}: wall"), "ms", wall, "");
    bench.row(format!("{title}: CPU user+sys"), "ms", cpu, "");
    bench.row(format!("{title}: peak RSS"), "MiB", rss, "");
    bench.row(format!("{title}: requests"), "", requests, "");
    eprintln!("  requests by kind: {:?}", counts.by_kind());

    // The same with one syncfs per tree instead of an fsync per file and
    // directory (`[daemon] durability = "syncfs"`): what the option saves.
    bench.progress("cold sync: skillsyncd --once, durability = \"syncfs\"");
    let syncfs_toml = workload::config(&host, THREE_TARGETS, &skills, "durability = \"syncfs\"");
    let mut syncfs_wall = Sample::default();
    for _ in 0..bench.options.runs {
        let env = TestEnv::new();
        env.write_config(&syncfs_toml);
        let (usage, _) = bench.once(&env, "cold-skillsyncd-syncfs");
        syncfs_wall.push(ms(usage.wall));
        sandboxes.push(env);
    }
    bench.row(
        format!("{title}, durability = \"syncfs\": wall"),
        "ms",
        syncfs_wall,
        "",
    );

    bench.progress("cold sync: skopeo copy + tar (baseline)");
    let list = bench.scratch.path().join("cold.list");
    std::fs::write(&list, workload::baseline_list(&host, &names, &digests))
        .expect("write the baseline list");
    let (mut wall, mut cpu, mut rss, mut requests) = Default::default();
    for run_index in 0..bench.options.baseline_runs {
        let root = bench
            .scratch
            .path()
            .join(format!("baseline-cold-{run_index}"));
        let targets: Vec<PathBuf> = THREE_TARGETS.iter().map(|t| root.join(t)).collect();
        let mut command = Command::new("bash");
        command
            .arg(BASELINE)
            .arg("cold")
            .arg(&list)
            .arg(root.join("layouts"))
            .args(&targets);
        bench.proxy.reset();
        let usage = run(&mut command, &bench.log("cold-baseline"));
        for target in &targets {
            for name in &names {
                assert!(target.join(name).join("SKILL.md").is_file());
            }
        }
        push_usage(&mut wall, &mut cpu, &mut rss, usage);
        Sample::push(&mut requests, bench.proxy.counts().total() as f64);
        let _ = std::fs::remove_dir_all(&root);
    }
    let baseline_wall = wall.median();
    // No peak RSS: VmHWM would be bash's alone.
    let _ = rss;
    let title = format!("1. cold sync, {COLD_SKILLS} skills × 3 targets, skopeo copy + tar");
    bench.row(format!("{title}: wall"), "ms", wall, "");
    bench.row(format!("{title}: CPU user+sys"), "ms", cpu, "");
    bench.row(format!("{title}: requests"), "", requests, "");
    bench.single(
        "1. cold sync: skillsyncd / baseline, wall (medians)",
        "×",
        skillsyncd_wall / baseline_wall,
        "≤ 0.10 (10× faster)",
    );
}

fn push_usage(wall: &mut Sample, cpu: &mut Sample, rss: &mut Sample, usage: Usage) {
    wall.push(ms(usage.wall));
    cpu.push(ms(usage.cpu));
    rss.push(mib(usage.peak_rss_kib));
}

/// Measurements 2, 3, 6 and 7: the steady state at 1,000 skills against the registry's
/// HEAD ceiling and `skopeo inspect`, scaling to 100 and 5,000, and the
/// idle daemon.
fn steady(bench: &mut Bench) {
    let scales: Vec<usize> = SCALES
        .into_iter()
        .filter(|n| *n <= bench.options.max_skills)
        .collect();
    let Some(&largest) = scales.last() else {
        return;
    };
    let all = steady_skills(largest);
    let mut channel: Vec<String> = Vec::new();
    let mut tagged: Vec<String> = Vec::new();
    for (name, follow) in &all {
        match follow {
            Follow::Channel => channel.push(name.clone()),
            Follow::Tag => tagged.push(name.clone()),
        }
    }
    bench.progress(&format!(
        "publishing {largest} skills ({POOL} distinct contents)"
    ));
    let published = Instant::now();
    let mut names: Vec<String> = channel.clone();
    names.extend(tagged.iter().cloned());
    let digests = workload::publish_pooled(&bench.publisher, &names, POOL);
    bench.single(
        format!("setup: publishing {largest} skills"),
        "s",
        published.elapsed().as_secs_f64(),
        "",
    );
    let host = bench.host();

    let mut idle_rss = Vec::new();
    let mut steady_wall = f64::NAN;
    let mut steady_requests = f64::NAN;
    let mut daemon_pass = f64::NAN;
    for n in scales {
        let skills = steady_skills(n);
        let env = TestEnv::new();
        env.write_config(&workload::config(&host, &["claude"], &skills, ""));
        bench.progress(&format!("steady state at {n}: installing"));
        let (usage, _) = bench.once(&env, &format!("install-{n}"));
        eprintln!(
            "  installed {n} skills in {:.1} s",
            usage.wall.as_secs_f64()
        );

        // The largest size's passes take seconds each: fewer runs there
        // keep the whole benchmark within ten minutes.
        let runs = if n > STEADY {
            bench.options.runs.min(LARGEST_RUNS)
        } else {
            bench.options.runs
        };
        bench.progress(&format!("steady state at {n}: skillsyncd --once passes"));
        let (mut wall, mut cpu, mut rss, mut requests) = Default::default();
        let mut counts = Counts::default();
        for _ in 0..runs {
            let (usage, c) = bench.once(&env, &format!("steady-{n}"));
            push_usage(&mut wall, &mut cpu, &mut rss, usage);
            Sample::push(&mut requests, c.total() as f64);
            counts = c;
        }
        let per = |prefix: &str| {
            counts.matching(&format!("/{NAMESPACE}/{prefix}-")) as f64 / (n / 2) as f64
        };
        let title = format!("2/3. steady pass, {n} skills, skillsyncd --once");
        if n == STEADY {
            steady_wall = wall.median();
            steady_requests = requests.median();
        }
        bench.row(format!("{title}: wall"), "ms", wall, "");
        bench.row(format!("{title}: CPU user+sys"), "ms", cpu, "");
        bench.row(format!("{title}: peak RSS"), "MiB", rss, "");
        bench.single(
            format!("{title}: requests per channel skill"),
            "",
            per("c"),
            "≤ 2",
        );
        bench.single(
            format!("{title}: requests per tag skill"),
            "",
            per("t"),
            "≤ 1",
        );
        bench.single(
            format!("{title}: blob requests"),
            "",
            (counts.blob_gets() + counts.blob_heads()) as f64,
            "0",
        );
        eprintln!("  requests by kind: {:?}", counts.by_kind());

        bench.progress(&format!("steady state at {n}: the daemon"));
        let daemon = start_daemon(bench, &env, &format!("daemon-{n}"));
        let mut pass = Sample::default();
        for _ in 0..runs {
            let start = Instant::now();
            ctl_ok(&env, &["sync", "--wait"]);
            pass.push(ms(start.elapsed()));
        }
        if n == STEADY {
            daemon_pass = pass.median();
        }
        bench.row(
            format!("2/3. steady pass, {n} skills, daemon (skillsyncctl sync --wait)"),
            "ms",
            pass,
            "",
        );
        // Idle: past the daemon's next look for freed heap to give back
        // (`skillsyncd::memory::TRIM_EVERY`). At the steady-state size
        // that wait is the idle-CPU watch itself, and the RSS is read
        // after it: a daemon idle for a minute.
        let settle = skillsyncd::memory::TRIM_EVERY + Duration::from_secs(2);
        let mut idle_cpu = None;
        if n == STEADY {
            let secs = bench.options.idle_secs.max(settle.as_secs());
            bench.progress(&format!(
                "idle daemon (pid {}): CPU over {secs} s",
                daemon.id()
            ));
            let before = proc_sample(daemon.id());
            std::thread::sleep(Duration::from_secs(secs));
            let after = proc_sample(daemon.id());
            idle_cpu = Some((after.cpu.saturating_sub(before.cpu), secs));
        } else {
            std::thread::sleep(settle);
        }
        let sample = proc_sample(daemon.id());
        idle_rss.push((n, sample.rss_kib));
        let goal = match n {
            1000 => "< 15 MiB",
            5000 => "< 40 MiB",
            _ => "",
        };
        bench.single(
            format!("3/6. idle daemon RSS, {n} skills"),
            "MiB",
            mib(sample.rss_kib),
            goal,
        );
        bench.single(
            format!("3/6. daemon peak RSS (VmHWM), {n} skills"),
            "MiB",
            mib(sample.hwm_kib),
            "",
        );
        if let Some((cpu, secs)) = idle_cpu {
            bench.single(
                format!("6. idle daemon CPU, {n} skills, per minute ({secs} s watched)"),
                "ms",
                ms(cpu) * 60.0 / secs as f64,
                "< 50 ms",
            );
        }
        drop(daemon);

        if n == STEADY {
            steady_baseline(bench, &host, &skills, &names, &digests);
        }
    }
    if let (Some(first), Some(last)) = (idle_rss.first(), idle_rss.last()) {
        let slope = (last.1 as f64 - first.1 as f64) / (last.0 - first.0) as f64;
        bench.single(
            format!("3. idle RSS per skill ({} → {} skills)", first.0, last.0),
            "KiB",
            slope,
            "linear or better",
        );
    }

    ceiling(bench, &host, steady_wall, steady_requests, daemon_pass);
}

/// The baseline's steady state: `skopeo inspect --raw` of each skill,
/// compared with the digest installed.
fn steady_baseline(
    bench: &mut Bench,
    host: &str,
    skills: &[(String, Follow)],
    names: &[String],
    digests: &[String],
) {
    bench.progress(&format!(
        "steady state at {}: skopeo inspect (baseline)",
        skills.len()
    ));
    let wanted: Vec<(String, String)> = skills
        .iter()
        .map(|(name, _)| {
            let i = names
                .iter()
                .position(|n| n == name)
                .expect("every configured skill was published");
            (name.clone(), digests[i].clone())
        })
        .collect();
    let (list_names, list_digests): (Vec<String>, Vec<String>) = wanted.into_iter().unzip();
    let list = bench.scratch.path().join("steady.list");
    std::fs::write(
        &list,
        workload::baseline_list(host, &list_names, &list_digests),
    )
    .expect("write the baseline list");
    let (mut wall, mut cpu, mut rss, mut requests) = Default::default();
    let mut baseline_wall = Sample::default();
    for _ in 0..bench.options.baseline_runs {
        let mut command = Command::new("bash");
        command.arg(BASELINE).arg("steady").arg(&list);
        bench.proxy.reset();
        let log = bench.log("steady-baseline");
        let _ = std::fs::remove_file(&log);
        let usage = run(&mut command, &log);
        assert!(
            !std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("changed"),
            "the baseline saw a change in the steady state: {}",
            measure::tail(&log, 5)
        );
        baseline_wall.push(ms(usage.wall));
        push_usage(&mut wall, &mut cpu, &mut rss, usage);
        Sample::push(&mut requests, bench.proxy.counts().total() as f64);
    }
    let n = skills.len();
    let title = format!("2. steady pass, {n} skills, skopeo inspect");
    bench.row(format!("{title}: wall"), "ms", wall, "");
    bench.row(format!("{title}: CPU user+sys"), "ms", cpu, "");
    bench.row(format!("{title}: requests"), "", requests, "");
    let skillsyncd = bench
        .rows
        .iter()
        .find(|r| r.what == format!("2/3. steady pass, {n} skills, skillsyncd --once: wall"))
        .map(|r| r.sample.median())
        .unwrap_or(f64::NAN);
    bench.single(
        "2. steady pass: skillsyncd / baseline, wall (medians)",
        "×",
        skillsyncd / baseline_wall.median(),
        "",
    );
}

/// Measurement 7: the registry's own ceiling: HEADs of the steady-state skills' tags at
/// skillsyncd's per-registry concurrency, through the proxy (the path
/// skillsyncd takes) and directly.
fn ceiling(
    bench: &mut Bench,
    host: &str,
    steady_wall_ms: f64,
    steady_requests: f64,
    daemon_pass_ms: f64,
) {
    bench.progress("registry ceiling: HEAD load loop");
    let paths: Vec<String> = steady_skills(STEADY)
        .into_iter()
        .map(|(name, _)| format!("/v2/{NAMESPACE}/{name}/manifests/{VERSION}"))
        .collect();
    let total = 4 * STEADY;
    let mut rates = Vec::new();
    for (label, addr) in [
        ("through the proxy", bench.proxy.addr()),
        ("direct", bench.registry.addr()),
    ] {
        let mut rate = Sample::default();
        for _ in 0..bench.options.runs {
            let took = measure::head_loop(addr, &paths, CEILING_CONCURRENCY, total);
            rate.push(total as f64 / took.as_secs_f64());
        }
        rates.push(rate.median());
        bench.row(
            format!("7. registry ceiling, HEAD manifest ×{CEILING_CONCURRENCY}, {label}"),
            "req/s",
            rate,
            "",
        );
    }
    let _ = host;
    let ceiling = rates[0];
    let once_rate = steady_requests / (steady_wall_ms / 1000.0);
    bench.single(
        format!("7. steady pass ({STEADY}, --once) requests/s ÷ ceiling"),
        "",
        once_rate / ceiling,
        "≥ 0.67",
    );
    let daemon_rate = steady_requests / (daemon_pass_ms / 1000.0);
    bench.single(
        format!("7. steady pass ({STEADY}, daemon) requests/s ÷ ceiling"),
        "",
        daemon_rate / ceiling,
        "≥ 0.67",
    );
}

/// Measurement 4: publish-to-installed latency: a new version pushed, then
/// `skillsyncctl sync NAME --wait`, until the new `SKILL.md` is readable in
/// all three targets.
fn latency(bench: &mut Bench) {
    bench.progress("publish-to-installed latency");
    let name = "latency";
    let version = |i: usize| format!("1.0.{i}");
    let files = |i: usize| {
        let mut files = workload::skill_files(workload::seed_of(name), name);
        files[0]
            .1
            .extend_from_slice(format!("\nRevision {i}.\n").as_bytes());
        files
    };
    let push = |i: usize| {
        let built = workload::image(name, &version(i), &files(i));
        bench
            .publisher
            .push_to(&built.repository, &built, &[&version(i), "latest"]);
    };
    push(0);
    let env = TestEnv::new();
    env.write_config(&workload::config(
        &bench.host(),
        THREE_TARGETS,
        &[(name.to_owned(), Follow::Channel)],
        "",
    ));
    let daemon = start_daemon(bench, &env, "daemon-latency");
    ctl_ok(&env, &["sync", name, "--wait"]);
    let mut latency = Sample::default();
    for i in 1..=bench.options.runs.max(5) {
        push(i);
        let start = Instant::now();
        ctl_ok(&env, &["sync", name, "--wait"]);
        let marker = format!("Revision {i}.");
        support::wait_until(Duration::from_secs(10), "the new SKILL.md", || {
            THREE_TARGETS.iter().all(|t| {
                std::fs::read_to_string(env.skill_dir(t, name).join("SKILL.md"))
                    .is_ok_and(|s| s.contains(&marker))
            })
        });
        latency.push(ms(start.elapsed()));
    }
    drop(daemon);
    bench.row(
        "4. publish → installed in 3 targets (skillsyncctl sync --wait)",
        "ms",
        latency,
        "< 100 ms",
    );
}

/// Measurement 5: one skill with a 100 MiB incompressible layer, against one small
/// skill: peak RSS must not follow the layer's size.
fn large(bench: &mut Bench) {
    bench.progress("large skill: building a 100 MiB layer");
    let mut files = workload::skill_files(7, "large");
    files.push((
        "assets/payload.bin".to_owned(),
        workload::Rng::new(42).bytes(LARGE_BYTES),
    ));
    let built = workload::image("large", VERSION, &files);
    drop(files);
    let layer_mib = built.layer().size() as f64 / (1024.0 * 1024.0);
    bench
        .publisher
        .push_to(&built.repository, &built, &[VERSION, "latest"]);
    drop(built);
    let small = "small";
    let small_image = workload::image(
        small,
        VERSION,
        &workload::skill_files(workload::seed_of(small), small),
    );
    bench
        .publisher
        .push_to(&small_image.repository, &small_image, &[VERSION, "latest"]);

    bench.progress("large skill: skillsyncd --once");
    let host = bench.host();
    for (name, what) in [
        ("large", format!("5. one {layer_mib:.0} MiB skill")),
        (small, "5. one small skill (reference)".to_owned()),
    ] {
        let (mut wall, mut cpu, mut rss) = Default::default();
        for _ in 0..bench.options.runs {
            let env = TestEnv::new();
            env.write_config(&workload::config(
                &host,
                &["claude"],
                &[(name.to_owned(), Follow::Channel)],
                "max_skill_size = \"256MiB\"",
            ));
            let (usage, _) = bench.once(&env, &format!("once-{name}"));
            assert!(env.skill_dir("claude", name).join("SKILL.md").is_file());
            push_usage(&mut wall, &mut cpu, &mut rss, usage);
        }
        let goal = if name == "large" { "< 40 MiB" } else { "" };
        bench.row(format!("{what}, --once: peak RSS"), "MiB", rss, goal);
        bench.row(format!("{what}, --once: wall"), "ms", wall, "");
        bench.row(format!("{what}, --once: CPU user+sys"), "ms", cpu, "");
    }
}

/// Waits until the daemon in `env` answers on its control socket.
fn wait_ready(env: &TestEnv, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ok = env
            .ctl()
            .arg("status")
            .arg("--json")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not answer in time; its log:\n{}",
            measure::tail(log, 40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `skillsyncctl ARGS` in `env`; panics with its output unless it
/// exits 0.
fn ctl_ok(env: &TestEnv, args: &[&str]) {
    let output = env
        .ctl()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run skillsyncctl: {e}"));
    assert!(
        output.status.success(),
        "skillsyncctl {} failed ({}): {}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn print_table(bench: &Bench) {
    println!();
    println!(
        "skillsyncd benchmark: {} runs each ({} at {} skills; baseline {}), median (min–max)",
        bench.options.runs,
        bench.options.runs.min(LARGEST_RUNS),
        SCALES[SCALES.len() - 1],
        bench.options.baseline_runs
    );
    println!();
    println!("| measurement | median | min | max | unit | goal |");
    println!("| --- | ---: | ---: | ---: | --- | --- |");
    for row in &bench.rows {
        let (min, max) = if row.sample.0.len() > 1 {
            (fmt(row.sample.min()), fmt(row.sample.max()))
        } else {
            ("".to_owned(), "".to_owned())
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.what,
            fmt(row.sample.median()),
            min,
            max,
            row.unit,
            row.goal
        );
    }
}

/// Starts the daemon in `env`, its output in the log `name`, and waits
/// until it answers.
fn start_daemon(bench: &Bench, env: &TestEnv, name: &str) -> BenchDaemon {
    let log = File::create(bench.log(name)).expect("create a daemon log");
    // `SKILLSYNC_BENCH_WRAP_DAEMON` (e.g. `heaptrack -o /tmp/ht`) profiles
    // the daemon as `SKILLSYNC_BENCH_WRAP` does the `--once` runs.
    let wrap = std::env::var("SKILLSYNC_BENCH_WRAP_DAEMON").unwrap_or_default();
    let mut wrap = wrap.split_whitespace();
    let wrapped = wrap.clone().next().is_some();
    let mut command = match wrap.next() {
        Some(program) => {
            let mut command = env.command(program);
            command.args(wrap).arg(support::SKILLSYNCD);
            // Its own process group: the wrapper's children (the daemon)
            // are stopped with it.
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            command
        }
        None => env.daemon(),
    };
    command
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone a file handle"))
        .stderr(log);
    let daemon = BenchDaemon {
        child: KillOnDrop::spawn(&mut command),
        wrapped,
    };
    wait_ready(env, &bench.log(name));
    daemon
}

/// The daemon (or its profiling wrapper) of a measurement.
struct BenchDaemon {
    child: KillOnDrop,
    /// Started under `SKILLSYNC_BENCH_WRAP_DAEMON`, in its own process group.
    wrapped: bool,
}

impl std::ops::Deref for BenchDaemon {
    type Target = std::process::Child;

    fn deref(&self) -> &std::process::Child {
        &self.child
    }
}

impl Drop for BenchDaemon {
    fn drop(&mut self) {
        if !self.wrapped {
            return;
        }
        // SIGTERM to the whole group: the daemon shuts down cleanly and the
        // profiler writes its data; whatever is left is killed after that.
        let Ok(pgid) = i32::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) with a negative pid signals a process group.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if matches!(self.child.0.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

//! skillsyncd as a background service, with the real binaries and a real
//! registry: status over the control socket (JSON and table), on-demand
//! syncs, live reload (file edits by rename, SIGHUP, broken edits), SIGTERM
//! during installs, the single-instance lock, the peer uid check, bounded
//! and malformed requests, and `skillsyncctl` without a daemon.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::proxy::{Match, Proxy, RequestKind};
use crate::support::registry::Registry;
use crate::support::skillimage::{Publisher, SkillImage};
use crate::support::{wait_until, KillOnDrop, TestEnv};

/// A registry behind a proxy, a publisher, a sandbox, and a daemon log file.
struct Service {
    env: TestEnv,
    registry: Option<Registry>,
    proxy: Proxy,
    publisher: Publisher,
}

fn skill(name: &str, version: &str) -> SkillImage {
    SkillImage::new(name, version)
        .description("A skill for service tests.")
        .file("docs/notes.md", format!("notes for {version}\n"))
}

impl Service {
    fn new() -> Service {
        let registry = Registry::start();
        let proxy = Proxy::start(&registry.host());
        let publisher = Publisher::new(registry.host());
        Service {
            env: TestEnv::new(),
            registry: Some(registry),
            proxy,
            publisher,
        }
    }

    /// Stops the registry for good (its storage goes with it).
    fn stop_registry(&mut self) {
        self.registry = None;
    }

    fn image(&self, repo: &str) -> String {
        format!("{}/{repo}", self.proxy.host())
    }

    /// A config polling once an hour: anything that happens sooner was
    /// asked for.
    fn config_text(&self, skills: &[&str]) -> String {
        let mut text = format!(
            "[daemon]\npoll_interval = \"1h\"\n\n[registries.\"{}\"]\ninsecure = true\n",
            self.proxy.host()
        );
        for s in skills {
            text.push_str(&format!(
                "\n[skills.{s}]\nimage = \"{}\"\n",
                self.image(&format!("examples/{s}"))
            ));
        }
        text
    }

    /// Replaces the config the way editors do: a new file renamed over it.
    fn write_config_by_rename(&self, text: &str) {
        let path = self.env.config_path();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let tmp = path.with_file_name(".skills.toml.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    fn socket(&self) -> PathBuf {
        self.env.runtime_dir().join("skillsyncd.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.env.root().join("daemon.log")
    }

    /// Starts the daemon, its stderr going to [`Service::log_path`], and
    /// waits until the control socket answers.
    fn start(&self) -> KillOnDrop {
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut command = self.env.daemon();
        command.stderr(log);
        let mut daemon = KillOnDrop::spawn(&mut command);
        wait_until(
            Duration::from_secs(30),
            "the control socket to answer",
            || {
                if let Ok(Some(status)) = daemon.try_wait() {
                    panic!("skillsyncd exited early with {status}:\n{}", self.log());
                }
                self.ctl(&["status", "--json"]).status.success()
            },
        );
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn ctl(&self, args: &[&str]) -> Output {
        self.env.run_ctl(args)
    }

    fn status(&self) -> Value {
        let out = self.ctl(&["status", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }

    fn skill_status(&self, name: &str) -> Value {
        self.env.skill_status(name)
    }

    fn wait_in_sync(&self, name: &str, version: &str) {
        self.env.wait_in_sync(name, version)
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn signal(daemon: &KillOnDrop, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &daemon.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig}");
}

fn wait_exit(daemon: &mut KillOnDrop) -> std::process::ExitStatus {
    let mut exited = None;
    wait_until(Duration::from_secs(30), "the daemon to exit", || {
        exited = daemon.0.try_wait().unwrap();
        exited.is_some()
    });
    exited.unwrap()
}

/// Sends raw bytes on the control socket and returns the whole answer.
fn raw_request(socket: &Path, request: &[u8]) -> String {
    let mut stream = UnixStream::connect(socket).expect("connect to the control socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn status_over_the_socket_as_json_and_as_a_table() {
    let s = Service::new();
    let pushed = s.publisher.push(&skill("hello", "1.0.0").build());
    s.env.write_config(&s.config_text(&["hello"]));
    let mut daemon = s.start();
    s.wait_in_sync("hello", "1.0.0");

    let st = s.skill_status("hello");
    assert_eq!(st["image"], s.image("examples/hello").as_str());
    assert_eq!(st["digest"], pushed.manifest_digest.as_str());
    assert_eq!(st["status"], "published");
    assert!(st["error"].is_null());
    assert!(st["last_checked"].is_string(), "{st}");
    assert!(st["next_check"].is_string(), "{st}");
    let target = &st["targets"][0];
    assert_eq!(target["name"], "claude");
    assert_eq!(target["state"], "in_sync");
    assert_eq!(
        target["path"],
        s.env
            .skill_dir("claude", "hello")
            .display()
            .to_string()
            .as_str()
    );

    // `--json` is the daemon's JSON unchanged: curl sees the same document.
    let curl = Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(s.socket())
        .arg("http://localhost/v1/status")
        .output()
        .expect("curl");
    assert!(curl.status.success(), "{}", text(&curl));
    let via_curl: Value = serde_json::from_slice(&curl.stdout).unwrap();
    assert_eq!(via_curl["skills"][0]["name"], "hello");
    assert_eq!(via_curl["daemon"]["pid"], daemon.0.id());

    // One skill, and an unknown one.
    let one = s.ctl(&["status", "hello", "--json"]);
    assert!(one.status.success(), "{}", text(&one));
    let one: Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(one["name"], "hello");
    assert!(!s.ctl(&["status", "nope"]).status.success());

    // The table a person reads.
    let table = s.ctl(&["status"]);
    assert!(table.status.success(), "{}", text(&table));
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    let short = &pushed.manifest_digest["sha256:".len().."sha256:".len() + 12];
    for needle in ["hello", "1.0.0", "published", short, "claude"] {
        assert!(table.contains(needle), "{needle:?} missing from:\n{table}");
    }

    signal(&daemon, "TERM");
    assert_eq!(wait_exit(&mut daemon).code(), Some(0));
    assert!(!s.socket().exists(), "the socket is removed on exit");
}

#[test]
fn sync_wait_installs_a_version_published_a_moment_ago() {
    let s = Service::new();
    s.publisher.push(&skill("hello", "1.0.0").build());
    s.env.write_config(&s.config_text(&["hello"]));
    let _daemon = s.start();
    s.wait_in_sync("hello", "1.0.0");

    let v2 = skill("hello", "1.1.0").build();
    s.publisher.push(&v2);
    let out = s.ctl(&["sync", "hello", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    // No waiting: the poll interval is an hour.
    assert_eq!(s.env.read_skill("claude", "hello"), v2.files);
    assert!(text(&out).contains("1.1.0"), "{}", text(&out));

    // A burst of requests is coalesced: while one pass runs (slowed down
    // here), ten more requests make one more pass, not ten.
    let slow = s.proxy.delay(
        Match::kind(RequestKind::TagList),
        Duration::from_millis(500),
    );
    s.proxy.reset();
    let sock = s.socket();
    let burst: Vec<_> = (0..10)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                raw_request(
                    &sock,
                    b"POST /v1/skills/hello/sync HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                )
            })
        })
        .collect();
    for b in burst {
        let answer = b.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 2"), "{answer}");
    }
    let out = s.ctl(&["sync", "hello", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    s.proxy.remove(slow);
    let lists = s.proxy.counts().tag_lists();
    assert!((2..=3).contains(&lists), "{}", s.proxy.counts().summary());

    // All skills at once.
    let out = s.ctl(&["sync", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));

    // An unknown skill is an error.
    let out = s.ctl(&["sync", "nope", "--wait"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nope"), "{}", text(&out));
}

#[test]
fn config_edits_by_rename_are_picked_up_and_a_broken_edit_keeps_the_last_good_config() {
    let s = Service::new();
    s.publisher.push(&skill("alpha", "1.0.0").build());
    let beta = skill("beta", "1.0.0").build();
    s.publisher.push(&beta);
    s.env.write_config(&s.config_text(&["alpha"]));
    let _daemon = s.start();
    s.wait_in_sync("alpha", "1.0.0");

    // Added by an editor-style save: synced at once.
    s.write_config_by_rename(&s.config_text(&["alpha", "beta"]));
    s.wait_in_sync("beta", "1.0.0");
    assert_eq!(s.env.read_skill("claude", "beta"), beta.files);

    // A broken edit: rejected with file:line:column, the old config runs on.
    let broken = format!(
        "{}\n[skills.gamma]\nimage = 42\n",
        s.config_text(&["alpha", "beta"])
    );
    s.write_config_by_rename(&broken);
    let config = s.env.config_path().display().to_string();
    wait_until(
        Duration::from_secs(30),
        "the broken config to be reported",
        || {
            s.status()["daemon"]["config_error"]
                .as_str()
                .is_some_and(|e| e.contains(&config) && e.contains(':'))
        },
    );
    let err = s.status()["daemon"]["config_error"]
        .as_str()
        .unwrap()
        .to_string();
    let line = broken.lines().position(|l| l == "image = 42").unwrap() + 1;
    assert!(err.contains(&format!("{config}:{line}:")), "{err}");
    let table = text(&s.ctl(&["status"]));
    assert!(
        table.contains(&format!(":{line}:")),
        "the table shows the config error:\n{table}"
    );
    assert!(
        s.log().contains(&format!(":{line}:")),
        "the log says why:\n{}",
        s.log()
    );
    let v2 = skill("alpha", "1.1.0").build();
    s.publisher.push(&v2);
    let out = s.ctl(&["sync", "alpha", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        s.env.read_skill("claude", "alpha"),
        v2.files,
        "the last good config keeps syncing"
    );

    // Fixed, and a skill removed: pruned (ours, unedited), as an event.
    s.write_config_by_rename(&s.config_text(&["alpha"]));
    wait_until(Duration::from_secs(30), "the fixed config to load", || {
        let st = s.status();
        st["daemon"]["config_error"].is_null() && st["skills"].as_array().unwrap().len() == 1
    });
    assert!(!s.env.skill_dir("claude", "beta").exists());
    let events = text(&s.ctl(&["status", "--events"]));
    assert!(events.contains("removed beta from claude"), "{events}");

    // With prune = false a removed skill stays, listed as unmanaged.
    let keep = s
        .config_text(&["alpha"])
        .replace("[daemon]\n", "[daemon]\nprune = false\n");
    s.write_config_by_rename(&format!(
        "{keep}\n[skills.beta]\nimage = \"{}\"\n",
        s.image("examples/beta")
    ));
    s.wait_in_sync("beta", "1.0.0");
    s.write_config_by_rename(&keep);
    wait_until(Duration::from_secs(30), "beta listed as unmanaged", || {
        s.status()["unmanaged"][0]["name"] == "beta"
    });
    assert_eq!(s.env.read_skill("claude", "beta"), beta.files);
}

#[test]
fn on_drift_keep_holds_the_skill_until_resume_accepts_the_edit() {
    let s = Service::new();
    s.publisher.push(&skill("hello", "1.0.0").build());
    s.env.write_config(&format!(
        "{}on_drift = \"keep\"\n",
        s.config_text(&["hello"])
    ));
    let _daemon = s.start();
    s.wait_in_sync("hello", "1.0.0");
    let edited = s.env.skill_dir("claude", "hello").join("SKILL.md");
    std::fs::write(&edited, "my edit\n").unwrap();
    s.publisher.push(&skill("hello", "1.1.0").build());
    let _ = s.ctl(&["sync", "hello", "--wait"]);
    let st = s.skill_status("hello");
    assert_eq!(st["state"], "drifted", "{st}");
    assert!(st["held"].as_str().unwrap_or("").contains("edited"), "{st}");
    assert_eq!(std::fs::read_to_string(&edited).unwrap(), "my edit\n");
    // Still held on the next pass: nothing is updated behind the edit.
    let _ = s.ctl(&["sync", "hello", "--wait"]);
    assert_eq!(std::fs::read_to_string(&edited).unwrap(), "my edit\n");
    assert_eq!(s.skill_status("hello")["version"], "1.0.0");

    // resume: the edit is accepted, and updates flow again (replacing it).
    let out = s.ctl(&["resume", "hello"]);
    assert!(out.status.success(), "{}", text(&out));
    s.wait_in_sync("hello", "1.1.0");
    assert!(std::fs::read_to_string(&edited).unwrap().contains("1.1.0"));
}

#[test]
fn sighup_and_skillsyncctl_reload_reload_the_config() {
    let s = Service::new();
    s.publisher.push(&skill("alpha", "1.0.0").build());
    s.publisher.push(&skill("beta", "1.0.0").build());
    s.env.write_config(&s.config_text(&["alpha"]));
    let daemon = s.start();
    s.wait_in_sync("alpha", "1.0.0");

    // Written in place (no rename), then SIGHUP.
    std::fs::write(s.env.config_path(), s.config_text(&["alpha", "beta"])).unwrap();
    signal(&daemon, "HUP");
    s.wait_in_sync("beta", "1.0.0");
    wait_until(
        Duration::from_secs(10),
        "the SIGHUP reload in the log",
        || s.log().contains("SIGHUP"),
    );

    // skillsyncctl reload answers what changed, and rejects a broken file
    // with exit 2 and the location.
    std::fs::write(s.env.config_path(), s.config_text(&["beta"])).unwrap();
    let out = s.ctl(&["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    // The file watch may have seen the edit first; then there is nothing
    // left for this reload to change. Either way alpha is gone.
    assert!(
        text(&out).contains("alpha") || text(&out).contains("no skill changed"),
        "{}",
        text(&out)
    );
    wait_until(Duration::from_secs(10), "alpha to leave the status", || {
        s.skill_status("alpha").is_null()
    });
    std::fs::write(s.env.config_path(), "[skills.x]\nimage = \n").unwrap();
    let out = s.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(":2:"), "{}", text(&out));
    assert_eq!(s.skill_status("beta")["state"], "in_sync");
}

#[test]
fn sigterm_during_installs_leaves_the_old_or_the_new_version() {
    let s = Service::new();
    let big = |version: &str| {
        let mut img = SkillImage::new("big", version).description("Many files.");
        for i in 0..150 {
            img = img.file(
                &format!("refs/part-{}/file-{i}.md", i % 10),
                format!("{version} {i} {}\n", "x".repeat(2000)),
            );
        }
        img.build()
    };
    let versions: Vec<_> = ["1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4", "1.0.5"]
        .iter()
        .map(|v| big(v))
        .collect();
    s.env.write_config(&format!(
        "[daemon]\npoll_interval = \"1h\"\n\n[registries.\"{}\"]\ninsecure = true\n\n\
         [skills.big]\nimage = \"{}\"\nversion = \"<=1.0.0\"\ntargets = [\"claude\", \"cursor\"]\n",
        s.proxy.host(),
        s.image("examples/big")
    ));
    s.publisher.push(&versions[0]);
    for (i, next) in versions.iter().enumerate().skip(1) {
        let mut daemon = s.start();
        s.wait_in_sync("big", &versions[i - 1].version);
        s.publisher.push(next);
        std::fs::write(
            s.env.config_path(),
            std::fs::read_to_string(s.env.config_path())
                .unwrap()
                .replace(
                    &format!("<={}", versions[i - 1].version),
                    &format!("<={}", next.version),
                ),
        )
        .unwrap();
        // Reload and sync, then SIGTERM a moment later: somewhere before,
        // during or after the install.
        let mut sync = s
            .env
            .ctl()
            .args(["reload"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20 * i as u64));
        signal(&daemon, "TERM");
        assert_eq!(wait_exit(&mut daemon).code(), Some(0), "{}", s.log());
        let _ = sync.wait();
        for agent in ["claude", "cursor"] {
            let files = s.env.read_skill(agent, "big");
            assert!(
                files == versions[i - 1].files || files == next.files,
                "{agent} holds a mix after SIGTERM (iteration {i})"
            );
            let leftovers: Vec<_> = std::fs::read_dir(s.env.target_dir(agent))
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(".skillsync-"))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
        }
        // The next start finishes the job.
        let mut daemon = s.start();
        s.wait_in_sync("big", &next.version);
        signal(&daemon, "TERM");
        assert_eq!(wait_exit(&mut daemon).code(), Some(0));
    }
}

#[test]
fn a_second_daemon_refuses_to_start() {
    let s = Service::new();
    s.publisher.push(&skill("hello", "1.0.0").build());
    s.env.write_config(&s.config_text(&["hello"]));
    let _daemon = s.start();
    let second = s.env.daemon().output().unwrap();
    assert!(!second.status.success());
    let err = text(&second);
    assert!(err.contains("already running"), "{err}");
    // Also on another socket: the state dir is what is locked.
    let other = s.env.root().join("other.sock");
    let third = s.env.daemon().arg("--socket").arg(&other).output().unwrap();
    assert!(!third.status.success());
    assert!(text(&third).contains("already running"), "{}", text(&third));
    // And `--once` beside a running daemon.
    let once = s.env.daemon().arg("--once").output().unwrap();
    assert!(!once.status.success());
    // The first one still answers.
    assert!(s.ctl(&["status"]).status.success());
}

#[test]
fn a_connection_from_another_uid_is_refused() {
    if !rustix_is_root() {
        eprintln!("skipped: needs root to run a client as nobody");
        return;
    }
    let s = Service::new();
    s.publisher.push(&skill("hello", "1.0.0").build());
    s.env.write_config(&s.config_text(&["hello"]));
    // A socket in a directory every user can traverse, made connectable by
    // everyone: only the peer uid check stands in the way.
    let dir = tempfile::Builder::new()
        .prefix("skillsync-uid-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("run/skillsyncd.sock");
    let log = std::fs::File::create(s.log_path()).unwrap();
    let mut command = s.env.daemon();
    command.arg("--socket").arg(&socket).stderr(log);
    let _daemon = KillOnDrop::spawn(&mut command);
    // The socket exists from `bind` on, but the daemon sets its mode just
    // after; wait until it answers its owner, or that chmod could land after
    // ours and the refusal would come from the file mode, not the uid check.
    wait_until(Duration::from_secs(30), "the daemon answering", || {
        s.env
            .ctl()
            .arg("--socket")
            .arg(&socket)
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    for p in [socket.parent().unwrap(), socket.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--unix-socket",
        ])
        .arg(&socket)
        .arg("http://localhost/v1/status")
        .output()
        .expect("setpriv and curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "403",
        "{}",
        text(&out)
    );
    wait_until(Duration::from_secs(10), "the refusal logged", || {
        s.log().contains("65534")
    });
    // The owner is still served.
    let ok = s
        .env
        .ctl()
        .arg("--socket")
        .arg(&socket)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", text(&ok));
}

fn rustix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn oversized_and_malformed_requests_get_4xx_and_the_daemon_keeps_answering() {
    let s = Service::new();
    s.publisher.push(&skill("hello", "1.0.0").build());
    s.env.write_config(&s.config_text(&["hello"]));
    let _daemon = s.start();
    let sock = s.socket();

    let garbage = raw_request(&sock, b"THIS IS NOT HTTP\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 4"), "{garbage}");

    let huge = format!(
        "POST /v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
        10 << 20,
        "x".repeat(1 << 20)
    );
    let answer = raw_request(&sock, huge.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        &answer[..answer.len().min(200)]
    );

    let unknown = raw_request(
        &sock,
        b"GET /v1/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
    assert!(unknown.contains("\"error\""), "{unknown}");
    let method = raw_request(
        &sock,
        b"DELETE /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(method.starts_with("HTTP/1.1 405"), "{method}");

    // Many idle connections at once do not lock others out for good.
    let idle: Vec<UnixStream> = (0..100)
        .filter_map(|_| UnixStream::connect(&sock).ok())
        .collect();
    drop(idle);
    // The server notices the closed connections as their tasks wake; until
    // then the cap may answer 503. What must not happen is a lock-out.
    wait_until(Duration::from_secs(10), "the socket to serve again", || {
        s.ctl(&["status"]).status.success()
    });
    let ok = raw_request(
        &sock,
        b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[test]
fn skillsyncctl_without_a_daemon_exits_3_with_a_hint() {
    let env = TestEnv::new();
    for args in [&["status"][..], &["sync", "--wait"], &["reload"]] {
        let out = env.ctl().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        let socket = env.runtime_dir().join("skillsyncd.sock");
        assert!(err.contains(&socket.display().to_string()), "{err}");
        assert!(err.contains("systemctl --user start skillsyncd"), "{err}");
    }
}

#[test]
fn a_socket_left_by_a_crash_is_replaced_and_a_live_one_is_not() {
    let s = Service::new();
    s.publisher.push(&skill("hello", "1.0.0").build());
    s.env.write_config(&s.config_text(&["hello"]));
    let mut daemon = s.start();
    daemon.0.kill().unwrap();
    let _ = daemon.0.wait();
    assert!(s.socket().exists(), "kill -9 leaves the socket behind");
    // Nothing answers on it: the next daemon takes its place.
    let _daemon = s.start();
    s.wait_in_sync("hello", "1.0.0");
    // A live socket is never taken over, even by a daemon with another
    // state dir.
    let other_state = s.env.root().join("other-state");
    let out = s
        .env
        .daemon()
        .env("SKILLSYNC_STATE_DIR", &other_state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("already listening"), "{}", text(&out));
    assert!(s.ctl(&["status"]).status.success());
}

#[test]
fn rollback_works_offline_and_holds_until_resume_and_holds_survive_restarts() {
    let s = Service::new();
    let v1 = skill("hello", "1.0.0").build();
    s.publisher.push(&v1);
    s.env.write_config(&s.config_text(&["hello"]));
    let daemon = s.start();
    s.wait_in_sync("hello", "1.0.0");
    let v2 = skill("hello", "1.1.0").build();
    s.publisher.push(&v2);
    assert!(s.ctl(&["sync", "hello", "--wait"]).status.success());
    assert_eq!(s.env.read_skill("claude", "hello"), v2.files);

    // The registry is gone: rollback needs nothing from it.
    let down = s.proxy.fail(Match::any(), 503);
    s.proxy.reset();
    let out = s.ctl(&["rollback", "hello"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("rolled back to 1.0.0"),
        "{}",
        text(&out)
    );
    assert_eq!(s.env.read_skill("claude", "hello"), v1.files);
    assert_eq!(
        s.proxy.counts().total(),
        0,
        "{}",
        s.proxy.counts().summary()
    );
    let st = s.skill_status("hello");
    assert_eq!(st["state"], "in_sync", "{st}");
    assert!(st["held"].as_str().unwrap().contains("1.0.0"), "{st}");
    let table = text(&s.ctl(&["status"]));
    assert!(table.contains("held"), "{table}");
    // Held: a pass keeps 1.0.0 and asks the registry nothing.
    assert!(s.ctl(&["sync", "hello", "--wait"]).status.success());
    assert_eq!(s.env.read_skill("claude", "hello"), v1.files);
    assert_eq!(
        s.proxy.counts().total(),
        0,
        "{}",
        s.proxy.counts().summary()
    );
    s.proxy.remove(down);

    // Resume: back to what the channel says.
    let out = s.ctl(&["resume", "hello"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(s.env.read_skill("claude", "hello"), v2.files);
    assert!(s.skill_status("hello")["held"].is_null());

    // Hold at 1.1.0: a newer version is not taken, even after a restart.
    assert!(s.ctl(&["hold", "hello"]).status.success());
    let v3 = skill("hello", "1.2.0").build();
    s.publisher.push(&v3);
    assert!(s.ctl(&["sync", "hello", "--wait"]).status.success());
    assert_eq!(s.env.read_skill("claude", "hello"), v2.files);
    signal(&daemon, "TERM");
    let mut daemon = daemon;
    assert_eq!(wait_exit(&mut daemon).code(), Some(0));
    let _daemon = s.start();
    assert!(s.ctl(&["sync", "hello", "--wait"]).status.success());
    assert_eq!(s.env.read_skill("claude", "hello"), v2.files);
    assert!(s.skill_status("hello")["held"]
        .as_str()
        .unwrap()
        .contains("held at 1.1.0"));
    assert!(s.ctl(&["resume", "hello"]).status.success());
    assert_eq!(s.env.read_skill("claude", "hello"), v3.files);

    // Each step is an event.
    let out = s.ctl(&["status", "hello", "--events", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let events: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in ["update", "rollback", "resume", "hold"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let table = text(&s.ctl(&["status", "--events"]));
    assert!(
        table.contains("RECENT EVENTS") && table.contains("rollback"),
        "{table}"
    );

    // Nothing to roll back to for an unknown skill; a clear refusal.
    let out = s.ctl(&["rollback", "nope"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nope"), "{}", text(&out));
}

#[test]
fn a_conflict_is_one_event_however_often_it_is_seen() {
    let s = Service::new();
    s.publisher.push(&skill("hello", "1.0.0").build());
    let mine = s.env.skill_dir("claude", "hello");
    crate::support::write_file(&mine.join("SKILL.md"), b"mine");
    s.env.write_config(&s.config_text(&["hello"]));
    let _daemon = s.start();
    for _ in 0..3 {
        let _ = s.ctl(&["sync", "hello", "--wait"]);
    }
    let st = s.skill_status("hello");
    assert_eq!(st["state"], "conflict", "{st}");
    assert_eq!(st["targets"][0]["state"], "conflict", "{st}");
    let out = s.ctl(&["status", "--events", "--json"]);
    let events: Value = serde_json::from_slice(&out.stdout).unwrap();
    let conflicts = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "conflict")
        .count();
    assert_eq!(conflicts, 1, "{events}");
    assert_eq!(std::fs::read(mine.join("SKILL.md")).unwrap(), b"mine");
}

#[test]
fn skillsyncctl_plan_shows_what_a_pass_would_do_and_changes_nothing() {
    let s = Service::new();
    s.publisher.push(&skill("hello", "1.0.0").build());
    s.env.write_config(&s.config_text(&["hello"]));
    let _daemon = s.start();
    s.wait_in_sync("hello", "1.0.0");
    s.publisher.push(&skill("hello", "1.1.0").build());
    let before = crate::support::read_tree(&s.env.skill_dir("claude", "hello"));
    let out = s.ctl(&["plan"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("would update hello 1.0.0 -> 1.1.0 in claude"),
        "{}",
        text(&out)
    );
    assert_eq!(
        crate::support::read_tree(&s.env.skill_dir("claude", "hello")),
        before
    );
    assert_eq!(s.skill_status("hello")["version"], "1.0.0");
    let json: Value = serde_json::from_slice(&s.ctl(&["plan", "--json"]).stdout).unwrap();
    assert_eq!(json["skills"][0]["name"], "hello");
}

#[test]
fn rollback_needs_no_registry_at_all() {
    let mut s = Service::new();
    let v1 = skill("hello", "1.0.0").build();
    s.publisher.push(&v1);
    s.env.write_config(&s.config_text(&["hello"]));
    let _daemon = s.start();
    s.wait_in_sync("hello", "1.0.0");
    s.publisher.push(&skill("hello", "1.1.0").build());
    assert!(s.ctl(&["sync", "hello", "--wait"]).status.success());
    s.stop_registry();
    let out = s.ctl(&["rollback", "hello"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(s.env.read_skill("claude", "hello"), v1.files);
    let st = s.skill_status("hello");
    assert_eq!(st["state"], "in_sync", "{st}");
    assert!(
        st["held"]
            .as_str()
            .unwrap()
            .contains("rolled back to 1.0.0"),
        "{st}"
    );
}

#[test]
fn a_mirror_serves_while_the_origin_is_down_and_the_origin_while_the_mirror_is() {
    let origin = Service::new();
    let mirror_registry = Registry::start();
    let mirror = Proxy::start(&mirror_registry.host());
    let mirror_pub = Publisher::new(mirror_registry.host());
    let v1 = skill("hello", "1.0.0").build();
    origin.publisher.push(&v1);
    mirror_pub.push(&v1);
    origin.env.write_config(&format!(
        "[daemon]\npoll_interval = \"1h\"\n\n[registries.\"{0}\"]\ninsecure = true\nmirrors = [\"{1}\"]\n\n\
         [registries.\"{1}\"]\ninsecure = true\n\n[skills.hello]\nimage = \"{0}/examples/hello\"\n",
        origin.proxy.host(),
        mirror.host()
    ));
    // The origin is down: the mirror serves, verified by digest as usual.
    let down = origin.proxy.fail(Match::any(), 503);
    let _daemon = origin.start();
    origin.wait_in_sync("hello", "1.0.0");
    assert_eq!(origin.env.read_skill("claude", "hello"), v1.files);
    assert!(
        mirror.counts().blob_gets() >= 1,
        "{}",
        mirror.counts().summary()
    );
    let st = origin.skill_status("hello");
    assert_eq!(st["served_by"], mirror.host().as_str(), "{st}");
    origin.proxy.remove(down);

    // The mirror is down, a new version only on the origin: the origin serves.
    let mirror_down = mirror.fail(Match::any(), 503);
    let v2 = skill("hello", "1.1.0").build();
    origin.publisher.push(&v2);
    let out = origin.ctl(&["sync", "hello", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(origin.env.read_skill("claude", "hello"), v2.files);
    assert_eq!(
        origin.skill_status("hello")["served_by"],
        origin.proxy.host().as_str()
    );
    mirror.remove(mirror_down);
}

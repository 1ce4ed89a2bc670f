//! Hostile values in `skills.toml`, with the real binaries and a real
//! registry: durations too long for the clock are refused by
//! `skillsyncctl check`, by `skillsyncd --once` and by the daemon at start
//! (exit 2, naming file:line:col, never a panic's exit 101), and a live
//! reload to one keeps the running settings and the control socket
//! answering.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use crate::support::registry::Registry;
use crate::support::skillimage::{Publisher, SkillImage};
use crate::support::{wait_until, KillOnDrop, TestEnv};

/// Values that once passed the check and then overflowed a deadline
/// (`Instant + Duration` panics) or a status time past year 9999.
const HUGE: [&str; 3] = ["500000000000y", "18446744073709551615s", "8000y"];

/// A registry holding `examples/hello` 1.0.0, and a sandbox.
struct World {
    env: TestEnv,
    registry: Registry,
}

impl World {
    fn new() -> World {
        let registry = Registry::start();
        let image = SkillImage::new("hello", "1.0.0")
            .description("Says hello.")
            .build();
        Publisher::new(registry.host()).push(&image);
        World {
            env: TestEnv::new(),
            registry,
        }
    }

    /// A config whose line 2 is `poll_interval = "<poll_interval>"` (the
    /// value at column 17), syncing `hello` from the registry.
    fn config(&self, poll_interval: &str) -> PathBuf {
        self.env.write_config(&format!(
            "[daemon]\npoll_interval = \"{poll_interval}\"\n\n\
             [registries.\"{0}\"]\ninsecure = true\n\n\
             [skills.hello]\nimage = \"{0}/examples/hello\"\n",
            self.registry.host()
        ))
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts a config error (exit 2) at `path`'s line 2, column 17 saying
/// the poll interval is too long.
#[track_caller]
fn assert_too_long(out: &Output, path: &std::path::Path, value: &str) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2:17: poll_interval \"{value}\" is too long: the maximum is \"7d\"",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn a_huge_poll_interval_is_a_config_error_not_a_panic() {
    let w = World::new();
    for value in HUGE {
        let path = w.config(value);
        assert_too_long(&w.env.run_ctl(&["check"]), &path, value);
        assert_too_long(&w.env.once(), &path, value);
        // The daemon refuses to start the same way.
        let mut daemon = KillOnDrop::spawn(w.env.daemon().stdout(std::process::Stdio::null()));
        let mut status = None;
        wait_until(Duration::from_secs(30), "skillsyncd to exit", || {
            status = daemon.try_wait().expect("wait for skillsyncd");
            status.is_some()
        });
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{value}");
    }
    assert!(!w.env.skill_dir("claude", "hello").exists());

    // The bound itself is fine.
    w.config("7d");
    let out = w.env.run_ctl(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_reload_to_a_huge_poll_interval_keeps_the_daemon_answering() {
    let w = World::new();
    let path = w.config("1h");
    let log = std::fs::File::create(w.env.root().join("daemon.log")).unwrap();
    let mut daemon = KillOnDrop::spawn(w.env.daemon().stderr(log));
    wait_until(Duration::from_secs(30), "the control socket", || {
        assert!(daemon.try_wait().unwrap().is_none(), "skillsyncd exited");
        w.env
            .ctl()
            .args(["status", "--json"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    w.env.wait_in_sync("hello", "1.0.0");

    for value in HUGE {
        w.config(value);
        assert_too_long(&w.env.run_ctl(&["reload"]), &path, value);
        // Every later request is answered, with the settings kept.
        let out = w.env.run_ctl(&["status", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(status["daemon"]["poll_interval_secs"], 3600, "{status}");
        let out = w.env.run_ctl(&["sync", "--wait", "hello"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(w.env.skill_status("hello")["state"], "in_sync");
    }
    assert!(daemon.try_wait().unwrap().is_none(), "skillsyncd exited");
}

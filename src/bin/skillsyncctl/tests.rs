//! Tests of `skillsyncctl`: the views it renders, relative times, exit codes
//! against a stand-in daemon, and the command line's help.
//!
//! Built for `cargo test` only: no code outside tests may use anything here.

use super::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use skillsyncd::control::protocol::{
    DaemonStatus, SkillState, SkillStatus, StatusResponse, TargetState, TargetStatus,
    UnmanagedSkill,
};

use crate::render::{parse_rfc3339, plural, relative, short_digest, truncate, when, Style};
use crate::status::{render_skill, render_status};
use crate::sync::render_sync;

fn at(text: &str) -> SystemTime {
    parse_rfc3339(text).unwrap()
}

fn plain() -> Style {
    Style {
        color: false,
        width: 100,
    }
}

fn skill(name: &str) -> SkillStatus {
    SkillStatus {
        name: name.into(),
        image: format!("127.0.0.1:5000/examples/{name}"),
        follows: "published".into(),
        version: Some("1.2.0".into()),
        digest: Some(format!("sha256:{}", "0123456789abcdef".repeat(4))),
        status: Some("published".into()),
        state: SkillState::InSync,
        error: None,
        last_checked: Some("2025-01-01T00:00:00Z".into()),
        next_check: Some("2025-01-01T00:05:00Z".into()),
        targets: vec![TargetStatus {
            name: "claude".into(),
            path: format!("/home/u/.claude/skills/{name}"),
            state: TargetState::InSync,
            error: None,
        }],
        held: None,
        backups: Vec::new(),
        served_by: None,
        insecure: false,
        verification: None,
        origin: None,
    }
}

fn status() -> StatusResponse {
    let mut broken = skill("broken");
    broken.state = SkillState::Conflict;
    broken.status = Some("deprecated".into());
    broken.targets.push(TargetStatus {
        name: "cursor".into(),
        path: "/home/u/.cursor/skills/broken".into(),
        state: TargetState::Conflict,
        error: Some("a folder skillsyncd did not install is in the way".into()),
    });
    let mut failing = skill("failing");
    failing.state = SkillState::Error;
    failing.version = None;
    failing.digest = None;
    failing.last_checked = None;
    failing.error = Some(format!("registry unreachable:\n{}", "x".repeat(300)));
    StatusResponse {
        daemon: DaemonStatus {
            version: "0.1.0".into(),
            pid: 42,
            config: "/home/u/.config/skillsync/skills.toml".into(),
            config_error: Some(
                "/home/u/.config/skillsync/skills.toml:3:12: unknown target \"curser\"".into(),
            ),
            started_at: "2024-12-31T22:00:00Z".into(),
            config_loaded_at: "2024-12-31T23:58:00Z".into(),
            poll_interval_secs: 300,
            state_dir: "/s".into(),
            cache_dir: "/c".into(),
        },
        skills: vec![skill("hello-world"), broken, failing],
        unmanaged: vec![UnmanagedSkill {
            name: "old".into(),
            paths: vec!["/home/u/.claude/skills/old".into()],
        }],
        config_sources: Vec::new(),
    }
}

#[test]
fn the_status_table_reads_at_a_glance() {
    let now = at("2025-01-01T00:02:00Z");
    let text = render_status(&status(), now, &plain());
    println!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "skillsyncd 0.1.0 (pid 42, up 2h), polling every 5m"
    );
    assert_eq!(
        lines[1],
        "config: /home/u/.config/skillsync/skills.toml (loaded 4m ago)"
    );
    assert!(lines[2].starts_with("CONFIG ERROR"));
    assert!(lines[3].contains("skills.toml:3:12: unknown target"));
    let header = lines.iter().position(|l| l.starts_with("SKILL")).unwrap();
    let row = lines[header + 1];
    for part in [
        "hello-world",
        "published",
        "1.2.0",
        "0123456789ab",
        "in sync",
        "2m ago",
        "in 3m",
        "claude ✓",
    ] {
        assert!(row.contains(part), "{part:?} in {row:?}");
    }
    assert!(!row.contains("0123456789abc"), "digest cut at 12: {row}");
    let broken = lines[header + 2];
    assert!(broken.contains("deprecated!"), "{broken}");
    assert!(broken.contains("conflict"), "{broken}");
    assert!(broken.contains("claude ✓ cursor ✗conflict"), "{broken}");
    assert!(lines[header + 3].contains("└ cursor: a folder skillsyncd did not install"));
    let failing = lines[header + 4];
    assert!(failing.contains("never"), "{failing}");
    let error = lines[header + 5];
    assert!(
        error.starts_with("  └ registry unreachable: xxx"),
        "{error}"
    );
    assert_eq!(error.chars().count(), 100);
    assert!(error.ends_with('…'));
    assert!(text.contains("warning: broken 1.2.0 is deprecated"));
    assert!(text.contains("unmanaged"));
    assert!(text.contains("  old  /home/u/.claude/skills/old"));
    // Columns line up: every row has its STATE where the header has it.
    let col = lines[header].find("STATE").unwrap();
    assert_eq!(&row[col..col + 7], "in sync");
}

#[test]
fn colours_only_when_asked() {
    let now = at("2025-01-01T00:02:00Z");
    assert!(!render_status(&status(), now, &plain()).contains('\x1b'));
    let coloured = Style {
        color: true,
        width: 100,
    };
    let text = render_status(&status(), now, &coloured);
    assert!(text.contains("\x1b[31m"));
    // Padding is computed on the text, not the escapes.
    let strip = |s: &str| {
        let mut out = String::new();
        let mut in_escape = false;
        for c in s.chars() {
            match (in_escape, c) {
                (false, '\x1b') => in_escape = true,
                (true, 'm') => in_escape = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    };
    assert_eq!(strip(&text), render_status(&status(), now, &plain()));
}

#[test]
fn one_skill_in_detail() {
    let now = at("2025-01-01T00:02:00Z");
    let s = &status().skills[1];
    let text = render_skill(s, now, &plain());
    println!("{text}");
    assert!(text.starts_with("broken\n"));
    assert!(text.contains("  status:     deprecated!"));
    assert!(text.contains("  checked:    2m ago (2025-01-01T00:00:00Z)"));
    assert!(text.contains("cursor  ✗ conflict  /home/u/.cursor/skills/broken"));
    assert!(text.contains("      └ a folder skillsyncd did not install"));
}

#[test]
fn sync_results() {
    let s = status();
    let text = render_sync(&s.skills, &plain());
    println!("{text}");
    assert!(text.lines().next().unwrap().starts_with("SKILL"));
    assert!(text.contains("failing"));
    assert!(text.contains("└ registry unreachable"));
    assert!(text.contains("└ deprecated!"));
}

#[test]
fn rfc3339() {
    let base = UNIX_EPOCH + Duration::from_secs(1_735_689_600); // 2025-01-01T00:00:00Z
    assert_eq!(parse_rfc3339("2025-01-01T00:00:00Z"), Some(base));
    assert_eq!(parse_rfc3339("2025-01-01T00:00:00+00:00"), Some(base));
    assert_eq!(
        parse_rfc3339("2025-01-01T00:00:00.25Z"),
        Some(base + Duration::from_millis(250))
    );
    assert_eq!(
        parse_rfc3339("2025-01-01T00:00:00.123456789123Z"),
        Some(base + Duration::from_nanos(123_456_789))
    );
    assert_eq!(
        parse_rfc3339("2024-02-29T00:00:00Z"),
        Some(UNIX_EPOCH + Duration::from_secs(1_709_164_800))
    );
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
    // What the daemon writes reads back to the second.
    for secs in [0, 951_782_400, 1_735_689_599, 1_735_689_600, 4_102_444_800] {
        let t = UNIX_EPOCH + Duration::from_secs(secs);
        let text = humantime::format_rfc3339_seconds(t).to_string();
        assert_eq!(parse_rfc3339(&text), Some(t), "{text}");
    }
    for bad in [
        "",
        "2025-01-01",
        "2025-01-01T00:00:00",
        "2025-13-01T00:00:00Z",
        "2025-02-30T00:00:00Z",
        "2025-01-01T00:00:00+0200",
        "2025-01-01T0a:00:00Z",
        "ééééééééééééééééééééééé",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
    }
}

#[test]
fn relative_times() {
    let now = at("2025-01-01T12:00:00Z");
    assert_eq!(relative(at("2025-01-01T11:58:00Z"), now), "2m ago");
    assert_eq!(relative(at("2025-01-01T12:03:00Z"), now), "in 3m");
    assert_eq!(relative(at("2025-01-01T12:00:00Z"), now), "now");
    assert_eq!(relative(at("2025-01-01T11:59:15Z"), now), "45s ago");
    assert_eq!(relative(at("2024-12-30T12:00:00Z"), now), "2d ago");
    assert_eq!(relative(at("2025-01-01T17:00:00Z"), now), "in 5h");
    assert_eq!(when("not a time", now), "not a time");
}

#[test]
fn small_helpers() {
    assert_eq!(short_digest("sha256:0123456789abcdef"), "0123456789ab");
    assert_eq!(short_digest("abc"), "abc");
    assert_eq!(truncate("abcdef", 4), "abc…");
    assert_eq!(truncate("abc", 4), "abc");
    assert_eq!(plural(1, "skill"), "1 skill");
    assert_eq!(plural(2, "skill"), "2 skills");
}

/// A daemon stand-in: `good` is in sync, `bad` ends its pass in error,
/// reload is rejected.
struct Fake;

impl skillsyncd::control::Controller for Fake {
    fn status(&self) -> StatusResponse {
        let mut s = status();
        s.skills = vec![skill("good"), self.skill("bad").unwrap()];
        s
    }

    fn skill(&self, name: &str) -> Option<SkillStatus> {
        match name {
            "good" => Some(skill("good")),
            "bad" => {
                let mut bad = skill("bad");
                bad.state = SkillState::Error;
                bad.error = Some("registry unreachable".into());
                Some(bad)
            }
            _ => None,
        }
    }

    async fn sync(
        &self,
        name: Option<String>,
        wait: bool,
    ) -> Result<skillsyncd::control::protocol::SyncResponse, String> {
        let skills = match name {
            Some(n) => vec![self.skill(&n).ok_or(format!("no skill named {n:?}"))?],
            None => self.status().skills,
        };
        Ok(skillsyncd::control::protocol::SyncResponse {
            waited: wait,
            skills,
        })
    }

    async fn reload(&self) -> skillsyncd::control::protocol::ReloadResponse {
        skillsyncd::control::protocol::ReloadResponse {
            ok: false,
            error: Some("/c/skills.toml:3:12: unknown target \"curser\"".into()),
            added: vec![],
            removed: vec![],
            changed: vec![],
        }
    }

    fn events(&self) -> skillsyncd::control::protocol::EventsResponse {
        skillsyncd::control::protocol::EventsResponse { events: Vec::new() }
    }

    async fn plan(&self) -> Result<skillsyncd::control::protocol::PlanResponse, String> {
        Err("not in this fake".into())
    }

    async fn hold(
        &self,
        name: String,
        _action: HoldAction,
    ) -> Result<skillsyncd::control::protocol::HoldResponse, skillsyncd::control::ActionError> {
        Err(skillsyncd::control::ActionError::Refused(format!(
            "{name} has no earlier generation"
        )))
    }
}

/// Runs `skillsyncctl --socket SOCKET <args>` against [`Fake`] and
/// returns the exit code.
fn ctl_against_fake(args: &[&str]) -> ExitCode {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/skillsyncd.sock");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = {
        let _runtime = rt.enter();
        skillsyncd::control::server::bind(&socket).unwrap()
    };
    let server = rt.spawn(skillsyncd::control::server::serve(
        listener,
        std::sync::Arc::new(Fake),
        async {
            let _ = stopped.await;
        },
    ));
    let mut argv = vec!["skillsyncctl", "--socket", socket.to_str().unwrap()];
    argv.extend_from_slice(args);
    let code = run(Args::try_parse_from(argv).unwrap());
    let _ = stop.send(());
    rt.block_on(server).unwrap();
    code
}

#[test]
fn exit_codes() {
    assert_eq!(ctl_against_fake(&["status"]), ExitCode::SUCCESS);
    assert_eq!(ctl_against_fake(&["status", "--json"]), ExitCode::SUCCESS);
    assert_eq!(ctl_against_fake(&["status", "good"]), ExitCode::SUCCESS);
    assert_eq!(ctl_against_fake(&["status", "nope"]), ExitCode::from(1));
    assert_eq!(ctl_against_fake(&["sync"]), ExitCode::SUCCESS);
    assert_eq!(
        ctl_against_fake(&["sync", "good", "--wait"]),
        ExitCode::SUCCESS
    );
    assert_eq!(ctl_against_fake(&["sync", "--wait"]), ExitCode::from(1));
    assert_eq!(ctl_against_fake(&["sync", "nope"]), ExitCode::from(1));
    assert_eq!(ctl_against_fake(&["reload"]), ExitCode::from(2));
}

#[test]
fn not_running_is_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("skillsyncd.sock");
    for sub in ["status", "sync", "reload"] {
        let args =
            Args::try_parse_from(["skillsyncctl", "--socket", socket.to_str().unwrap(), sub])
                .unwrap();
        assert_eq!(run(args), ExitCode::from(3), "{sub}");
    }
}

#[test]
fn the_command_line_is_well_formed() {
    Args::command().debug_assert();
    for sub in Args::command().get_subcommands() {
        assert!(
            sub.get_after_help().is_some(),
            "{} has no examples",
            sub.get_name()
        );
    }
}

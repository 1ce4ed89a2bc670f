//! Polite polling against misbehaving registries: `429` with `Retry-After`,
//! `503` backoff and automatic recovery, a redirect to another port that
//! must not carry credentials, a trickling and an endless body cut off, and
//! a company's `registries.conf` mirrors honoured. In every case the
//! installed skill stays and other skills go on.

use std::process::Output;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::Value;

use crate::support::proxy::{Fault, Match, Proxy, RequestKind};
use crate::support::registry::Registry;
use crate::support::skillimage::{BuiltImage, Publisher, SkillImage};
use crate::support::{wait_until, write_file, KillOnDrop, TestEnv};

fn skill(name: &str, version: &str) -> BuiltImage {
    SkillImage::new(name, version)
        .description("A skill for polite-polling tests.")
        .file("docs/notes.md", format!("notes for {name} {version}\n"))
        .build()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn skill_md(env: &TestEnv, name: &str) -> String {
    std::fs::read_to_string(env.skill_dir("claude", name).join("SKILL.md")).unwrap_or_default()
}

/// A daemon over a sandbox, driven through `skillsyncctl`.
struct Daemon<'a> {
    env: &'a TestEnv,
    _process: KillOnDrop,
}

impl<'a> Daemon<'a> {
    fn start(env: &'a TestEnv) -> Daemon<'a> {
        let log = std::fs::File::create(env.root().join("daemon.log")).unwrap();
        let mut command = env.daemon();
        command.stderr(log);
        let process = KillOnDrop::spawn(&mut command);
        let d = Daemon {
            env,
            _process: process,
        };
        wait_until(Duration::from_secs(30), "the control socket", || {
            d.ctl(&["status", "--json"]).status.success()
        });
        d
    }

    fn ctl(&self, args: &[&str]) -> Output {
        self.env.run_ctl(args)
    }

    fn skill(&self, name: &str) -> Value {
        self.env.skill_status(name)
    }

    fn wait_in_sync(&self, name: &str, version: &str) {
        self.env.wait_in_sync(name, version)
    }

    fn sync(&self, name: &str) {
        // A failed pass exits non-zero; what matters is what it did.
        let _ = self.ctl(&["sync", name, "--wait"]);
    }
}

fn seconds_until(rfc3339: &str) -> i64 {
    let at = humantime::parse_rfc3339(rfc3339).expect("an RFC 3339 time");
    match at.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[test]
fn retry_after_is_honoured_per_registry_and_other_registries_go_on() {
    let registry = Registry::start();
    let limited = Proxy::start(&registry.host());
    let other = Proxy::start(&registry.host());
    let publisher = Publisher::new(registry.host());
    publisher.push(&skill("hello", "1.0.0"));
    publisher.push(&skill("world", "1.0.0"));
    let env = TestEnv::new();
    env.write_config(&format!(
        "[daemon]\npoll_interval = \"1h\"\n\n\
         [registries.\"{0}\"]\ninsecure = true\n[registries.\"{1}\"]\ninsecure = true\n\n\
         [skills.hello]\nimage = \"{0}/examples/hello\"\n\n\
         [skills.world]\nimage = \"{1}/examples/world\"\n",
        limited.host(),
        other.host()
    ));
    let d = Daemon::start(&env);
    d.wait_in_sync("hello", "1.0.0");
    d.wait_in_sync("world", "1.0.0");
    let installed = skill_md(&env, "hello");

    publisher.push(&skill("hello", "1.1.0"));
    publisher.push(&skill("world", "1.1.0"));
    limited.rate_limit(Match::kind(RequestKind::TagList), 600, 1);
    limited.reset();
    d.sync("hello");
    assert_eq!(
        limited.counts().total(),
        1,
        "one request, answered 429: {}",
        limited.counts().summary()
    );
    let st = d.skill("hello");
    assert_eq!(st["state"], "error", "{st}");
    let error = st["error"].as_str().unwrap_or_default();
    assert!(error.contains("429"), "{error}");
    // The skill's next check waits for the registry's Retry-After.
    let wait = seconds_until(st["next_check"].as_str().unwrap());
    assert!((500..=600).contains(&wait), "next check in {wait}s: {st}");

    // Asked again before then: no request reaches the registry, and status
    // says why and until when.
    let asked_while_it_waits = |when: &str| {
        d.sync("hello");
        let counts = limited.counts();
        assert_eq!(counts.total(), 0, "{when}: {}", counts.summary());
        let st = d.skill("hello");
        let error = st["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("unavailable since") && error.contains("next try at"),
            "{when}: {error}"
        );
    };
    limited.reset();
    asked_while_it_waits("asked again");
    asked_while_it_waits("asked twice");
    assert_eq!(
        skill_md(&env, "hello"),
        installed,
        "the installed skill stays"
    );

    // A config reload does not forget what the registry asked for.
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!("{config}\n# edited\n"));
    let reload = d.ctl(&["reload"]);
    assert!(reload.status.success(), "{}", text(&reload));
    asked_while_it_waits("after a reload");

    // Another registry is unaffected.
    d.sync("world");
    d.wait_in_sync("world", "1.1.0");

    // Plain HTTP is shown, in JSON and for people.
    assert_eq!(d.skill("world")["insecure"], true);
    let out = d.ctl(&["status", "world"]);
    assert!(text(&out).contains("plain HTTP"), "{}", text(&out));
}

#[test]
fn server_errors_back_off_and_recovery_is_automatic() {
    let registry = Registry::start();
    let proxy = Proxy::start(&registry.host());
    let publisher = Publisher::new(registry.host());
    publisher.push(&skill("hello", "1.0.0"));
    let env = TestEnv::new();
    env.write_config(&format!(
        "[daemon]\npoll_interval = \"2s\"\n\n[registries.\"{0}\"]\ninsecure = true\n\n\
         [skills.hello]\nimage = \"{0}/examples/hello\"\n",
        proxy.host()
    ));
    let d = Daemon::start(&env);
    d.wait_in_sync("hello", "1.0.0");
    let installed = skill_md(&env, "hello");

    publisher.push(&skill("hello", "1.1.0"));
    let outage = proxy.fail(Match::any(), 503);
    proxy.reset();
    wait_until(Duration::from_secs(60), "the outage in status", || {
        d.skill("hello")["error"]
            .as_str()
            .is_some_and(|e| e.contains("503") || e.contains("unavailable since"))
    });
    // Failures in a row lengthen the wait: after a few, the registry is
    // asked less often than the 2 s poll interval.
    wait_until(
        Duration::from_secs(60),
        "a wait longer than the poll interval",
        || {
            let st = d.skill("hello");
            st["state"] == "error"
                && st["next_check"]
                    .as_str()
                    .is_some_and(|t| seconds_until(t) >= 3)
        },
    );
    assert_eq!(
        skill_md(&env, "hello"),
        installed,
        "the installed skill stays"
    );
    assert!(proxy
        .counts()
        .requests
        .iter()
        .all(|r| r.kind != RequestKind::BlobGet || r.status == 503));

    proxy.remove(outage);
    d.wait_in_sync("hello", "1.1.0");
}

#[test]
fn a_redirect_to_another_port_carries_no_credentials() {
    const USER: &str = "skills";
    const PASSWORD: &str = "redirect-s3cret";
    // The same image in a registry that wants credentials and in an open
    // one standing in for a blob store on another port.
    let private = Registry::start_with_htpasswd(USER, PASSWORD);
    let store = Registry::start();
    let img = skill("hello", "1.0.0");
    Publisher::with_basic(private.host(), USER, PASSWORD).push(&img);
    Publisher::new(store.host()).push(&img);
    let front = Proxy::start(&private.host());
    let blobs = Proxy::start(&store.host());
    front.inject(
        Match::kind(RequestKind::BlobGet),
        Fault::Redirect(format!("http://{}", blobs.host())),
    );

    let env = TestEnv::new();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    write_file(
        &env.home().join(".docker/config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"{auth}\"}}}}}}",
            front.host()
        )
        .as_bytes(),
    );
    env.write_config(&format!(
        "[registries.\"{0}\"]\ninsecure = true\n[registries.\"{1}\"]\ninsecure = true\n\n\
         [skills.hello]\nimage = \"{0}/examples/hello\"\n",
        front.host(),
        blobs.host()
    ));
    env.once_ok();
    assert_eq!(env.read_skill("claude", "hello"), img.files);

    let at_front = front.counts();
    assert!(
        at_front
            .requests
            .iter()
            .any(|r| r.kind == RequestKind::ManifestGet && r.authorization),
        "the registry itself gets the credentials: {}",
        at_front.summary()
    );
    let at_blobs = blobs.counts();
    assert!(at_blobs.blob_gets() >= 1, "{}", at_blobs.summary());
    assert!(
        at_blobs.requests.iter().all(|r| !r.authorization),
        "no Authorization header crossed to another port: {:?}",
        at_blobs.requests
    );
}

#[test]
fn trickling_and_endless_bodies_are_cut_off() {
    let registry = Registry::start();
    let proxy = Proxy::start(&registry.host());
    let publisher = Publisher::new(registry.host());
    publisher.push(&skill("hello", "1.0.0"));
    publisher.push(&skill("world", "1.0.0"));
    let env = TestEnv::new();
    env.write_config(&format!(
        "[daemon]\nrequest_timeout = \"3s\"\n\n[registries.\"{0}\"]\ninsecure = true\n\n\
         [skills.hello]\nimage = \"{0}/examples/hello\"\n\n\
         [skills.world]\nimage = \"{0}/examples/world\"\n",
        proxy.host()
    ));
    env.once_ok();
    let installed = env.read_skill("claude", "hello");

    publisher.push(&skill("hello", "1.1.0"));
    publisher.push(&skill("world", "1.1.0"));
    let hello_tags = Match::kind(RequestKind::TagList).and_path("examples/hello/");

    // A tag list that never ends: capped, not read forever.
    let endless = proxy.inject(hello_tags.clone(), Fault::Endless);
    let out = env.daemon().arg("--once").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("larger than"), "{}", text(&out));
    assert_eq!(env.read_skill("claude", "hello"), installed);
    assert_eq!(
        env.read_skill("claude", "world"),
        skill("world", "1.1.0").files,
        "the other skill goes on"
    );
    proxy.remove(endless);

    // A server that trickles a byte at a time: cut off by the deadline.
    publisher.push(&skill("world", "1.2.0"));
    let trickle = proxy.inject(hello_tags, Fault::Trickle(Duration::from_millis(200)));
    let out = env.daemon().arg("--once").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("within 3s"), "{}", text(&out));
    assert_eq!(env.read_skill("claude", "hello"), installed);
    proxy.remove(trickle);

    env.once_ok();
    assert_ne!(env.read_skill("claude", "hello"), installed);
}

#[test]
fn registries_conf_mirrors_are_honoured() {
    let registry = Registry::start();
    let origin = Proxy::start(&registry.host());
    let mirror = Proxy::start(&registry.host());
    let publisher = Publisher::new(registry.host());
    let img = skill("hello", "1.0.0");
    publisher.push(&img);
    let env = TestEnv::new();
    // Nothing about either endpoint in skills.toml: registries.conf says
    // where to go and that both speak plain HTTP.
    let conf = env.config_home().join("containers/registries.conf");
    write_file(
        &conf,
        format!(
            "unqualified-search-registries = [\"docker.io\"]\n\n\
             [[registry]]\nlocation = \"{0}\"\ninsecure = true\n\
             [[registry.mirror]]\nlocation = \"{1}\"\ninsecure = true\n",
            origin.host(),
            mirror.host()
        )
        .as_bytes(),
    );
    env.write_config(&format!(
        "[skills.hello]\nimage = \"{}/examples/hello\"\n",
        origin.host()
    ));

    // The origin is down: the mirror serves everything.
    let down = origin.fail(Match::any(), 503);
    env.once_ok();
    assert_eq!(env.read_skill("claude", "hello"), img.files);
    assert!(
        mirror.counts().blob_gets() >= 1,
        "{}",
        mirror.counts().summary()
    );
    assert_eq!(origin.counts().total(), 0, "the mirror answered first");
    origin.remove(down);

    // A digest-only mirror: tags from the origin, content from the mirror.
    write_file(
        &conf,
        format!(
            "[[registry]]\nlocation = \"{0}\"\ninsecure = true\n\
             [[registry.mirror]]\nlocation = \"{1}\"\ninsecure = true\npull-from-mirror = \"digest-only\"\n",
            origin.host(),
            mirror.host()
        )
        .as_bytes(),
    );
    let img2 = skill("hello", "1.1.0");
    publisher.push(&img2);
    origin.reset();
    mirror.reset();
    env.once_ok();
    assert_eq!(env.read_skill("claude", "hello"), img2.files);
    let (o, m) = (origin.counts(), mirror.counts());
    assert_eq!(
        (o.tag_lists(), m.tag_lists()),
        (1, 0),
        "{} / {}",
        o.summary(),
        m.summary()
    );
    assert_eq!(o.manifest_gets() + o.blob_gets(), 0, "{}", o.summary());
    assert!(
        m.manifest_gets() >= 1 && m.blob_gets() >= 1,
        "{}",
        m.summary()
    );

    // A broken registries.conf is an error naming the file.
    write_file(&conf, b"[[registry]]\nlocation = \n");
    let out = env.daemon().arg("--once").output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("registries.conf"), "{}", text(&out));
}

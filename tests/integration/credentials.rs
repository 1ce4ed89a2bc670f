//! Registry credentials users already have: docker's config.json, podman's
//! auth.json, credential helpers, a per-registry `auth_file` — against a
//! real `docker-registry` with htpasswd (bcrypt) auth.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

use base64::Engine as _;

use crate::support::registry::Registry;
use crate::support::skillimage::{BuiltImage, Publisher, SkillImage};
use crate::support::{wait_until, write_file, KillOnDrop, TestEnv};

const USER: &str = "skills";
const PASSWORD: &str = "s3cret:with:colons";

struct World {
    env: TestEnv,
    registry: Registry,
    img: BuiltImage,
}

impl World {
    fn new() -> World {
        let registry = Registry::start_with_htpasswd(USER, PASSWORD);
        let publisher = Publisher::with_basic(registry.host(), USER, PASSWORD);
        let img = SkillImage::new("hello", "1.0.0").build();
        publisher.push(&img);
        let env = TestEnv::new();
        env.write_config(&format!(
            "[registries.\"{0}\"]\ninsecure = true\n\n[skills.hello]\nimage = \"{0}/examples/hello\"\n",
            registry.host()
        ));
        World { env, registry, img }
    }

    fn once(&self) -> Output {
        self.env.once()
    }

    fn installed(&self) -> bool {
        self.env
            .skill_dir("claude", "hello")
            .join("SKILL.md")
            .exists()
    }
}

fn auths_json(host: &str, user: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("{{\"auths\":{{\"{host}\":{{\"auth\":\"{auth}\"}}}}}}")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn credentials_from_the_docker_config() {
    let w = World::new();
    let out = w.once();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("unauthorized"), "{}", text(&out));
    write_file(
        &w.env.home().join(".docker/config.json"),
        auths_json(&w.registry.host(), USER, PASSWORD).as_bytes(),
    );
    let out = w.once();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(w.env.read_skill("claude", "hello"), w.img.files);
    assert!(!text(&out).contains(PASSWORD), "no secret in the output");
}

#[test]
fn credentials_from_podmans_auth_file_before_dockers() {
    let w = World::new();
    // A wrong docker entry loses to podman's auth.json.
    write_file(
        &w.env.home().join(".docker/config.json"),
        auths_json(&w.registry.host(), USER, "wrong").as_bytes(),
    );
    write_file(
        &w.env.runtime_dir().join("containers/auth.json"),
        auths_json(&format!("{}/examples", w.registry.host()), USER, PASSWORD).as_bytes(),
    );
    let out = w.once();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(w.installed());
}

#[test]
fn credentials_from_a_helper_on_path_and_from_auth_file() {
    let w = World::new();
    let bin = w.env.root().join("bin");
    let helper = bin.join("docker-credential-skilltest");
    write_file(
        &helper,
        format!(
            "#!/bin/sh\nread server\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n"
        )
        .as_bytes(),
    );
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_file(
        &w.env.home().join(".docker/config.json"),
        format!(
            "{{\"credHelpers\":{{\"{}\":\"skilltest\"}}}}",
            w.registry.host()
        )
        .as_bytes(),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = w
        .env
        .daemon()
        .arg("--once")
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(w.installed());

    // An explicit auth_file wins over everything else.
    std::fs::remove_dir_all(w.env.skill_dir("claude", "hello")).unwrap();
    let file = w.env.root().join("team-auth.json");
    write_file(
        &file,
        auths_json(&w.registry.host(), USER, PASSWORD).as_bytes(),
    );
    let env2 = TestEnv::new();
    env2.write_config(&format!(
        "[registries.\"{0}\"]\ninsecure = true\nauth_file = \"{1}\"\n\n[skills.hello]\nimage = \"{0}/examples/hello\"\n",
        w.registry.host(),
        file.display()
    ));
    let out = env2.daemon().arg("--once").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_wrong_password_is_unauthorized_and_a_fixed_file_works_without_a_restart() {
    let w = World::new();
    let docker = w.env.home().join(".docker/config.json");
    write_file(
        &docker,
        auths_json(&w.registry.host(), USER, "wrong").as_bytes(),
    );
    w.env.write_config(&format!(
        "[daemon]\npoll_interval = \"1h\"\n\n[registries.\"{0}\"]\ninsecure = true\n\n[skills.hello]\nimage = \"{0}/examples/hello\"\n",
        w.registry.host()
    ));
    let mut cmd = w.env.daemon();
    let _daemon = KillOnDrop::spawn(&mut cmd);
    let status = |w: &World| -> serde_json::Value {
        let out = w
            .env
            .ctl()
            .args(["status", "hello", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    wait_until(Duration::from_secs(30), "the auth failure reported", || {
        let st = status(&w);
        st["state"] == "error"
            && st["error"]
                .as_str()
                .is_some_and(|e| e.contains("unauthorized") && e.contains(&w.registry.host()))
    });
    let err = status(&w)["error"].as_str().unwrap().to_string();
    assert!(
        err.contains(".docker/config.json"),
        "says which file: {err}"
    );
    assert!(!err.contains("wrong"), "no secret in status: {err}");

    write_file(
        &docker,
        auths_json(&w.registry.host(), USER, PASSWORD).as_bytes(),
    );
    let out = w
        .env
        .ctl()
        .args(["sync", "hello", "--wait"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(w.installed());
}

/// A registry with token authentication, played by the proxy in front of
/// an open registry.
fn token_world() -> (TestEnv, Registry, crate::support::proxy::Proxy, BuiltImage) {
    let registry = Registry::start();
    let img = SkillImage::new("hello", "1.0.0").build();
    Publisher::new(registry.host()).push(&img);
    let front = crate::support::proxy::Proxy::start(&registry.host());
    let env = TestEnv::new();
    write_file(
        &env.home().join(".docker/config.json"),
        auths_json(&front.host(), USER, PASSWORD).as_bytes(),
    );
    env.write_config(&format!(
        "[registries.\"{0}\"]\ninsecure = true\n\n[skills.hello]\nimage = \"{0}/examples/hello\"\n",
        front.host()
    ));
    (env, registry, front, img)
}

#[test]
fn bearer_tokens_from_the_registrys_own_token_service() {
    let (env, _registry, front, img) = token_world();
    front.require_token(USER, PASSWORD, &format!("http://{}/token", front.host()));
    env.once_ok();
    assert_eq!(env.read_skill("claude", "hello"), img.files);
    let counts = front.counts();
    // One token for the repository, reused for every request after the
    // first challenge.
    assert_eq!(counts.for_path("/token"), 1, "{}", counts.summary());
    let challenged = counts.requests.iter().filter(|r| r.status == 401).count();
    assert_eq!(challenged, 1, "{}", counts.summary());
}

#[test]
fn credentials_never_go_to_a_plain_http_token_service_on_another_port() {
    let (env, _registry, front, _img) = token_world();
    // The realm is plain HTTP on another port: it must get no password.
    let elsewhere = crate::support::proxy::Proxy::start(&front.upstream().to_string());
    elsewhere.require_token(USER, PASSWORD, "http://unused.invalid/token");
    front.require_token(
        USER,
        PASSWORD,
        &format!("http://{}/token", elsewhere.host()),
    );
    let out = env.daemon().arg("--once").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("unauthorized"), "{}", text(&out));
    assert!(
        text(&out).contains("never sent to the plain-HTTP token service"),
        "{}",
        text(&out)
    );
    let asked = elsewhere.counts();
    assert!(asked.for_path("/token") >= 1, "{}", asked.summary());
    assert!(
        asked.requests.iter().all(|r| !r.authorization),
        "no credentials crossed: {:?}",
        asked.requests
    );
    assert!(!env.skill_dir("claude", "hello").exists());
}

#[test]
fn an_identity_token_is_exchanged_with_the_refresh_token_grant() {
    let (env, _registry, front, img) = token_world();
    front.require_token(USER, PASSWORD, &format!("http://{}/token", front.host()));
    // What `docker login` leaves for registries that use OAuth2: no
    // password, an identity (refresh) token.
    write_file(
        &env.home().join(".docker/config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"identitytoken\":\"{PASSWORD}\"}}}}}}",
            front.host()
        )
        .as_bytes(),
    );
    env.once_ok();
    assert_eq!(env.read_skill("claude", "hello"), img.files);
    let counts = front.counts();
    let grants: Vec<_> = counts
        .requests
        .iter()
        .filter(|r| r.path == "/token")
        .collect();
    assert_eq!(grants.len(), 1, "{}", counts.summary());
    assert_eq!(grants[0].method, "POST");
    assert_eq!(grants[0].status, 200);
}

//! Tests of `source::auth`: where credentials are looked up and in which
//! order, credential helpers, and secrets kept out of debug output.
//!
//! Built for `cargo test` only: no code outside tests may use anything here.

use super::*;

use std::fs;

const TIMEOUT: Duration = Duration::from_secs(10);

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, text).unwrap();
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn basic(username: &str, password: &str) -> Credential {
    Credential::Basic {
        username: username.into(),
        password: password.into(),
    }
}

fn no_helpers() -> HelperEnv {
    HelperEnv {
        path: None,
        timeout: TIMEOUT,
    }
}

/// A directory holding helper scripts, and the `HelperEnv` finding them.
fn helper_dir(dir: &Path, scripts: &[(&str, &str)], timeout: Duration) -> HelperEnv {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for (name, body) in scripts {
        let path = bin.join(format!("{HELPER_PREFIX}{name}"));
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut path = OsString::from(&bin);
    path.push(":/usr/bin:/bin");
    HelperEnv {
        path: Some(path),
        timeout,
    }
}

fn lookup<'a>(registry: &'a str, repository: &'a str) -> Lookup<'a> {
    Lookup {
        registry,
        repository,
    }
}

fn find_one(file: &Path, l: &Lookup, env: &HelperEnv) -> Option<Credential> {
    find(&AuthSources::with_override(file), l, env)
        .unwrap()
        .map(|(c, _)| c)
}

use crate::paths::env_of;

#[test]
fn sources_follow_the_podman_order() {
    let home = Path::new("/home/u");
    let all = AuthSources::from_env(
        home,
        env_of(&[
            ("REGISTRY_AUTH_FILE", "/a/auth.json"),
            ("XDG_RUNTIME_DIR", "/run/user/1"),
            ("XDG_CONFIG_HOME", "/cfg"),
            ("DOCKER_CONFIG", "/dock"),
        ]),
    );
    assert_eq!(
        all.files,
        [
            "/a/auth.json",
            "/run/user/1/containers/auth.json",
            "/cfg/containers/auth.json",
            "/dock/config.json"
        ]
        .map(PathBuf::from)
    );
    let bare = AuthSources::from_env(home, env_of(&[("XDG_CONFIG_HOME", "")]));
    assert_eq!(
        bare.files,
        [
            "/home/u/.config/containers/auth.json",
            "/home/u/.docker/config.json"
        ]
        .map(PathBuf::from)
    );
    assert_eq!(
        AuthSources::with_override(Path::new("/x.json")).files,
        [PathBuf::from("/x.json")]
    );
}

#[test]
fn earlier_files_win() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sources = AuthSources::from_env(
        &d.join("home"),
        env_of(&[
            (
                "REGISTRY_AUTH_FILE",
                d.join("explicit.json").to_str().unwrap(),
            ),
            ("XDG_RUNTIME_DIR", d.join("run").to_str().unwrap()),
            ("XDG_CONFIG_HOME", d.join("cfg").to_str().unwrap()),
            ("DOCKER_CONFIG", d.join("docker").to_str().unwrap()),
        ]),
    );
    let entry = |user: &str| {
        format!(
            r#"{{"auths": {{"reg.example": {{"auth": "{}"}}}}}}"#,
            b64(&format!("{user}:pw"))
        )
    };
    let l = lookup("reg.example", "team/skill");
    let names = ["explicit", "run", "cfg", "docker"];
    for (file, name) in sources.files.iter().zip(names).rev() {
        write(file, &entry(name));
        let (credential, from) = find(&sources, &l, &no_helpers()).unwrap().unwrap();
        assert_eq!(credential, basic(name, "pw"));
        assert_eq!(&from, file);
    }
    // A file without an entry for the registry is passed over.
    write(
        &sources.files[0],
        r#"{"auths": {"other.example": {"auth": "eDp5"}}}"#,
    );
    let (credential, _) = find(&sources, &l, &no_helpers()).unwrap().unwrap();
    assert_eq!(credential, basic("run", "pw"));
    let unknown = lookup("unknown.example", "x");
    assert!(find(&sources, &unknown, &no_helpers()).unwrap().is_none());
}

#[test]
fn longest_auths_key_wins() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.json");
    write(
        &file,
        &format!(
            r#"{{"auths": {{
                    "reg.example": {{"auth": "{}"}},
                    "reg.example/team": {{"auth": "{}"}},
                    "reg.example/team/skill": {{"auth": "{}"}},
                    "reg.example/te": {{"auth": "{}"}}
                }}}}"#,
            b64("host:1"),
            b64("ns:2"),
            b64("repo:3"),
            b64("partial:4")
        ),
    );
    let env = no_helpers();
    let get = |repo| find_one(&file, &lookup("reg.example", repo), &env);
    assert_eq!(get("team/skill"), Some(basic("repo", "3")));
    assert_eq!(get("team/other"), Some(basic("ns", "2")));
    assert_eq!(get("team/skill-two"), Some(basic("ns", "2")));
    assert_eq!(get("tea/skill"), Some(basic("host", "1")));
    assert_eq!(get("other/skill"), Some(basic("host", "1")));
    assert_eq!(
        find_one(&file, &lookup("reg.example:5000", "team/skill"), &env),
        None
    );
}

#[test]
fn keys_are_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    write(
        &file,
        &format!(
            r#"{{"auths": {{
                    "https://index.docker.io/v1/": {{"auth": "{}"}},
                    "http://localhost:5000/v2/": {{"auth": "{}"}},
                    "https://Reg.Example/": {{"auth": "{}"}}
                }}}}"#,
            b64("hub:1"),
            b64("local:2"),
            b64("reg:3")
        ),
    );
    let env = no_helpers();
    for hub in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
        assert_eq!(
            find_one(&file, &lookup(hub, "library/x"), &env),
            Some(basic("hub", "1")),
            "{hub}"
        );
    }
    assert_eq!(
        find_one(&file, &lookup("localhost:5000", "a/b"), &env),
        Some(basic("local", "2"))
    );
    assert_eq!(
        find_one(&file, &lookup("reg.example", "a"), &env),
        Some(basic("reg", "3"))
    );
    assert_eq!(normalise_key("https://reg.example/v2/"), "reg.example");
    // A key in normal form beats one that only normalises to it.
    write(
        &file,
        &format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}}, "docker.io": {{"auth": "{}"}}}}}}"#,
            b64("legacy:1"),
            b64("plain:2")
        ),
    );
    assert_eq!(
        find_one(&file, &lookup("docker.io", "a/b"), &env),
        Some(basic("plain", "2"))
    );
    assert_eq!(normalise_key("reg.example/ns/"), "reg.example/ns");
}

#[test]
fn auth_field_and_username_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.json");
    write(
        &file,
        &format!(
            r#"{{"auths": {{
                    "colon.example": {{"auth": "{}"}},
                    "unpadded.example": {{"auth": "{}"}},
                    "fields.example": {{"username": "u", "password": "p:w"}},
                    "token.example": {{"username": "u", "identitytoken": "refresh"}}
                }}}}"#,
            b64("user:pa:ss:"),
            b64("ab:c").trim_end_matches('=')
        ),
    );
    let env = no_helpers();
    let get = |reg| find_one(&file, &lookup(reg, "x"), &env);
    assert_eq!(get("colon.example"), Some(basic("user", "pa:ss:")));
    assert_eq!(get("unpadded.example"), Some(basic("ab", "c")));
    assert_eq!(get("fields.example"), Some(basic("u", "p:w")));
    assert_eq!(
        get("token.example"),
        Some(Credential::IdentityToken("refresh".into()))
    );
}

#[test]
fn bad_auth_field_names_file_not_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.json");
    let secret = b64("no-colon-secret");
    write(
        &file,
        &format!(r#"{{"auths": {{"reg.example": {{"auth": "{secret}"}}}}}}"#),
    );
    let err = find(
        &AuthSources::with_override(&file),
        &lookup("reg.example", "x"),
        &no_helpers(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(file.to_str().unwrap()), "{text}");
    assert!(text.contains("reg.example"), "{text}");
    assert!(
        !text.contains("no-colon-secret") && !text.contains(&secret),
        "{text}"
    );
}

#[test]
fn invalid_json_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    let good = dir.path().join("good.json");
    write(&bad, r#"{"auths": {"reg.example": "hunter2"}}"#);
    write(
        &good,
        &format!(
            r#"{{"auths": {{"reg.example": {{"auth": "{}"}}}}}}"#,
            b64("a:b")
        ),
    );
    let sources = AuthSources {
        files: vec![dir.path().join("missing.json"), bad.clone(), good],
    };
    let err = find(&sources, &lookup("reg.example", "x"), &no_helpers()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, AuthError::Parse { .. }), "{err:?}");
    assert!(text.contains(bad.to_str().unwrap()), "{text}");
    assert!(!text.contains("hunter2"), "{text}");

    write(&bad, "{ not json");
    let err = find(&sources, &lookup("reg.example", "x"), &no_helpers()).unwrap_err();
    assert!(err.to_string().contains(bad.to_str().unwrap()));

    // An empty file holds nothing, as for podman.
    write(&bad, "");
    assert!(find(&sources, &lookup("reg.example", "x"), &no_helpers())
        .unwrap()
        .is_some());
}

#[test]
fn cred_helpers_beat_auths() {
    let dir = tempfile::tempdir().unwrap();
    let env = helper_dir(
        dir.path(),
        &[(
            "fake",
            r#"read server; printf '{"ServerURL":"%s","Username":"helper-%s","Secret":"s3"}' "$server" "$server""#,
        )],
        TIMEOUT,
    );
    let file = dir.path().join("config.json");
    write(
        &file,
        &format!(
            r#"{{"auths": {{"reg.example": {{"auth": "{}"}}, "hub.example": {{"auth": "{}"}}}},
                    "credHelpers": {{"reg.example": "fake", "docker.io": "fake"}}}}"#,
            b64("file:1"),
            b64("file:2")
        ),
    );
    assert_eq!(
        find_one(&file, &lookup("reg.example", "x"), &env),
        Some(basic("helper-reg.example", "s3"))
    );
    assert_eq!(
        find_one(&file, &lookup("hub.example", "x"), &env),
        Some(basic("file", "2"))
    );
    // Docker Hub is asked for under docker's server URL.
    assert_eq!(
        find_one(&file, &lookup("index.docker.io", "library/x"), &env),
        Some(basic("helper-https://index.docker.io/v1/", "s3"))
    );
}

#[test]
fn creds_store_serves_empty_entries_and_unmatched_registries() {
    let dir = tempfile::tempdir().unwrap();
    let env = helper_dir(
        dir.path(),
        &[(
            "store",
            r#"read server
case "$server" in
  reg.example) echo '{"Username":"<token>","Secret":"idtok"}' ;;
  other.example) echo '{"Username":"u","Secret":"p"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac"#,
        )],
        TIMEOUT,
    );
    let file = dir.path().join("config.json");
    write(
        &file,
        &format!(
            r#"{{"auths": {{"reg.example": {{}}, "inline.example": {{"auth": "{}"}}, "none.example": {{}}}},
                    "credsStore": "store"}}"#,
            b64("in:line")
        ),
    );
    let get = |reg| find_one(&file, &lookup(reg, "x"), &env);
    assert_eq!(
        get("reg.example"),
        Some(Credential::IdentityToken("idtok".into()))
    );
    assert_eq!(get("other.example"), Some(basic("u", "p")));
    assert_eq!(get("inline.example"), Some(basic("in", "line")));
    assert_eq!(get("none.example"), None);

    // Without a credsStore an empty entry holds nothing.
    write(&file, r#"{"auths": {"reg.example": {}}}"#);
    assert_eq!(get("reg.example"), None);
}

#[test]
fn helper_failures() {
    let dir = tempfile::tempdir().unwrap();
    let env = helper_dir(
        dir.path(),
        &[
            ("broken", "echo 'keychain locked' >&2; exit 3"),
            ("garbled", "echo 'secret-looking garbage'"),
        ],
        TIMEOUT,
    );
    let file = dir.path().join("config.json");
    let l = lookup("reg.example", "x");
    let run = |helper: &str| {
        write(
            &file,
            &format!(r#"{{"credHelpers": {{"reg.example": "{helper}"}}}}"#),
        );
        find(&AuthSources::with_override(&file), &l, &env).unwrap_err()
    };
    let err = run("broken");
    assert!(matches!(err, AuthError::HelperFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("docker-credential-broken"));
    assert!(err.to_string().contains("keychain locked"));
    let err = run("garbled");
    assert!(matches!(err, AuthError::HelperOutput { .. }), "{err:?}");
    assert!(!err.to_string().contains("garbage"));
    let err = run("absent");
    assert!(matches!(err, AuthError::HelperNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("docker-credential-absent"));
    let err = run("../evil");
    assert!(matches!(err, AuthError::BadHelperName { .. }), "{err:?}");
}

#[test]
fn slow_helper_is_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_millis(300);
    let env = helper_dir(dir.path(), &[("slow", "sleep 30")], timeout);
    let file = dir.path().join("config.json");
    write(&file, r#"{"credsStore": "slow"}"#);
    let started = Instant::now();
    let err = find(
        &AuthSources::with_override(&file),
        &lookup("reg.example", "x"),
        &env,
    )
    .unwrap_err();
    assert!(matches!(err, AuthError::HelperTimeout { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("docker-credential-slow"));
}

#[test]
fn debug_redacts_secrets() {
    let text = format!("{:?}", basic("alice", "hunter2"));
    assert_eq!(text, r#"Basic { username: "alice", password: <redacted> }"#);
    let text = format!("{:?}", Credential::IdentityToken("tok-secret".into()));
    assert_eq!(text, "IdentityToken(<redacted>)");
}

#[test]
fn fingerprint_tracks_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.json");
    let sources = AuthSources::with_override(&file);
    let absent = sources.fingerprint();
    assert_eq!(absent, [(file.clone(), None)]);
    write(&file, "{}");
    let first = sources.fingerprint();
    assert_ne!(first, absent);
    assert_eq!(sources.fingerprint(), first);
    write(&file, r#"{"auths": {}}"#);
    assert_ne!(sources.fingerprint(), first);
}

//! Registry credentials the user already has, read the way podman, skopeo
//! and docker read them.
//!
//! # Where
//!
//! [`AuthSources::from_env`] lists the files in the order podman and skopeo
//! search them:
//!
//! 1. `$REGISTRY_AUTH_FILE`
//! 2. `$XDG_RUNTIME_DIR/containers/auth.json`
//! 3. `$XDG_CONFIG_HOME/containers/auth.json` (`~/.config/containers/auth.json`)
//! 4. `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`
//!
//! Unlike podman, `$REGISTRY_AUTH_FILE` does not hide the other files: it is
//! searched first and the rest follow. A registry's `auth_file` in
//! `skills.toml` is the way to use one file and nothing else
//! ([`AuthSources::with_override`]). Docker's pre-1.7 `~/.dockercfg` is not
//! read.
//!
//! # How
//!
//! [`find`] walks the files in order; the first file that yields credentials
//! for the registry wins. Within one file:
//!
//! 1. `credHelpers[registry]`: when a helper is named for the registry, its
//!    answer is the file's answer.
//! 2. `auths`: the entry whose key is the longest path prefix of
//!    `registry/repository` (`host`, `host/namespace`,
//!    `host/namespace/repo`). Keys are normalised: a `https://` or `http://`
//!    scheme and any path after the host (docker's
//!    `https://index.docker.io/v1/`) are dropped, and `index.docker.io` and
//!    `registry-1.docker.io` mean `docker.io`. An empty entry (`{}`, which
//!    docker writes when a credential store holds the secret) defers to
//!    `credsStore`.
//! 3. `credsStore`: the global helper, when no `auths` entry matched or the
//!    matching one is empty.
//!
//! A file that does not exist is skipped. A file that exists but cannot be
//! read or parsed is an error naming it, as it is for podman, even when a
//! later file would have had credentials: silently falling through to other
//! credentials (another account, or none) would turn a broken file into
//! confusing authorisation failures far from their cause.
//!
//! # Helpers
//!
//! A helper `NAME` is the program `docker-credential-NAME` on the `PATH`
//! (given explicitly in [`HelperEnv`], so the daemon can report which `PATH`
//! it searched — systemd user units get a minimal one). It runs as
//! `docker-credential-NAME get` with the server URL on stdin and answers
//! `{"Username", "Secret", "ServerURL"}` on stdout. A helper that has not
//! answered within [`HelperEnv::timeout`] is killed, with everything it
//! started, and the lookup fails. [`find`] blocks while a helper runs: call
//! it from `tokio::task::spawn_blocking`, never on the runtime's threads.
//!
//! # Identity tokens
//!
//! Docker stores an OAuth2 refresh token as `identitytoken` (and a helper
//! returns one as the username `<token>`). Docker, containers/image and
//! oras-go all send it to the registry's token service as
//! `grant_type=refresh_token`; none of them sends it as a basic-auth
//! password. It is therefore kept apart as [`Credential::IdentityToken`]
//! rather than disguised as [`Credential::Basic`]; `source::http` exchanges
//! it at the token service (`POST`, `grant_type=refresh_token`).
//!
//! # Secrets
//!
//! Nothing here logs. [`Credential`]'s `Debug` redacts secrets, and no
//! [`AuthError`] carries file contents or helper output that could hold one
//! (JSON errors keep only their position).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use serde::Deserialize;

/// Environment variable naming podman's auth file.
pub const ENV_REGISTRY_AUTH_FILE: &str = "REGISTRY_AUTH_FILE";

/// Environment variable naming docker's config directory.
pub const ENV_DOCKER_CONFIG: &str = "DOCKER_CONFIG";

/// Prefix of a credential helper's program name.
pub const HELPER_PREFIX: &str = "docker-credential-";

/// What a helper prints when it holds nothing for the server.
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

/// The username with which a helper marks its secret as an identity token.
const TOKEN_USERNAME: &str = "<token>";

/// Docker Hub's canonical registry name.
const DOCKER_HUB: &str = "docker.io";

/// The server URL docker uses for Docker Hub in helpers and `auths`.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// Largest helper output read; anything longer is not a credential.
const HELPER_OUTPUT_LIMIT: u64 = 1 << 20;

/// The auth files to search, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSources {
    /// The files, first searched first; existing or not.
    pub files: Vec<PathBuf>,
}

impl AuthSources {
    /// The podman/skopeo search order (see the [module docs](self)),
    /// resolved through `var` rather than the process environment. Empty
    /// variables count as unset; relative `XDG_*` directories are ignored,
    /// as the XDG specification asks.
    pub fn from_env(home: &Path, var: impl Fn(&str) -> Option<OsString>) -> AuthSources {
        let set = |key: &str| var(key).filter(|v| !v.is_empty()).map(PathBuf::from);
        let xdg = |key: &str| set(key).filter(|p| p.is_absolute());
        let containers_auth = Path::new("containers").join("auth.json");

        let mut files = Vec::new();
        if let Some(file) = set(ENV_REGISTRY_AUTH_FILE) {
            files.push(file);
        }
        if let Some(runtime) = xdg("XDG_RUNTIME_DIR") {
            files.push(runtime.join(&containers_auth));
        }
        let config = xdg("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config"));
        files.push(config.join(&containers_auth));
        let docker = set(ENV_DOCKER_CONFIG).unwrap_or_else(|| home.join(".docker"));
        files.push(docker.join("config.json"));
        AuthSources { files }
    }

    /// Only `auth_file`: a registry's explicit `auth_file` in `skills.toml`.
    pub fn with_override(auth_file: &Path) -> AuthSources {
        AuthSources {
            files: vec![auth_file.to_path_buf()],
        }
    }

    /// A cheap fingerprint of the files: for each, its length and
    /// modification time, or `None` when it does not exist (or cannot be
    /// examined). When it changes, credentials must be read again.
    pub fn fingerprint(&self) -> Vec<(PathBuf, Option<(u64, SystemTime)>)> {
        self.files
            .iter()
            .map(|file| {
                let stamp = std::fs::metadata(file)
                    .ok()
                    .and_then(|m| Some((m.len(), m.modified().ok()?)));
                (file.clone(), stamp)
            })
            .collect()
    }
}

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A username and password (or access token used as one).
    Basic {
        /// The username.
        username: String,
        /// The password; never printed.
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), to be exchanged
    /// at the registry's token service with `grant_type=refresh_token`; see
    /// the [module docs](self#identity-tokens).
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted;
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }
        match self {
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &Redacted)
                .finish(),
            Credential::IdentityToken(_) => {
                f.debug_tuple("IdentityToken").field(&Redacted).finish()
            }
        }
    }
}

/// What credentials are wanted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup<'a> {
    /// The registry: `host[:port]`.
    pub registry: &'a str,
    /// The repository within it (`namespace/repo`), for path-scoped keys.
    pub repository: &'a str,
}

/// How credential helpers are found and run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperEnv {
    /// The `PATH` searched for `docker-credential-*` and given to helpers;
    /// `None` finds no helper.
    pub path: Option<OsString>,
    /// How long a helper may take before it is killed.
    pub timeout: Duration,
}

impl HelperEnv {
    /// The process's `PATH`, with `timeout`.
    pub fn from_process(timeout: Duration) -> HelperEnv {
        HelperEnv {
            path: std::env::var_os("PATH"),
            timeout,
        }
    }
}

/// Why credentials could not be looked up. No variant carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// An auth file exists but could not be read.
    #[error("cannot read auth file {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An auth file is not valid JSON or not shaped like one.
    #[error("invalid auth file {}: {what} at line {line} column {column}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// The kind of problem (syntax, data, premature end).
        what: &'static str,
        /// Where, 1-based.
        line: usize,
        /// Where, 1-based.
        column: usize,
    },
    /// An `auths` entry's `auth` field is not base64 of `user:password`.
    #[error("invalid auth file {}: the \"auth\" of {key:?} {why}", file.display())]
    BadAuthField {
        /// The file.
        file: PathBuf,
        /// The `auths` key, as written.
        key: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A `credHelpers` or `credsStore` value is not a plain helper name.
    #[error("invalid auth file {}: {helper:?} is not a credential helper name", file.display())]
    BadHelperName {
        /// The file.
        file: PathBuf,
        /// The name, as written.
        helper: String,
    },
    /// The helper program is not on the `PATH`.
    #[error("credential helper {program} (named in {}) not found on PATH", file.display())]
    HelperNotFound {
        /// `docker-credential-NAME`.
        program: String,
        /// The file naming it.
        file: PathBuf,
    },
    /// The helper could not be started or talked to.
    #[error("credential helper {program} could not be run: {source}")]
    HelperIo {
        /// `docker-credential-NAME`.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The helper did not answer in time and was killed.
    #[error("credential helper {program} did not answer within {}", humantime::format_duration(*timeout))]
    HelperTimeout {
        /// `docker-credential-NAME`.
        program: String,
        /// The limit it exceeded.
        timeout: Duration,
    },
    /// The helper failed.
    #[error(
        "credential helper {program} failed ({status}){}",
        message_suffix(message)
    )]
    HelperFailed {
        /// `docker-credential-NAME`.
        program: String,
        /// How it exited.
        status: ExitStatus,
        /// The first line of its error output, shortened.
        message: String,
    },
    /// The helper succeeded but its answer is not the expected JSON.
    #[error("credential helper {program} answered with something other than credentials JSON")]
    HelperOutput {
        /// `docker-credential-NAME`.
        program: String,
    },
}

fn message_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// The credentials for `lookup` from the first of `sources` that has some,
/// with the file they came from; `None` when no file has any. Blocks while
/// helpers run (see the [module docs](self#helpers)).
pub fn find(
    sources: &AuthSources,
    lookup: &Lookup,
    helpers: &HelperEnv,
) -> Result<Option<(Credential, PathBuf)>, AuthError> {
    let registry = normalise_registry(lookup.registry);
    for file in &sources.files {
        let Some(config) = read_file(file)? else {
            continue;
        };
        if let Some(credential) = find_in(&config, file, &registry, lookup.repository, helpers)? {
            return Ok(Some((credential, file.clone())));
        }
    }
    Ok(None)
}

/// The parts of docker's `config.json` and podman's `auth.json` read here.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: Option<HashMap<String, AuthEntry>>,
    #[serde(default)]
    cred_helpers: Option<HashMap<String, String>>,
    #[serde(default)]
    creds_store: Option<String>,
}

/// One `auths` entry.
#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The file parsed, or `None` when it does not exist.
fn read_file(file: &Path) -> Result<Option<AuthFile>, AuthError> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AuthError::Read {
                file: file.to_path_buf(),
                source,
            })
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        // podman treats an empty file as holding no credentials.
        return Ok(Some(AuthFile::default()));
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        // serde_json's message may quote the file's contents; keep only
        // the kind and the position.
        let what = match e.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "JSON syntax error",
            serde_json::error::Category::Data => "unexpected value",
            serde_json::error::Category::Eof => "unexpected end of file",
        };
        AuthError::Parse {
            file: file.to_path_buf(),
            what,
            line: e.line(),
            column: e.column(),
        }
    })
}

/// The lookup within one file (see the [module docs](self#how)).
fn find_in(
    config: &AuthFile,
    file: &Path,
    registry: &str,
    repository: &str,
    helpers: &HelperEnv,
) -> Result<Option<Credential>, AuthError> {
    if let Some(helper) = config.cred_helpers.as_ref().and_then(|map| {
        map.iter()
            .find(|(key, _)| normalise_key(key) == registry)
            .map(|(_, helper)| helper)
    }) {
        return run_helper(helper, file, registry, helpers);
    }

    let wanted = if repository.is_empty() {
        registry.to_string()
    } else {
        format!("{registry}/{}", repository.trim_matches('/'))
    };
    // The longest matching key; among keys that normalise alike, one
    // already written in normal form, then the first in byte order, so
    // the choice does not depend on the map's order.
    let best = config
        .auths
        .iter()
        .flatten()
        .filter_map(|(key, entry)| {
            let norm = normalise_key(key);
            let matches = wanted == norm
                || (wanted.starts_with(&norm) && wanted.as_bytes().get(norm.len()) == Some(&b'/'));
            matches.then(|| ((norm.len(), *key == norm, std::cmp::Reverse(key)), entry))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|((_, _, std::cmp::Reverse(key)), entry)| (key, entry));
    if let Some((key, entry)) = best {
        if let Some(credential) = decode_entry(file, key, entry)? {
            return Ok(Some(credential));
        }
    }
    match config.creds_store.as_deref() {
        Some(store) if !store.is_empty() => run_helper(store, file, registry, helpers),
        _ => Ok(None),
    }
}

/// An `auths` entry's credentials; `None` for an empty entry.
fn decode_entry(
    file: &Path,
    key: &str,
    entry: &AuthEntry,
) -> Result<Option<Credential>, AuthError> {
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken(token.to_string())));
    }
    let bad = |why| AuthError::BadAuthField {
        file: file.to_path_buf(),
        key: key.to_string(),
        why,
    };
    if let Some(auth) = entry
        .auth
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = engine
            .decode(auth)
            .map_err(|_| bad("is not valid base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad("is not UTF-8"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| bad("has no ':' between username and password"))?;
        return Ok(Some(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    match (entry.username.as_deref(), entry.password.as_deref()) {
        (Some(username), Some(password)) if !username.is_empty() || !password.is_empty() => {
            Ok(Some(Credential::Basic {
                username: username.to_string(),
                password: password.to_string(),
            }))
        }
        _ => Ok(None),
    }
}

/// `host[:port]` lowercased, with Docker Hub's aliases mapped to
/// `docker.io`.
fn normalise_registry(registry: &str) -> String {
    let host = registry.trim_end_matches('/').to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        _ => host,
    }
}

/// An `auths` or `credHelpers` key in the form lookups use: without a
/// scheme, and without the path when it had one (docker's legacy
/// `https://host/v1/`, as containers/image does); the host part through
/// [`normalise_registry`].
fn normalise_key(key: &str) -> String {
    let key = key.trim();
    let (rest, had_scheme) = match key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        Some(rest) => (rest, true),
        None => (key, false),
    };
    let rest = rest.trim_end_matches('/');
    match rest.split_once('/') {
        Some((host, _)) if had_scheme => normalise_registry(host),
        Some((host, path)) => format!("{}/{path}", normalise_registry(host)),
        None => normalise_registry(rest),
    }
}

/// The helper's answer on stdout.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Asks helper `name` (from `file`) for `registry`'s credentials.
fn run_helper(
    name: &str,
    file: &Path,
    registry: &str,
    env: &HelperEnv,
) -> Result<Option<Credential>, AuthError> {
    if name.is_empty() || name.contains('/') || name.contains('\0') {
        return Err(AuthError::BadHelperName {
            file: file.to_path_buf(),
            helper: name.to_string(),
        });
    }
    let program = format!("{HELPER_PREFIX}{name}");
    let binary =
        find_program(&program, env.path.as_ref()).ok_or_else(|| AuthError::HelperNotFound {
            program: program.clone(),
            file: file.to_path_buf(),
        })?;
    let server = if registry == DOCKER_HUB {
        DOCKER_HUB_SERVER
    } else {
        registry
    };
    let output =
        run_with_timeout(&binary, server, env).map_err(|e| e.into_error(&program, env.timeout))?;

    if !output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stdout.contains(HELPER_NOT_FOUND) || stderr.contains(HELPER_NOT_FOUND) {
            return Ok(None);
        }
        // A failing helper prints a message, not credentials; show its first
        // line (stderr first), shortened.
        let message = [stderr.trim(), stdout.trim()]
            .into_iter()
            .find(|s| !s.is_empty())
            .and_then(|s| s.lines().next())
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        return Err(AuthError::HelperFailed {
            program,
            status: output.status,
            message,
        });
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&output.stdout).map_err(|_| AuthError::HelperOutput {
            program: program.clone(),
        })?;
    Ok(match (answer.username.as_str(), answer.secret) {
        (_, secret) if secret.is_empty() => None,
        (TOKEN_USERNAME, secret) => Some(Credential::IdentityToken(secret)),
        (username, secret) => Some(Credential::Basic {
            username: username.to_string(),
            password: secret,
        }),
    })
}

/// The first executable regular file named `program` in `path`'s
/// directories.
fn find_program(program: &str, path: Option<&OsString>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// A finished helper's output.
struct HelperOutput {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Why a helper run did not finish.
enum RunError {
    Io(std::io::Error),
    Timeout,
}

impl RunError {
    fn into_error(self, program: &str, timeout: Duration) -> AuthError {
        match self {
            RunError::Io(source) => AuthError::HelperIo {
                program: program.to_string(),
                source,
            },
            RunError::Timeout => AuthError::HelperTimeout {
                program: program.to_string(),
                timeout,
            },
        }
    }
}

/// Runs `binary get` with `input` on stdin, in its own process group so
/// that it and anything it started can be killed together at the deadline.
fn run_with_timeout(binary: &Path, input: &str, env: &HelperEnv) -> Result<HelperOutput, RunError> {
    let deadline = Instant::now() + env.timeout;
    let mut child = spawn_helper(binary, env, deadline)?;
    let group = rustix::process::Pid::from_child(&child);
    let output = read_output(&mut child);
    if let Err(e) = write_input(&mut child, input) {
        kill_helper(group, &mut child);
        return Err(e);
    }
    let status = wait_until(&mut child, group, deadline)?;
    let (stdout, stderr) = collect_output(&output, group, deadline)?;
    Ok(HelperOutput {
        status,
        stdout,
        stderr,
    })
}

/// Starts `binary get` in a process group of its own, with piped stdio.
fn spawn_helper(
    binary: &Path,
    env: &HelperEnv,
    deadline: Instant,
) -> Result<std::process::Child, RunError> {
    let mut command = Command::new(binary);
    command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(path) = &env.path {
        command.env("PATH", path);
    }
    // A helper written just now may still be open for writing in a child
    // another thread forked meanwhile (ETXTBSY): retry briefly.
    loop {
        match command.spawn() {
            Ok(child) => return Ok(child),
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(RunError::Io(e)),
        }
    }
}

/// Kills the helper's process group and reaps the helper.
fn kill_helper(group: rustix::process::Pid, child: &mut std::process::Child) {
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let _ = child.kill();
    let _ = child.wait();
}

/// What the pipe readers send: whether it is stdout, and what was read.
type PipeRead = (bool, std::io::Result<Vec<u8>>);

/// Reads the helper's stdout and stderr on threads of their own, so a
/// helper that fills one pipe while its input is still being written
/// cannot deadlock, and so the deadline also bounds the reads (a
/// grandchild may hold the pipes open).
fn read_output(child: &mut std::process::Child) -> mpsc::Receiver<PipeRead> {
    let (tx, rx) = mpsc::channel::<PipeRead>();
    let stdout = child
        .stdout
        .take()
        .map(|p| Box::new(p) as Box<dyn Read + Send>);
    let stderr = child
        .stderr
        .take()
        .map(|p| Box::new(p) as Box<dyn Read + Send>);
    for (is_stdout, pipe) in [(true, stdout), (false, stderr)] {
        let Some(pipe) = pipe else { continue };
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let result = pipe
                .take(HELPER_OUTPUT_LIMIT)
                .read_to_end(&mut buf)
                .map(|_| buf);
            let _ = tx.send((is_stdout, result));
        });
    }
    rx
}

/// Writes `input` to the helper's stdin and closes it.
fn write_input(child: &mut std::process::Child, input: &str) -> Result<(), RunError> {
    let Some(mut stdin) = child.stdin.take() else {
        return Ok(());
    };
    // A helper may exit without reading its input; a broken pipe then
    // is not the failure, its exit status is.
    match stdin.write_all(input.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(RunError::Io(e)),
        _ => Ok(()),
    }
}

/// Waits for the helper to exit, killing it at the deadline.
fn wait_until(
    child: &mut std::process::Child,
    group: rustix::process::Pid,
    deadline: Instant,
) -> Result<ExitStatus, RunError> {
    let mut pause = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                kill_helper(group, child);
                return Err(RunError::Timeout);
            }
            Ok(None) => {
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => {
                kill_helper(group, child);
                return Err(RunError::Io(e));
            }
        }
    }
}

/// The helper's stdout and stderr, as the readers finish them before the
/// deadline.
fn collect_output(
    rx: &mpsc::Receiver<PipeRead>,
    group: rustix::process::Pid,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<u8>), RunError> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(remaining) {
            Ok((true, result)) => stdout = result.map_err(RunError::Io)?,
            Ok((false, result)) => stderr = result.map_err(RunError::Io)?,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // The helper exited but something it started keeps its
                // output open.
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                return Err(RunError::Timeout);
            }
        }
    }
    Ok((stdout, stderr))
}

#[cfg(test)]
mod tests;

//! The control socket client: one HTTP/1.1 request per call, over the
//! daemon's Unix socket, answered with the [`protocol`](super::protocol)
//! types.
//!
//! Also where the socket is: [`socket_path`] applies the override order
//! (flag, `SKILLSYNC_SOCKET`, `[daemon] socket`, then
//! [`default_socket_path`]), which the daemon and `skillsyncctl` share.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::HOST;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use super::protocol::{
    ErrorBody, EventsResponse, HoldAction, HoldResponse, PlanResponse, ReloadResponse, SkillStatus,
    StatusResponse, SyncResponse, API_PREFIX,
};
use crate::paths::{expand_tilde, Paths, ENV_RUNTIME_DIR};

/// File name of the control socket.
pub const SOCKET_FILE_NAME: &str = "skillsyncd.sock";

/// Environment variable overriding the control socket's path.
pub const ENV_SOCKET: &str = "SKILLSYNC_SOCKET";

/// How long a request may take, except a sync that waits.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a sync that waits for its passes may take: a little more than
/// the server's own cap, so the server's answer arrives first.
pub const SYNC_WAIT_TIMEOUT: Duration = Duration::from_secs(16 * 60);

/// Largest answer read from the daemon.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Where the daemon listens when nothing says otherwise:
///
/// - `$SKILLSYNC_RUNTIME_DIR/skillsyncd.sock` when that is set;
/// - else `$XDG_RUNTIME_DIR/skillsyncd.sock` (the parent of
///   [`Paths::runtime_dir`]);
/// - else `<state dir>/run/skillsyncd.sock`, a private directory the daemon
///   creates with mode 0700. Never a shared directory such as `/tmp`.
pub fn default_socket_path(paths: &Paths) -> PathBuf {
    default_socket_path_from(paths, |key| std::env::var_os(key))
}

/// [`default_socket_path`] with the environment supplied by `env`.
fn default_socket_path_from(paths: &Paths, env: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    let runtime_overridden = env(ENV_RUNTIME_DIR).is_some_and(|v| !v.is_empty());
    let dir = match &paths.runtime_dir {
        Some(runtime) if runtime_overridden => Some(runtime.clone()),
        // `runtime_dir` is `$XDG_RUNTIME_DIR/skillsync`: the socket sits
        // directly in `$XDG_RUNTIME_DIR`.
        Some(runtime) => runtime.parent().map(Path::to_path_buf),
        None => None,
    };
    dir.unwrap_or_else(|| paths.state_dir.join("run"))
        .join(SOCKET_FILE_NAME)
}

/// The socket path, by precedence: `flag` (a command-line option), then
/// `$SKILLSYNC_SOCKET` (a leading `~` expanded), then `configured` (the
/// config file's `[daemon] socket`), then [`default_socket_path`].
pub fn socket_path(flag: Option<&Path>, configured: Option<&Path>, paths: &Paths) -> PathBuf {
    socket_path_from(flag, configured, paths, |key| std::env::var_os(key))
}

/// [`socket_path`] with the environment supplied by `env`.
fn socket_path_from(
    flag: Option<&Path>,
    configured: Option<&Path>,
    paths: &Paths,
    env: impl Fn(&str) -> Option<OsString>,
) -> PathBuf {
    if let Some(flag) = flag.filter(|p| !p.as_os_str().is_empty()) {
        return flag.to_path_buf();
    }
    if let Some(value) = env(ENV_SOCKET).filter(|v| !v.is_empty()) {
        return expand_tilde(Path::new(&value), &paths.home);
    }
    if let Some(configured) = configured {
        return configured.to_path_buf();
    }
    default_socket_path_from(paths, env)
}

/// Why a request to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the socket: it is missing, or left over by a
    /// daemon that is gone.
    #[error(
        "skillsyncd is not running (no answer at {}). Start it with: systemctl --user start skillsyncd (or: skillsyncd &)",
        path.display()
    )]
    NotRunning {
        /// The socket path.
        path: PathBuf,
        /// The connection error.
        #[source]
        source: io::Error,
    },
    /// The socket exists but could not be connected to (permissions, ...).
    #[error("cannot connect to skillsyncd at {}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The connection error.
        #[source]
        source: io::Error,
    },
    /// The HTTP exchange failed (the daemon closed the connection, ...).
    #[error("talking to skillsyncd at {} failed", path.display())]
    Http {
        /// The socket path.
        path: PathBuf,
        /// The HTTP error.
        #[source]
        source: hyper::Error,
    },
    /// No answer in time.
    #[error("skillsyncd at {} did not answer within {}", path.display(), humantime::format_duration(*after))]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// The time allowed.
        after: Duration,
    },
    /// The daemon answered with an error.
    #[error("skillsyncd answered {status}: {message}")]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The [`ErrorBody`]'s message (or the raw body, if it is not one).
        message: String,
    },
    /// The daemon's answer is not what the protocol says.
    #[error("unexpected answer from skillsyncd: {reason}")]
    Protocol {
        /// What is wrong with it.
        reason: String,
    },
}

impl ClientError {
    /// Whether the daemon said that what was asked for does not exist (an
    /// unknown skill).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }
}

/// A client of the control socket. Each call opens its own connection.
#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
    timeout: Duration,
}

impl Client {
    /// A client of the daemon listening at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Client {
        Client {
            path: path.into(),
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// Replaces the [`REQUEST_TIMEOUT`] of calls that do not wait for a
    /// sync.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<StatusResponse, ClientError> {
        self.call(Method::GET, &format!("{API_PREFIX}/status"), self.timeout)
            .await
    }

    /// `GET /v1/status`, the daemon's JSON returned unchanged.
    pub async fn raw_get_status(&self) -> Result<String, ClientError> {
        self.raw_get(&format!("{API_PREFIX}/status")).await
    }

    /// `GET /v1/skills/NAME`. An unknown skill is a
    /// [`ClientError::Api`] with status 404.
    pub async fn skill(&self, name: &str) -> Result<SkillStatus, ClientError> {
        let path = format!("{API_PREFIX}/skills/{}", encode_segment(name));
        self.call(Method::GET, &path, self.timeout).await
    }

    /// `GET /v1/skills/NAME`, the daemon's JSON returned unchanged.
    pub async fn raw_get_skill(&self, name: &str) -> Result<String, ClientError> {
        self.raw_get(&format!("{API_PREFIX}/skills/{}", encode_segment(name)))
            .await
    }

    /// `POST /v1/sync` (`name` is `None`) or `POST /v1/skills/NAME/sync`;
    /// with `wait`, answers once the passes have finished (allowing up to
    /// [`SYNC_WAIT_TIMEOUT`]).
    pub async fn sync(&self, name: Option<&str>, wait: bool) -> Result<SyncResponse, ClientError> {
        let mut path = match name {
            Some(name) => format!("{API_PREFIX}/skills/{}/sync", encode_segment(name)),
            None => format!("{API_PREFIX}/sync"),
        };
        let timeout = if wait {
            path.push_str("?wait=true");
            SYNC_WAIT_TIMEOUT.max(self.timeout)
        } else {
            self.timeout
        };
        self.call(Method::POST, &path, timeout).await
    }

    /// `POST /v1/reload`.
    pub async fn reload(&self) -> Result<ReloadResponse, ClientError> {
        self.call(Method::POST, &format!("{API_PREFIX}/reload"), self.timeout)
            .await
    }

    /// `GET /v1/plan`: what a pass would do (it may contact registries).
    pub async fn plan(&self) -> Result<PlanResponse, ClientError> {
        self.call(
            Method::GET,
            &format!("{API_PREFIX}/plan"),
            SYNC_WAIT_TIMEOUT,
        )
        .await
    }

    /// `GET /v1/events`.
    pub async fn events(&self) -> Result<EventsResponse, ClientError> {
        self.call(Method::GET, &format!("{API_PREFIX}/events"), self.timeout)
            .await
    }

    /// `POST /v1/skills/NAME/{hold,rollback,resume}`; waits for the pass
    /// that applies it.
    pub async fn hold(&self, name: &str, action: HoldAction) -> Result<HoldResponse, ClientError> {
        let path = format!("{API_PREFIX}/skills/{name}/{}", action.as_str());
        self.call(Method::POST, &path, SYNC_WAIT_TIMEOUT).await
    }

    /// A request whose successful answer is decoded as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let body = self.request(method, path, timeout).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            reason: format!("{path}: {e}"),
        })
    }

    /// A GET whose successful answer is returned as text.
    async fn raw_get(&self, path: &str) -> Result<String, ClientError> {
        let body = self.request(Method::GET, path, self.timeout).await?;
        String::from_utf8(body.to_vec()).map_err(|e| ClientError::Protocol {
            reason: format!("{path}: {e}"),
        })
    }

    /// One request on a fresh connection; a success status's body, or the
    /// error the daemon answered.
    async fn request(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
    ) -> Result<Bytes, ClientError> {
        match tokio::time::timeout(timeout, self.exchange(method, path)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                path: self.path.clone(),
                after: timeout,
            }),
        }
    }

    async fn exchange(&self, method: Method, path: &str) -> Result<Bytes, ClientError> {
        let stream = UnixStream::connect(&self.path)
            .await
            .map_err(|source| connect_error(&self.path, source))?;
        let http = |source| ClientError::Http {
            path: self.path.clone(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        let conn = AbortOnDrop(tokio::spawn(conn));
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .map_err(|e| ClientError::Protocol {
                reason: format!("cannot build a request for {path:?}: {e}"),
            })?;
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| match e.downcast::<hyper::Error>() {
                Ok(e) => http(*e),
                Err(e) => ClientError::Protocol {
                    reason: format!("reading the answer to {path}: {e}"),
                },
            })?
            .to_bytes();
        drop(conn);
        if status.is_success() {
            Ok(body)
        } else {
            Err(api_error(status, &body))
        }
    }
}

/// Classifies a failed connect: a missing socket or one nobody listens on
/// means the daemon is not running.
fn connect_error(path: &Path, source: io::Error) -> ClientError {
    let not_running = matches!(
        source.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    ) || source.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error());
    if not_running {
        ClientError::NotRunning {
            path: path.to_path_buf(),
            source,
        }
    } else {
        ClientError::Connect {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The error of a non-success answer: its [`ErrorBody`], or its text.
fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) => {
            let text = String::from_utf8_lossy(body).trim().to_string();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                text
            }
        }
    };
    ClientError::Api {
        status: status.as_u16(),
        message,
    }
}

/// Percent-encodes everything but unreserved characters, so any name
/// makes one path segment.
fn encode_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Aborts the connection task when the request is done or abandoned.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::server::tests::TestServer;

    fn paths(runtime: Option<&str>) -> Paths {
        Paths {
            home: PathBuf::from("/home/u"),
            config_file: PathBuf::from("/home/u/.config/skillsync/skills.toml"),
            state_dir: PathBuf::from("/home/u/.local/state/skillsync"),
            cache_dir: PathBuf::from("/home/u/.cache/skillsync"),
            runtime_dir: runtime.map(PathBuf::from),
        }
    }

    use crate::paths::env_of;

    #[test]
    fn default_socket_is_in_xdg_runtime_dir() {
        let p = paths(Some("/run/user/1000/skillsync"));
        assert_eq!(
            default_socket_path_from(&p, env_of(&[])),
            PathBuf::from("/run/user/1000/skillsyncd.sock")
        );
    }

    #[test]
    fn an_explicit_runtime_dir_holds_the_socket() {
        let p = paths(Some("/srv/run"));
        assert_eq!(
            default_socket_path_from(&p, env_of(&[(ENV_RUNTIME_DIR, "/srv/run")])),
            PathBuf::from("/srv/run/skillsyncd.sock")
        );
    }

    #[test]
    fn without_a_runtime_dir_the_socket_is_under_the_state_dir() {
        let p = paths(None);
        assert_eq!(
            default_socket_path_from(&p, env_of(&[])),
            PathBuf::from("/home/u/.local/state/skillsync/run/skillsyncd.sock")
        );
    }

    #[test]
    fn socket_path_precedence() {
        let p = paths(Some("/run/user/1000/skillsync"));
        let flag = Path::new("/flag.sock");
        let conf = Path::new("/conf.sock");
        let env = [(ENV_SOCKET, "~/env.sock")];
        assert_eq!(
            socket_path_from(Some(flag), Some(conf), &p, env_of(&env)),
            PathBuf::from("/flag.sock")
        );
        assert_eq!(
            socket_path_from(None, Some(conf), &p, env_of(&env)),
            PathBuf::from("/home/u/env.sock")
        );
        assert_eq!(
            socket_path_from(None, Some(conf), &p, env_of(&[(ENV_SOCKET, "")])),
            PathBuf::from("/conf.sock")
        );
        assert_eq!(
            socket_path_from(None, None, &p, env_of(&[])),
            PathBuf::from("/run/user/1000/skillsyncd.sock")
        );
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("hello-world"), "hello-world");
        assert_eq!(encode_segment("a b/c?"), "a%20b%2Fc%3F");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[tokio::test]
    async fn a_missing_socket_means_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skillsyncd.sock");
        let err = Client::new(&path).status().await.unwrap_err();
        assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "skillsyncd is not running (no answer at {}). Start it with: systemctl --user start skillsyncd (or: skillsyncd &)",
                path.display()
            )
        );
        // A missing directory too.
        let err = Client::new(dir.path().join("nope/s.sock"))
            .status()
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_stale_socket_means_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skillsyncd.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let err = Client::new(&path).reload().await.unwrap_err();
        assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_silent_daemon_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skillsyncd.sock");
        // Listens, never accepts.
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = Client::new(&path)
            .with_timeout(Duration::from_millis(200))
            .status()
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn raw_skill_is_the_daemons_json() {
        let server = TestServer::start();
        let raw = Client::new(&server.path)
            .raw_get_skill("other")
            .await
            .unwrap();
        let parsed: SkillStatus = serde_json::from_str(&raw).unwrap();
        assert_eq!(parsed.name, "other");
        server.stop().await;
    }
}

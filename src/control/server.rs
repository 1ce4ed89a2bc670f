//! The control socket server: HTTP/1.1 + JSON on a Unix domain socket,
//! answering through a [`Controller`].
//!
//! [`bind`] creates the socket (mode 0600, in a private directory, replacing
//! a stale socket left by a crash but never a live one); [`serve`] answers on
//! it until its shutdown future resolves, then removes the socket file.
//!
//! The socket's permissions are the first guard; the second is the peer's
//! uid, read from the kernel for every connection: a process of another
//! user (root included) is answered 403 and disconnected. Everything a
//! client sends is bounded (see [`Limits`]): header and body read times,
//! body size, concurrent connections, a connection's lifetime. A request the
//! server cannot route is answered with a 4xx status and an [`ErrorBody`];
//! a request line or header that HTTP itself cannot parse gets hyper's bare
//! 400 (or 431, 414) and the connection is closed. Nothing a client sends
//! can stop the server.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::protocol::{ErrorBody, HoldAction, API_PREFIX};
use super::{ActionError, Controller};

/// Why the control socket could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Another process answers on the socket.
    #[error("another skillsyncd is already listening on {}", path.display())]
    AlreadyListening {
        /// The socket path.
        path: PathBuf,
    },
    /// Something other than a socket is in the way; it is left alone.
    #[error("{} exists and is not a socket; move it away or choose another socket path", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The socket's directory is not private to this user.
    #[error("{} cannot hold the control socket: {reason}", dir.display())]
    UnsafeDirectory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file system or socket operation failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done (`create the socket directory`, `bind`, ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl ServerError {
    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ServerError + 'a {
        move |source| ServerError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The bounds the server puts on its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; a connection over the cap is answered
    /// 503 and closed.
    pub max_connections: usize,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Time allowed to receive a request's head, counted from when the
    /// server starts waiting for it: also how long an idle keep-alive
    /// connection is kept.
    pub header_read_timeout: Duration,
    /// Time allowed to receive a request's body (408 beyond).
    pub body_read_timeout: Duration,
    /// Longest a `?wait=true` sync is waited for (504 beyond; the passes
    /// go on).
    pub max_sync_wait: Duration,
    /// Longest a connection lives, whatever it does.
    pub connection_lifetime: Duration,
    /// After shutdown, how long requests in flight may take to finish.
    pub shutdown_grace: Duration,
}

/// Default [`Limits::max_connections`].
pub const MAX_CONNECTIONS: usize = 32;
/// Default [`Limits::max_body_bytes`]: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Default [`Limits::max_sync_wait`]: 15 minutes.
pub const MAX_SYNC_WAIT: Duration = Duration::from_secs(15 * 60);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            max_body_bytes: MAX_BODY_BYTES,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_sync_wait: MAX_SYNC_WAIT,
            connection_lifetime: MAX_SYNC_WAIT + Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// Connections over the cap that may be answered 503 at once; beyond that
/// they are closed without an answer.
const MAX_REJECTING: usize = 8;

/// How long answering a refused connection (403, 503) may take.
const REJECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause after an accept error (such as running out of file descriptors)
/// before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Creates the control socket at `path`, mode 0600, ready for [`serve`].
///
/// The parent directory is created with mode 0700 when missing; an existing
/// one must belong to this user and be writable by nobody else. A socket
/// already at `path` is replaced when nothing answers on it (a crash left
/// it); when something answers, the result is
/// [`ServerError::AlreadyListening`]. Anything else at `path` is left
/// alone and refused.
///
/// Must be called within a tokio runtime.
pub fn bind(path: &Path) -> Result<UnixListener, ServerError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    ensure_private_dir(dir)?;
    remove_stale_socket(path)?;
    let listener = UnixListener::bind(path).map_err(|source| {
        if source.kind() == io::ErrorKind::AddrInUse {
            ServerError::AlreadyListening {
                path: path.to_path_buf(),
            }
        } else {
            ServerError::Io {
                action: "bind the control socket",
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    // The directory is private, and every peer's uid is checked, so the
    // moment between bind and chmod exposes nothing.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(ServerError::io("set the mode of", path))?;
    Ok(listener)
}

/// Creates `dir` (mode 0700) when missing, else checks that it is ours and
/// that no one else can write to it.
fn ensure_private_dir(dir: &Path) -> Result<(), ServerError> {
    match std::fs::metadata(dir) {
        Ok(meta) => check_private_dir(dir, &meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(ServerError::io("create the socket directory", dir))?;
            // The mode given to mkdir is masked by the umask; say it again.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(ServerError::io("set the mode of", dir))
        }
        Err(e) => Err(ServerError::io("inspect", dir)(e)),
    }
}

/// The rules [`ensure_private_dir`] applies to an existing directory.
fn check_private_dir(dir: &Path, meta: &std::fs::Metadata) -> Result<(), ServerError> {
    let unsafe_dir = |reason: String| ServerError::UnsafeDirectory {
        dir: dir.to_path_buf(),
        reason,
    };
    if !meta.is_dir() {
        return Err(unsafe_dir("not a directory".into()));
    }
    let ours = rustix::process::geteuid().as_raw();
    if meta.uid() != ours {
        return Err(unsafe_dir(format!(
            "owned by uid {}, not by this user (uid {ours})",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "mode {mode:04o} lets other users write to it; use a private directory (mode 0700)"
        )));
    }
    Ok(())
}

/// Removes a socket at `path` that nothing answers on. A live socket, or
/// anything that is not a socket, is refused.
fn remove_stale_socket(path: &Path) -> Result<(), ServerError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ServerError::io("inspect", path)(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ServerError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    match probe(path) {
        Probe::Answers => Err(ServerError::AlreadyListening {
            path: path.to_path_buf(),
        }),
        Probe::Gone => Ok(()),
        Probe::Stale => match std::fs::remove_file(path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a stale control socket");
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ServerError::io("remove the stale socket", path)(e)),
        },
        Probe::Failed(source) => Err(ServerError::Io {
            action: "check who listens on",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// What a connection attempt to an existing socket found.
#[derive(Debug)]
enum Probe {
    /// A process accepted (or has a full backlog of) connections.
    Answers,
    /// Refused: no process listens; the file is left over.
    Stale,
    /// The file disappeared meanwhile.
    Gone,
    /// Something else went wrong (permission denied, ...).
    Failed(io::Error),
}

/// Tries to connect to `path` without blocking: a full backlog means a
/// live listener rather than a wait.
fn probe(path: &Path) -> Probe {
    use rustix::io::Errno;
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

    let attempt = || -> rustix::io::Result<()> {
        let addr = SocketAddrUnix::new(path)?;
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::connect(&fd, &addr)
    };
    match attempt() {
        Ok(()) | Err(Errno::AGAIN) | Err(Errno::INPROGRESS) => Probe::Answers,
        Err(Errno::CONNREFUSED) => Probe::Stale,
        Err(Errno::NOENT) => Probe::Gone,
        Err(e) => Probe::Failed(e.into()),
    }
}

/// The identity of a file, to remove the socket only if it is still ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        Some(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// Answers on `listener` through `controller` until `shutdown` resolves,
/// with the default [`Limits`]. See [`serve_with_limits`].
pub async fn serve<C: Controller>(
    listener: UnixListener,
    controller: Arc<C>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with_limits(listener, controller, shutdown, Limits::default()).await;
}

/// Answers on `listener` through `controller` until `shutdown` resolves.
///
/// Then it stops accepting, removes the socket file (if it is still the one
/// it listened on), asks open connections to close after their current
/// request, and waits up to [`Limits::shutdown_grace`] for them before
/// dropping the rest.
pub async fn serve_with_limits<C: Controller>(
    listener: UnixListener,
    controller: Arc<C>,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
) {
    let socket_path = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf));
    let socket_id = socket_path.as_deref().and_then(FileId::of);
    let (stop_tx, stop_rx) = watch::channel(false);
    let admission = Admission {
        our_uid: rustix::process::geteuid().as_raw(),
        permits: Arc::new(Semaphore::new(limits.max_connections)),
        rejecting: Arc::new(Semaphore::new(MAX_REJECTING)),
        limits: Arc::new(limits),
        controller,
        stop: stop_rx,
    };
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);

    tracing::debug!(
        socket = %socket_path.as_deref().unwrap_or(Path::new("?")).display(),
        "control socket listening"
    );
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = joined {
                    if e.is_panic() {
                        tracing::error!("a control connection panicked: {e}");
                    }
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => admission.admit(&mut tasks, stream),
                Err(e) => {
                    tracing::warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }

    drop(listener);
    if let Some(path) = &socket_path {
        remove_socket(path, socket_id);
    }
    let _ = stop_tx.send(true);
    drain(tasks, admission.limits.shutdown_grace).await;
    tracing::debug!("control socket closed");
}

/// What decides whether an accepted connection is served, and serves it.
struct Admission<C> {
    our_uid: u32,
    permits: Arc<Semaphore>,
    rejecting: Arc<Semaphore>,
    limits: Arc<Limits>,
    controller: Arc<C>,
    stop: watch::Receiver<bool>,
}

impl<C: Controller> Admission<C> {
    /// Serves `stream` on a task of `tasks`, or answers it with 403 (a peer
    /// of another user) or 503 (too many connections).
    fn admit(&self, tasks: &mut JoinSet<()>, stream: UnixStream) {
        let our_uid = self.our_uid;
        let peer_uid = stream.peer_cred().ok().map(|c| c.uid());
        if !peer_allowed(peer_uid, our_uid) {
            tracing::warn!(
                peer_uid = ?peer_uid,
                our_uid,
                "refused a control connection from uid {}: only uid {our_uid} may use this socket",
                peer_uid.map_or_else(|| "unknown".to_string(), |u| u.to_string()),
            );
            reject(
                tasks,
                &self.rejecting,
                stream,
                StatusCode::FORBIDDEN,
                "this socket answers only the user running skillsyncd",
            );
            return;
        }
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => {
                let controller = Arc::clone(&self.controller);
                let limits = Arc::clone(&self.limits);
                let stop = self.stop.clone();
                tasks.spawn(async move {
                    serve_connection(stream, controller, limits, stop).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tracing::warn!(
                    "control socket: {} connections open; refusing another",
                    self.limits.max_connections
                );
                reject(
                    tasks,
                    &self.rejecting,
                    stream,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many connections to skillsyncd; try again",
                );
            }
        }
    }
}

/// Removes the socket file at `path` if it is still the one listened on
/// (`id`), not one a newer daemon put there.
fn remove_socket(path: &Path, id: Option<FileId>) {
    if id.is_some() && FileId::of(path) == id {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), "cannot remove the control socket: {e}");
        }
    }
}

/// Waits up to `grace` for the open connections to finish, then drops
/// the rest.
async fn drain(mut tasks: JoinSet<()>, grace: Duration) {
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            "control socket: {} connections still open after {:?}; closing them",
            tasks.len(),
            grace
        );
        tasks.shutdown().await;
    }
}

/// Whether a peer may use the socket: only the daemon's own user, and never
/// a peer whose uid the kernel did not tell.
fn peer_allowed(peer_uid: Option<u32>, our_uid: u32) -> bool {
    peer_uid == Some(our_uid)
}

/// Answers one request on `stream` with `status` and `message`, then closes
/// it; when too many such answers are under way, closes it at once.
fn reject(
    tasks: &mut JoinSet<()>,
    rejecting: &Arc<Semaphore>,
    stream: UnixStream,
    status: StatusCode,
    message: &'static str,
) {
    let Ok(permit) = Arc::clone(rejecting).try_acquire_owned() else {
        return;
    };
    tasks.spawn(async move {
        let service = service_fn(move |_req: Request<Incoming>| async move {
            let mut resp = error_response(status, message);
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            Ok::<_, Infallible>(resp)
        });
        let conn = http1::Builder::new()
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), service);
        let _ = tokio::time::timeout(REJECT_TIMEOUT, conn).await;
        drop(permit);
    });
}

/// Serves the requests of one connection until it closes, its lifetime
/// runs out, or shutdown is asked (then after the request in flight).
async fn serve_connection<C: Controller>(
    stream: UnixStream,
    controller: Arc<C>,
    limits: Arc<Limits>,
    mut stop: watch::Receiver<bool>,
) {
    let service_limits = Arc::clone(&limits);
    let service = service_fn(move |req: Request<Incoming>| {
        let controller = Arc::clone(&controller);
        let limits = Arc::clone(&service_limits);
        async move { Ok::<_, Infallible>(handle(req, &*controller, &limits).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    let run = async {
        tokio::pin!(conn);
        tokio::select! {
            res = conn.as_mut() => res,
            () = stopped(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    };
    match tokio::time::timeout(limits.connection_lifetime, run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("control connection ended: {e}"),
        Err(_) => tracing::debug!(
            "control connection closed after {:?}",
            limits.connection_lifetime
        ),
    }
}

/// Resolves once shutdown is asked (or the server is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// A request the server understands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// `GET /v1/status`.
    Status,
    /// `GET /v1/skills/NAME`.
    Skill(String),
    /// `GET /v1/events`.
    Events,
    /// `GET /v1/plan`.
    Plan,
    /// `POST /v1/sync` (`None`) or `POST /v1/skills/NAME/sync`.
    Sync { name: Option<String>, wait: bool },
    /// `POST /v1/reload`.
    Reload,
    /// `POST /v1/skills/NAME/{hold,rollback,resume}`.
    Hold { name: String, action: HoldAction },
}

/// An answer other than success.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiError {
    status: StatusCode,
    message: String,
    /// For 405: the methods the path accepts.
    allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            allow: None,
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = error_response(self.status, &self.message);
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        resp
    }
}

/// Maps a method, path and query to a [`Route`]. Pure.
fn route(method: &Method, path: &str, query: Option<&str>) -> Result<Route, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no such endpoint: {path} (see /v1/status, /v1/skills/NAME, /v1/sync, /v1/reload)"
            ),
        )
    };
    let rest = path
        .strip_prefix(API_PREFIX)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(not_found)?;
    let segments: Vec<&str> = rest.split('/').collect();
    let (allowed, route) = match segments.as_slice() {
        ["status"] => (Method::GET, Route::Status),
        ["events"] => (Method::GET, Route::Events),
        ["plan"] => (Method::GET, Route::Plan),
        ["skills", name] if !name.is_empty() => (Method::GET, Route::Skill(name.to_string())),
        ["sync"] => (
            Method::POST,
            Route::Sync {
                name: None,
                wait: false,
            },
        ),
        ["skills", name, "sync"] if !name.is_empty() => (
            Method::POST,
            Route::Sync {
                name: Some(name.to_string()),
                wait: false,
            },
        ),
        ["reload"] => (Method::POST, Route::Reload),
        ["skills", name, verb] if !name.is_empty() => {
            let action = match *verb {
                "hold" => HoldAction::Hold,
                "rollback" => HoldAction::Rollback,
                "resume" => HoldAction::Resume,
                _ => return Err(not_found()),
            };
            (
                Method::POST,
                Route::Hold {
                    name: name.to_string(),
                    action,
                },
            )
        }
        _ => return Err(not_found()),
    };
    if *method != allowed {
        return Err(ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("{path} accepts {allowed}, not {method}"),
            allow: Some(if allowed == Method::GET {
                "GET"
            } else {
                "POST"
            }),
        });
    }
    match route {
        Route::Sync { name, .. } => Ok(Route::Sync {
            name,
            wait: parse_wait(query)?,
        }),
        other => {
            if let Some(q) = query.filter(|q| !q.is_empty()) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("{path} takes no query parameters, got {q:?}"),
                ));
            }
            Ok(other)
        }
    }
}

/// Reads `wait` from a sync request's query: `wait`, `wait=true`, `wait=1`
/// wait; `wait=false`, `wait=0` or no `wait` do not. Anything else is a 400.
fn parse_wait(query: Option<&str>) -> Result<bool, ApiError> {
    let mut wait = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        if key != "wait" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown query parameter {key:?} (only \"wait\" is accepted)"),
            ));
        }
        wait = match value {
            "true" | "1" | "" => true,
            "false" | "0" => false,
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("wait must be true or false, not {other:?}"),
                ))
            }
        };
    }
    Ok(wait)
}

/// Answers one request.
async fn handle<C: Controller>(
    req: Request<Incoming>,
    controller: &C,
    limits: &Limits,
) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = match answer(req, controller, limits).await {
        Ok(resp) => resp,
        Err(e) => {
            let close = e.status == StatusCode::PAYLOAD_TOO_LARGE
                || e.status == StatusCode::REQUEST_TIMEOUT;
            let mut resp = e.into_response();
            if close {
                // The rest of the body is not read: the connection cannot
                // carry another request.
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    };
    tracing::debug!(%method, %path, status = response.status().as_u16(), "control request");
    response
}

/// Reads the (bounded) body, routes the request and asks the controller.
async fn answer<C: Controller>(
    req: Request<Incoming>,
    controller: &C,
    limits: &Limits,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body larger than {} bytes; no endpoint takes a body",
                limits.max_body_bytes
            ),
        )
    };
    if req.body().size_hint().lower() > limits.max_body_bytes as u64 {
        return Err(too_large());
    }
    let route = route(req.method(), req.uri().path(), req.uri().query())?;
    let body = Limited::new(req.into_body(), limits.max_body_bytes).collect();
    match tokio::time::timeout(limits.body_read_timeout, body).await {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body not received within {:?}",
                    limits.body_read_timeout
                ),
            ))
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Ok(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            ))
        }
        Ok(Ok(_)) => {}
    }

    match route {
        Route::Status => Ok(json_response(StatusCode::OK, &controller.status())),
        Route::Events => Ok(json_response(StatusCode::OK, &controller.events())),
        Route::Plan => match controller.plan().await {
            Ok(plan) => Ok(json_response(StatusCode::OK, &plan)),
            Err(m) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m)),
        },
        Route::Skill(name) => match controller.skill(&name) {
            Some(skill) => Ok(json_response(StatusCode::OK, &skill)),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no skill named {name:?} in the config"),
            )),
        },
        Route::Sync { name, wait } => {
            let sync = controller.sync(name, wait);
            match tokio::time::timeout(limits.max_sync_wait, sync).await {
                Ok(Ok(resp)) => Ok(json_response(StatusCode::OK, &resp)),
                Ok(Err(message)) => Err(ApiError::new(StatusCode::NOT_FOUND, message)),
                Err(_) => Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "gave up waiting after {:?}; the sync goes on (see /v1/status)",
                        limits.max_sync_wait
                    ),
                )),
            }
        }
        Route::Reload => Ok(json_response(StatusCode::OK, &controller.reload().await)),
        Route::Hold { name, action } => match controller.hold(name, action).await {
            Ok(resp) => Ok(json_response(StatusCode::OK, &resp)),
            Err(ActionError::NotFound(m)) => Err(ApiError::new(StatusCode::NOT_FOUND, m)),
            Err(ActionError::Refused(m)) => Err(ApiError::new(StatusCode::CONFLICT, m)),
            Err(ActionError::Failed(m)) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m)),
        },
    }
}

/// A JSON answer.
fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            response(status, body)
        }
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode the answer: {e}"),
        ),
    }
}

/// An [`ErrorBody`] answer.
fn error_response(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = ErrorBody {
        error: message.to_string(),
    };
    // Serializing a struct of one string cannot fail; fall back to an
    // empty object rather than panic.
    let mut bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(b'\n');
    response(status, bytes)
}

fn response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        SERVER,
        HeaderValue::from_static(concat!("skillsyncd/", env!("CARGO_PKG_VERSION"))),
    );
    resp
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::control::client::{Client, ClientError};
    use crate::control::protocol::{
        DaemonStatus, HoldResponse, ReloadResponse, SkillState, SkillStatus, StatusResponse,
        SyncResponse, TargetState, TargetStatus, UnmanagedSkill,
    };
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A controller with fixed answers that records what it is asked.
    #[derive(Default)]
    pub(crate) struct FakeController {
        pub(crate) syncs: Mutex<Vec<(Option<String>, bool)>>,
        /// When set, `sync` waits this long before answering.
        pub(crate) sync_delay: Option<Duration>,
    }

    pub(crate) fn skill(name: &str) -> SkillStatus {
        SkillStatus {
            name: name.into(),
            image: format!("127.0.0.1:5000/examples/{name}"),
            follows: "published".into(),
            version: Some("1.2.0".into()),
            digest: Some(format!("sha256:{}", "ab".repeat(32))),
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

    pub(crate) fn status() -> StatusResponse {
        StatusResponse {
            daemon: DaemonStatus {
                version: "0.1.0".into(),
                pid: 42,
                config: "/home/u/.config/skillsync/skills.toml".into(),
                config_error: None,
                started_at: "2025-01-01T00:00:00Z".into(),
                config_loaded_at: "2025-01-01T00:00:00Z".into(),
                poll_interval_secs: 300,
                state_dir: "/home/u/.local/state/skillsync".into(),
                cache_dir: "/home/u/.cache/skillsync".into(),
            },
            skills: vec![skill("hello-world"), skill("other")],
            unmanaged: vec![UnmanagedSkill {
                name: "old".into(),
                paths: vec!["/home/u/.claude/skills/old".into()],
            }],
            config_sources: Vec::new(),
        }
    }

    impl Controller for FakeController {
        fn status(&self) -> StatusResponse {
            status()
        }

        fn skill(&self, name: &str) -> Option<SkillStatus> {
            status().skills.into_iter().find(|s| s.name == name)
        }

        fn events(&self) -> crate::control::protocol::EventsResponse {
            crate::control::protocol::EventsResponse { events: Vec::new() }
        }

        async fn plan(&self) -> Result<crate::control::protocol::PlanResponse, String> {
            Ok(crate::control::protocol::PlanResponse {
                prune: Vec::new(),
                skills: Vec::new(),
            })
        }

        async fn sync(&self, name: Option<String>, wait: bool) -> Result<SyncResponse, String> {
            if let Some(delay) = self.sync_delay {
                tokio::time::sleep(delay).await;
            }
            let skills = match &name {
                Some(n) => vec![self.skill(n).ok_or(format!("no skill named {n:?}"))?],
                None => status().skills,
            };
            if let Ok(mut syncs) = self.syncs.lock() {
                syncs.push((name, wait));
            }
            Ok(SyncResponse {
                waited: wait,
                skills,
            })
        }

        async fn reload(&self) -> ReloadResponse {
            ReloadResponse {
                ok: true,
                error: None,
                added: vec!["new".into()],
                removed: vec![],
                changed: vec!["hello-world".into()],
            }
        }

        async fn hold(
            &self,
            name: String,
            action: HoldAction,
        ) -> Result<HoldResponse, ActionError> {
            let skill = self
                .skill(&name)
                .ok_or_else(|| ActionError::NotFound(format!("no skill named {name:?}")))?;
            if action == HoldAction::Rollback {
                return Err(ActionError::Refused(format!(
                    "{name} has no earlier generation"
                )));
            }
            Ok(HoldResponse {
                message: format!("{name}: {}", action.as_str()),
                skill,
            })
        }
    }

    /// A server on a socket in a fresh temp dir; stops when dropped.
    pub(crate) struct TestServer {
        _dir: tempfile::TempDir,
        pub(crate) path: PathBuf,
        pub(crate) controller: Arc<FakeController>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: Option<tokio::task::JoinHandle<()>>,
    }

    impl TestServer {
        pub(crate) fn start() -> TestServer {
            TestServer::start_with(FakeController::default(), Limits::default())
        }

        pub(crate) fn start_with(controller: FakeController, limits: Limits) -> TestServer {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("run").join("skillsyncd.sock");
            let listener = bind(&path).unwrap();
            let controller = Arc::new(controller);
            let (stop, stopped) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(serve_with_limits(
                listener,
                Arc::clone(&controller),
                async {
                    let _ = stopped.await;
                },
                limits,
            ));
            TestServer {
                _dir: dir,
                path,
                controller,
                stop: Some(stop),
                task: Some(task),
            }
        }

        pub(crate) async fn stop(mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            if let Some(task) = self.task.take() {
                task.await.unwrap();
            }
        }
    }

    /// Sends `request` as written, reads until the server closes, returns
    /// the status code, the head and the body.
    async fn raw(path: &Path, request: &[u8]) -> (u16, String, String) {
        let mut stream = UnixStream::connect(path).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
            .await
            .expect("the server closes the connection")
            .unwrap();
        parse_response(&buf)
    }

    fn parse_response(buf: &[u8]) -> (u16, String, String) {
        let text = String::from_utf8_lossy(buf).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let code = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, head.to_ascii_lowercase(), body.to_string())
    }

    fn request(method: &str, target: &str) -> Vec<u8> {
        format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
    }

    fn error_of(body: &str) -> String {
        serde_json::from_str::<ErrorBody>(body)
            .unwrap_or_else(|e| panic!("not an ErrorBody ({e}): {body:?}"))
            .error
    }

    #[tokio::test]
    async fn status_round_trips_through_the_client() {
        let server = TestServer::start();
        let client = Client::new(&server.path);
        assert_eq!(client.status().await.unwrap(), status());
        assert_eq!(client.skill("other").await.unwrap(), skill("other"),);
        let raw = client.raw_get_status().await.unwrap();
        let parsed: StatusResponse = serde_json::from_str(&raw).unwrap();
        assert_eq!(parsed, status());
        server.stop().await;
    }

    #[tokio::test]
    async fn sync_and_reload_reach_the_controller() {
        let server = TestServer::start();
        let client = Client::new(&server.path);
        let all = client.sync(None, false).await.unwrap();
        assert!(!all.waited);
        assert_eq!(all.skills.len(), 2);
        let one = client.sync(Some("other"), true).await.unwrap();
        assert!(one.waited);
        assert_eq!(one.skills, vec![skill("other")]);
        assert_eq!(
            *server.controller.syncs.lock().unwrap(),
            vec![(None, false), (Some("other".to_string()), true)]
        );
        let reload = client.reload().await.unwrap();
        assert!(reload.ok);
        assert_eq!(reload.added, vec!["new"]);
        server.stop().await;
    }

    #[tokio::test]
    async fn unknown_skills_are_404_through_the_client() {
        let server = TestServer::start();
        let client = Client::new(&server.path);
        for result in [
            client.skill("nope").await.map(|_| ()),
            client.sync(Some("nope"), false).await.map(|_| ()),
        ] {
            match result {
                Err(ClientError::Api {
                    status: 404,
                    message,
                    ..
                }) => {
                    assert!(message.contains("nope"), "{message}")
                }
                other => panic!("expected a 404, got {other:?}"),
            }
        }
        // A name that is not a URL path segment reaches the server encoded.
        let err = client.skill("a b/c").await.unwrap_err();
        assert!(
            matches!(err, ClientError::Api { status: 404, .. }),
            "{err:?}"
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn a_hand_written_request_gets_json_like_curl_would() {
        let server = TestServer::start();
        let (code, head, body) = raw(&server.path, &request("GET", "/v1/status")).await;
        assert_eq!(code, 200, "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let parsed: StatusResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed, status());

        let (code, _, body) = raw(&server.path, &request("POST", "/v1/sync?wait=true")).await;
        assert_eq!(code, 200);
        let parsed: SyncResponse = serde_json::from_str(&body).unwrap();
        assert!(parsed.waited);
        server.stop().await;
    }

    #[tokio::test]
    async fn keep_alive_serves_several_requests_on_one_connection() {
        let server = TestServer::start();
        let mut stream = UnixStream::connect(&server.path).await.unwrap();
        let keep = b"GET /v1/skills/other HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut two = keep.to_vec();
        two.extend_from_slice(&request("GET", "/v1/status"));
        stream.write_all(&two).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf);
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
        server.stop().await;
    }

    #[tokio::test]
    async fn routing_errors_are_json() {
        let server = TestServer::start();
        let cases: &[(&str, &str, u16, &str)] = &[
            ("GET", "/v1/nope", 404, "no such endpoint"),
            ("GET", "/v2/status", 404, "no such endpoint"),
            ("GET", "/", 404, "no such endpoint"),
            ("GET", "/v1/skills/", 404, "no such endpoint"),
            ("GET", "/v1/skills/nope", 404, "no skill named \"nope\""),
            ("POST", "/v1/status", 405, "accepts GET"),
            ("GET", "/v1/sync", 405, "accepts POST"),
            ("DELETE", "/v1/skills/other", 405, "accepts GET"),
            ("GET", "/v1/status?verbose=1", 400, "takes no query"),
            ("POST", "/v1/sync?wait=maybe", 400, "wait must be"),
            ("POST", "/v1/sync?force=1", 400, "unknown query parameter"),
            ("POST", "/v1/skills/nope/sync", 404, "no skill named"),
        ];
        for (method, target, want, fragment) in cases {
            let (code, head, body) = raw(&server.path, &request(method, target)).await;
            assert_eq!(code, *want, "{method} {target}: {head}");
            assert!(head.contains("content-type: application/json"), "{head}");
            let message = error_of(&body);
            assert!(message.contains(fragment), "{method} {target}: {message}");
            if *want == 405 {
                assert!(head.contains("allow: "), "{head}");
            }
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn oversized_bodies_are_413() {
        let server = TestServer::start();
        // Announced by Content-Length: refused before reading.
        let big = format!(
            "POST /v1/sync HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        let (code, head, body) = raw(&server.path, big.as_bytes()).await;
        assert_eq!(code, 413, "{head}");
        assert!(error_of(&body).contains("larger than"));

        // Chunked, so only counting finds it.
        let mut chunked =
            b"POST /v1/reload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let chunk = vec![b'a'; 16 * 1024];
        for _ in 0..5 {
            chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            chunked.extend_from_slice(&chunk);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let (code, _, body) = raw(&server.path, &chunked).await;
        assert_eq!(code, 413);
        assert!(error_of(&body).contains("larger than"));

        // A small body is accepted and ignored.
        let small = b"POST /v1/reload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
        let (code, _, _) = raw(&server.path, small).await;
        assert_eq!(code, 200);
        server.stop().await;
    }

    #[tokio::test]
    async fn a_malformed_request_is_400_and_the_server_goes_on() {
        let server = TestServer::start();
        for garbage in [
            &b"this is not http\r\n\r\n"[..],
            b"GET /v1/status HTTP/9.9\r\n\r\n",
            b"GET /v1/status HTTP/1.1\r\nBad Header\r\n\r\n",
            b"\x00\x01\x02\xff\r\n\r\n",
        ] {
            let (code, head, _) = raw(&server.path, garbage).await;
            assert!((400..500).contains(&code), "{garbage:?}: {head}");
        }
        let (code, _, _) = raw(&server.path, &request("GET", "/v1/status")).await;
        assert_eq!(code, 200);
        server.stop().await;
    }

    #[tokio::test]
    async fn a_silent_client_is_disconnected() {
        let limits = Limits {
            header_read_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let server = TestServer::start_with(FakeController::default(), limits);
        let mut stream = UnixStream::connect(&server.path).await.unwrap();
        stream.write_all(b"GET /v1/sta").await.unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the server should close a silent connection");
        server.stop().await;
    }

    #[tokio::test]
    async fn bind_makes_a_private_dir_and_a_0600_socket() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("a").join("run");
        let path = run.join("skillsyncd.sock");
        let _listener = bind(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&run), 0o700);
        assert_eq!(mode(run.parent().unwrap()), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
    }

    #[tokio::test]
    async fn bind_refuses_a_directory_others_can_write() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = bind(&dir.path().join("s.sock")).unwrap_err();
        assert!(matches!(err, ServerError::UnsafeDirectory { .. }), "{err}");
        assert!(err.to_string().contains("0777"), "{err}");
        assert!(!dir.path().join("s.sock").exists());
    }

    #[test]
    fn only_the_same_uid_is_allowed() {
        assert!(peer_allowed(Some(1000), 1000));
        assert!(!peer_allowed(Some(0), 1000));
        assert!(!peer_allowed(Some(1001), 1000));
        assert!(!peer_allowed(None, 1000));
    }

    /// Run as root, a thread that becomes `nobody` connects: the uid check
    /// (not the file modes, opened up here) must turn it away.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn another_user_is_refused_with_403() {
        use std::io::{Read, Write};
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: changing a thread's uid needs root");
            return;
        }
        let server = TestServer::start();
        let run = server.path.parent().unwrap();
        for dir in [run, run.parent().unwrap()] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        }
        std::fs::set_permissions(&server.path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let path = server.path.clone();
        let answer = tokio::task::spawn_blocking(move || {
            // A thread of its own: the uid change is per thread and final.
            std::thread::spawn(move || -> io::Result<Vec<u8>> {
                rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534))?;
                let mut stream = std::os::unix::net::UnixStream::connect(&path)?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                stream.write_all(&request("GET", "/v1/status"))?;
                let mut buf = Vec::new();
                stream.read_to_end(&mut buf)?;
                Ok(buf)
            })
            .join()
            .unwrap()
        })
        .await
        .unwrap()
        .unwrap();
        let (code, head, body) = parse_response(&answer);
        assert_eq!(code, 403, "{head}");
        assert!(error_of(&body).contains("only the user running skillsyncd"));
        // The server goes on answering its own user.
        assert!(Client::new(&server.path).status().await.is_ok());
        server.stop().await;
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "the socket file outlives its listener");
        let listener = bind(&path).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            Arc::new(FakeController::default()),
            async {
                let _ = stopped.await;
            },
        ));
        assert_eq!(Client::new(&path).status().await.unwrap(), status());
        let _ = stop.send(());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_live_socket_is_refused() {
        let server = TestServer::start();
        let err = bind(&server.path).unwrap_err();
        assert!(matches!(err, ServerError::AlreadyListening { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "another skillsyncd is already listening on {}",
                server.path.display()
            )
        );
        // The running server is undisturbed.
        assert!(Client::new(&server.path).status().await.is_ok());
        server.stop().await;
    }

    #[tokio::test]
    async fn something_else_at_the_path_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        std::fs::write(&path, "precious").unwrap();
        let err = bind(&path).unwrap_err();
        assert!(matches!(err, ServerError::NotASocket { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }

    #[tokio::test]
    async fn shutdown_removes_the_socket_and_lets_a_request_finish() {
        let controller = FakeController {
            sync_delay: Some(Duration::from_millis(300)),
            ..FakeController::default()
        };
        let server = TestServer::start_with(controller, Limits::default());
        let path = server.path.clone();
        let client = Client::new(&path);
        let in_flight = tokio::spawn(async move { client.sync(None, true).await });
        // Let the request reach the controller, then stop.
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.stop().await;
        assert!(!path.exists(), "the socket is removed on exit");
        let resp = in_flight.await.unwrap().unwrap();
        assert!(resp.waited);
        let err = Client::new(&path).status().await.unwrap_err();
        assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn connections_over_the_cap_get_503() {
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        let server = TestServer::start_with(FakeController::default(), limits);
        let idle1 = UnixStream::connect(&server.path).await.unwrap();
        let idle2 = UnixStream::connect(&server.path).await.unwrap();
        let (code, head, body) = raw(&server.path, &request("GET", "/v1/status")).await;
        assert_eq!(code, 503, "{head}");
        assert!(error_of(&body).contains("too many connections"));

        // A slot frees when a connection closes.
        drop(idle1);
        let mut served = false;
        for _ in 0..50 {
            let (code, _, _) = raw(&server.path, &request("GET", "/v1/status")).await;
            if code == 200 {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served, "a freed slot is used again");
        drop(idle2);
        server.stop().await;
    }

    #[test]
    fn routes() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(route(&get, "/v1/status", None), Ok(Route::Status));
        assert_eq!(route(&get, "/v1/status", Some("")), Ok(Route::Status));
        assert_eq!(
            route(&get, "/v1/skills/a-b", None),
            Ok(Route::Skill("a-b".into()))
        );
        assert_eq!(
            route(&post, "/v1/sync", Some("wait=true")),
            Ok(Route::Sync {
                name: None,
                wait: true
            })
        );
        assert_eq!(
            route(&post, "/v1/skills/x/sync", Some("wait")),
            Ok(Route::Sync {
                name: Some("x".into()),
                wait: true
            })
        );
        assert_eq!(
            route(&post, "/v1/skills/x/sync", Some("wait=0")),
            Ok(Route::Sync {
                name: Some("x".into()),
                wait: false
            })
        );
        assert_eq!(route(&post, "/v1/reload", None), Ok(Route::Reload));
        for path in [
            "/v1",
            "/v1/",
            "/v1status",
            "/v1/status/",
            "/v1/skills//sync",
            "/v1/skills/a/b",
        ] {
            assert_eq!(
                route(&get, path, None).unwrap_err().status,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let e = route(&get, "/v1/reload", None).unwrap_err();
        assert_eq!(e.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(e.allow, Some("POST"));
    }
}

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
pub(crate) mod tests;

//! A counting, fault-injecting HTTP/1.1 proxy in front of a registry.
//!
//! Point the code under test at [`Proxy::host`] instead of the registry's
//! host. Every request is forwarded (bodies streamed both ways, keep-alive
//! honoured) and recorded; [`Proxy::counts`] returns a [`Counts`] snapshot
//! with per-kind counters (`blob_gets()`, `manifest_heads()`, `tag_lists()`,
//! ...), and [`Proxy::reset`] clears it.
//!
//! Faults are switched on and off while the proxy runs, matched per
//! request by a [`Match`]: answer with a status ([`Fault::Status`]), delay
//! ([`Fault::Delay`]), or tamper with a successful body while streaming it
//! ([`Fault::Corrupt`] flips one byte and keeps the length,
//! [`Fault::Truncate`] serves a well-framed shorter body, [`Fault::Cut`]
//! drops the connection mid-body, [`Fault::Replace`] serves other bytes).
//! Delays add up; of the other faults the first matching one applies. A
//! fault may be limited to its first `n` matches.
//!
//! The proxy runs on its own thread and tokio runtime, so plain and async
//! tests can both use it; dropping it stops it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// What a registry request is, by method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    /// `GET /v2/<name>/tags/list`.
    TagList,
    /// `HEAD /v2/<name>/manifests/<reference>`.
    ManifestHead,
    /// `GET /v2/<name>/manifests/<reference>`.
    ManifestGet,
    /// `GET /v2/<name>/blobs/<digest>`.
    BlobGet,
    /// `HEAD /v2/<name>/blobs/<digest>`.
    BlobHead,
    /// Anything else: `/v2/` pings, uploads, manifest PUT and DELETE, ...
    Other,
}

impl RequestKind {
    /// Classifies a request.
    pub fn of(method: &Method, path: &str) -> RequestKind {
        let Some(rest) = path.strip_prefix("/v2/") else {
            return RequestKind::Other;
        };
        if *method == Method::GET && rest.ends_with("/tags/list") {
            return RequestKind::TagList;
        }
        if let Some(at) = rest.rfind("/manifests/") {
            if !rest[at + "/manifests/".len()..].is_empty() {
                match *method {
                    Method::GET => return RequestKind::ManifestGet,
                    Method::HEAD => return RequestKind::ManifestHead,
                    _ => {}
                }
            }
        }
        if let Some(at) = rest.rfind("/blobs/") {
            let reference = &rest[at + "/blobs/".len()..];
            if reference.starts_with("sha256:") {
                match *method {
                    Method::GET => return RequestKind::BlobGet,
                    Method::HEAD => return RequestKind::BlobHead,
                    _ => {}
                }
            }
        }
        RequestKind::Other
    }
}

/// One request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query, if any.
    pub query: Option<String>,
    /// Its classification.
    pub kind: RequestKind,
    /// The status answered (502 if the registry could not be reached).
    pub status: u16,
    /// Whether a fault (other than a delay) was applied.
    pub faulted: bool,
    /// Whether the request carried an `Authorization` header.
    pub authorization: bool,
}

impl RecordedRequest {
    /// The last path segment: the tag or digest of a manifest or blob
    /// request.
    pub fn reference(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

/// A snapshot of the requests recorded since the start or the last
/// [`Proxy::reset`], in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every request.
    pub requests: Vec<RecordedRequest>,
}

impl Counts {
    /// Every request.
    pub fn total(&self) -> usize {
        self.requests.len()
    }

    /// Requests of `kind`.
    pub fn of_kind(&self, kind: RequestKind) -> usize {
        self.requests.iter().filter(|r| r.kind == kind).count()
    }

    /// Tag list requests.
    pub fn tag_lists(&self) -> usize {
        self.of_kind(RequestKind::TagList)
    }

    /// Manifest HEADs.
    pub fn manifest_heads(&self) -> usize {
        self.of_kind(RequestKind::ManifestHead)
    }

    /// Manifest GETs.
    pub fn manifest_gets(&self) -> usize {
        self.of_kind(RequestKind::ManifestGet)
    }

    /// Blob GETs.
    pub fn blob_gets(&self) -> usize {
        self.of_kind(RequestKind::BlobGet)
    }

    /// Blob HEADs.
    pub fn blob_heads(&self) -> usize {
        self.of_kind(RequestKind::BlobHead)
    }

    /// Requests of kind [`RequestKind::Other`].
    pub fn other(&self) -> usize {
        self.of_kind(RequestKind::Other)
    }

    /// Blob GETs of `digest`.
    pub fn blob_gets_of(&self, digest: &str) -> usize {
        self.requests
            .iter()
            .filter(|r| r.kind == RequestKind::BlobGet && r.reference() == digest)
            .count()
    }

    /// Requests whose path equals `path`.
    pub fn for_path(&self, path: &str) -> usize {
        self.requests.iter().filter(|r| r.path == path).count()
    }

    /// Requests whose path contains `needle`.
    pub fn matching(&self, needle: &str) -> usize {
        self.requests
            .iter()
            .filter(|r| r.path.contains(needle))
            .count()
    }

    /// Counts by kind, for assertion messages.
    pub fn by_kind(&self) -> BTreeMap<RequestKind, usize> {
        let mut counts = BTreeMap::new();
        for request in &self.requests {
            *counts.entry(request.kind).or_insert(0) += 1;
        }
        counts
    }

    /// `METHOD path -> status`, one request a line, for assertion messages.
    pub fn summary(&self) -> String {
        self.requests
            .iter()
            .map(|r| format!("{} {} -> {}\n", r.method, r.path, r.status))
            .collect()
    }
}

/// Which requests a fault applies to: every given condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    kind: Option<RequestKind>,
    path_contains: Option<String>,
}

impl Match {
    /// Every request.
    pub fn any() -> Match {
        Match::default()
    }

    /// Requests of `kind`.
    pub fn kind(kind: RequestKind) -> Match {
        Match {
            kind: Some(kind),
            path_contains: None,
        }
    }

    /// Requests whose path contains `needle`.
    pub fn path(needle: &str) -> Match {
        Match {
            kind: None,
            path_contains: Some(needle.to_owned()),
        }
    }

    /// GETs of the blob `digest`.
    pub fn blob(digest: &str) -> Match {
        Match::kind(RequestKind::BlobGet).and_path(&format!("/blobs/{digest}"))
    }

    /// Also requires the path to contain `needle`.
    pub fn and_path(mut self, needle: &str) -> Match {
        self.path_contains = Some(needle.to_owned());
        self
    }

    fn matches(&self, kind: RequestKind, path: &str) -> bool {
        self.kind.is_none_or(|k| k == kind)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|needle| path.contains(needle))
    }
}

/// A misbehaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and an OCI error body, without asking the
    /// registry; `retry_after` (seconds) adds a `Retry-After` header.
    Status {
        /// The status code (500, 429, 404, ...).
        status: u16,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// Wait this long before forwarding.
    Delay(Duration),
    /// Flip one byte (in the middle) of a successful body; same length.
    Corrupt,
    /// Serve only the first `keep` bytes of a successful body, with a
    /// matching `Content-Length` (a well-framed short body).
    Truncate {
        /// Bytes served.
        keep: u64,
    },
    /// Send the original `Content-Length`, then drop the connection after
    /// `after` bytes.
    Cut {
        /// Bytes sent before the cut.
        after: u64,
    },
    /// Serve these bytes instead of a successful body.
    Replace(Vec<u8>),
    /// Answer `307 Temporary Redirect` to the same path and query at
    /// this origin (`http://127.0.0.1:PORT`), without asking the registry.
    Redirect(String),
    /// Answer 200 with a JSON body that never ends, sent as fast as the
    /// client reads.
    Endless,
    /// Answer 200 and send one byte of body every this long, forever.
    Trickle(Duration),
}

/// Identifies an injected fault, for [`Proxy::remove`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultId(u64);

#[derive(Debug)]
struct Rule {
    id: FaultId,
    matcher: Match,
    fault: Fault,
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    rules: Mutex<Vec<Rule>>,
    next_id: Mutex<u64>,
    token: Mutex<Option<TokenAuth>>,
}

/// Token authentication played by the proxy, as Docker Hub, GHCR or Quay
/// do it: API requests without the token get a `Bearer` challenge naming
/// `realm`; `GET /token` with the right basic credentials answers the
/// token.
#[derive(Debug, Clone)]
struct TokenAuth {
    user: String,
    password: String,
    realm: String,
}

/// The token the proxy's token service hands out.
pub const PROXY_TOKEN: &str = "proxy-token-1";

impl Shared {
    /// The delays to apply and the first other fault matching, consuming
    /// one use of each.
    fn faults_for(&self, kind: RequestKind, path: &str) -> (Duration, Option<Fault>) {
        let mut rules = self.rules.lock().expect("proxy rules lock");
        let mut delay = Duration::ZERO;
        let mut chosen = None;
        for rule in rules.iter_mut() {
            if rule.remaining == Some(0) || !rule.matcher.matches(kind, path) {
                continue;
            }
            match &rule.fault {
                Fault::Delay(d) => delay += *d,
                _ if chosen.is_some() => continue,
                other => chosen = Some(other.clone()),
            }
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
        }
        (delay, chosen)
    }
}

/// The running proxy; stops on drop.
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream`
    /// (`127.0.0.1:PORT`, e.g. [`super::registry::Registry::host`]).
    pub fn start(upstream: &str) -> Proxy {
        let upstream: SocketAddr = upstream
            .parse()
            .unwrap_or_else(|e| panic!("proxy upstream {upstream:?} is not host:port: {e}"));
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy to a free port");
        listener
            .set_nonblocking(true)
            .expect("make the proxy listener non-blocking");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared::default());
        let (shutdown, stop) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("proxy")
            .enable_all()
            .build()
            .expect("build the proxy's runtime");
        let state = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("proxy".to_owned())
            .spawn(move || {
                runtime.block_on(serve(listener, upstream, state, stop));
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn the proxy thread");
        Proxy {
            addr,
            upstream,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`: use it where the registry's host would go.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The proxy's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The registry it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The requests recorded so far.
    pub fn counts(&self) -> Counts {
        Counts {
            requests: self.shared.requests.lock().expect("proxy log lock").clone(),
        }
    }

    /// Forgets the recorded requests (faults stay).
    pub fn reset(&self) {
        self.shared.requests.lock().expect("proxy log lock").clear();
    }

    /// Applies `fault` to every request matching `matcher`.
    pub fn inject(&self, matcher: Match, fault: Fault) -> FaultId {
        self.add_rule(matcher, fault, None)
    }

    /// Applies `fault` to the next `times` requests matching `matcher`.
    pub fn inject_times(&self, matcher: Match, fault: Fault, times: u32) -> FaultId {
        self.add_rule(matcher, fault, Some(times))
    }

    /// Removes one fault.
    pub fn remove(&self, id: FaultId) {
        self.shared
            .rules
            .lock()
            .expect("proxy rules lock")
            .retain(|r| r.id != id);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.rules.lock().expect("proxy rules lock").clear();
    }

    /// Serves blob `digest` with one byte flipped, same length.
    pub fn corrupt_blob(&self, digest: &str) -> FaultId {
        self.inject(Match::blob(digest), Fault::Corrupt)
    }

    /// Serves only the first `keep` bytes of blob `digest`, well framed.
    pub fn truncate_blob(&self, digest: &str, keep: u64) -> FaultId {
        self.inject(Match::blob(digest), Fault::Truncate { keep })
    }

    /// Drops the connection after `after` bytes of blob `digest`.
    pub fn cut_blob(&self, digest: &str, after: u64) -> FaultId {
        self.inject(Match::blob(digest), Fault::Cut { after })
    }

    /// Serves `bytes` as blob `digest`.
    pub fn replace_blob(&self, digest: &str, bytes: Vec<u8>) -> FaultId {
        self.inject(Match::blob(digest), Fault::Replace(bytes))
    }

    /// Answers matching requests with `status`.
    pub fn fail(&self, matcher: Match, status: u16) -> FaultId {
        self.inject(
            matcher,
            Fault::Status {
                status,
                retry_after: None,
            },
        )
    }

    /// Answers the next `times` matching requests with `status`.
    pub fn fail_times(&self, matcher: Match, status: u16, times: u32) -> FaultId {
        self.inject_times(
            matcher,
            Fault::Status {
                status,
                retry_after: None,
            },
            times,
        )
    }

    /// Answers the next `times` matching requests with 429 and
    /// `Retry-After: retry_after_secs`.
    pub fn rate_limit(&self, matcher: Match, retry_after_secs: u64, times: u32) -> FaultId {
        self.inject_times(
            matcher,
            Fault::Status {
                status: 429,
                retry_after: Some(retry_after_secs),
            },
            times,
        )
    }

    /// Plays a token-authenticating registry: API requests need
    /// `Bearer PROXY_TOKEN` (challenged with `realm`, e.g.
    /// `http://HOST:PORT/token`, this proxy's or another's), and this
    /// proxy's own `GET /token` hands it out for `user`/`password`. The
    /// token is stripped before forwarding.
    pub fn require_token(&self, user: &str, password: &str, realm: &str) {
        *self.shared.token.lock().expect("proxy token lock") = Some(TokenAuth {
            user: user.into(),
            password: password.into(),
            realm: realm.into(),
        });
    }

    /// Delays matching requests by `delay`.
    pub fn delay(&self, matcher: Match, delay: Duration) -> FaultId {
        self.inject(matcher, Fault::Delay(delay))
    }

    fn add_rule(&self, matcher: Match, fault: Fault, remaining: Option<u32>) -> FaultId {
        let id = {
            let mut next = self.shared.next_id.lock().expect("proxy id lock");
            *next += 1;
            FaultId(*next)
        };
        self.shared
            .rules
            .lock()
            .expect("proxy rules lock")
            .push(Rule {
                id,
                matcher,
                fault,
                remaining,
            });
        id
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

async fn serve(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener =
        tokio::net::TcpListener::from_std(listener).expect("register the proxy listener");
    // No Nagle on either side: a streamed response is written as headers,
    // then body chunks, and with Nagle each small write after the first
    // waits for the peer's delayed ACK (40 ms on Linux).
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let client = client.clone();
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle(request, upstream, &client, &shared).await) }
            });
            // A client hanging up mid-response is not the proxy's problem.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    request: Request<Incoming>,
    upstream: SocketAddr,
    client: &Client<HttpConnector, Incoming>,
    shared: &Shared,
) -> Response<ProxyBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let kind = RequestKind::of(&method, &path);
    let (delay, fault) = shared.faults_for(kind, &path);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let authorization = request.headers().contains_key(header::AUTHORIZATION);
    let token = shared.token.lock().expect("proxy token lock").clone();
    let refresh = token
        .as_ref()
        .filter(|_| path == "/token" && method == Method::POST);
    if let Some(auth) = refresh {
        let response = refresh_grant(auth, request).await;
        record(shared, &method, path, query, kind, &response, authorization);
        return response;
    }
    let mut request = request;
    let gate = token.and_then(|t| {
        let gate = token_gate(&t, &path, request.headers());
        // The registry behind is open: the token stays here.
        request.headers_mut().remove(header::AUTHORIZATION);
        gate
    });
    let response = match (gate, fault) {
        (Some(answer), _) => answer,
        (None, fault) => match fault {
            Some(Fault::Status {
                status,
                retry_after,
            }) => status_response(&method, status, retry_after),
            Some(Fault::Redirect(origin)) => {
                let target = format!(
                    "{origin}{}",
                    request
                        .uri()
                        .path_and_query()
                        .map(|pq| pq.as_str())
                        .unwrap_or("/")
                );
                let mut response = Response::builder()
                    .status(StatusCode::TEMPORARY_REDIRECT)
                    .header(header::LOCATION, target)
                    .header(header::CONTENT_LENGTH, 0)
                    .body(Empty::new().map_err(BoxError::from).boxed())
                    .expect("a valid response");
                response.extensions_mut().insert(Faulted);
                response
            }
            Some(Fault::Endless) => endless_response(None),
            Some(Fault::Trickle(every)) => endless_response(Some(every)),
            fault => forward(request, upstream, client, fault.as_ref()).await,
        },
    };
    record(shared, &method, path, query, kind, &response, authorization);
    response
}

/// Logs one request and its answer.
fn record(
    shared: &Shared,
    method: &Method,
    path: String,
    query: Option<String>,
    kind: RequestKind,
    response: &Response<ProxyBody>,
    authorization: bool,
) {
    shared
        .requests
        .lock()
        .expect("proxy log lock")
        .push(RecordedRequest {
            method: method.to_string(),
            path,
            query,
            kind,
            status: response.status().as_u16(),
            faulted: fault_applied(response),
            authorization,
        });
}

/// An OAuth2 refresh-token grant (docker's identity tokens): a form
/// POSTed to the token service; the refresh token is the password.
async fn refresh_grant(auth: &TokenAuth, request: Request<Incoming>) -> Response<ProxyBody> {
    let form = request
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let field = |name: &str| {
        form.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(form_decode)
    };
    let granted = field("grant_type").as_deref() == Some("refresh_token")
        && field("refresh_token").as_deref() == Some(auth.password.as_str());
    let (status, body) = if granted {
        (
            StatusCode::OK,
            format!(r#"{{"access_token":"{PROXY_TOKEN}","expires_in":300}}"#),
        )
    } else {
        (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_grant"}"#.to_string(),
        )
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(body.into_bytes()))
        .expect("a valid response")
}

/// Marks responses a non-delay fault shaped, for [`RecordedRequest::faulted`].
#[derive(Debug, Clone, Copy)]
struct Faulted;

fn fault_applied(response: &Response<ProxyBody>) -> bool {
    response.extensions().get::<Faulted>().is_some()
}

async fn forward(
    request: Request<Incoming>,
    upstream: SocketAddr,
    client: &Client<HttpConnector, Incoming>,
    fault: Option<&Fault>,
) -> Response<ProxyBody> {
    let (mut parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(upstream.to_string())
        .path_and_query(path_and_query)
        .build()
        .expect("a valid upstream URI");
    // The Host header stays the proxy's, so the registry's upload
    // Location URLs lead back through the proxy.
    remove_hop_by_hop(&mut parts.headers);
    let method = parts.method.clone();
    let response = match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(full(
                    format!("proxy: upstream {upstream}: {e}\n").into_bytes(),
                ))
                .expect("a valid response");
        }
    };
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);

    let tamper = parts.status == StatusCode::OK && method == Method::GET;
    let fault = fault.filter(|_| tamper);
    let length = content_length(&parts.headers);
    let body: ProxyBody = match fault {
        None => body.map_err(BoxError::from).boxed(),
        Some(Fault::Replace(bytes)) => {
            set_length(&mut parts.headers, bytes.len() as u64);
            full(bytes.clone())
        }
        Some(Fault::Truncate { keep }) => {
            let keep = length.map_or(*keep, |n| n.min(*keep));
            set_length(&mut parts.headers, keep);
            Tampered::new(body, Tamper::Truncate { keep }).boxed()
        }
        Some(Fault::Cut { after }) => Tampered::new(body, Tamper::Cut { after: *after }).boxed(),
        Some(Fault::Corrupt) => {
            let at = length.map_or(0, |n| n / 2);
            Tampered::new(body, Tamper::Flip { at }).boxed()
        }
        Some(
            Fault::Status { .. }
            | Fault::Delay(_)
            | Fault::Redirect(_)
            | Fault::Endless
            | Fault::Trickle(_),
        ) => {
            unreachable!("these faults are applied before forwarding")
        }
    };
    let mut response = Response::from_parts(parts, body);
    if fault.is_some() {
        response.extensions_mut().insert(Faulted);
    }
    response
}

fn status_response(method: &Method, status: u16, retry_after: Option<u64>) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(status)
        .unwrap_or_else(|e| panic!("injected status {status} is not a status code: {e}"));
    let code = match status {
        StatusCode::NOT_FOUND => "NAME_UNKNOWN",
        StatusCode::TOO_MANY_REQUESTS => "TOOMANYREQUESTS",
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::FORBIDDEN => "DENIED",
        _ => "UNKNOWN",
    };
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"injected fault"}}]}}"#);
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len());
    if let Some(seconds) = retry_after {
        builder = builder.header(header::RETRY_AFTER, seconds);
    }
    let body = if *method == Method::HEAD {
        Empty::new().map_err(BoxError::from).boxed()
    } else {
        full(body.into_bytes())
    };
    let mut response = builder.body(body).expect("a valid response");
    response.extensions_mut().insert(Faulted);
    response
}

/// `application/x-www-form-urlencoded` decoding of one value.
fn form_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Under token auth: the answer to `/token`, or a challenge to an API
/// request without the token; `None` lets the request through.
fn token_gate(auth: &TokenAuth, path: &str, headers: &HeaderMap) -> Option<Response<ProxyBody>> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let json = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(full(body.into_bytes()))
            .expect("a valid response")
    };
    if path == "/token" {
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", auth.user, auth.password))
        );
        return Some(if given == expected {
            json(
                StatusCode::OK,
                format!(r#"{{"token":"{PROXY_TOKEN}","expires_in":300}}"#),
            )
        } else {
            json(
                StatusCode::UNAUTHORIZED,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#.into(),
            )
        });
    }
    if given == format!("Bearer {PROXY_TOKEN}") {
        return None;
    }
    let mut response = json(
        StatusCode::UNAUTHORIZED,
        r#"{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}"#.into(),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&format!(
            "Bearer realm=\"{}\",service=\"proxy\"",
            auth.realm
        ))
        .expect("a valid header"),
    );
    Some(response)
}

/// A 200 whose JSON body never ends: as fast as it is read, or one byte
/// per `every`.
fn endless_response(every: Option<Duration>) -> Response<ProxyBody> {
    let head =
        futures_util::stream::once(async { Bytes::from_static(br#"{"name":"endless","tags":["#) });
    let tail = futures_util::stream::unfold(every, |every| async move {
        match every {
            Some(d) => {
                tokio::time::sleep(d).await;
                Some((Bytes::from_static(b" "), every))
            }
            None => Some((Bytes::from(vec![b' '; 64 * 1024]), None)),
        }
    });
    let frames = futures_util::StreamExt::map(futures_util::StreamExt::chain(head, tail), |b| {
        Ok::<_, BoxError>(Frame::data(b))
    });
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(http_body_util::StreamBody::new(frames).boxed())
        .expect("a valid response");
    response.extensions_mut().insert(Faulted);
    response
}

fn full(bytes: Vec<u8>) -> ProxyBody {
    Full::new(Bytes::from(bytes))
        .map_err(BoxError::from)
        .boxed()
}

fn remove_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn set_length(headers: &mut HeaderMap, length: u64) {
    headers.remove(header::TRANSFER_ENCODING);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
}

/// How a streamed body is tampered with.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// Invert the byte at this offset.
    Flip { at: u64 },
    /// End the body after this many bytes.
    Truncate { keep: u64 },
    /// Fail the body (dropping the connection) after this many bytes.
    Cut { after: u64 },
}

/// The registry's body, streamed frame by frame with one [`Tamper`].
struct Tampered {
    inner: Incoming,
    tamper: Tamper,
    offset: u64,
    finished: bool,
    cut_pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// How long a cut body stalls before the connection drops.
const CUT_PAUSE: Duration = Duration::from_millis(50);

impl Tampered {
    fn new(inner: Incoming, tamper: Tamper) -> Tampered {
        Tampered {
            inner,
            tamper,
            offset: 0,
            finished: false,
            cut_pause: None,
        }
    }
}

impl Body for Tampered {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        match this.tamper {
            Tamper::Truncate { keep } if this.offset >= keep => {
                this.finished = true;
                return Poll::Ready(None);
            }
            Tamper::Cut { after } if this.offset >= after => {
                // Pause first: hyper flushes what it holds (the head and the
                // bytes before the cut) when the body is pending; an error
                // straight away would discard them unsent.
                let pause = this
                    .cut_pause
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(CUT_PAUSE)));
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.finished = true;
                return Poll::Ready(Some(Err("connection cut by an injected fault".into())));
            }
            _ => {}
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let Ok(mut data) = frame.into_data() else {
            // Trailers are not expected from a registry; drop them.
            return Poll::Ready(None);
        };
        let start = this.offset;
        let len = data.len() as u64;
        this.offset += len;
        match this.tamper {
            Tamper::Flip { at } if (start..start + len).contains(&at) => {
                let mut bytes = data.to_vec();
                bytes[(at - start) as usize] ^= 0xff;
                data = Bytes::from(bytes);
            }
            Tamper::Truncate { keep: limit } | Tamper::Cut { after: limit }
                if start + len > limit =>
            {
                data.truncate((limit - start) as usize);
                this.offset = limit;
            }
            _ => {}
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

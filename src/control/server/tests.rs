//! Tests of the control socket server, through the client and by hand: routes,
//! errors, limits, the socket's permissions and peers, and shutdown. Its
//! test server is shared with the client's tests.
//!
//! Built for `cargo test` only: no code outside tests may use anything here.

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

    async fn hold(&self, name: String, action: HoldAction) -> Result<HoldResponse, ActionError> {
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
    let small =
        b"POST /v1/reload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
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

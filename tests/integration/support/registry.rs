//! A real OCI registry for tests: Debian's `docker-registry` (CNCF
//! distribution 2.8) serving plain HTTP on a free loopback port, with its
//! storage in a temporary directory.
//!
//! The registry is asked for `127.0.0.1:0` and the port it picked is read
//! from its `listening on ...` log line, so tests never race for ports. Its
//! stdout and stderr are drained continuously (a full pipe would stall it)
//! and kept for [`Registry::log`], which start-up failures print.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Where the registry binary is expected (Debian package `docker-registry`).
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// How long start-up may take before the test fails.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `docker-registry`, killed (and its storage removed) on drop.
pub struct Registry {
    child: Child,
    addr: SocketAddr,
    storage: PathBuf,
    log: Arc<Mutex<String>>,
    /// Holds the config file and the storage; removed on drop.
    _dir: TempDir,
}

impl Registry {
    /// Starts a registry with filesystem storage in a fresh temporary
    /// directory, deletes enabled, and waits until `GET /v2/` answers.
    ///
    /// Panics with the registry's log if it does not come up.
    pub fn start() -> Registry {
        Self::start_with(None, None)
    }

    /// Starts a registry serving HTTPS with `cert` and `key` (PEM files).
    pub fn start_with_tls(cert: &Path, key: &Path) -> Registry {
        Self::start_with(None, Some((cert, key)))
    }

    /// Starts a registry that requires `user` / `password` (htpasswd, the
    /// bcrypt hash distribution demands). `GET /v2/` then answers 401.
    pub fn start_with_htpasswd(user: &str, password: &str) -> Registry {
        Self::start_with(Some((user, password)), None)
    }

    fn start_with(auth: Option<(&str, &str)>, tls: Option<(&Path, &Path)>) -> Registry {
        assert!(
            Path::new(REGISTRY_BINARY).exists(),
            "{REGISTRY_BINARY} not found: install docker-registry \
             (Debian/Ubuntu: `apt-get install docker-registry`) to run these tests"
        );
        let dir = tempfile::Builder::new()
            .prefix("registry-")
            .tempdir()
            .expect("create a temporary directory for the registry");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("create the registry storage directory");
        let config = dir.path().join("config.yml");
        let mut yaml = config_yaml(&storage);
        if let Some((user, password)) = auth {
            let htpasswd = dir.path().join("htpasswd");
            let hash = bcrypt::hash(password, 4).expect("bcrypt the test password");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("write htpasswd");
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: skillsync-tests\n    path: {}\n",
                htpasswd.display()
            ));
        }
        if let Some((cert, key)) = tls {
            yaml = yaml.replace(
                "  secret: integration-tests-only\n",
                &format!(
                    "  secret: integration-tests-only\n  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                ),
            );
        }
        std::fs::write(&config, yaml).expect("write the registry config");

        // env_clear: REGISTRY_* variables in the caller's environment would
        // override the config file.
        let mut child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {REGISTRY_BINARY}: {e} (install docker-registry)"));

        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("registry stderr is piped");
        let stdout = child.stdout.take().expect("registry stdout is piped");
        drain(stderr, Arc::clone(&log), Some(addr_tx));
        drain(stdout, Arc::clone(&log), None);

        let mut registry = Registry {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            storage,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        match addr_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(addr) => registry.addr = addr,
            Err(_) => registry.fail("did not report its listening address"),
        }
        loop {
            if let Some(status) = registry
                .child
                .try_wait()
                .expect("poll the registry process")
            {
                registry.fail(&format!("exited early with {status}"));
            }
            if tls.is_some() {
                // Plain HTTP cannot ask a TLS port; accepting a connection
                // after the log said it listens is enough.
                if std::net::TcpStream::connect(registry.addr).is_ok() {
                    return registry;
                }
            } else {
                let ready = if auth.is_some() { 401 } else { 200 };
                if http_status(registry.addr, "/v2/") == Some(ready) {
                    return registry;
                }
            }
            if Instant::now() > deadline {
                registry.fail("did not answer GET /v2/ in time");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`, as used in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The socket address the registry listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The filesystem driver's root directory.
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// Where the registry keeps the bytes of the blob `digest`
    /// (`sha256:<hex>`): overwrite it to corrupt what the registry serves.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("expected a sha256 digest, got {digest:?}"));
        assert!(hex.len() == 64, "malformed digest {digest:?}");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Everything the registry logged so far (stderr and access log).
    pub fn log(&self) -> String {
        self.log.lock().expect("registry log lock").clone()
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Give the drain threads a moment to collect the last lines.
        thread::sleep(Duration::from_millis(100));
        panic!("docker-registry {what}; its log:\n{}", self.log());
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("addr", &self.addr)
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

fn config_yaml(storage: &Path) -> String {
    format!(
        "version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:0
  secret: integration-tests-only
health:
  storagedriver:
    enabled: false
",
        storage = storage.display()
    )
}

/// Copies `pipe` into `log` line by line; the first `listening on ADDR`
/// line's address goes to `addr_tx`.
fn drain(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<String>>,
    mut addr_tx: Option<mpsc::Sender<SocketAddr>>,
) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = addr_tx.as_ref().and_then(|_| listening_addr(&line)) {
                if let Some(tx) = addr_tx.take() {
                    let _ = tx.send(addr);
                }
            }
            let mut log = log.lock().expect("registry log lock");
            log.push_str(&line);
            log.push('\n');
        }
    });
}

/// Parses `... msg="listening on 127.0.0.1:41417" ...` (with TLS:
/// `listening on 127.0.0.1:41417, tls`).
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let end = rest
        .find(|c: char| c == '"' || c == ',' || c.is_whitespace())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The status code of a plain `GET path`, or `None` if nothing answered.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut status_line = String::new();
    BufReader::new(stream).read_line(&mut status_line).ok()?;
    status_line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    // The import lives in the test: the benchmark compiles this module with
    // `--cfg test` but without the test harness, which drops the test and
    // would leave a module-level import unused.
    #[test]
    fn parses_the_listening_line() {
        use super::listening_addr;
        let line = r#"time="x" level=info msg="listening on 127.0.0.1:41417" go.version=go1.19.8"#;
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:41417".parse().expect("literal address"))
        );
        assert_eq!(
            listening_addr("level=info msg=\"redis not configured\""),
            None
        );
    }
}

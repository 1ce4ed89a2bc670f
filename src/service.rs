//! Telling the service manager how the daemon is doing: systemd's
//! `sd_notify` protocol, for units of `Type=notify` (and `Type=notify-reload`).
//!
//! systemd passes the address of a datagram socket in `$NOTIFY_SOCKET`: a
//! filesystem path, or an abstract socket written `@name`. Each message is
//! one datagram of newline-separated `KEY=VALUE` assignments. The daemon
//! sends:
//!
//! | when | message | [`Notifier`] method |
//! | --- | --- | --- |
//! | the first reconcile pass is scheduled | `READY=1` | [`Notifier::ready`] |
//! | something worth showing in `systemctl status` | `STATUS=...` | [`Notifier::status`] |
//! | every [`Notifier::watchdog_interval`] | `WATCHDOG=1` | [`Notifier::watchdog`] |
//! | a reload starts | `RELOADING=1` + `MONOTONIC_USEC=` | [`Notifier::reloading`] |
//! | a reload is done | `READY=1` | [`Notifier::ready_after_reload`] |
//! | shutdown starts | `STOPPING=1` | [`Notifier::stopping`] |
//!
//! Everything is a no-op when `$NOTIFY_SOCKET` is unset (started by hand,
//! by launchd, or by a unit that is not `Type=notify`) and on platforms
//! other than Linux. A failed send is logged, never fatal: the service
//! manager, not the daemon, decides what a missing notification means.
//!
//! The variables are read, not removed: child processes (credential
//! helpers) inherit `$NOTIFY_SOCKET`, but systemd only accepts messages from
//! the main process under its default `NotifyAccess=main`.

use std::ffi::{OsStr, OsString};
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The variable naming the service manager's notification socket.
pub const ENV_NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// The variable holding the watchdog timeout in microseconds.
pub const ENV_WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The variable naming the process the watchdog applies to.
pub const ENV_WATCHDOG_PID: &str = "WATCHDOG_PID";

/// Why a notification could not be sent, or `$NOTIFY_SOCKET` not used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is neither an absolute path nor `@name`.
    #[error("NOTIFY_SOCKET={value:?} is neither an absolute path nor an abstract socket (@name)")]
    BadAddress {
        /// The variable's value.
        value: OsString,
    },
    /// The address could not be turned into a socket address (too long, or
    /// an abstract socket on a platform without them).
    #[error("NOTIFY_SOCKET={value:?} is not a usable socket address")]
    Address {
        /// The variable's value.
        value: OsString,
        /// What the socket layer said.
        #[source]
        source: std::io::Error,
    },
    /// The sending socket could not be created.
    #[error("cannot create a socket to notify the service manager")]
    Socket(#[source] std::io::Error),
    /// The datagram could not be sent.
    #[error("cannot notify the service manager at NOTIFY_SOCKET={value:?}")]
    Send {
        /// The variable's value.
        value: OsString,
        /// What the socket layer said.
        #[source]
        source: std::io::Error,
    },
    /// Only part of the datagram was sent.
    #[error("the service manager at NOTIFY_SOCKET={value:?} took {sent} of {len} bytes")]
    Short {
        /// The variable's value.
        value: OsString,
        /// Bytes sent.
        sent: usize,
        /// Bytes in the message.
        len: usize,
    },
}

/// Where notifications go: an unbound datagram socket and the manager's
/// address.
#[derive(Debug)]
struct Channel {
    socket: UnixDatagram,
    address: SocketAddr,
    /// `$NOTIFY_SOCKET` as given, for error messages.
    value: OsString,
}

/// Sends `sd_notify` messages to the service manager, or does nothing when
/// there is none. Cheap to share: every method takes `&self` (wrap it in an
/// `Arc` to hand it to tasks).
#[derive(Debug)]
pub struct Notifier {
    channel: Option<Channel>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// A notifier that never sends anything.
    pub fn disabled() -> Notifier {
        Notifier {
            channel: None,
            watchdog: None,
        }
    }

    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` from the
    /// process environment. An unusable `$NOTIFY_SOCKET` is logged as a
    /// warning and notifications are disabled; call this after logging is
    /// set up. Always disabled on platforms other than Linux.
    pub fn from_env() -> Notifier {
        if !cfg!(target_os = "linux") {
            return Notifier::disabled();
        }
        match Notifier::from_vars(|key| std::env::var_os(key), std::process::id()) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("{e}; not notifying the service manager");
                Notifier::disabled()
            }
        }
    }

    /// [`Notifier::from_env`] with the variables supplied by `vars` and our
    /// own pid given (for `$WATCHDOG_PID`). An unset or empty
    /// `$NOTIFY_SOCKET` gives a disabled notifier; an unusable one is an
    /// error.
    pub fn from_vars(
        vars: impl Fn(&str) -> Option<OsString>,
        our_pid: u32,
    ) -> Result<Notifier, NotifyError> {
        let Some(value) = vars(ENV_NOTIFY_SOCKET).filter(|v| !v.is_empty()) else {
            return Ok(Notifier::disabled());
        };
        let channel = Channel::open(value)?;
        let watchdog = watchdog_interval_from(
            vars(ENV_WATCHDOG_USEC).as_deref(),
            vars(ENV_WATCHDOG_PID).as_deref(),
            our_pid,
        );
        Ok(Notifier {
            channel: Some(channel),
            watchdog,
        })
    }

    /// Whether there is a service manager to notify.
    pub fn is_enabled(&self) -> bool {
        self.channel.is_some()
    }

    /// How often to call [`Notifier::watchdog`]: half the unit's
    /// `WatchdogSec=`, or `None` when no watchdog applies to this process
    /// (or there is no service manager).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.channel.as_ref().and(self.watchdog)
    }

    /// `READY=1`: start-up is complete. Send it once the first reconcile
    /// pass is scheduled; `systemctl start` returns then.
    pub fn ready(&self) {
        self.send_logged("READY=1");
    }

    /// `STATUS=line`: a one-line summary shown by `systemctl status`.
    /// Newlines and other control characters in `line` become spaces.
    pub fn status(&self, line: &str) {
        if self.is_enabled() {
            self.send_logged(&format!("STATUS={}", one_line(line)));
        }
    }

    /// `WATCHDOG=1`: the daemon is alive. Send it every
    /// [`Notifier::watchdog_interval`] from the loop whose health it
    /// vouches for.
    pub fn watchdog(&self) {
        self.send_logged("WATCHDOG=1");
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (which systemd 253 and later
    /// require for `Type=notify-reload`): a reload has started. Follow it
    /// with [`Notifier::ready_after_reload`], whether the reload succeeded
    /// or kept the old config.
    pub fn reloading(&self) {
        if self.is_enabled() {
            self.send_logged(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
        }
    }

    /// `READY=1` after [`Notifier::reloading`]: the reload is done.
    pub fn ready_after_reload(&self) {
        self.send_logged("READY=1");
    }

    /// `STOPPING=1`: shutdown has started.
    pub fn stopping(&self) {
        self.send_logged("STOPPING=1");
    }

    /// Sends `message` (newline-separated `KEY=VALUE` assignments) as one
    /// datagram. `Ok` without sending anything when disabled.
    pub fn send(&self, message: &str) -> Result<(), NotifyError> {
        let Some(channel) = &self.channel else {
            return Ok(());
        };
        let sent = channel
            .socket
            .send_to_addr(message.as_bytes(), &channel.address)
            .map_err(|source| NotifyError::Send {
                value: channel.value.clone(),
                source,
            })?;
        if sent != message.len() {
            return Err(NotifyError::Short {
                value: channel.value.clone(),
                sent,
                len: message.len(),
            });
        }
        Ok(())
    }

    /// [`Notifier::send`], logging a failure instead of returning it.
    fn send_logged(&self, message: &str) {
        if let Err(e) = self.send(message) {
            tracing::warn!("{}", crate::error::chain(&e));
        }
    }
}

impl Channel {
    /// Parses `$NOTIFY_SOCKET` and creates the sending socket.
    fn open(value: OsString) -> Result<Channel, NotifyError> {
        let address = parse_address(&value)?;
        let socket = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        Ok(Channel {
            socket,
            address,
            value,
        })
    }
}

/// `$NOTIFY_SOCKET` as a socket address: `/path` or `@abstract-name`.
fn parse_address(value: &OsStr) -> Result<SocketAddr, NotifyError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = value.as_bytes();
    let address = match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(value),
        Some(b'@') => abstract_address(&bytes[1..]),
        _ => {
            return Err(NotifyError::BadAddress {
                value: value.to_owned(),
            })
        }
    };
    address.map_err(|source| NotifyError::Address {
        value: value.to_owned(),
        source,
    })
}

/// An abstract socket address (Linux only).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &[u8]) -> std::io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

/// An abstract socket address (Linux only).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_name: &[u8]) -> std::io::Result<SocketAddr> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

/// Half the watchdog timeout in `$WATCHDOG_USEC`, if the watchdog applies
/// to `our_pid`: `$WATCHDOG_PID` unset, or equal to it. `None` when the
/// timeout is missing, zero or not a number.
pub fn watchdog_interval_from(
    watchdog_usec: Option<&OsStr>,
    watchdog_pid: Option<&OsStr>,
    our_pid: u32,
) -> Option<Duration> {
    let usec: u64 = watchdog_usec?.to_str()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(pid) = watchdog_pid.filter(|p| !p.is_empty()) {
        let pid: u32 = pid.to_str()?.trim().parse().ok()?;
        if pid != our_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

/// `line` with every control character (newlines included) replaced by a
/// space, so it cannot start another assignment.
fn one_line(line: &str) -> String {
    line.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares reload
/// times against.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn monotonic_usec() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let micros = u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000;
    secs.saturating_mul(1_000_000).saturating_add(micros)
}

/// `CLOCK_MONOTONIC` in microseconds (unused off Linux: nothing is sent).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn monotonic_usec() -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |key| map.get(key).cloned()
    }

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn no_socket_means_disabled_and_silent() {
        let n = Notifier::from_vars(vars(&[(ENV_WATCHDOG_USEC, "1000000")]), 7).unwrap();
        assert!(!n.is_enabled());
        assert_eq!(n.watchdog_interval(), None);
        n.ready();
        n.status("x");
        n.watchdog();
        n.reloading();
        n.ready_after_reload();
        n.stopping();
        assert!(n.send("READY=1").is_ok());
        let empty = Notifier::from_vars(vars(&[(ENV_NOTIFY_SOCKET, "")]), 7).unwrap();
        assert!(!empty.is_enabled());
    }

    #[test]
    fn relative_socket_paths_are_refused() {
        let e = Notifier::from_vars(vars(&[(ENV_NOTIFY_SOCKET, "run/notify")]), 7).unwrap_err();
        assert!(matches!(e, NotifyError::BadAddress { .. }), "{e:?}");
        assert!(e.to_string().contains("run/notify"), "{e}");
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout_for_our_pid() {
        let half = Some(Duration::from_secs(30));
        assert_eq!(watchdog_interval_from(os("60000000"), None, 42), half);
        assert_eq!(watchdog_interval_from(os("60000000"), os(""), 42), half);
        assert_eq!(watchdog_interval_from(os("60000000"), os("42"), 42), half);
        assert_eq!(watchdog_interval_from(os("60000000"), os("41"), 42), None);
        assert_eq!(watchdog_interval_from(os("60000000"), os("x"), 42), None);
        assert_eq!(watchdog_interval_from(os("0"), None, 42), None);
        assert_eq!(watchdog_interval_from(os("soon"), None, 42), None);
        assert_eq!(watchdog_interval_from(None, os("42"), 42), None);
        assert_eq!(
            watchdog_interval_from(os("3"), None, 42),
            Some(Duration::from_micros(1))
        );
    }

    #[test]
    fn status_lines_stay_one_line() {
        assert_eq!(one_line("2 skills\nREADY=1\tok"), "2 skills READY=1 ok");
    }

    #[cfg(target_os = "linux")]
    mod linux {
        use super::*;

        /// A listening socket standing in for the service manager.
        struct Manager {
            socket: UnixDatagram,
        }

        impl Manager {
            fn next(&self) -> String {
                let mut buf = [0u8; 4096];
                let n = self.socket.recv(&mut buf).unwrap();
                String::from_utf8(buf[..n].to_vec()).unwrap()
            }

            fn nothing_pending(&self) -> bool {
                self.socket.set_nonblocking(true).unwrap();
                let mut buf = [0u8; 64];
                let pending = self.socket.recv(&mut buf).is_ok();
                self.socket.set_nonblocking(false).unwrap();
                !pending
            }
        }

        fn manager_at(path: &std::path::Path) -> Manager {
            let socket = UnixDatagram::bind(path).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            Manager { socket }
        }

        #[test]
        fn every_message_reaches_a_path_socket() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("notify");
            let manager = manager_at(&path);
            let n = Notifier::from_vars(
                vars(&[
                    (ENV_NOTIFY_SOCKET, path.to_str().unwrap()),
                    (ENV_WATCHDOG_USEC, "20000000"),
                ]),
                std::process::id(),
            )
            .unwrap();
            assert!(n.is_enabled());
            assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(10)));

            n.ready();
            assert_eq!(manager.next(), "READY=1");
            n.status("3 skills in sync\n1 failed");
            assert_eq!(manager.next(), "STATUS=3 skills in sync 1 failed");
            n.watchdog();
            assert_eq!(manager.next(), "WATCHDOG=1");

            n.reloading();
            let reloading = manager.next();
            let mut lines = reloading.lines();
            assert_eq!(lines.next(), Some("RELOADING=1"));
            let usec: u64 = lines
                .next()
                .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
                .expect("a MONOTONIC_USEC= line")
                .parse()
                .unwrap();
            assert!(usec > 0);
            assert_eq!(lines.next(), None);
            n.ready_after_reload();
            assert_eq!(manager.next(), "READY=1");

            n.stopping();
            assert_eq!(manager.next(), "STOPPING=1");
            assert!(manager.nothing_pending());
        }

        #[test]
        fn abstract_sockets_are_reached() {
            use std::os::linux::net::SocketAddrExt;
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let name = format!("skillsyncd-test-{}-{nanos}", std::process::id());
            let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            let socket = UnixDatagram::bind_addr(&address).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let manager = Manager { socket };
            let n = Notifier::from_vars(
                vars(&[(ENV_NOTIFY_SOCKET, &format!("@{name}"))]),
                std::process::id(),
            )
            .unwrap();
            n.ready();
            assert_eq!(manager.next(), "READY=1");
        }

        #[test]
        fn the_watchdog_of_another_pid_is_not_ours() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("notify");
            let _manager = manager_at(&path);
            let n = Notifier::from_vars(
                vars(&[
                    (ENV_NOTIFY_SOCKET, path.to_str().unwrap()),
                    (ENV_WATCHDOG_USEC, "20000000"),
                    (ENV_WATCHDOG_PID, "1"),
                ]),
                std::process::id(),
            )
            .unwrap();
            assert_eq!(n.watchdog_interval(), None);
        }

        #[test]
        fn a_vanished_manager_is_an_error_not_a_panic() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("gone");
            let n = Notifier::from_vars(
                vars(&[(ENV_NOTIFY_SOCKET, path.to_str().unwrap())]),
                std::process::id(),
            )
            .unwrap();
            let e = n.send("READY=1").unwrap_err();
            assert!(matches!(e, NotifyError::Send { .. }), "{e:?}");
            n.ready();
        }
    }
}

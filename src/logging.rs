//! Logging to stderr, shaped for where stderr goes.
//!
//! [`init`] installs a `tracing` subscriber writing to stderr, filtered by
//! `RUST_LOG` ([`DEFAULT_FILTER`] when unset or invalid), in one of two
//! [`LogFormat`]s:
//!
//! - `text`: one human-readable line per event. Colours only when stderr
//!   is a terminal and `NO_COLOR` is unset or empty; no colours and no
//!   timestamps when stderr is the journal (under systemd, which sets
//!   `JOURNAL_STREAM`), as journald records the time itself; there each
//!   line starts with its syslog priority (`<4>` for a warning), which
//!   journald strips and records, so `journalctl -p warning` works.
//! - `json`: one JSON object per line, event fields flattened beside
//!   `timestamp`, `level`, `target` and `message`. Never coloured; always
//!   timestamped, so each line stands alone wherever it is shipped.

use std::ffi::OsStr;
use std::fmt;
use std::str::FromStr;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "skillsyncd=info";

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The name used on the command line: `text` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A log format name that is neither `text` nor `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?}: expected \"text\" or \"json\"")]
pub struct UnknownLogFormat(pub String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(s: &str) -> Result<LogFormat, UnknownLogFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(UnknownLogFormat(s.to_owned())),
        }
    }
}

/// What the text format decorates its lines with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextStyle {
    /// ANSI colours.
    pub ansi: bool,
    /// A timestamp at the start of each line.
    pub timestamps: bool,
    /// A `<N>` syslog priority prefix (see [`journal_priority`]).
    pub priority_prefix: bool,
}

/// Decides the text format's [`TextStyle`]. Pure: every input is a
/// parameter.
///
/// - `to_journal`: stderr is connected to the journal (see
///   [`is_journal_stream`]);
/// - `stderr_is_terminal`: stderr is a terminal;
/// - `no_color`: the value of `NO_COLOR`, which disables colours when set
///   and not empty (<https://no-color.org>).
pub fn text_style(
    to_journal: bool,
    stderr_is_terminal: bool,
    no_color: Option<&OsStr>,
) -> TextStyle {
    let no_color = no_color.is_some_and(|v| !v.is_empty());
    TextStyle {
        ansi: !to_journal && stderr_is_terminal && !no_color,
        timestamps: !to_journal,
        priority_prefix: to_journal,
    }
}

/// Whether stderr is the journal, from the value of `JOURNAL_STREAM`
/// (`DEVICE:INODE` of the stream systemd connected) and stderr's own device
/// and inode, when known. The variable is inherited by children whose
/// stderr may go elsewhere, so it counts only if it names stderr; if
/// stderr's identity is unknown, the variable alone decides.
pub fn is_journal_stream(journal_stream: Option<&OsStr>, stderr: Option<(u64, u64)>) -> bool {
    let Some(value) = journal_stream.and_then(OsStr::to_str) else {
        return false;
    };
    let Some((dev, ino)) = value.trim().split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match stderr {
        Some(actual) => actual == (dev, ino),
        None => true,
    }
}

/// The syslog priority journald reads from a `<N>` line prefix
/// (`SyslogLevelPrefix=`, on by default), so `journalctl -p warning` finds
/// warnings and errors.
pub fn journal_priority(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

/// An event format that starts each line with its [`journal_priority`].
struct JournalPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for JournalPriority<F>
where
    F: FormatEvent<S, N>,
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", journal_priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Device and inode of the file stderr is open on.
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The `RUST_LOG` filter, or [`DEFAULT_FILTER`] with the reason `RUST_LOG`
/// was not used when it is set but invalid.
fn filter() -> (EnvFilter, Option<String>) {
    match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(value) if !value.trim().is_empty() => match EnvFilter::try_new(&value) {
            Ok(filter) => (filter, None),
            Err(e) => (
                EnvFilter::new(DEFAULT_FILTER),
                Some(format!(
                    "ignoring RUST_LOG={value:?} ({e}); using {DEFAULT_FILTER:?}"
                )),
            ),
        },
        Ok(_) => (EnvFilter::new(DEFAULT_FILTER), None),
        Err(std::env::VarError::NotPresent) => (EnvFilter::new(DEFAULT_FILTER), None),
        Err(std::env::VarError::NotUnicode(value)) => (
            EnvFilter::new(DEFAULT_FILTER),
            Some(format!(
                "ignoring RUST_LOG={value:?} (not UTF-8); using {DEFAULT_FILTER:?}"
            )),
        ),
    }
}

/// Installs the process-wide subscriber: stderr, `RUST_LOG`, `format`.
/// Call it once, first thing in `main`. If a subscriber is already
/// installed (a second call, or a test harness), this does nothing.
pub fn init(format: LogFormat) {
    use std::io::IsTerminal;
    let (filter, warning) = filter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .try_init(),
        LogFormat::Text => {
            let journal = is_journal_stream(
                std::env::var_os("JOURNAL_STREAM").as_deref(),
                stderr_identity(),
            );
            let style = text_style(
                journal,
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            );
            let builder = builder.with_ansi(style.ansi);
            let format = tracing_subscriber::fmt::format().with_ansi(style.ansi);
            match (style.timestamps, style.priority_prefix) {
                (true, false) => builder.event_format(format).try_init(),
                (true, true) => builder.event_format(JournalPriority(format)).try_init(),
                (false, false) => builder.event_format(format.without_time()).try_init(),
                (false, true) => builder
                    .event_format(JournalPriority(format.without_time()))
                    .try_init(),
            }
        }
    };
    if let (Ok(()), Some(warning)) = (installed, warning) {
        tracing::warn!("{warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn formats_parse_and_print() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("JSON".parse(), Ok(LogFormat::Json));
        assert_eq!(
            "yaml".parse::<LogFormat>(),
            Err(UnknownLogFormat("yaml".into()))
        );
        assert_eq!(LogFormat::Json.to_string(), "json");
        assert_eq!(LogFormat::default(), LogFormat::Text);
    }

    #[test]
    fn clap_accepts_the_same_names() {
        use clap::ValueEnum;
        let names: Vec<String> = LogFormat::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|v| v.get_name().to_owned())
            .collect();
        assert_eq!(names, ["text", "json"]);
        for v in LogFormat::value_variants() {
            assert_eq!(v.as_str().parse::<LogFormat>().as_ref(), Ok(v));
        }
    }

    #[test]
    fn a_terminal_gets_colours_and_timestamps() {
        let s = text_style(false, true, None);
        assert_eq!(
            s,
            TextStyle {
                ansi: true,
                timestamps: true,
                priority_prefix: false,
            }
        );
    }

    #[test]
    fn no_color_and_pipes_get_no_colours() {
        assert!(!text_style(false, true, os("1")).ansi);
        assert!(text_style(false, true, os("")).ansi);
        let piped = text_style(false, false, None);
        assert!(!piped.ansi);
        assert!(piped.timestamps);
        assert!(!piped.priority_prefix);
    }

    #[test]
    fn the_journal_gets_neither_colours_nor_timestamps() {
        let s = text_style(true, true, None);
        assert_eq!(
            s,
            TextStyle {
                ansi: false,
                timestamps: false,
                priority_prefix: true,
            }
        );
    }

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(journal_priority(tracing::Level::ERROR), 3);
        assert_eq!(journal_priority(tracing::Level::WARN), 4);
        assert_eq!(journal_priority(tracing::Level::INFO), 6);
        assert_eq!(journal_priority(tracing::Level::DEBUG), 7);
        assert_eq!(journal_priority(tracing::Level::TRACE), 7);
    }

    #[test]
    fn journal_stream_must_name_stderr() {
        assert!(is_journal_stream(os("8:12345"), Some((8, 12345))));
        assert!(!is_journal_stream(os("8:12345"), Some((8, 999))));
        assert!(is_journal_stream(os("8:12345"), None));
        assert!(!is_journal_stream(None, Some((8, 12345))));
        assert!(!is_journal_stream(os(""), None));
        assert!(!is_journal_stream(os("journal"), None));
        assert!(!is_journal_stream(os("8:x"), None));
    }

    #[test]
    fn stderr_has_an_identity() {
        assert!(stderr_identity().is_some());
    }

    /// Name of the variable that makes [`init_in_child`] do its work; its
    /// value is the format.
    const CHILD_MARKER: &str = "SKILLSYNC_LOGGING_TEST_CHILD";

    /// Runs in a child process (see [`run_child`]): installs the subscriber
    /// and logs one event. In the normal test run it does nothing.
    #[test]
    fn init_in_child() {
        let Some(format) = std::env::var_os(CHILD_MARKER) else {
            return;
        };
        let format: LogFormat = format.to_str().unwrap().parse().unwrap();
        init(format);
        init(format);
        tracing::info!(skill = "hello", "installed 1.0.0");
        tracing::debug!("filtered out");
    }

    /// Runs [`init_in_child`] with `format` and `vars`, its stderr going to
    /// a file; returns what it wrote.
    fn run_child(format: LogFormat, vars: &[(&str, String)], journal: bool) -> String {
        use std::os::unix::fs::MetadataExt;
        let exe = std::env::current_exe().unwrap();
        let log = tempfile::NamedTempFile::new().unwrap();
        let meta = log.as_file().metadata().unwrap();
        let mut cmd = std::process::Command::new(exe);
        cmd.args([
            "--exact",
            "logging::tests::init_in_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env(CHILD_MARKER, format.as_str())
        .stderr(log.reopen().unwrap());
        if journal {
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "child failed: {out:?}");
        std::fs::read_to_string(log.path()).unwrap()
    }

    #[test]
    fn json_lines_are_objects_with_flattened_fields() {
        let log = run_child(LogFormat::Json, &[], false);
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "{log}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "installed 1.0.0");
        assert_eq!(v["skill"], "hello");
        assert!(v["timestamp"].is_string(), "{v}");
    }

    #[test]
    fn text_to_the_journal_is_plain_and_untimed() {
        let log = run_child(LogFormat::Text, &[], true);
        assert_eq!(
            log.trim(),
            "<6> INFO skillsyncd::logging::tests: installed 1.0.0 skill=\"hello\""
        );
    }

    #[test]
    fn text_elsewhere_is_timed_and_rust_log_is_honoured() {
        let log = run_child(
            LogFormat::Text,
            &[("RUST_LOG", "skillsyncd=debug".into())],
            false,
        );
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert!(
            lines[0].ends_with("installed 1.0.0 skill=\"hello\""),
            "{log}"
        );
        assert!(
            lines[0].starts_with(|c: char| c.is_ascii_digit()),
            "no timestamp: {log}"
        );
        assert!(!log.contains('\x1b'), "colours in a file: {log}");
        assert!(lines[1].ends_with("filtered out"), "{log}");
    }

    #[test]
    fn a_bad_rust_log_falls_back_with_a_warning() {
        let log = run_child(
            LogFormat::Text,
            &[("RUST_LOG", "skillsyncd=loud".into())],
            true,
        );
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert!(lines[0].starts_with("<4> WARN "), "{log}");
        assert!(
            lines[0].contains("ignoring RUST_LOG=\"skillsyncd=loud\""),
            "{log}"
        );
        assert!(lines[1].contains("installed 1.0.0"), "{log}");
    }
}

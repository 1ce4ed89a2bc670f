//! The service files (`systemd/skillsyncd.service`, the launchd agent
//! `config/dev.skillsync.skillsyncd.plist`) against the real binary: each
//! one's command line is run as written, with only the binary's path
//! substituted and its environment applied, so neither can drift from the
//! flags `skillsyncd` accepts. The unit is also checked by
//! `systemd-analyze verify` where that is installed, and the plist parsed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{demo, wait_until, KillOnDrop, TestEnv, SKILLSYNCD};

/// The unit, as shipped.
const UNIT: &str = include_str!("../../systemd/skillsyncd.service");
/// The launchd agent, as shipped.
const PLIST: &str = include_str!("../../config/dev.skillsync.skillsyncd.plist");

/// Where the unit expects the binary (`cargo install`'s default).
const UNIT_BINARY: &str = "%h/.cargo/bin/skillsyncd";
/// The plist's home directory placeholder.
const PLIST_HOME: &str = "/Users/USERNAME";

// ---------------------------------------------------------------- the unit

/// A unit file's assignments, section by section, in order.
#[derive(Debug)]
struct UnitFile {
    sections: BTreeMap<String, Vec<(String, String)>>,
}

impl UnitFile {
    /// Parses systemd's ini dialect: `[Section]`, `Key=Value`, comments
    /// starting with `#` or `;`, and lines continued with a trailing `\`.
    fn parse(text: &str) -> UnitFile {
        let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut current: Option<String> = None;
        let mut pending = String::new();
        for (number, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if pending.is_empty() && (line.is_empty() || line.starts_with(['#', ';'])) {
                continue;
            }
            if let Some(continued) = line.strip_suffix('\\') {
                pending.push_str(continued);
                pending.push(' ');
                continue;
            }
            let line = format!("{pending}{line}");
            pending.clear();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = Some(name.to_owned());
                sections.entry(name.to_owned()).or_default();
                continue;
            }
            let section = current
                .clone()
                .unwrap_or_else(|| panic!("line {}: assignment before any section", number + 1));
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("line {}: not Key=Value: {line:?}", number + 1));
            sections
                .entry(section)
                .or_default()
                .push((key.trim().to_owned(), value.trim().to_owned()));
        }
        assert!(pending.is_empty(), "the file ends in a continued line");
        UnitFile { sections }
    }

    /// Every value of `key` in `section`.
    fn values(&self, section: &str, key: &str) -> Vec<&str> {
        self.sections
            .get(section)
            .map(|entries| {
                entries
                    .iter()
                    .filter(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The one value of `key` in `section`.
    fn value(&self, section: &str, key: &str) -> &str {
        match self.values(section, key).as_slice() {
            [one] => one,
            other => panic!("expected one {key}= in [{section}], found {other:?}"),
        }
    }
}

/// Splits a command line or an `Environment=` value into words the way
/// systemd does for the cases a unit should use: whitespace separates,
/// double or single quotes group. Anything fancier fails the test.
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => panic!("escapes are not supported here: {line:?}"),
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unbalanced quotes: {line:?}");
    if in_word {
        words.push(word);
    }
    words
}

/// Expands the specifiers a user unit may use here: `%h` (home), `%t`
/// (runtime directory) and `%%`. Any other specifier fails the test, so
/// adding one to the unit means teaching this test about it.
fn expand_specifiers(value: &str, env: &TestEnv) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&env.home().display().to_string()),
            Some('t') => out.push_str(&env.runtime_dir().display().to_string()),
            Some('%') => out.push('%'),
            other => panic!("specifier %{other:?} in {value:?} is not handled by this test"),
        }
    }
    out
}

/// The unit's `ExecStart=` as argv: the binary's path replaced by the one
/// under test, every other word with its specifiers expanded.
fn unit_command_line(unit: &UnitFile, env: &TestEnv) -> Vec<String> {
    let exec_start = unit.value("Service", "ExecStart");
    assert!(
        !exec_start.starts_with(['@', '-', ':', '+', '!']),
        "ExecStart= has a prefix this test does not handle: {exec_start:?}"
    );
    let mut argv = split_words(exec_start);
    assert_eq!(
        argv.first().map(String::as_str),
        Some(UNIT_BINARY),
        "ExecStart= should start with cargo install's default location (README and \
         systemd/README.md say so)"
    );
    argv[0] = SKILLSYNCD.to_owned();
    for arg in &mut argv[1..] {
        *arg = expand_specifiers(arg, env);
    }
    argv
}

/// The unit's `Environment=` assignments, specifiers expanded.
fn unit_environment(unit: &UnitFile, env: &TestEnv) -> Vec<(String, String)> {
    unit.values("Service", "Environment")
        .into_iter()
        .flat_map(split_words)
        .map(|assignment| {
            let (key, value) = assignment
                .split_once('=')
                .unwrap_or_else(|| panic!("Environment= entry without '=': {assignment:?}"));
            (key.to_owned(), expand_specifiers(value, env))
        })
        .collect()
}

// --------------------------------------------------------------- the plist

/// A property list value (the subset launchd agents use).
#[derive(Debug, Clone, PartialEq)]
enum Plist {
    Dict(BTreeMap<String, Plist>),
    Array(Vec<Plist>),
    String(String),
    Integer(i64),
    Bool(bool),
}

impl Plist {
    fn get(&self, key: &str) -> &Plist {
        match self {
            Plist::Dict(map) => map
                .get(key)
                .unwrap_or_else(|| panic!("the plist has no {key:?}")),
            other => panic!("{key:?} looked up in a non-dict {other:?}"),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Plist::String(s) => s,
            other => panic!("expected a string, found {other:?}"),
        }
    }

    fn strings(&self) -> Vec<String> {
        match self {
            Plist::Array(items) => items.iter().map(|i| i.as_str().to_owned()).collect(),
            other => panic!("expected an array, found {other:?}"),
        }
    }
}

/// A minimal XML reader for property lists: the prolog, the DOCTYPE and
/// comments are skipped (a comment holding `--` is an error, as in XML),
/// elements must nest and close properly, and the five predefined entities
/// are decoded. Panics with the offset of the first problem.
struct PlistReader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> PlistReader<'a> {
    fn parse(text: &'a str) -> Plist {
        let mut reader = PlistReader { text, pos: 0 };
        reader.skip_misc();
        reader.expect_tag("<plist version=\"1.0\">");
        let value = reader.value();
        reader.skip_misc();
        reader.expect_tag("</plist>");
        reader.skip_misc();
        assert_eq!(reader.pos, text.len(), "content after </plist>");
        value
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn fail(&self, what: &str) -> ! {
        let context: String = self.rest().chars().take(40).collect();
        panic!("plist offset {}: {what} at {context:?}", self.pos)
    }

    /// Skips whitespace, `<?...?>`, `<!DOCTYPE ...>` and comments.
    fn skip_misc(&mut self) {
        loop {
            let trimmed = self.rest().trim_start();
            self.pos = self.text.len() - trimmed.len();
            if let Some(body) = trimmed.strip_prefix("<!--") {
                let Some(end) = body.find("-->") else {
                    self.fail("unterminated comment");
                };
                if body[..end].contains("--") {
                    self.fail("\"--\" inside a comment");
                }
                self.pos += 4 + end + 3;
            } else if trimmed.starts_with("<?") || trimmed.starts_with("<!DOCTYPE") {
                let Some(end) = trimmed.find('>') else {
                    self.fail("unterminated declaration");
                };
                self.pos += end + 1;
            } else {
                return;
            }
        }
    }

    fn expect_tag(&mut self, tag: &str) {
        if !self.rest().starts_with(tag) {
            self.fail(&format!("expected {tag}"));
        }
        self.pos += tag.len();
    }

    /// Text up to the next `<`, entities decoded.
    fn text_until_tag(&mut self) -> String {
        let Some(end) = self.rest().find('<') else {
            self.fail("unterminated text");
        };
        let raw = &self.rest()[..end];
        self.pos += end;
        decode_entities(raw).unwrap_or_else(|| self.fail("unknown entity"))
    }

    fn value(&mut self) -> Plist {
        self.skip_misc();
        if self.rest().starts_with("<true/>") {
            self.pos += "<true/>".len();
            return Plist::Bool(true);
        }
        if self.rest().starts_with("<false/>") {
            self.pos += "<false/>".len();
            return Plist::Bool(false);
        }
        for (open, close) in [("<string>", "</string>"), ("<key>", "</key>")] {
            if self.rest().starts_with(open) {
                self.pos += open.len();
                let text = self.text_until_tag();
                self.expect_tag(close);
                return Plist::String(text);
            }
        }
        if self.rest().starts_with("<integer>") {
            self.pos += "<integer>".len();
            let text = self.text_until_tag();
            self.expect_tag("</integer>");
            let n = text
                .trim()
                .parse()
                .unwrap_or_else(|_| self.fail("not an integer"));
            return Plist::Integer(n);
        }
        if self.rest().starts_with("<array>") {
            self.pos += "<array>".len();
            let mut items = Vec::new();
            loop {
                self.skip_misc();
                if self.rest().starts_with("</array>") {
                    self.pos += "</array>".len();
                    return Plist::Array(items);
                }
                items.push(self.value());
            }
        }
        if self.rest().starts_with("<dict>") {
            self.pos += "<dict>".len();
            let mut map = BTreeMap::new();
            loop {
                self.skip_misc();
                if self.rest().starts_with("</dict>") {
                    self.pos += "</dict>".len();
                    return Plist::Dict(map);
                }
                if !self.rest().starts_with("<key>") {
                    self.fail("expected <key> in a dict");
                }
                let Plist::String(key) = self.value() else {
                    unreachable!("<key> reads as a string")
                };
                let value = self.value();
                if map.insert(key.clone(), value).is_some() {
                    self.fail(&format!("duplicate key {key:?}"));
                }
            }
        }
        self.fail("expected a value")
    }
}

/// `raw` with `&amp;` `&lt;` `&gt;` `&quot;` `&apos;` decoded; `None` on
/// any other `&`.
fn decode_entities(raw: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail.find(';')?;
        out.push(match &tail[..=end] {
            "&amp;" => '&',
            "&lt;" => '<',
            "&gt;" => '>',
            "&quot;" => '"',
            "&apos;" => '\'',
            _ => return None,
        });
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Replaces the plist's home placeholder with the sandbox's home.
fn plist_path(value: &str, env: &TestEnv) -> String {
    value.replace(PLIST_HOME, &env.home().display().to_string())
}

// ------------------------------------------------------- running the daemon

/// Stands in for systemd's notification socket, as a `Type=notify` unit
/// gets it in `$NOTIFY_SOCKET`.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket.set_nonblocking(true).expect("a non-blocking socket");
        NotifySocket {
            socket,
            path,
            _dir: dir,
        }
    }

    /// Every message received so far.
    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }
}

/// A config the daemon can sync offline: the demo's OCI layout as a source,
/// its hello-world skill into the default target (claude).
fn write_demo_config(env: &TestEnv) {
    env.write_config(&format!(
        "[registries.demo]\nlayout = \"{}\"\n\n[skills.hello-world]\nimage = \"demo/examples/hello-world\"\n",
        demo::layout_dir().display()
    ));
}

/// Runs `argv` in the sandbox with `vars` added, as a service manager
/// would: waits for the demo skill to be installed (so the daemon started
/// and stayed up), checks it is still running, then sends SIGTERM and
/// expects a clean exit.
fn run_like_a_service_manager(env: &TestEnv, argv: &[String], vars: &[(String, String)]) {
    write_demo_config(env);
    let mut command = env.command(&argv[0]);
    command
        .args(&argv[1..])
        .envs(vars.iter().map(|(k, v)| (k, v)));
    let mut daemon = KillOnDrop::spawn(&mut command);
    let skill_md = env.skill_dir("claude", "hello-world").join("SKILL.md");
    wait_until(Duration::from_secs(30), "the demo skill installed", || {
        if let Ok(Some(status)) = daemon.try_wait() {
            panic!("{argv:?} exited early with {status}");
        }
        skill_md.exists()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        daemon.try_wait().expect("poll the daemon").is_none(),
        "{argv:?} did not stay up"
    );
    let status = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let mut exited = None;
    wait_until(Duration::from_secs(30), "the daemon to exit", || {
        exited = daemon.try_wait().expect("poll the daemon");
        exited.is_some()
    });
    assert_eq!(
        exited.and_then(|s| s.code()),
        Some(0),
        "{argv:?} did not exit 0 on SIGTERM"
    );
}

// ------------------------------------------------------------------- tests

#[test]
fn the_units_exec_start_runs_the_daemon() {
    let env = TestEnv::new();
    let unit = UnitFile::parse(UNIT);
    assert_eq!(unit.value("Service", "Type"), "notify");
    let argv = unit_command_line(&unit, &env);
    let mut vars = unit_environment(&unit, &env);
    let path = vars
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .expect("the unit sets PATH (user units get a minimal one)");
    assert!(
        path.starts_with(&format!("{}/.cargo/bin:", env.home().display())),
        "{path}"
    );
    // What systemd adds for a Type=notify unit with WatchdogSec=.
    let notify = NotifySocket::new();
    let watchdog = humantime::parse_duration(unit.value("Service", "WatchdogSec"))
        .expect("WatchdogSec= is a duration");
    vars.push(("NOTIFY_SOCKET".into(), notify.path.display().to_string()));
    vars.push(("WATCHDOG_USEC".into(), watchdog.as_micros().to_string()));
    run_like_a_service_manager(&env, &argv, &vars);
    let messages = notify.messages();
    eprintln!("notifications: {messages:?}");
    assert!(
        messages.iter().any(|m| m.contains("READY=1")),
        "{messages:?}"
    );
    // The status line after the pass says where the skill is.
    assert!(
        messages
            .iter()
            .any(|m| m.contains("STATUS=1 skill: 1 in sync")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("STOPPING=1")),
        "{messages:?}"
    );
}

#[test]
fn the_plists_program_arguments_run_the_daemon() {
    let env = TestEnv::new();
    let plist = PlistReader::parse(PLIST);
    let mut argv = plist.get("ProgramArguments").strings();
    assert_eq!(
        argv.first().map(String::as_str),
        Some(format!("{PLIST_HOME}/.cargo/bin/skillsyncd").as_str()),
        "the first argument should be cargo install's default location with the \
         documented placeholder"
    );
    argv[0] = SKILLSYNCD.to_owned();
    for arg in &mut argv[1..] {
        *arg = plist_path(arg, &env);
    }
    let vars: Vec<(String, String)> = match plist.get("EnvironmentVariables") {
        Plist::Dict(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), plist_path(v.as_str(), &env)))
            .collect(),
        other => panic!("EnvironmentVariables is not a dict: {other:?}"),
    };
    run_like_a_service_manager(&env, &argv, &vars);
}

#[test]
fn the_plist_says_what_launchd_needs() {
    let plist = PlistReader::parse(PLIST);
    assert_eq!(plist.get("Label").as_str(), "dev.skillsync.skillsyncd");
    assert_eq!(*plist.get("RunAtLoad"), Plist::Bool(true));
    assert_eq!(
        *plist.get("KeepAlive").get("SuccessfulExit"),
        Plist::Bool(false)
    );
    assert_eq!(plist.get("ProcessType").as_str(), "Background");
    for key in ["StandardOutPath", "StandardErrorPath"] {
        let path = plist.get(key).as_str();
        assert!(
            path.starts_with(&format!("{PLIST_HOME}/")),
            "{key} should be absolute under {PLIST_HOME}: {path}"
        );
    }
    let env_path = plist.get("EnvironmentVariables").get("PATH").as_str();
    assert!(env_path.contains("/usr/bin"), "{env_path}");
    // The file name is the label, as launchctl expects.
    assert_eq!(
        Path::new("config/dev.skillsync.skillsyncd.plist")
            .file_stem()
            .and_then(|s| s.to_str()),
        Some("dev.skillsync.skillsyncd")
    );
}

#[test]
fn the_plist_reader_rejects_malformed_xml() {
    let bad = [
        "<plist version=\"1.0\"><dict><key>a</key></dict></plist>",
        "<plist version=\"1.0\"><dict><key>a</key><string>x</dict></plist>",
        "<plist version=\"1.0\"><!-- a -- b --><dict/></plist>",
        "<plist version=\"1.0\"><string>a & b</string></plist>",
    ];
    for text in bad {
        let result = std::panic::catch_unwind(|| PlistReader::parse(text));
        assert!(result.is_err(), "accepted {text:?}");
    }
    let good = "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>a</key>\
                <string>x &amp; y</string></dict></plist>";
    assert_eq!(PlistReader::parse(good).get("a").as_str(), "x & y");
}

/// Parses the plist with Python's `plistlib` (Apple's format, a real XML
/// parser) and `plutil -lint` on macOS, where they exist.
#[test]
fn the_plist_parses_with_the_platform_tools() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev.skillsync.skillsyncd.plist");
    let mut checked = 0;
    let python = Command::new("python3")
        .args([
            "-c",
            "import plistlib, sys, json; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
        ])
        .arg(&path)
        .output();
    match python {
        Ok(out) if out.status.success() => {
            let parsed: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("plistlib's result as JSON");
            assert_eq!(parsed["Label"], "dev.skillsync.skillsyncd");
            let args = parsed["ProgramArguments"]
                .as_array()
                .expect("ProgramArguments is an array");
            let ours = PlistReader::parse(PLIST).get("ProgramArguments").strings();
            assert_eq!(args.len(), ours.len(), "plistlib and this test disagree");
            checked += 1;
        }
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("plistlib") => {
            panic!(
                "plistlib rejects the plist: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out) => eprintln!(
            "note: python3 did not run ({}); plistlib check skipped",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => eprintln!("note: python3 not found ({e}); plistlib check skipped"),
    }
    if let Ok(out) = Command::new("plutil").arg("-lint").arg(&path).output() {
        assert!(
            out.status.success(),
            "plutil -lint: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    if checked == 0 {
        eprintln!(
            "note: neither python3 nor plutil available; only this test's reader checked the plist"
        );
    }
}

/// Messages from `systemd-analyze` that mean it could not set up a unit
/// manager here (no runtime directory, no D-Bus), not that the unit is
/// wrong.
const MANAGER_UNAVAILABLE: &[&str] = &[
    "Failed to initialize manager",
    "Failed to lookup RuntimeDirectory",
    "Failed to connect to bus",
];

/// `systemd-analyze verify` on a copy of the unit whose `ExecStart=` names
/// the binary under test (verify checks that the executable exists). Run
/// as a user unit in the sandbox (its own `$XDG_RUNTIME_DIR` and HOME),
/// falling back to the system manager's view if no user manager can be
/// set up. Any message about the unit fails the test: systemd only warns,
/// and carries on, about an unknown key or a bad value.
#[test]
fn systemd_analyze_verifies_the_unit() {
    let env = TestEnv::new();
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("note: systemd-analyze not found; unit verification skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let unit_path = dir.path().join("skillsyncd.service");
    let text = UNIT.replace(UNIT_BINARY, SKILLSYNCD);
    assert_ne!(text, UNIT, "ExecStart= does not name {UNIT_BINARY}");
    std::fs::write(&unit_path, text).expect("write the unit copy");

    let verify = |user: bool| {
        let mut command = Command::new("systemd-analyze");
        command
            .env_clear()
            .env("HOME", env.home())
            .env("XDG_RUNTIME_DIR", env.runtime_dir())
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin")),
            )
            .arg("verify");
        if user {
            command.arg("--user");
        }
        let out = command
            .arg(&unit_path)
            .output()
            .expect("run systemd-analyze");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };

    let mut result = verify(true);
    if !result.0 && MANAGER_UNAVAILABLE.iter().any(|m| result.1.contains(m)) {
        eprintln!(
            "note: no user manager for systemd-analyze here ({}); verifying as a system unit",
            result.1.trim()
        );
        result = verify(false);
    }
    let (ok, output) = result;
    if !ok && MANAGER_UNAVAILABLE.iter().any(|m| output.contains(m)) {
        eprintln!(
            "note: systemd-analyze cannot set up a manager here; unit verification skipped: {}",
            output.trim()
        );
        return;
    }
    assert!(ok, "systemd-analyze verify failed:\n{output}");
    let about_the_unit: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("skillsyncd.service"))
        .collect();
    assert!(
        about_the_unit.is_empty(),
        "systemd-analyze verify complained about the unit:\n{}",
        about_the_unit.join("\n")
    );
}

#[test]
fn the_unit_parser_reads_what_systemd_reads() {
    let unit = UnitFile::parse(
        "# comment\n; another\n[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/a \\\n  --flag \"two words\"\n\
         Environment=A=1 \"B=two words\"\nEnvironment=C=%h/x\n",
    );
    let env = TestEnv::new();
    assert_eq!(
        split_words(unit.value("Service", "ExecStart")),
        ["/bin/a", "--flag", "two words"]
    );
    let vars = unit_environment(&unit, &env);
    assert_eq!(
        vars,
        [
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "two words".to_owned()),
            ("C".to_owned(), format!("{}/x", env.home().display())),
        ]
    );
    assert_eq!(expand_specifiers("100%%", &env), "100%");
}

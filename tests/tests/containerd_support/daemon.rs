//! The real `d4c nri` daemon as a child process: started on a config file, polled through
//! `d4c status` and its alert output, stopped (SIGTERM) when dropped.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `d4c`: next to this binary when cargo built both (host: `target/*/deps/..` or
/// `target/*/examples/..`), else the first on `PATH` (the guest harness puts the fresh
/// build in /usr/local/bin).
pub fn d4c_bin() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let beside = exe.parent().and_then(Path::parent).map(|d| d.join("d4c"));
    if let Some(b) = beside.filter(|b| b.is_file()) {
        return Some(b);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("d4c"))
        .find(|p| p.is_file())
}

/// A running `d4c nri`: alerts (stdout) to `alerts`, logs (stderr) to `log`, both appended.
pub struct Daemon {
    child: Child,
    config: PathBuf,
    status: PathBuf,
    pub alerts: PathBuf,
    pub log: PathBuf,
}

fn append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl Daemon {
    /// Starts `d4c nri --config CONFIG`; returns once it serves its status on `status`
    /// (the `statusSocket` of the config).
    pub fn start(config: &Path, status: &Path, alerts: &Path, log: &Path) -> Daemon {
        let bin = d4c_bin().expect("no d4c binary (next to this program or on PATH)");
        let child = Command::new(bin)
            .args(["nri", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(append(alerts))
            .stderr(append(log))
            .spawn()
            .unwrap();
        let mut d = Daemon {
            child,
            config: config.to_owned(),
            status: status.to_owned(),
            alerts: alerts.to_owned(),
            log: log.to_owned(),
        };
        let t = Instant::now();
        while d.status().is_none() {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!(
                    "d4c nri exited ({st}) before serving its status:\n{}",
                    d.log()
                );
            }
            assert!(
                t.elapsed() < Duration::from_mins(1),
                "d4c nri did not serve its status:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    /// Kills the daemon (no clean stop, as a crash) and starts it again on the same files.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Kills the daemon, as a crash (the pinned programs keep enforcing);
    /// [`Daemon::start_again`] brings it back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// [`Daemon::start_again`] (`restart`: [`Daemon::restart`]), then waits until the new
    /// daemon logs `needle`.
    pub fn start_until(&mut self, restart: bool, needle: &str, limit: Duration) {
        let mark = self.log_mark();
        if restart {
            self.restart();
        } else {
            self.start_again();
        }
        self.wait_log_since(mark, needle, limit);
    }

    /// Starts the daemon again on the same files, after [`Daemon::kill`].
    pub fn start_again(&mut self) {
        *self = Daemon::start(
            &self.config.clone(),
            &self.status.clone(),
            &self.alerts.clone(),
            &self.log.clone(),
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where the log ends now: [`Daemon::wait_log_since`] looks only after it.
    pub fn log_mark(&self) -> usize {
        self.log().len()
    }

    /// Waits until the log after `mark` contains `needle` (a line of a restarted daemon,
    /// not an earlier one's); panics with the log after `limit`.
    pub fn wait_log_since(&self, mark: usize, needle: &str, limit: Duration) {
        let t = Instant::now();
        while !self.log().get(mark..).is_some_and(|l| l.contains(needle)) {
            assert!(
                t.elapsed() < limit,
                "d4c nri never logged {needle:?} again:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the log contains `needle` (panics with the log after `limit`).
    pub fn wait_log(&self, needle: &str, limit: Duration) {
        let t = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                t.elapsed() < limit,
                "d4c nri never logged {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `d4c status --format json` from the daemon's socket.
    pub fn status(&self) -> Option<Value> {
        let out = Command::new(d4c_bin()?)
            .args(["status", "--format", "json", "--socket"])
            .arg(&self.status)
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout)
            .ok()
            .filter(|v: &Value| v.get("containers").is_some())
    }

    /// `d4c status` (text) from the daemon's socket.
    pub fn status_text(&self) -> String {
        let Some(bin) = d4c_bin() else {
            return String::new();
        };
        Command::new(bin)
            .args(["status", "--socket"])
            .arg(&self.status)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Polls `d4c status` until `ok` holds (panics after 10 s).
    pub fn wait_for(&self, ok: impl Fn(&Value) -> bool, what: &str) -> Value {
        let t = Instant::now();
        loop {
            if let Some(s) = self.status().filter(|s| ok(s)) {
                return s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}\nstatus {:?}\nlog:\n{}",
                self.status(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every alert document written so far (complete lines only).
    pub fn alerts(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.alerts).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect()
    }

    /// Polls the alerts until one satisfies `ok` (panics after 20 s).
    pub fn wait_alert(&self, ok: impl Fn(&Value) -> bool, what: &str) -> Value {
        let t = Instant::now();
        loop {
            if let Some(a) = self.alerts().into_iter().find(&ok) {
                return a;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no alert for {what}\nalerts:\n{}\nlog:\n{}",
                self.alerts()
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signals our own child (SIGTERM: a clean stop).
        unsafe { libc::kill(i32::try_from(self.child.id()).unwrap_or(0), libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) && !matches!(self.child.try_wait(), Ok(Some(_)))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes the programs and maps a daemon pinned under a bpffs directory when dropped
/// (they outlive the daemon by design).
pub struct Unload(pub PathBuf);

impl Drop for Unload {
    fn drop(&mut self) {
        if let Some(d4c) = d4c_bin() {
            let _ = Command::new(d4c)
                .arg("unload")
                .arg("--bpffs")
                .arg(&self.0)
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// Writes a daemon config at `path`: policies from `policies`, containerd's NRI socket,
/// status on `status`, no metrics endpoint, alerts on stdout. `bpffs`: enforce in the
/// kernel with pins there; `None`: `enforcement: none` (the in-memory stand-in).
pub fn write_config(
    path: &Path,
    policies: &Path,
    nri_socket: &Path,
    bpffs: Option<&Path>,
    status: &Path,
) {
    write_config_with(path, policies, nri_socket, bpffs, status, "");
}

/// [`write_config`] with more settings (`extra`: YAML lines, each ending in a newline).
pub fn write_config_with(
    path: &Path,
    policies: &Path,
    nri_socket: &Path,
    bpffs: Option<&Path>,
    status: &Path,
    extra: &str,
) {
    let enforcement = bpffs.map_or_else(
        || "enforcement: none\n".to_owned(),
        |b| format!("enforcement: auto\nbpffs: {}\n", b.display()),
    );
    // Metrics off, alerts on stdout, unless `extra` sets them (a key may appear once).
    let metrics = if extra.lines().any(|l| l.starts_with("metricsAddress:")) {
        ""
    } else {
        "metricsAddress: \"\"\n"
    };
    let alerts = if extra.lines().any(|l| l.starts_with("alerts:")) {
        ""
    } else {
        "alerts:\n  stdout: true\n"
    };
    // The last good policy beside the configuration, never the host's /run/d4c.
    let last_good = path.with_file_name("last-good-policy");
    std::fs::write(
        path,
        format!(
            "policyDir: {}\nlastGoodPolicyDir: {}\nnriSocket: {}\npluginIndex: \"20\"\n{enforcement}statusSocket: {}\n{metrics}clusterName: e2e\n{extra}{alerts}",
            policies.display(),
            last_good.display(),
            nri_socket.display(),
            status.display()
        ),
    )
    .unwrap();
}

/// `GET path` from 127.0.0.1:`port` (the daemon's metrics endpoint): the whole response.
pub fn http_get(port: u16, path: &str) -> Result<String, std::io::Error> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(c, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut out = String::new();
    c.read_to_string(&mut out)?;
    Ok(out)
}

/// Makes the programs pinned under `bpffs` look like another d4c build's (their build
/// marker changes), so the next daemon takes them over as in an upgrade.
pub fn pretend_previous_build(bpffs: &Path) {
    for b in d4c::bpf::pinned_builds(bpffs) {
        std::fs::rename(
            d4c::bpf::build_marker(bpffs, b),
            d4c::bpf::build_marker(bpffs, b ^ 1),
        )
        .unwrap();
    }
}

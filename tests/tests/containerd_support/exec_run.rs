//! A `d4c exec` run beside the daemon, on the daemon's pin directory: its command copies
//! busybox into a directory of its own a number of times (each copy a new executable,
//! refused under [`EXEC_POLICY`]) and reports how many copies it tried, made and saw
//! refused; the run's alerts go to a file of its own.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the runs enforce: drift refused everywhere (a `d4c exec` container has no pod
/// labels, so the daemon's label-scoped policy would not select it).
pub const EXEC_POLICY: &str = "\
file:
  selectors:
    - name: drift
      operation: [createExecutable, modifyExecutable]
  responses:
    - match: [drift]
      actions: [alert, block]
";

const LOOP: &str = r#"d=$1; n=$2; : > "$d/started"; i=0; r=0
while [ $i -lt $n ]; do
  i=$((i+1))
  if ! cp /bin/busybox "$d/x$i" 2>"$d/err"; then
    grep -q "Operation not permitted" "$d/err" && r=$((r+1))
  fi
  sleep 0.1
done
c=$(ls "$d" | grep -c '^x')
echo "$i $c $r" > "$d/result""#;

/// One run.
pub struct ExecRun {
    child: Child,
    pub dir: PathBuf,
    alerts: PathBuf,
    stderr: PathBuf,
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The command ran: attempts, all refused and alerted to this run alone.
    Protected(u32),
    /// `d4c exec` refused to start, with this one line.
    Refused(String),
}

impl ExecRun {
    /// Starts `d4c exec` on `bpffs` with `policy`, its command making `attempts` copies
    /// into `dir` (created).
    pub fn start(bpffs: &Path, policy: &Path, dir: &Path, attempts: u32) -> ExecRun {
        std::fs::create_dir_all(dir).unwrap();
        let alerts = dir.with_extension("alerts");
        let stderr = dir.with_extension("stderr");
        let child = Command::new(super::daemon::d4c_bin().expect("d4c"))
            .args(["exec", "--bpffs"])
            .arg(bpffs)
            .arg("--policy")
            .arg(policy)
            .arg("--alerts")
            .arg(&alerts)
            .args(["--", "sh", "-c", LOOP, "sh"])
            .arg(dir)
            .arg(attempts.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        ExecRun {
            child,
            dir: dir.to_owned(),
            alerts,
            stderr,
        }
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the command started (or the run ended); true when it started.
    pub fn started(&mut self, limit: Duration) -> bool {
        let t = Instant::now();
        loop {
            if self.dir.join("started").exists() {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            assert!(
                t.elapsed() < limit,
                "d4c exec did not start its command:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the run to end and checks it: every copy refused with EPERM and alerted
    /// in this run's own file, or a refusal to start in one line.
    pub fn finish(&mut self, limit: Duration) -> Ended {
        let t = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                t.elapsed() < limit,
                "d4c exec did not end:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let err = self.stderr_text();
        let Ok(result) = std::fs::read_to_string(self.dir.join("result")) else {
            assert!(
                status.code() == Some(125)
                    && err.trim().lines().count() == 1
                    && err.starts_with("d4c exec: "),
                "the command did not run, and d4c exec did not refuse in one line ({status}):\n{err}"
            );
            assert!(
                !self.dir.join("started").exists(),
                "started but reported nothing"
            );
            return Ended::Refused(err.trim().to_owned());
        };
        assert!(status.success(), "{status}:\n{err}");
        let v: Vec<u32> = result
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let (attempts, created, refused) = (v[0], v[1], v[2]);
        // fmod_ret on a preemptible kernel: a call the kernel did not give to d4c (counted,
        // and said by `d4c exec`) is not decided; with BPF LSM there is none.
        let skipped: u32 = err
            .lines()
            .filter_map(|l| l.split("skipped d4c's programs ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u32>().ok())
            .sum();
        assert!(
            created <= skipped,
            "a d4c exec run created {created} executables ({skipped} calls skipped):\n{err}"
        );
        assert_eq!(
            refused + created,
            attempts,
            "every other copy refused with EPERM:\n{err}"
        );
        assert_eq!(
            self.alerts_under(&self.dir),
            refused as usize,
            "every refusal alerted to the run:\n{err}"
        );
        Ended::Protected(refused + created)
    }

    /// The run's alert documents.
    pub fn alerts(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.alerts)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The run's refusal alerts of files below `dir`.
    pub fn alerts_under(&self, dir: &Path) -> usize {
        let prefix = format!("{}/", dir.display());
        self.alerts()
            .iter()
            .filter(|a| a["event"]["outcome"] == "failure")
            .filter(|a| {
                a["file"]["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(&prefix))
            })
            .count()
    }
}

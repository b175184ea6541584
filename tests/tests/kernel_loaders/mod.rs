//! Several d4c processes on one pin directory: the `d4c` binary (on `PATH` in the guests)
//! run twice, the second started with the first, inside its load, and after it. Both
//! commands are protected (or the second refuses with one line), every refused attempt
//! is alerted to the run that made it and to no other, and the last run out removes the
//! programs. A link pin removed under a running `d4c exec` is put back, and enforcement
//! holds after.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::kernel_support::{missing_prerequisite, required, unique, TestDir};

const BLOCK_DRIFT: &str = "\
file:
  selectors:
    - name: drift
      operation: [createExecutable, modifyExecutable]
  responses:
    - match: [drift]
      actions: [alert, block]
";

/// The `d4c` binary, or `None` (after printing why) when the test must skip.
fn d4c() -> Option<PathBuf> {
    if let Some(reason) = missing_prerequisite() {
        assert!(!required(), "D4C_REQUIRE_BPF_LSM=1 but {reason}");
        eprintln!("skipping test - {reason}");
        return None;
    }
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("d4c"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(!required(), "D4C_REQUIRE_BPF_LSM=1 but no d4c on PATH");
        eprintln!("skipping test - no d4c on PATH");
    }
    found
}

/// The shell loop each run executes: for `secs` seconds, copy busybox into `dir` (a new
/// executable each time), then write `attempts created refused` to `dir/result`. A
/// refusal is a copy that failed with EPERM; `dir/started` marks the command's start.
const LOOP: &str = r#"d=$1; secs=$2; : > "$d/started"; n=0; r=0
end=$(( $(date +%s) + secs ))
while [ "$(date +%s)" -lt "$end" ]; do
  n=$((n+1))
  if ! cp /bin/busybox "$d/x$n" 2>"$d/err"; then
    grep -q "Operation not permitted" "$d/err" && r=$((r+1))
  fi
done
c=$(ls "$d" | grep -c '^x')
echo "$n $c $r" > "$d/result""#;

/// One `d4c exec` run of [`LOOP`] in its own directory.
struct Run {
    child: Child,
    dir: PathBuf,
    alerts: PathBuf,
    stderr: PathBuf,
    started: Instant,
}

impl Run {
    fn start(d4c: &Path, pin: &Path, policy: &Path, scratch: &Path, name: &str, secs: u32) -> Run {
        let dir = scratch.join(name);
        std::fs::create_dir(&dir).unwrap();
        let alerts = scratch.join(format!("{name}.alerts"));
        let stderr = scratch.join(format!("{name}.stderr"));
        let child = Command::new(d4c)
            .arg("exec")
            .arg("--bpffs")
            .arg(pin)
            .arg("--policy")
            .arg(policy)
            .arg("--alerts")
            .arg(&alerts)
            .args(["--", "sh", "-c", LOOP, "sh"])
            .arg(&dir)
            .arg(secs.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Run {
            child,
            dir,
            alerts,
            stderr,
            started: Instant::now(),
        }
    }

    /// Waits for the run (at most `limit`); its exit code and how long it took.
    fn wait(&mut self, limit: Duration) -> (i32, Duration) {
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.code().unwrap_or(-1), self.started.elapsed());
            }
            if self.started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "d4c exec did not end within {limit:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// (attempts, created, refused) the command reported.
    fn result(&self) -> Option<(u32, u32, u32)> {
        let text = std::fs::read_to_string(self.dir.join("result")).ok()?;
        let v: Vec<u32> = text
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        (v.len() == 3).then(|| (v[0], v[1], v[2]))
    }

    /// The refusals this run's alert file reports, per directory prefix.
    fn denials_under(&self, dir: &Path) -> usize {
        let prefix = format!("\"path\":\"{}/x", dir.display());
        std::fs::read_to_string(&self.alerts)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&prefix) && l.contains("\"outcome\":\"failure\""))
            .count()
    }
}

/// The calls the kernel did not give to d4c while the run's command ran, as its
/// `d4c exec` said (`fmod_ret` mode on a preemptible kernel; 0 with BPF LSM).
fn skipped(run: &Run) -> u64 {
    run.stderr_text()
        .lines()
        .filter_map(|l| l.split("skipped d4c's programs ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Whether the programs attach as `fmod_ret` here: then the kernel may skip them while
/// another task is preempted inside one (counted, said by `d4c exec`); with BPF LSM never.
fn fmod_ret() -> bool {
    d4c::bpf::usable_mode().is_ok_and(|m| m == d4c::bpf::AttachMode::FmodRet)
}

/// Checks one run after both ended: protected (nothing created, every refusal alerted to
/// it alone; in `fmod_ret` mode, a creation only where the kernel skipped d4c, counted), or
/// refused to start with one line. Returns whether its command ran.
fn protected(run: &Run, code: i32, other: &Run, what: &str) -> bool {
    let Some((attempts, created, refused)) = run.result() else {
        let err = run.stderr_text();
        assert!(
            code == 125 && err.trim().lines().count() == 1 && err.starts_with("d4c exec: "),
            "{what}: the command did not run, and d4c exec did not refuse with one line (exit {code}):\n{err}"
        );
        assert!(
            !run.dir.join("started").exists(),
            "{what}: the command started but reported nothing"
        );
        return false;
    };
    assert_eq!(
        code,
        0,
        "{what}: exit {code}; stderr:\n{}",
        run.stderr_text()
    );
    // The kernel's skips are counted over both runs' windows: an upper bound for each.
    let gaps = if fmod_ret() {
        skipped(run) + skipped(other)
    } else {
        0
    };
    assert!(
        u64::from(created) <= gaps,
        "{what}: {created} of {attempts} executables were created ({gaps} calls skipped by the kernel): the run was not protected; stderr:\n{}",
        run.stderr_text()
    );
    assert!(attempts > 0, "{what}: no attempt made");
    assert_eq!(
        refused + created,
        attempts,
        "{what}: every other attempt is refused with EPERM"
    );
    assert_eq!(
        run.denials_under(&run.dir),
        refused as usize,
        "{what}: every refusal is alerted to this run ({refused} refused); stderr:\n{}",
        run.stderr_text()
    );
    assert_eq!(
        run.denials_under(&other.dir),
        0,
        "{what}: the other run's refusals reached this run's alerts"
    );
    true
}

/// Seconds each run's command loops.
const LOOP_SECS: u32 = 2;

/// A number in [0, 1) from the clock's nanoseconds: a point that differs from run to run.
fn fraction_from_clock() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos) / 1e9
}

#[test]
fn two_exec_runs_started_across_the_load_are_both_protected() {
    let Some(d4c) = d4c() else { return };
    let scratch = TestDir::new("loaders");
    let policy = scratch.path.join("block-drift.yaml");
    std::fs::write(&policy, BLOCK_DRIFT).unwrap();
    // The load time on this kernel: a run alone, to the start of its command.
    let pin = PathBuf::from(format!("{}-{}", d4c::paths::PIN_DIR, unique("load")));
    let mut alone = Run::start(&d4c, &pin, &policy, &scratch.path, "alone", 1);
    let t = Instant::now();
    while !alone.dir.join("started").exists() {
        assert!(
            t.elapsed() < Duration::from_mins(2),
            "the first run never started its command:\n{}",
            alone.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let load = t.elapsed();
    let (code, _) = alone.wait(Duration::from_mins(2));
    assert_eq!(code, 0, "{}", alone.stderr_text());
    assert!(
        !pin.exists(),
        "a run that loaded alone leaves nothing pinned"
    );
    eprintln!("a run loads and starts its command in {load:?}");
    // Three delays, one per way the runs meet: at once (the lock's contention), inside the
    // first one's load (its pins half made: the issue's lost enforcement), and after it
    // (adoption, a ring per reader). The point inside the load is drawn anew in each run,
    // so the boots of a CI run cover the whole load between them; it is printed, and
    // D4C_LOADER_DELAYS (seconds) replays any list of delays.
    let delays: Vec<Duration> = match std::env::var("D4C_LOADER_DELAYS") {
        Ok(v) => v
            .split_whitespace()
            .map(|s| Duration::from_secs_f64(s.parse().expect("D4C_LOADER_DELAYS: seconds")))
            .collect(),
        Err(_) => vec![
            Duration::ZERO,
            load.mul_f64(0.1 + 0.8 * fraction_from_clock()),
            load + Duration::from_secs(1),
        ],
    };
    eprintln!("delays (D4C_LOADER_DELAYS to replay): {delays:?}");
    let mut both = 0;
    for (i, delay) in delays.iter().enumerate() {
        let pin = PathBuf::from(format!("{}-{}", d4c::paths::PIN_DIR, unique("loaders")));
        let mut a = Run::start(
            &d4c,
            &pin,
            &policy,
            &scratch.path,
            &format!("a{i}"),
            LOOP_SECS,
        );
        std::thread::sleep(*delay);
        let mut b = Run::start(
            &d4c,
            &pin,
            &policy,
            &scratch.path,
            &format!("b{i}"),
            LOOP_SECS,
        );
        let limit = Duration::from_mins(3);
        let (code_a, took_a) = a.wait(limit);
        let (code_b, took_b) = b.wait(limit);
        let what = format!("second run {delay:?} after the first");
        let ran_a = protected(&a, code_a, &b, &format!("{what}: the first"));
        let ran_b = protected(&b, code_b, &a, &format!("{what}: the second"));
        assert!(ran_a, "{what}: the first run always runs");
        both += usize::from(ran_b);
        eprintln!(
            "{what}: first {:?} (exit {code_a}, {took_a:?}), second {:?} (exit {code_b}, {took_b:?})",
            a.result(),
            b.result()
        );
        assert!(
            !pin.exists(),
            "{what}: the programs stay pinned after both runs ended: {:?}",
            std::fs::read_dir(&pin)
                .map(|rd| rd.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        );
    }
    assert!(both > 0, "the second run never ran its command");
}

#[test]
fn a_link_removed_under_a_run_is_attached_again() {
    let Some(d4c) = d4c() else { return };
    let scratch = TestDir::new("relink");
    let policy = scratch.path.join("block-drift.yaml");
    std::fs::write(&policy, BLOCK_DRIFT).unwrap();
    let pin = PathBuf::from(format!("{}-{}", d4c::paths::PIN_DIR, unique("relink")));
    let link = pin.join("links").join("path_mknod");
    let dir = scratch.path.join("work");
    std::fs::create_dir(&dir).unwrap();
    // The command waits for `go`, then tries one copy.
    let script = r#"d=$1; : > "$d/started"
while [ ! -e "$d/go" ]; do sleep 0.05; done
if cp /bin/busybox "$d/x" 2>"$d/err"; then echo created > "$d/result"; else cat "$d/err" > "$d/result"; fi"#;
    let alerts = scratch.path.join("alerts");
    let stderr = scratch.path.join("stderr");
    let mut child = Command::new(&d4c)
        .args(["exec", "--bpffs"])
        .arg(&pin)
        .arg("--policy")
        .arg(&policy)
        .arg("--alerts")
        .arg(&alerts)
        .args(["--", "sh", "-c", script, "sh"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let err = || std::fs::read_to_string(&stderr).unwrap_or_default();
    let t = Instant::now();
    while !dir.join("started").exists() {
        assert!(
            t.elapsed() < Duration::from_mins(2),
            "the command never started:\n{}",
            err()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Removing the link's only pin detaches the program (after an RCU grace period).
    std::fs::remove_file(&link).unwrap();
    let t = Instant::now();
    while !err().contains("repaired") {
        assert!(
            t.elapsed() < Duration::from_mins(1),
            "the removed link was never re-attached:\n{}",
            err()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("re-attached {:?} after the removal", t.elapsed());
    assert!(link.exists(), "the link is pinned again");
    assert!(
        err().contains("program path_mknod: its link is no longer pinned"),
        "{}",
        err()
    );
    std::fs::write(dir.join("go"), "").unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "{st}: {}", err());
    let result = std::fs::read_to_string(dir.join("result")).unwrap();
    assert!(
        result.contains("Operation not permitted"),
        "the copy after the repair: {result}"
    );
    assert!(!dir.join("x").exists());
    let text = std::fs::read_to_string(&alerts).unwrap_or_default();
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("\"path\":\"{}/x\"", dir.display()))),
        "the refusal after the repair is alerted:\n{text}"
    );
    assert!(!pin.exists(), "the run removed what it loaded");
}

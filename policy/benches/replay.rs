//! `d4c replay`'s throughput: one million documents (the recorded fixtures, cycled) decided
//! under a shipped policy, as the replay reads them (JSON text, one per line): once as they
//! repeat in real logs (the same containers and operations), once with every file path
//! made unique (no decision reused). Prints documents per second and the time for a million.
//!
//!   cargo bench -p d4c-policy --bench replay

use d4c_policy::load_paths;
use d4c_policy::replay::Replay;
use std::path::Path;
use std::time::Instant;

const DOCS: usize = 1_000_000;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let fixture =
        std::fs::read_to_string(root.join("tests/fixtures/recordings/recorded.ndjson")).unwrap();
    let lines: Vec<&str> = fixture.lines().collect();
    for policy_name in ["block-drift.yaml", "allow-package-manager.yaml"] {
        let policy = load_paths(&[root.join("config/examples").join(policy_name)])
            .unwrap()
            .policy;
        for unique in [false, true] {
            let docs: Vec<String> = (0..DOCS)
                .map(|i| {
                    let l = lines[i % lines.len()];
                    if unique {
                        l.replace("/tmp/work/", &format!("/tmp/work/{i}/"))
                    } else {
                        l.to_owned()
                    }
                })
                .collect();
            let t = Instant::now();
            let mut r = Replay::new(&policy);
            for (i, d) in docs.iter().enumerate() {
                r.line(i + 1, d);
            }
            let report = r.finish();
            let s = t.elapsed().as_secs_f64();
            assert_eq!(report.events, DOCS as u64);
            println!(
                "replay under {policy_name:<28} {:<22} {DOCS} documents in {s:.2} s: {:.0} documents/s, {:.2} us each (decided {}, newly blocked {})",
                if unique { "every path unique" } else { "as recorded (repeats)" },
                DOCS as f64 / s,
                s * 1e6 / DOCS as f64,
                report.decided,
                report.newly_blocked,
            );
        }
    }
}

//! The per-container event budget in the kernel: a container refused as fast as it can
//! try is refused every time, but only its budget's worth of events reaches the ring;
//! what is held back is counted per container, one in N written as a sample; another
//! container's one refusal in the middle of the flood is still written.

use d4c_common::{event::FLAG_THROTTLED_SAMPLE, CNT_RINGBUF_DROPS, OP_CREATE_EXECUTABLE};

use super::kernel_support::{
    c, errno, ev_path, everywhere, kernel, register, rule_set_id, run_in, TestCgroup, TestDir,
};

const BLOCK: u8 = d4c_common::ACTION_ALERT | d4c_common::ACTION_BLOCK;

#[test]
fn a_flooding_container_cannot_crowd_out_another_ones_alert() {
    let Some(mut k) = kernel() else { return };
    let rs = rule_set_id();
    k.enforcer()
        .write_file_rules(&[everywhere(rs, &[OP_CREATE_EXECUTABLE], BLOCK)])
        .unwrap();
    let (a, b) = (TestCgroup::new("flood-a"), TestCgroup::new("flood-b"));
    register(&mut k, &a, rs);
    register(&mut k, &b, rs);
    let dir = TestDir::new("flood");
    // 10 events a second, 20 at once; one held-back event in 16 sampled.
    k.enforcer().set_event_budget(10, 20, 16).unwrap();
    let (xa, xb) = (c(&dir.path.join("a")), c(&dir.path.join("b")));
    let report = dir.path.join("flood-count");
    let drops_before = k.enforcer().counters().unwrap()[CNT_RINGBUF_DROPS as usize];
    let start = std::time::Instant::now();
    // The flood, in its own process: refused attempts for 1.5 s, then its counts to a file.
    let flood = std::thread::spawn({
        let (a, report) = (a.path.clone(), report.clone());
        move || {
            run_in(Some(&a), || {
                let t = std::time::Instant::now();
                let (mut tried, mut refused) = (0u64, 0u64);
                while t.elapsed() < std::time::Duration::from_millis(1500) {
                    tried += 1;
                    // SAFETY: a NUL-terminated path.
                    let fd =
                        unsafe { libc::open(xa.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o755) };
                    if fd < 0 && errno() == libc::EPERM {
                        refused += 1;
                    }
                }
                let _ = std::fs::write(&report, format!("{tried} {refused}"));
                0
            })
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    // The other container's one attempt, in the middle of the flood.
    let b_refused = run_in(Some(&b.path), || unsafe {
        // SAFETY: a NUL-terminated path.
        let fd = libc::open(xb.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o755);
        i32::from(fd < 0 && errno() == libc::EPERM)
    });
    assert_eq!(flood.join().unwrap(), 0);
    let counts: Vec<u64> = std::fs::read_to_string(&report)
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let (attempts, refused) = (counts[0], counts[1]);
    let elapsed = start.elapsed();
    // Nothing more for a while: the budget must not be reset for other tests before the
    // counts are read.
    k.enforcer().set_event_budget(0, 0, 0).unwrap();
    assert_eq!(
        refused, attempts,
        "every one of the flood's attempts is refused"
    );
    assert!(attempts > 100, "a flood: {attempts} attempts");
    assert_eq!(b_refused, 1, "the other container is refused too");
    let evs = k.events();
    let path_a = dir.path.join("a").display().to_string();
    let written: Vec<_> = evs.iter().filter(|e| ev_path(e) == path_a).collect();
    let admitted = written
        .iter()
        .filter(|e| e.flags & FLAG_THROTTLED_SAMPLE == 0)
        .count() as u64;
    let samples = written.len() as u64 - admitted;
    assert!(
        evs.iter()
            .any(|e| ev_path(e) == dir.path.join("b").display().to_string()),
        "the other container's refusal is written during the flood"
    );
    // The burst and the rate over the time the flood took (and a little for races).
    let allowed = 20 + 10 * elapsed.as_secs() + 12;
    assert!(
        admitted <= allowed,
        "{admitted} events of the flood written in {elapsed:?} (budget: {allowed})"
    );
    assert!(admitted >= 20, "at least the burst: {admitted}");
    let held = k
        .enforcer()
        .budgets()
        .unwrap()
        .into_iter()
        .find(|(owner, _)| *owner == a.id())
        .map(|(_, b)| b)
        .expect("the flood's budget");
    // Each attempt is written, counted as held back, or (when the unread ring is full of
    // the flood's samples: this test reads it only at the end) counted as a ring drop.
    let drops = k.enforcer().counters().unwrap()[CNT_RINGBUF_DROPS as usize] - drops_before;
    assert!(
        held.throttled + admitted <= attempts && attempts <= held.throttled + admitted + drops,
        "{attempts} attempts: {admitted} written, {} held back, {drops} dropped",
        held.throttled
    );
    assert!(held.first > 0 && held.last >= held.first);
    // One in 16 held back is sampled (races may move one or two); a sample the ring had
    // no room for is counted as a drop.
    let want = held.throttled / 16;
    assert!(
        samples + drops + 2 >= want && samples <= want + 2,
        "{samples} samples written and {drops} dropped of {} held back",
        held.throttled
    );
}

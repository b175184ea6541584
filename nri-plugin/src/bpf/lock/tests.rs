//! The locks on a plain directory (flock and symlinks behave the same on bpffs): two
//! descriptors of one process conflict as two processes do.

use super::*;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("d4c-lock-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_second_loader_waits_then_names_the_holder() {
    let dir = scratch("loader");
    let first = loader(&dir, &Holder::new("d4c exec"), Duration::ZERO).unwrap();
    let t = Instant::now();
    let err = loader(&dir, &Holder::new("d4c nri"), Duration::from_millis(200)).unwrap_err();
    assert!(t.elapsed() >= Duration::from_millis(200), "it waited");
    let text = err.to_string();
    assert!(text.contains("d4c exec (pid "), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    drop(first);
    let again = loader(&dir, &Holder::new("d4c nri"), Duration::ZERO).unwrap();
    assert!(read_record(&loader_record(&dir))
        .unwrap()
        .starts_with("d4c nri"));
    drop(again);
    assert!(
        read_record(&loader_record(&dir)).is_none(),
        "the record goes with the lock"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_waiting_loader_gets_the_lock_when_it_is_released() {
    let dir = scratch("handoff");
    let first = loader(&dir, &Holder::new("first"), Duration::ZERO).unwrap();
    let d = dir.clone();
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        let l = loader(&d, &Holder::new("second"), Duration::from_secs(10)).unwrap();
        (t.elapsed(), l)
    });
    std::thread::sleep(Duration::from_millis(300));
    drop(first);
    let (took, _second) = waiter.join().unwrap();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_lock_on_a_removed_directory_is_taken_again_on_the_new_one() {
    let dir = scratch("removed");
    let pin = dir.join("pins");
    std::fs::create_dir(&pin).unwrap();
    let first = loader(&pin, &Holder::new("unloading"), Duration::ZERO).unwrap();
    let p = pin.clone();
    let waiter = std::thread::spawn(move || {
        loader(&p, &Holder::new("next"), Duration::from_secs(10)).unwrap()
    });
    std::thread::sleep(Duration::from_millis(200));
    // An unload removes the pin directory while holding its lock.
    std::fs::remove_dir_all(&pin).unwrap();
    drop(first);
    let second = waiter.join().unwrap();
    assert!(
        second.still_on(&pin),
        "locked the directory that exists now"
    );
    // And it excludes a third loader there.
    assert!(loader(&pin, &Holder::new("third"), Duration::ZERO).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn users_are_listed_until_they_leave_and_stale_records_go() {
    let dir = scratch("users");
    let a = user(&dir, &Holder::new("d4c nri")).unwrap();
    let b = user(&dir, &Holder::new("d4c exec")).unwrap();
    drop(a);
    let others = other_users(&dir).unwrap();
    assert_eq!(others.len(), 1, "{others:?}");
    assert!(others[0].starts_with("d4c exec"), "{others:?}");
    // A record whose process died (no lock behind it) is removed when nobody holds it.
    std::os::unix::fs::symlink("d4c exec (pid 1 on gone)", users_dir(&dir).join("1-0")).unwrap();
    drop(b);
    assert!(other_users(&dir).unwrap().is_empty());
    assert_eq!(std::fs::read_dir(users_dir(&dir)).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_daemon_per_pin_directory() {
    let dir = scratch("daemon");
    assert!(running_daemon(&dir).is_none());
    let d = daemon(&dir, &Holder::new("d4c nri"), Duration::ZERO).unwrap();
    assert!(running_daemon(&dir).unwrap().starts_with("d4c nri (pid"));
    let err = daemon(&dir, &Holder::new("d4c nri"), Duration::from_millis(100)).unwrap_err();
    assert!(err.to_string().contains("second daemon"), "{err}");
    drop(d);
    assert!(running_daemon(&dir).is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn each_run_gets_its_own_ring_until_none_is_left() {
    let dir = scratch("rings");
    let (r1, l1) = ring(&dir, 2, &Holder::new("run one"), Duration::ZERO).unwrap();
    let (r2, _l2) = ring(&dir, 2, &Holder::new("run two"), Duration::ZERO).unwrap();
    assert_eq!((r1, r2), (1, 2));
    let err = ring(
        &dir,
        2,
        &Holder::new("run three"),
        Duration::from_millis(100),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("run one") && text.contains("run two"),
        "{text}"
    );
    drop(l1);
    let (r3, _l3) = ring(&dir, 2, &Holder::new("run three"), Duration::ZERO).unwrap();
    assert_eq!(r3, 1, "the freed ring");
    std::fs::remove_dir_all(&dir).unwrap();
}

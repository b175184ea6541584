//! `d4c doctor`'s text: one line per fact, then the problems with their fixes.

use super::Report;

/// The report as text: one line per fact, then the problems with their fixes.
#[must_use]
pub fn text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let verdict = match r.sound {
        Some(true) => "GUARANTEED",
        Some(false) => "NOT GUARANTEED",
        None => "CANNOT TELL",
    };
    let _ = writeln!(s, "blocking: {verdict}: {}", r.why);
    let _ = writeln!(
        s,
        "kernel: {} ({}), BTF {}, cgroup v2 {}",
        r.kernel,
        r.version.as_deref().unwrap_or("version unknown"),
        if r.btf { "yes" } else { "NO" },
        if r.cgroup_v2 { "yes" } else { "NO" }
    );
    let _ = writeln!(s, "LSMs: {}", r.lsm.as_deref().unwrap_or("(cannot read)"));
    let _ = writeln!(
        s,
        "preemption: {} (from {})",
        r.preemption.as_deref().unwrap_or("unknown"),
        r.preemption_source
    );
    let _ = writeln!(
        s,
        "attach mode `auto` picks: {}",
        r.mode.as_deref().unwrap_or("none")
    );
    let _ = writeln!(
        s,
        "OS: {}",
        r.os.as_deref().unwrap_or("(no /etc/os-release)")
    );
    let rt = &r.runtime;
    let _ = writeln!(
        s,
        "runtime: {}; NRI {} ({}); NRI socket {}; refuses containers without d4c: {}",
        rt.name.as_deref().unwrap_or("none found"),
        match rt.nri_enabled {
            Some(true) => "on",
            Some(false) => "OFF",
            None => "not set (containerd 2.x: on, 1.7: off)",
        },
        rt.nri_source,
        if rt.nri_socket { "present" } else { "absent" },
        if rt.requires_d4c { "yes" } else { "no" }
    );
    let _ = writeln!(
        s,
        "d4c: {}",
        if r.d4c.loaded {
            format!(
                "loaded ({}, build {}), skipped runs {}",
                r.d4c.mode.as_deref().unwrap_or("lsm"),
                r.d4c.builds.join(", "),
                r.d4c
                    .skipped_runs
                    .map_or("unknown".into(), |n| n.to_string())
            )
        } else {
            "not loaded".into()
        }
    );
    for p in &r.problems {
        let _ = writeln!(s, "problem: {}\n  fix: {}", p.what, p.fix);
    }
    s
}

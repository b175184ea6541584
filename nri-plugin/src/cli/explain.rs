//! `d4c explain`: for a container, which selectors are live, which responses can fire, and
//! the kernel entries its rule set compiles to, written for a person.

use super::container_args::ContainerArgs;
use d4c_common::{FILE_OP_SLOTS, REST_CLASSES};
use d4c_policy::compile::{compile_rule_set, RuleSetSpec, Tables};
use d4c_policy::eval::container_mismatches;
use d4c_policy::{Actions, BlockKind, Container, FileOp, Policy, ProcessOp, Selector};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Policy file or directory; repeatable.
    #[arg(long, required = true, value_name = "PATH")]
    policy: Vec<PathBuf>,
    #[command(flatten)]
    container: ContainerArgs,
}

pub fn run(args: &Args) -> ExitCode {
    let container = match args.container.to_container() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("d4c explain: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(policy) = super::policy_arg::load(&args.policy) else {
        return ExitCode::from(2);
    };
    let spec = RuleSetSpec::for_container(&policy, &container);
    let mut out = String::new();
    describe_container(&mut out, &container);
    describe_selectors(&mut out, &policy, &container, &spec);
    describe_responses(&mut out, &policy, &spec);
    match compile_rule_set(&policy, &spec, 1) {
        Ok(tables) => describe_tables(&mut out, &tables),
        Err(e) => {
            print!("{out}");
            eprintln!("d4c explain: {e}");
            return ExitCode::from(2);
        }
    }
    print!("{out}");
    ExitCode::SUCCESS
}

fn describe_container(out: &mut String, c: &Container) {
    let _ = writeln!(out, "Container");
    match &c.image {
        Some(i) => {
            let tag = i.effective_tag().unwrap_or("(none: pinned by digest)");
            let _ = writeln!(
                out,
                "  image:        {i}\n                name {}, full name {}, tag {tag}",
                i.name(),
                i.full_names().join(" or ")
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  image:        (unknown: image conditions cannot match)"
            );
        }
    }
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unknown)".into());
    let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .map(|m| format!("{}{}", m.destination, if m.file { " (file)" } else { "" }))
        .collect();
    let _ = writeln!(
        out,
        "  namespace:    {}\n  pod name:     {}\n  labels:       {}",
        show(&c.namespace),
        show(&c.pod_name),
        if labels.is_empty() {
            "(none)".into()
        } else {
            labels.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "  cluster:      id {}, name {}\n  orchestrator: {}",
        show(&c.cluster_id),
        show(&c.cluster_name),
        show(&c.orchestrator)
    );
    let _ = writeln!(
        out,
        "  volumes:      {}\n",
        if mounts.is_empty() {
            "(none)".into()
        } else {
            mounts.join(", ")
        }
    );
}

fn conditions(sel: &Selector) -> String {
    let mut parts = Vec::new();
    let ops: Vec<&str> = match (sel.kind(), sel.ops) {
        (_, None) => vec!["all operations"],
        (BlockKind::File, Some(bits)) => FileOp::ALL
            .iter()
            .filter(|o| bits & o.bit() != 0)
            .map(|o| o.name())
            .collect(),
        (BlockKind::Process, Some(bits)) => ProcessOp::ALL
            .iter()
            .filter(|o| bits & o.bit() != 0)
            .map(|o| o.name())
            .collect(),
    };
    parts.push(ops.join(", "));
    if let Some(p) = &sel.target_path {
        parts.push(format!(
            "paths {}",
            p.iter()
                .map(|x| x.text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if let Some(p) = &sel.executable {
        parts.push(format!(
            "executables {}",
            p.iter()
                .map(|x| x.text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if let Some(n) = &sel.process_name {
        parts.push(format!("names {}", n.join(" ")));
    }
    if let Some(i) = sel.interactive {
        parts.push(format!("interactive={i}"));
    }
    if sel.ignore_volume_mounts {
        parts.push("ignoring volumes".into());
    }
    if sel.ignore_volume_files {
        parts.push("ignoring file mounts".into());
    }
    parts.join("; ")
}

fn describe_selectors(out: &mut String, policy: &Policy, c: &Container, spec: &RuleSetSpec) {
    let _ = writeln!(
        out,
        "Selectors ({} live of {})",
        spec.live.len(),
        policy.selectors.len()
    );
    for (i, sel) in policy.selectors.iter().enumerate() {
        let at = format!(
            "{}:{}:{}",
            policy.sources[sel.source].path, sel.pos.line, sel.pos.col
        );
        if spec.live.binary_search(&i).is_ok() {
            let _ = writeln!(
                out,
                "  live     {:<8} {}  ({at})\n           {}",
                sel.kind().word(),
                policy.selector_label(i),
                conditions(sel)
            );
        } else {
            let _ = writeln!(
                out,
                "  not live {:<8} {}  ({at})\n           fails: {}",
                sel.kind().word(),
                policy.selector_label(i),
                container_mismatches(sel, c).join(", ")
            );
        }
    }
    out.push('\n');
}

fn describe_responses(out: &mut String, policy: &Policy, spec: &RuleSetSpec) {
    let _ = writeln!(out, "Responses");
    let live = |s: &usize| spec.live.binary_search(s).is_ok();
    for (i, r) in policy.responses.iter().enumerate() {
        let names = |l: &[usize]| {
            l.iter()
                .filter(|s| live(s))
                .map(|&s| policy.selector_label(s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let state = if r.matches.iter().any(live) {
            "can fire"
        } else {
            "cannot fire (no live match selector)"
        };
        let _ = writeln!(
            out,
            "  #{i} {} [{}] {state}",
            r.block.word(),
            r.actions.names().join(", ")
        );
        if r.matches.iter().any(live) {
            let excl = names(&r.excludes);
            let _ = writeln!(
                out,
                "     match {}{}",
                names(&r.matches),
                if excl.is_empty() {
                    String::new()
                } else {
                    format!("; exclude {excl}")
                }
            );
        }
    }
    out.push('\n');
}

/// How each rest class reads in the table listing.
const CLASS: [&str; REST_CLASSES] = ["exactly", "+name", "+deeper"];

fn actions_text(a: u8) -> String {
    Actions(a).names().join("+")
}

fn describe_tables(out: &mut String, t: &Tables) {
    let _ = writeln!(
        out,
        "Kernel entries for this rule set: {} file rules, {} executable rules, {} name rules, {} process decisions ({} bytes)",
        t.file_rules.len(), t.exe_rules.len(), t.comm_rules.len(), t.proc_decisions.len(), t.bytes()
    );
    if t.is_empty() {
        let _ = writeln!(
            out,
            "  (none: nothing in the policy can act on this container; it need not be registered)"
        );
        return;
    }
    if !t.file_rules.is_empty() {
        let _ = writeln!(out, "File rules (longest matching prefix; then what follows it: nothing, one name, or deeper):");
    }
    for (k, v) in &t.file_rules {
        // A directory-move entry (`DIR/` + NUL): the OR of every row below it, and which
        // operations every row below it blocks.
        let (bytes, moves) = match k.path_bytes().split_last() {
            Some((&d4c_common::MOVE_MARK, dir)) => (dir, true),
            _ => (k.path_bytes(), false),
        };
        let prefix = String::from_utf8_lossy(bytes);
        let mut parts = Vec::new();
        for (c, row) in v.actions.iter().enumerate() {
            let ops: Vec<String> = (0..FILE_OP_SLOTS.min(FileOp::ALL.len()))
                .filter(|&o| row[o] != 0)
                .map(|o| format!("{}={}", FileOp::ALL[o].name(), actions_text(row[o])))
                .collect();
            if !ops.is_empty() {
                let class = match (moves, c) {
                    (true, d4c_common::MOVE_ALL_BLOCK) => "every path below blocks",
                    (true, _) => "below",
                    (false, _) => CLASS[c],
                };
                parts.push(format!("{class} {}", ops.join(" ")));
            }
        }
        let shown = if moves {
            format!("{prefix:?} (directory moves)")
        } else if prefix.is_empty() {
            "(any)".into()
        } else {
            format!("{prefix:?}")
        };
        let _ = writeln!(
            out,
            "  {shown:<28} {}",
            if parts.is_empty() {
                "no action".into()
            } else {
                parts.join(" | ")
            }
        );
    }
    for (k, v) in &t.exe_rules {
        let _ = writeln!(
            out,
            "  executable {:?}: classes exactly={} +name={} +deeper={}",
            String::from_utf8_lossy(k.path_bytes()),
            v.class[0],
            v.class[1],
            v.class[2]
        );
    }
    for (k, v) in &t.comm_rules {
        let name = String::from_utf8_lossy(&k.comm);
        let _ = writeln!(
            out,
            "  process name {:?}: class {}",
            name.trim_end_matches('\0'),
            v.class
        );
    }
    for (k, v) in &t.proc_decisions {
        let mut parts = Vec::new();
        for (inter, row) in v.actions.iter().enumerate() {
            for op in ProcessOp::ALL {
                let a = row[op as usize];
                if a != 0 {
                    parts.push(format!(
                        "{}{}={}",
                        op.name(),
                        if inter == 1 { "(interactive)" } else { "" },
                        actions_text(a)
                    ));
                }
            }
        }
        let _ = writeln!(
            out,
            "  process decision exe class {} x name class {}: {}",
            k.exe_class,
            k.name_class,
            parts.join(" ")
        );
    }
}

//! The reference semantics of a directory move (rename). A directory moved from S to D
//! carries files that land at D/R, for any R it may hold, and which it holds is not known
//! when the rename is decided. An executable below S was decided when it was created
//! there; so when every path below S refuses createExecutable, the directory carries no
//! executable created in the container (only the image's or a volume's own), and the move
//! is not decided. Otherwise it is createExecutable under the most restrictive decision any
//! file below D gets, acting only when that decision blocks: no executable ends up where
//! creating it would have been refused, and moves that could only raise alerts raise none.
//!
//! Below D, a decision depends only on which stored prefix (a pattern's fixed part or a
//! volume) a path has and the class of its rest, so one path per (prefix, class) pair
//! reaches every decision there is: [`witnesses`].

use crate::container::Container;
use crate::eval::{effective_mounts, evaluate};
use crate::event::Event;
use crate::model::{Actions, FileOp, Policy};
use d4c_common::ACTION_BLOCK;

/// A name no pattern holds, so that `prefix + NAME` has `prefix` as its longest stored
/// prefix.
const NAME: &str = "\u{1}";

/// One path below `dest` for each (stored prefix, rest class) pair a path below it can
/// have: `dest/NAME` and `dest/NAME/NAME`, and each prefix P that extends `dest/` as P,
/// `P + NAME` and `P + NAME/NAME`.
#[must_use]
pub fn witnesses(policy: &Policy, container: &Container, dest: &str) -> Vec<String> {
    let dir = format!("{}/", dest.trim_end_matches('/'));
    let mounts = effective_mounts(container);
    let prefixes = policy
        .selectors
        .iter()
        .flat_map(|s| s.target_path.iter().flatten().map(|p| p.prefix.clone()))
        .chain(
            mounts
                .iter()
                .flat_map(|m| [m.destination.clone(), format!("{}/", m.destination)]),
        );
    let mut out = vec![format!("{dir}{NAME}"), format!("{dir}{NAME}/{NAME}")];
    for p in prefixes.filter(|p| p.len() > dir.len() && p.starts_with(&dir)) {
        out.push(format!("{p}{NAME}/{NAME}"));
        out.push(format!("{p}{NAME}"));
        out.push(p);
    }
    out.sort();
    out.dedup();
    out
}

/// What `policy` decides for a directory moved from `src` to `dest` in `container`:
/// nothing when every createExecutable below `src` blocks; else the union of the
/// createExecutable decisions below `dest` when that union blocks, else nothing.
#[must_use]
pub fn evaluate_dir_move(policy: &Policy, container: &Container, src: &str, dest: &str) -> Actions {
    let decide = |path: String| {
        let event = Event::File {
            op: FileOp::CreateExecutable,
            path,
        };
        evaluate(policy, container, &event).actions.0
    };
    let src_blocks = witnesses(policy, container, src)
        .into_iter()
        .all(|p| decide(p) & ACTION_BLOCK != 0);
    if src_blocks {
        return Actions::default();
    }
    let actions = witnesses(policy, container, dest)
        .into_iter()
        .fold(0, |a, p| a | decide(p));
    // Acting when the union blocks, or would block (audited: an alert, allowed).
    if !Actions(actions).would_block() {
        return Actions::default();
    }
    Actions(actions).settled()
}

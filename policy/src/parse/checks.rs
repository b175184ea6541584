//! Rules that span selectors and responses of a block, checked after both are read.

use super::FileParser;
use crate::model::{Actions, BlockKind, FileOp};
use crate::pattern::{PathKind, PathPattern};

/// Cross-checks one block whose selectors start at `first_sel` and responses at `first_resp`.
/// Unused-selector warnings are given only for a block without errors (`clean`).
pub(super) fn block(
    p: &mut FileParser<'_>,
    kind: BlockKind,
    first_sel: usize,
    first_resp: usize,
    clean: bool,
) {
    for r in first_resp..p.policy.responses.len() {
        let resp = p.policy.responses[r].clone();
        if kind == BlockKind::File && resp.actions.contains(Actions::BLOCK) {
            block_needs_paths(p, &resp);
        }
    }
    let policy = &*p.policy;
    for (i, sel) in policy.selectors.iter().enumerate().skip(first_sel) {
        if clean && !p.referenced.contains(&i) {
            p.sink.warning(
                sel.pos,
                format!("selector `{}` is not used by any response", sel.name),
            );
        }
        if sel.has_op(FileOp::ExecMemFd.bit())
            && sel.ops.is_some()
            && kind == BlockKind::File
            && sel
                .target_path
                .as_ref()
                .is_some_and(|ps| !ps.iter().any(PathPattern::can_match_memfd))
        {
            p.sink.warning(sel.pos, format!(
                "selector `{}`: execMemFd events have the path `/memfd:NAME`, which none of its `targetFilePath` patterns can match, so it never matches them; add `/memfd:*` (or drop `targetFilePath`)",
                sel.name
            ));
        }
    }
}

/// The "block" action requires `targetFilePath` in all `match` selectors that cover
/// file-integrity operations, or in at least one `exclude` selector; blocking them under
/// `/**` earns a warning.
fn block_needs_paths(p: &mut FileParser<'_>, resp: &crate::model::Response) {
    let sels = &p.policy.selectors;
    let integrity = |s: &crate::model::Selector| {
        FileOp::ALL
            .iter()
            .any(|op| op.is_file_integrity() && s.has_op(op.bit()))
    };
    let exclude_has_path = resp.excludes.iter().any(|&s| sels[s].target_path.is_some());
    let mut findings = Vec::new();
    for &s in &resp.matches {
        let sel = &sels[s];
        if !integrity(sel) {
            continue;
        }
        match &sel.target_path {
            None if !exclude_has_path => findings.push((true, format!(
                "the \"block\" action requires `targetFilePath` in all \"match\" selectors using file-integrity operations (createFile, modifyFile, deleteFile) or in at least one \"exclude\" selector; selector `{}` has none (selectors without `operation` match all operations)",
                sel.name
            ))),
            Some(paths) if paths.iter().any(|pp| pp.prefix == "/" && pp.kind == PathKind::Descendants) => {
                findings.push((false, format!(
                    "it is dangerous to block file-integrity operations with a targetFilePath of `/**` (selector `{}`): this can stop the container from working",
                    sel.name
                )));
            }
            _ => {}
        }
    }
    for (is_error, msg) in findings {
        if is_error {
            p.sink.error(resp.pos, msg);
        } else {
            p.sink.warning(resp.pos, msg);
        }
    }
}

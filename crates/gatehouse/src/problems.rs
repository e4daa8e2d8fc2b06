//! What a refused configuration says, whole: used by `check`, `run` and
//! the reload loop alike. A leaf.

/// A refused configuration's problems with its policies' too (checked
/// even though other mistakes refused it): every mistake in one pass, in
/// the file's order.
pub fn every_problem(rejected: gatehouse_config::Rejected) -> Vec<gatehouse_config::Diagnostic> {
    let mut all = rejected.diagnostics;
    for p in &rejected.policies {
        all.extend(gatehouse_policy::policy_errors(p));
    }
    all.sort_by_key(|d| (d.mark.line, d.mark.col));
    all
}

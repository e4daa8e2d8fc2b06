//! gatehouse-verify: a small library for upstream applications to verify the
//! identity assertion gatehouse forwards. Depends on none of the proxy
//! crates. Filled in by the assertion issue.
#![forbid(unsafe_code)]

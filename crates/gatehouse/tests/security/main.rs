//! The security suite: every finding of an attack on gatehouse, kept as a
//! regression test against the real binary on loopback, grouped by attack
//! class (one module each) so a gap in a class is visible at a glance.
//! docs/security.md lists the classes, what gatehouse guarantees and where
//! each guarantee is tested.

#[path = "../common/mod.rs"]
mod common;

/// Client certificates: decoy chains, padded chains, certificates vouched
/// for upstream.
mod client_certs;
/// Configuration input: YAML alias bombs, sizes, fail-closed keys.
mod config_input;
/// Cross-site requests: console writes and sign-in forms.
mod csrf;
/// Throttling and exhaustion: sign-in attempts, password hashing under
/// bursts, bounded work per request.
mod exhaustion;
/// Forged identity: client-sent assertion and claim headers in every
/// spelling, client addresses, bearer and forward-auth headers.
mod identity_spoofing;
/// Paths: what policy decided on is what the upstream acts on (encoded
/// slashes, backslashes, dot segments, path parameters, NUL).
mod paths;
/// Sessions and hand-offs: provenance and scope of sessions, hand-off
/// targets and binding to the browser.
mod sessions;
/// Request smuggling and desync: framing tricks over HTTP/1.1 and HTTP/2.
mod smuggling;

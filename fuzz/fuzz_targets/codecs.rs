//! The sealed formats a client hands back (session cookie handle, sealed
//! hand-offs and form tokens): any value opens to nothing or to what was
//! sealed, never a panic; a sealed value opens only for its own purpose.
#![no_main]

use gatehouse_identity::cookie::{Handle, Sealer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sealer = Sealer::new(&[7; 32]);
    let text = String::from_utf8_lossy(data);
    for purpose in ["handoff", "login-form", "flow", "_pomerium"] {
        let _ = sealer.open(purpose, &text);
    }
    let _ = Handle::open(&sealer, "_pomerium", &text, 1_780_000_000);
    // The hand-off decoder over any plaintext a sealer could hold.
    let _ = gatehouse_proxy::signin::is_handoff(
        &sealer,
        &sealer.seal(gatehouse_proxy::signin::HANDOFF_PURPOSE, data),
    );
    let sealed = sealer.seal("handoff", data);
    // What a client hands back is bounded: longer values never open.
    let want = (sealed.len() <= 4096).then_some(data);
    assert_eq!(sealer.open("handoff", &sealed).as_deref(), want);
    assert_eq!(sealer.open("login-form", &sealed), None);
});

//! The sealed formats a client hands back (session cookie handle, the
//! hand-off, form tokens; `gatehouse_identity::codec`): any value opens to
//! nothing or to what was sealed, never a panic; a sealed value opens only
//! for its own purpose.
#![no_main]

use gatehouse_identity::codec;
use gatehouse_identity::cookie::{Handle, Sealer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sealer = Sealer::new(&[7; 32]);
    let text = String::from_utf8_lossy(data);
    for purpose in [
        codec::HANDOFF_PURPOSE,
        codec::LOGIN_FORM,
        codec::FLOW_STATE,
        "_pomerium",
    ] {
        let _ = sealer.open(purpose, &text);
    }
    let _ = Handle::open(&sealer, "_pomerium", &text, 1_780_000_000);
    // The decoders over any plaintext a sealer could hold, and whatever
    // they accept seals back to the same value.
    if let Some(h) = codec::open_handoff(&sealer, &sealer.seal(codec::HANDOFF_PURPOSE, data)) {
        assert_eq!(
            codec::open_handoff(&sealer, &codec::seal_handoff(&sealer, &h)),
            Some(h)
        );
    }
    let _ = codec::open_login_form(&sealer, &sealer.seal(codec::LOGIN_FORM, data), 0);
    if let Ok(f) = codec::open_flow_state(&sealer, &sealer.seal(codec::FLOW_STATE, data), 0) {
        let again = codec::open_flow_state(&sealer, &codec::seal_flow_state(&sealer, &f), 0);
        assert_eq!(again, Ok(f));
    }
    let _ = codec::open_form_token(&sealer, "sign-out", &sealer.seal("sign-out", data), 0);
    let sealed = sealer.seal(codec::HANDOFF_PURPOSE, data);
    // What a client hands back is bounded: longer values never open.
    let want = (sealed.len() <= 4096).then_some(data);
    assert_eq!(sealer.open(codec::HANDOFF_PURPOSE, &sealed).as_deref(), want);
    assert_eq!(sealer.open(codec::LOGIN_FORM, &sealed), None);
});

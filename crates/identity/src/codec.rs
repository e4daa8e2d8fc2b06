//! The sealed values gatehouse hands to a browser and reads back: the
//! sign-in hand-off and the time-limited form tokens (login form,
//! programmatic login state, sign-out). Pure functions over a
//! [`Sealer`](crate::cookie::Sealer), time passed in: tested here, fuzzed in
//! `fuzz/`, and kept out of the HTTP handlers that use them.

use crate::SessionId;
use crate::cookie::Sealer;

/// The associated data of sealed hand-offs (`-v2`: with the browser
/// binding and the target origin; older values are refused).
pub const HANDOFF_PURPOSE: &str = "handoff-v2";

/// Length of a browser binding: base64url of a SHA-256.
pub const BINDING_LEN: usize = 43;

/// What a hand-off carries to the route host, sealed with `shared_secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    pub session: SessionId,
    /// One-time token (the store remembers it until `expires`).
    pub token: [u8; 16],
    /// Unix seconds.
    pub expires: u64,
    /// The hash of the nonce in the starting browser's pending cookie.
    pub binding: String,
    /// The only origin that may take it (`https://host[:port]`).
    pub origin: String,
}

/// A well-formed browser binding (base64url, [`BINDING_LEN`] characters).
pub fn valid_binding(b: &str) -> bool {
    b.len() == BINDING_LEN
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// session ‖ token ‖ expires (big endian) ‖ binding ‖ origin.
pub fn seal_handoff(sealer: &Sealer, h: &Handoff) -> String {
    let mut plain = Vec::with_capacity(40 + BINDING_LEN + h.origin.len());
    plain.extend_from_slice(&h.session.0);
    plain.extend_from_slice(&h.token);
    plain.extend_from_slice(&h.expires.to_be_bytes());
    plain.extend_from_slice(h.binding.as_bytes());
    plain.extend_from_slice(h.origin.as_bytes());
    sealer.seal(HANDOFF_PURPOSE, &plain)
}

/// `None` for anything tampered, foreign, of another format or malformed.
/// Expiry and the one-time token are the caller's to check.
pub fn open_handoff(sealer: &Sealer, sealed: &str) -> Option<Handoff> {
    let plain = sealer.open(HANDOFF_PURPOSE, sealed)?;
    if plain.len() < 40 + BINDING_LEN {
        return None;
    }
    let binding = std::str::from_utf8(&plain[40..40 + BINDING_LEN]).ok()?;
    Some(Handoff {
        session: SessionId(plain[..16].try_into().ok()?),
        token: plain[16..32].try_into().ok()?,
        expires: u64::from_be_bytes(plain[32..40].try_into().ok()?),
        binding: valid_binding(binding).then(|| binding.to_string())?,
        origin: String::from_utf8(plain[40 + BINDING_LEN..].to_vec()).ok()?,
    })
}

/// A form token: `payload` sealed for `purpose` until `expires` (Unix
/// seconds): expires (big endian) ‖ payload.
pub fn seal_form_token(sealer: &Sealer, purpose: &str, payload: &str, expires: u64) -> String {
    let mut plain = expires.to_be_bytes().to_vec();
    plain.extend_from_slice(payload.as_bytes());
    sealer.seal(purpose, &plain)
}

/// The payload of a form token of `purpose` that has not expired at `now`.
pub fn open_form_token(sealer: &Sealer, purpose: &str, token: &str, now: u64) -> Option<String> {
    let plain = sealer.open(purpose, token)?;
    if plain.len() < 8 {
        return None;
    }
    let exp = u64::from_be_bytes(plain[..8].try_into().ok()?);
    if now >= exp {
        return None;
    }
    String::from_utf8(plain[8..].to_vec()).ok()
}

/// The login form's token: where to go after sign-in, and the browser
/// binding of the route host that started the flow.
pub fn seal_login_form(
    sealer: &Sealer,
    target: &str,
    binding: Option<&str>,
    expires: u64,
) -> String {
    let payload = serde_json::json!({"t": target, "b": binding}).to_string();
    seal_form_token(sealer, LOGIN_FORM, &payload, expires)
}

/// `(target, binding)` of a login form token that has not expired at `now`;
/// a malformed binding is dropped, not trusted.
pub fn open_login_form(sealer: &Sealer, token: &str, now: u64) -> Option<(String, Option<String>)> {
    let payload = open_form_token(sealer, LOGIN_FORM, token, now)?;
    let v: serde_json::Value = serde_json::from_str(&payload).ok()?;
    let target = v["t"].as_str()?.to_string();
    let binding = v["b"]
        .as_str()
        .filter(|b| valid_binding(b))
        .map(String::from);
    Some((target, binding))
}

const LOGIN_FORM: &str = "login-form";

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> String {
        "A".repeat(BINDING_LEN - 1) + "_"
    }

    #[test]
    fn hand_offs_round_trip_and_refuse_everything_else() {
        let sealer = Sealer::new(&[5u8; 32]);
        let h = Handoff {
            session: SessionId([1; 16]),
            token: [2; 16],
            expires: 1234,
            binding: binding(),
            origin: "https://app.localhost:8443".into(),
        };
        let sealed = seal_handoff(&sealer, &h);
        assert_eq!(open_handoff(&sealer, &sealed), Some(h.clone()));
        assert_eq!(open_handoff(&sealer, &sealed[..sealed.len() - 2]), None);
        assert_eq!(
            open_handoff(&Sealer::new(&[6u8; 32]), &sealed),
            None,
            "another key"
        );
        // Another purpose's value, the old format, a bad binding.
        let mut plain = Vec::new();
        plain.extend_from_slice(&h.session.0);
        plain.extend_from_slice(&h.token);
        plain.extend_from_slice(&h.expires.to_be_bytes());
        plain.extend_from_slice(h.binding.as_bytes());
        assert_eq!(open_handoff(&sealer, &sealer.seal("handoff", &plain)), None);
        let mut bad = plain.clone();
        bad[40] = b'=';
        assert_eq!(
            open_handoff(&sealer, &sealer.seal(HANDOFF_PURPOSE, &bad)),
            None
        );
        assert_eq!(
            open_handoff(&sealer, &sealer.seal(HANDOFF_PURPOSE, &plain[..50])),
            None
        );
        // No origin is a value of its own (the callback compares it).
        assert_eq!(
            open_handoff(&sealer, &sealer.seal(HANDOFF_PURPOSE, &plain)).map(|h| h.origin),
            Some(String::new())
        );
    }

    #[test]
    fn form_tokens_expire_and_keep_to_their_purpose() {
        let sealer = Sealer::new(&[5u8; 32]);
        let t = seal_form_token(&sealer, "sign-out", "abc", 100);
        assert_eq!(
            open_form_token(&sealer, "sign-out", &t, 99).as_deref(),
            Some("abc")
        );
        assert_eq!(
            open_form_token(&sealer, "sign-out", &t, 100),
            None,
            "expired"
        );
        assert_eq!(open_form_token(&sealer, "programmatic", &t, 99), None);
        assert_eq!(open_form_token(&sealer, "sign-out", "garbage", 99), None);

        let t = seal_login_form(&sealer, "https://app/x", Some(&binding()), 100);
        assert_eq!(
            open_login_form(&sealer, &t, 50),
            Some(("https://app/x".into(), Some(binding())))
        );
        let t = seal_login_form(&sealer, "https://app/x", Some("not-a-binding"), 100);
        assert_eq!(
            open_login_form(&sealer, &t, 50),
            Some(("https://app/x".into(), None))
        );
        assert_eq!(open_login_form(&sealer, &t, 100), None);
        let t = seal_form_token(&sealer, LOGIN_FORM, "{\"b\": 1}", 100);
        assert_eq!(open_login_form(&sealer, &t, 50), None, "no target");
    }
}

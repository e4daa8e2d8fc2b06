//! The sealed values gatehouse hands to a browser and reads back: the
//! sign-in hand-off, the time-limited form tokens (login form,
//! programmatic login state, sign-out) and the OAuth2/OpenID flow state. Pure functions over a
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

/// The purpose a login form's sealed fields are sealed under.
pub const LOGIN_FORM: &str = "login-form";

/// The associated data of an OAuth2/OpenID sign-in's sealed `state`.
pub const FLOW_STATE: &str = "oidc-state";

/// What an OAuth2/OpenID sign-in keeps in its `state` parameter between
/// leaving for the provider and coming back (the provider returns it
/// untouched). The field names are the wire format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlowState {
    /// Where to go after sign-in.
    #[serde(rename = "t")]
    pub target: String,
    /// PKCE verifier (OpenID; empty for GitHub).
    #[serde(rename = "v", default)]
    pub verifier: String,
    /// ID token nonce (OpenID; empty for GitHub).
    #[serde(rename = "n", default)]
    pub nonce: String,
    /// Names the per-flow CSRF cookie.
    #[serde(rename = "f")]
    pub flow_id: String,
    /// The value that cookie must hold (this browser started the flow).
    #[serde(rename = "b")]
    pub binding: String,
    /// The browser binding of the route host that sent the user to sign in.
    #[serde(rename = "h", default)]
    pub handoff: Option<String>,
    /// Unix seconds.
    #[serde(rename = "e")]
    pub expires: u64,
    /// A route's own client of the provider (its key); empty: the global.
    #[serde(rename = "i", default, skip_serializing_if = "String::is_empty")]
    pub idp: String,
}

/// Why a returned `state` is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowError {
    /// Tampered, foreign or malformed.
    Invalid,
    /// The round trip took longer than the flow's lifetime.
    Expired,
}

pub fn seal_flow_state(sealer: &Sealer, flow: &FlowState) -> String {
    let json = serde_json::to_vec(flow).unwrap_or_default();
    sealer.seal(FLOW_STATE, &json)
}

/// The flow of a returned `state` that has not expired at `now`; a
/// malformed hand-off binding is dropped, not trusted.
pub fn open_flow_state(sealer: &Sealer, sealed: &str, now: u64) -> Result<FlowState, FlowError> {
    let plain = sealer.open(FLOW_STATE, sealed).ok_or(FlowError::Invalid)?;
    let mut flow: FlowState = serde_json::from_slice(&plain).map_err(|_| FlowError::Invalid)?;
    if flow.expires <= now {
        return Err(FlowError::Expired);
    }
    flow.handoff = flow.handoff.filter(|b| valid_binding(b));
    Ok(flow)
}

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
    fn flow_states_round_trip_expire_and_read_the_wire_format() {
        let sealer = Sealer::new(&[5u8; 32]);
        let flow = FlowState {
            target: "https://app/x".into(),
            verifier: "v".into(),
            nonce: "n".into(),
            flow_id: "f".into(),
            binding: "b".into(),
            handoff: Some(binding()),
            expires: 100,
            idp: "oidc:second".into(),
        };
        let sealed = seal_flow_state(&sealer, &flow);
        assert_eq!(open_flow_state(&sealer, &sealed, 99), Ok(flow.clone()));
        assert_eq!(
            open_flow_state(&sealer, &sealed, 100),
            Err(FlowError::Expired)
        );
        assert_eq!(open_flow_state(&sealer, "x", 0), Err(FlowError::Invalid));
        // A state sealed by the previous code (GitHub: no verifier, nonce).
        let old =
            serde_json::json!({"t": "https://app/x", "f": "f", "b": "b", "h": null, "e": 100});
        let sealed = sealer.seal(FLOW_STATE, old.to_string().as_bytes());
        let back = open_flow_state(&sealer, &sealed, 1).unwrap();
        assert_eq!((back.verifier.as_str(), back.handoff), ("", None));
        let bad = FlowState {
            handoff: Some("not-a-binding".into()),
            ..flow
        };
        let sealed = seal_flow_state(&sealer, &bad);
        assert_eq!(open_flow_state(&sealer, &sealed, 1).unwrap().handoff, None);
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

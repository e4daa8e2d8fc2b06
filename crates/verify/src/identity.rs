//! The signed-in user an accepted assertion describes.

use serde::Serialize;
use serde_json::{Map, Value};

/// The signed-in user the assertion describes.
///
/// `groups` is always a list (empty when the identity provider sent none).
/// A route with public access gets an assertion with an empty identity, as
/// Pomerium does: [`Identity::is_anonymous`] tells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    /// `sub`: the identity provider's subject.
    pub sub: String,
    /// `user`: the same as `sub` in gatehouse and Pomerium.
    pub user: String,
    pub email: String,
    pub groups: Vec<String>,
    pub name: String,
    /// `sid`: the session id (stable for the life of the sign-in).
    pub sid: String,
    /// `iss`
    pub issuer: String,
    /// `aud` (always a list here).
    pub audience: Vec<String>,
    pub issued_at: Option<u64>,
    pub expires_at: u64,
    /// Every claim, including the ones above and any extra ones configured
    /// with `jwt_claims_headers`.
    pub claims: Map<String, Value>,
}

impl Identity {
    /// True when no user is signed in (public routes).
    pub fn is_anonymous(&self) -> bool {
        self.sub.is_empty() && self.email.is_empty()
    }

    pub(crate) fn from_claims(claims: Map<String, Value>) -> Identity {
        let text = |name: &str| match claims.get(name) {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let list = |name: &str| match claims.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        Identity {
            sub: text("sub"),
            user: text("user"),
            email: text("email"),
            groups: list("groups"),
            name: text("name"),
            sid: text("sid"),
            issuer: text("iss"),
            audience: list("aud"),
            issued_at: claims.get("iat").and_then(Value::as_u64),
            expires_at: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
            claims,
        }
    }
}

//! Server-side session records: who signed in, when, until when.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A random, unguessable session id (128 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    pub fn random() -> SessionId {
        SessionId(rand::random())
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Session ids never appear whole in logs.
impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// Who a session belongs to, as the identity provider described them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Identity {
    /// IdP subject (`sub`, or `oid` for Azure; the username for the
    /// built-in directory).
    pub sub: String,
    pub email: String,
    pub name: String,
    /// Always a list, empty when the IdP has none.
    pub groups: Vec<String>,
    /// Which provider signed the user in (`local`, `oidc`, ...).
    pub idp: String,
    /// Every other claim, for policies and claim headers.
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub identity: Identity,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds; `issued_at + cookie_expire`.
    pub expires_at: u64,
    /// The identity provider's tokens (OIDC sign-ins only).
    #[serde(default)]
    pub tokens: Option<crate::oidc::Tokens>,
}

impl Session {
    pub fn new(identity: Identity, now: u64, lifetime_secs: u64) -> Session {
        Session {
            id: SessionId::random(),
            identity,
            issued_at: now,
            expires_at: now.saturating_add(lifetime_secs),
            tokens: None,
        }
    }

    pub fn is_live(&self, now: u64) -> bool {
        now < self.expires_at
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

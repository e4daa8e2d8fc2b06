//! Server-side session records: who signed in, when, until when, and where
//! the session came from (its provenance), which bounds where it may be used.

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
    pub tokens: Option<Tokens>,
    /// Where the session came from. Records stored before this field
    /// existed load as the main sign-in.
    #[serde(default)]
    pub provenance: Provenance,
    /// The provider client the session was signed in with (OpenID); empty
    /// for other sign-ins and for records stored before it was kept. A
    /// configuration that changes its clients signs such sessions out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client: String,
}

/// Where a session came from, and so where it may be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Provenance {
    /// The main sign-in (`idp_provider`: built-in users, OpenID Connect,
    /// GitHub), good on every route whose policy admits the user.
    #[default]
    MainSignIn,
    /// A token another application holds for the user (a bearer token, or
    /// one handed over at `/.pomerium/sign_in_with_token`): good only where
    /// that token would be accepted as a bearer token, and never longer than
    /// the token itself.
    Token(TokenGrant),
}

impl Provenance {
    /// True for sessions of the main sign-in: the only ones that may manage
    /// gatehouse (the console) or be handed over to other hosts.
    pub fn is_main_sign_in(&self) -> bool {
        matches!(self, Provenance::MainSignIn)
    }

    /// True when the session may be used on `route` at `host` under the
    /// configuration `config` at time `now`. Checked on every lookup.
    pub fn allows_route(
        &self,
        config: &gatehouse_config::Config,
        route: &gatehouse_config::Route,
        host: &str,
        now: u64,
    ) -> bool {
        match self {
            Provenance::MainSignIn => true,
            Provenance::Token(grant) => grant.accepted_on(config, route, host, now),
        }
    }

    /// True when the session may be used for gatehouse's own pages on
    /// `host` (who am I, sign-out).
    pub fn allows_host(&self, host: &str, now: u64) -> bool {
        match self {
            Provenance::MainSignIn => true,
            Provenance::Token(grant) => now < grant.expires_at && grant.host == host,
        }
    }
}

/// How a token-made session's token was accepted (mirrors the route
/// setting `bearer_token_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFormat {
    /// A JWT from one of the global `identity_providers`.
    Jwt,
    /// An access token of the sign-in provider.
    IdpAccessToken,
    /// An ID token of the sign-in provider.
    IdpIdentityToken,
}

/// The token behind a token-made session: enough to ask the configuration
/// in force, on every request, whether that token would be accepted there.
/// Routes are not recorded by position or name (neither survives a reload
/// reliably): the route's own acceptance rules are re-applied instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    pub format: TokenFormat,
    /// The `identity_providers` entry (for `Jwt`), else the sign-in provider's name.
    pub provider: String,
    /// The token's exact `iss`: an entry pointed at another issuer by a
    /// reload no longer matches.
    pub issuer: String,
    /// The token's `aud` values.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The host the session was made on (its cookie is host-only there);
    /// empty for a bearer token's per-request session, which is never stored.
    pub host: String,
    /// Unix seconds: the token's `exp`.
    pub expires_at: u64,
}

impl TokenGrant {
    /// Would the token be accepted as a bearer token on `route` at `host`?
    pub fn accepted_on(
        &self,
        config: &gatehouse_config::Config,
        route: &gatehouse_config::Route,
        host: &str,
        now: u64,
    ) -> bool {
        use gatehouse_config::BearerTokenFormat as F;
        if now >= self.expires_at || (!self.host.is_empty() && self.host != host) {
            return false;
        }
        let overlaps = |allowed: &[String]| {
            allowed.is_empty() || allowed.iter().any(|a| self.audiences.contains(a))
        };
        let main = match &config.sign_in.provider {
            gatehouse_config::Provider::Oidc(p) => Some(p),
            _ => None,
        };
        let client = config.oidc_client_of(route);
        match self.format {
            TokenFormat::Jwt => {
                route.bearer_token_format == F::Jwt
                    && (route.identity_providers.is_empty()
                        || route.identity_providers.contains(&self.provider))
                    && config.identity_providers.iter().any(|p| {
                        p.name == self.provider && p.issuer == self.issuer && overlaps(&p.audiences)
                    })
            }
            // The sign-in provider's tokens, as the route's client took
            // them (a route's own `idp_client_id`, else the global one).
            TokenFormat::IdpAccessToken => {
                route.bearer_token_format == F::IdpAccessToken
                    && main.is_some_and(|p| p.issuer == self.issuer)
                    && client.is_some_and(|(name, _)| name == self.provider)
                    && overlaps(&route.idp_access_token_audiences)
            }
            TokenFormat::IdpIdentityToken => {
                route.bearer_token_format == F::IdpIdentityToken
                    && main.is_some_and(|p| p.issuer == self.issuer)
                    && client.is_some_and(|(name, id)| {
                        name == self.provider && self.audiences.iter().any(|a| a == id)
                    })
            }
        }
    }
}

impl Session {
    pub fn new(identity: Identity, now: u64, lifetime_secs: u64) -> Session {
        Session {
            id: SessionId::random(),
            identity,
            issued_at: now,
            expires_at: now.saturating_add(lifetime_secs),
            tokens: None,
            provenance: Provenance::MainSignIn,
            client: String::new(),
        }
    }

    /// A session made from a token: it ends when the token does, if that is
    /// sooner than `lifetime_secs`.
    pub fn from_token(
        identity: Identity,
        now: u64,
        lifetime_secs: u64,
        grant: TokenGrant,
    ) -> Session {
        let mut s = Session::new(identity, now, lifetime_secs);
        s.expires_at = s.expires_at.min(grant.expires_at);
        s.provenance = Provenance::Token(grant);
        s
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

/// IdP tokens kept in the session record, never in cookies or logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    /// Unix seconds, when the IdP said.
    pub expires_at: Option<u64>,
    /// Unix seconds of the last refresh (never two within 10 s).
    #[serde(default)]
    pub refreshed_at: u64,
}

impl Tokens {
    /// True when the access token expires within a minute (and the last
    /// refresh is more than 10 s ago) and a refresh token is at hand.
    pub fn needs_refresh(&self, now: u64) -> bool {
        self.refresh_token.is_some()
            && self.expires_at.is_some_and(|exp| exp <= now + 60)
            && now >= self.refreshed_at + 10
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> gatehouse_config::Config {
        let yaml = "
idp_provider: local
local_users: [{username: alice, password_hash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$Zm9v'}]
identity_providers:
  keycloak: {issuer: 'https://kc.example', jwks_url: 'https://kc.example/jwks', audiences: [grafana]}
  partner: {issuer: 'https://partner.example', jwks_url: 'https://partner.example/jwks', audiences: [grafana]}
routes:
  - from: https://grafana.example.com
    to: http://127.0.0.1:3000
    bearer_token_format: jwt
    identity_providers: [keycloak]
    allow_any_authenticated_user: true
  - from: https://other.example.com
    to: http://127.0.0.1:3001
    allow_any_authenticated_user: true
  - from: https://partner.example.com
    to: http://127.0.0.1:3002
    bearer_token_format: jwt
    identity_providers: [partner]
    allow_any_authenticated_user: true
";
        gatehouse_config::load_str(yaml, "test.yaml", std::path::Path::new("."), &|_| None)
            .expect("test config loads")
            .config
    }

    fn grant() -> TokenGrant {
        TokenGrant {
            format: TokenFormat::Jwt,
            provider: "keycloak".into(),
            issuer: "https://kc.example".into(),
            audiences: vec!["grafana".into()],
            host: "grafana.example.com".into(),
            expires_at: 2000,
        }
    }

    #[test]
    fn a_token_session_is_good_only_where_its_token_is() {
        let c = config();
        let p = Provenance::Token(grant());
        let [grafana, other, partner] = [&c.routes[0], &c.routes[1], &c.routes[2]];
        assert!(p.allows_route(&c, grafana, "grafana.example.com", 1000));
        assert!(!p.is_main_sign_in());
        assert!(
            !p.allows_route(&c, other, "other.example.com", 1000),
            "a route without bearer tokens"
        );
        assert!(
            !p.allows_route(&c, partner, "partner.example.com", 1000),
            "a route that trusts another issuer"
        );
        assert!(
            !p.allows_route(&c, grafana, "evil.example.com", 1000),
            "another host"
        );
        assert!(
            !p.allows_route(&c, grafana, "grafana.example.com", 2000),
            "the token has expired"
        );
        let mut moved = grant();
        moved.issuer = "https://old-issuer.example".into();
        assert!(
            !Provenance::Token(moved).allows_route(&c, grafana, "grafana.example.com", 1000),
            "the provider now names another issuer"
        );
        let mut wrong_aud = grant();
        wrong_aud.audiences = vec!["account".into()];
        assert!(!Provenance::Token(wrong_aud).allows_route(
            &c,
            grafana,
            "grafana.example.com",
            1000
        ));
        assert!(p.allows_host("grafana.example.com", 1000));
        assert!(!p.allows_host("other.example.com", 1000));
        assert!(!p.allows_host("grafana.example.com", 2000));
        let main = Provenance::MainSignIn;
        assert!(main.is_main_sign_in() && main.allows_route(&c, other, "other.example.com", 1000));
    }

    #[test]
    fn a_token_session_ends_with_its_token() {
        let s = Session::from_token(Identity::default(), 1000, 50_400, grant());
        assert_eq!(s.expires_at, 2000);
        let long = TokenGrant {
            expires_at: 1_000_000,
            ..grant()
        };
        assert_eq!(
            Session::from_token(Identity::default(), 1000, 3600, long).expires_at,
            4600
        );
    }

    #[test]
    fn records_stored_before_provenance_load_as_main_sign_ins() {
        let old = r#"{"id":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16],"identity":{"sub":"alice","email":"a@example.com","name":"A","groups":[],"idp":"local"},"issued_at":1,"expires_at":2}"#;
        let s: Session = serde_json::from_str(old).expect("an old record loads");
        assert_eq!(s.provenance, Provenance::MainSignIn);
        let t = Session::from_token(Identity::default(), 1000, 3600, grant());
        let back: Session = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t, "provenance survives the store");
    }
}

//! Identities a request carries itself instead of a session cookie:
//!
//! - `Authorization: Bearer <jwt>` on routes with `bearer_token_format: jwt`
//!   (a JWT from one of the global `identity_providers`, chosen by its
//!   `iss`), `idp_access_token` or `idp_identity_token` (a token of the
//!   sign-in provider, verified with its published keys);
//! - the programmatic-login token: `Authorization: Pomerium <token>`,
//!   `Authorization: Bearer Pomerium-<token>` or
//!   `X-Pomerium-Authorization: <token>` (see [`crate::authenticate`]).
//!
//! A verified bearer JWT becomes a session that is never stored: its id is
//! derived from the token (so a token's assertion is cached like a
//! session's) and it ends when the token expires. Signature, `iss`, `aud`,
//! `exp` and `nbf` are checked, the algorithm is pinned per issuer, `none`
//! and HS* are refused. A refusal is a 401 with a generic
//! `WWW-Authenticate` error description: which issuers, audiences or
//! providers are trusted is configuration, told to the log (with the
//! request id), never to an unauthenticated client.
//!
//! Sessions made from tokens carry their provenance (the issuer, the
//! audiences, the token's expiry), so a session never outlives its token or
//! reaches a route that would refuse the token.

use std::collections::HashMap;
use std::sync::Mutex;

use gatehouse_config::{BearerTokenFormat, Config, Provider, Route, TrustedIssuer};
use gatehouse_identity::oidc::identity_from_claims;
use gatehouse_identity::session::{
    Provenance, Session, SessionId, TokenFormat, TokenGrant, unix_now,
};
use gatehouse_verify::{Alg, Error as VerifyError, Keys, Verifier};
use http::header::{self, HeaderMap, HeaderName};
use http::{Response, StatusCode};

use crate::body::Body;

pub static X_POMERIUM_AUTHORIZATION: HeaderName =
    HeaderName::from_static("x-pomerium-authorization");

/// Verified tokens kept at most this many (cleared when full).
const CACHE_MAX: usize = 50_000;

/// What the request presents besides cookies.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    None,
    /// `Authorization: Bearer <token>` (not a Pomerium token).
    Bearer(&'a str),
    /// A programmatic-login token.
    Pomerium(&'a str),
}

/// Reads the request's credential. A `Bearer` token is one only for routes
/// that opt in; elsewhere it is the app's business and passes untouched.
pub fn credential(headers: &HeaderMap) -> Credential<'_> {
    if let Some(t) = headers
        .get(&X_POMERIUM_AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let t = t.trim();
        let t = t.strip_prefix("Pomerium ").unwrap_or(t);
        return Credential::Pomerium(t.trim());
    }
    match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(auth) => authorization(auth),
        None => Credential::None,
    }
}

/// What one `Authorization` value presents: the one reading of it, for
/// identifying the request and for keeping gatehouse's token from the
/// upstream alike.
fn authorization(value: &str) -> Credential<'_> {
    let value = value.trim();
    let (scheme, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("pomerium") {
        Credential::Pomerium(rest)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        match rest
            .get(..9)
            .filter(|p| p.eq_ignore_ascii_case("pomerium-"))
        {
            Some(_) => Credential::Pomerium(&rest[9..]),
            None => Credential::Bearer(rest),
        }
    } else {
        Credential::None
    }
}

/// True for an `Authorization` value carrying gatehouse's own token, which
/// must never reach an upstream (read as text even when it is not valid
/// header text: in doubt, it goes).
pub fn is_own_token_value(v: &http::HeaderValue) -> bool {
    matches!(
        authorization(&String::from_utf8_lossy(v.as_bytes())),
        Credential::Pomerium(_)
    )
}

/// Why a bearer token was refused.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    /// What the client is told.
    pub public: &'static str,
    /// The whole reason, for the log only (never the token).
    pub description: String,
}

/// What an unauthenticated client learns about a refused token: nothing
/// about the configuration (issuers, audiences, providers).
const INVALID: &str = "The bearer token is not valid for this route.";
const UNAVAILABLE: &str = "The bearer token cannot be checked right now. Try again shortly.";

impl Refused {
    /// A malformed request (its reason is about the request alone and is
    /// told to the client).
    pub(crate) fn bad_request(public: &'static str) -> Refused {
        Refused {
            status: StatusCode::BAD_REQUEST,
            public,
            description: public.to_string(),
        }
    }

    pub(crate) fn invalid(description: impl Into<String>) -> Refused {
        Refused {
            status: StatusCode::UNAUTHORIZED,
            public: INVALID,
            description: description.into(),
        }
    }

    fn from_verify(e: &VerifyError, whose: &str) -> Refused {
        let unavailable = e.is_unavailable();
        Refused {
            status: if unavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNAUTHORIZED
            },
            public: if unavailable { UNAVAILABLE } else { INVALID },
            description: format!("{whose}: {e}"),
        }
    }

    /// 401 with `WWW-Authenticate: Bearer error="invalid_token",
    /// error_description="..."` (RFC 6750), or 503 when the keys cannot be
    /// fetched (the token may be fine). The reason goes to the log.
    pub fn response(&self, request_id: &str, json: bool) -> Response<Body> {
        tracing::info!(status = self.status.as_u16(), reason = %self.description, request_id, "bearer token refused");
        let e = crate::error::ProxyError::BearerRefused {
            status: self.status,
            public: self.public,
        };
        crate::error::response(&e, request_id, json)
    }
}

/// The sign-in provider's keys, for `idp_access_token` / `idp_identity_token`.
struct IdpTokens {
    issuer: String,
    /// Each client's provider name (as sessions carry it) and id: the
    /// global one first, then routes' own (`idp_client_id` on a route).
    clients: Vec<(String, String)>,
    verifier: Verifier,
}

/// The bearer verifiers of one configuration.
pub struct Bearer {
    issuers: Vec<(TrustedIssuer, Verifier)>,
    idp: Option<IdpTokens>,
    /// sha256(token) → the session it verified as, and how.
    verified: Mutex<HashMap<[u8; 32], (Session, BearerTokenFormat)>>,
}

fn algorithms(names: &[String]) -> Vec<Alg> {
    names.iter().filter_map(|n| n.parse::<Alg>().ok()).collect()
}

impl Bearer {
    /// `None` when no route accepts bearer tokens.
    pub fn new(config: &Config) -> Result<Option<Bearer>, String> {
        if config
            .routes
            .iter()
            .all(|r| r.bearer_token_format == BearerTokenFormat::Default)
        {
            return Ok(None);
        }
        let mut issuers = Vec::new();
        for p in &config.identity_providers {
            let keys = match &p.jwks_url {
                Some(u) => Keys::jwks_url(u.clone()),
                None => Keys::discover(p.issuer.clone()),
            };
            let mut b = Verifier::builder(keys)
                .issuer(p.issuer.clone())
                .algorithms(&algorithms(&p.supported_algs));
            for a in &p.audiences {
                b = b.audience(a.clone());
            }
            let v = b
                .build()
                .map_err(|e| format!("identity_providers.{}: {e}", p.name))?;
            issuers.push((p.clone(), v));
        }
        let idp = match &config.sign_in.provider {
            Provider::Oidc(p) => {
                let v = Verifier::builder(Keys::discover(p.issuer.clone()))
                    .issuer(p.issuer.clone())
                    .algorithms(&[Alg::RS256, Alg::ES256, Alg::EdDSA, Alg::PS256])
                    .build()
                    .map_err(|e| format!("idp_provider_url: {e}"))?;
                let clients = std::iter::once((p.name.clone(), p.client_id.clone()))
                    .chain(
                        config
                            .sign_in
                            .route_clients
                            .iter()
                            .map(|c| (c.key.clone(), c.client_id.clone())),
                    )
                    .collect();
                Some(IdpTokens {
                    issuer: p.issuer.clone(),
                    clients,
                    verifier: v,
                })
            }
            _ => None,
        };
        Ok(Some(Bearer {
            issuers,
            idp,
            verified: Mutex::new(HashMap::new()),
        }))
    }

    /// Verifies `token` for `route` and returns the (unstored) session it
    /// stands for.
    pub async fn verify(&self, route: &Route, token: &str) -> Result<Session, Refused> {
        let format = route.bearer_token_format;
        let digest: [u8; 32] =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
                .as_ref()
                .try_into()
                .unwrap_or([0; 32]);
        let now = unix_now();
        // A provider token verified for one client is not taken as
        // verified for another (an identity token's audience differs).
        let client = self.idp_client(route);
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest)
            .filter(|(s, f)| {
                *f == format
                    && s.is_live(now)
                    && (format == BearerTokenFormat::Jwt
                        || client.is_some_and(|(name, _)| s.identity.idp == name))
            })
            .map(|(s, _)| s.clone());
        let session = match cached {
            Some(s) => s,
            None => {
                let s = self.verify_uncached(route, token, &digest, now).await?;
                let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() >= CACHE_MAX {
                    map.retain(|_, (s, _)| s.is_live(now));
                    if map.len() >= CACHE_MAX {
                        map.clear();
                    }
                }
                map.insert(digest, (s.clone(), format));
                s
            }
        };
        // Checks that depend on the route, not only on the token.
        match format {
            BearerTokenFormat::Jwt
                if !route.identity_providers.is_empty()
                    && !route.identity_providers.contains(&session.identity.idp) =>
            {
                return Err(Refused::invalid(format!(
                    "identity provider '{}' is not accepted on this route (identity_providers: {})",
                    session.identity.idp,
                    route.identity_providers.join(", ")
                )));
            }
            BearerTokenFormat::IdpAccessToken => {
                let allowed = &route.idp_access_token_audiences;
                if !allowed.is_empty() {
                    let got = audiences(session.identity.claims.get("aud"));
                    if !got.iter().any(|a| allowed.contains(a)) {
                        return Err(Refused::invalid(format!(
                            "access token audience {got:?} does not include any of {allowed:?} (idp_access_token_allowed_audiences)"
                        )));
                    }
                }
            }
            _ => {}
        }
        Ok(session)
    }

    /// The sign-in provider's client `route` takes tokens of: its own
    /// (`idp_client_id` on the route) or the global one.
    fn idp_client(&self, route: &Route) -> Option<(&str, &str)> {
        let idp = self.idp.as_ref()?;
        let (name, id) = match &route.idp_client {
            Some(key) => idp.clients.iter().find(|(name, _)| name == key)?,
            None => idp.clients.first()?,
        };
        Some((name.as_str(), id.as_str()))
    }

    async fn verify_uncached(
        &self,
        route: &Route,
        token: &str,
        digest: &[u8; 32],
        now: u64,
    ) -> Result<Session, Refused> {
        let iss = unverified_issuer(token)?;
        let (identity, provider, format) = match route.bearer_token_format {
            BearerTokenFormat::Default => {
                return Err(Refused::invalid("this route does not accept bearer tokens"));
            }
            BearerTokenFormat::Jwt => {
                let Some((p, v)) = self.issuers.iter().find(|(p, _)| p.issuer == iss) else {
                    let known: Vec<&str> = self
                        .issuers
                        .iter()
                        .map(|(p, _)| p.issuer.as_str())
                        .collect();
                    return Err(Refused::invalid(format!(
                        "issuer {iss:?} is not one of the identity_providers ({})",
                        known.join(", ")
                    )));
                };
                let id = v.verify(token).await.map_err(|e| {
                    Refused::from_verify(&e, &format!("identity provider '{}'", p.name))
                })?;
                (id, p.name.clone(), TokenFormat::Jwt)
            }
            f @ (BearerTokenFormat::IdpAccessToken | BearerTokenFormat::IdpIdentityToken) => {
                let Some(idp) = &self.idp else {
                    return Err(Refused::invalid(
                        "no OpenID Connect idp_provider is configured",
                    ));
                };
                if iss != idp.issuer {
                    return Err(Refused::invalid(format!(
                        "issuer {iss:?} is not the sign-in provider's ({:?})",
                        idp.issuer
                    )));
                }
                let Some((provider, client_id)) = self.idp_client(route) else {
                    return Err(Refused::invalid("the route's idp client is not configured"));
                };
                let id = idp
                    .verifier
                    .verify(token)
                    .await
                    .map_err(|e| Refused::from_verify(&e, "idp_provider"))?;
                if f == BearerTokenFormat::IdpIdentityToken
                    && !id.audience.iter().any(|a| a == client_id)
                {
                    return Err(Refused::invalid(format!(
                        "identity token audience {:?} does not include the client id {client_id:?}",
                        id.audience
                    )));
                }
                let format = if f == BearerTokenFormat::IdpIdentityToken {
                    TokenFormat::IdpIdentityToken
                } else {
                    TokenFormat::IdpAccessToken
                };
                (id, provider.to_string(), format)
            }
        };
        let mut sid = [0u8; 16];
        sid.copy_from_slice(&digest[..16]);
        let expires_at = identity.expires_at;
        let grant = TokenGrant {
            format,
            provider: provider.clone(),
            issuer: iss,
            audiences: identity.audience.clone(),
            // Per request, never stored: the route was checked just now.
            host: String::new(),
            expires_at,
        };
        let issued_at = identity.issued_at.unwrap_or(now);
        let mut claims = identity.claims;
        // `aud` stays for the per-route audience check; the assertion's own
        // `aud` is the route host whatever this says.
        let aud = claims.get("aud").cloned();
        let mut who = identity_from_claims(&provider, std::mem::take(&mut claims));
        if let Some(aud) = aud {
            who.claims.insert("aud".into(), aud);
        }
        if who.sub.is_empty() {
            return Err(Refused::invalid("the token has no `sub` claim"));
        }
        Ok(Session {
            id: SessionId(sid),
            identity: who,
            issued_at,
            expires_at,
            tokens: Some(gatehouse_identity::oidc::Tokens {
                access_token: token.to_string(),
                expires_at: Some(expires_at),
                ..Default::default()
            }),
            provenance: Provenance::Token(grant),
            client: String::new(),
        })
    }
}

fn audiences(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// The `iss` a token claims, read before verification only to choose the
/// keys that will verify it.
fn unverified_issuer(token: &str) -> Result<String, Refused> {
    use base64::Engine;
    let payload = token
        .split('.')
        .nth(1)
        .filter(|_| token.split('.').count() == 3)
        .ok_or_else(|| Refused::invalid("not a JWT (expected three dot-separated parts)"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| Refused::invalid("not a JWT (the payload is not base64url)"))?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| Refused::invalid("not a JWT (the payload is not JSON)"))?;
    claims
        .get("iss")
        .and_then(|v| v.as_str())
        .map(String::from)
        .ok_or_else(|| Refused::invalid("the token has no `iss` claim"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_headers as headers;

    #[test]
    fn credentials_are_read_in_every_spelling() {
        assert_eq!(credential(&headers(&[])), Credential::None);
        assert_eq!(
            credential(&headers(&[("authorization", "Bearer abc.def.ghi")])),
            Credential::Bearer("abc.def.ghi")
        );
        assert_eq!(
            credential(&headers(&[("authorization", "Pomerium tok")])),
            Credential::Pomerium("tok")
        );
        assert_eq!(
            credential(&headers(&[("authorization", "Bearer Pomerium-tok")])),
            Credential::Pomerium("tok")
        );
        assert_eq!(
            credential(&headers(&[("x-pomerium-authorization", "tok")])),
            Credential::Pomerium("tok")
        );
        assert_eq!(
            credential(&headers(&[("authorization", "Basic dTpw")])),
            Credential::None
        );
        let own = |v: &'static str| is_own_token_value(&http::HeaderValue::from_static(v));
        assert!(own("Pomerium tok"));
        assert!(own("Bearer Pomerium-tok"));
        assert!(!own("Bearer a.b.c"));
        // The same reading as `credential`, in every spelling it takes.
        assert!(own("pomerium\ttok"));
        assert!(own("bearer pomerium-tok"));
        assert_eq!(
            credential(&headers(&[("authorization", "bearer pomerium-tok")])),
            Credential::Pomerium("tok")
        );
    }

    #[test]
    fn issuer_is_read_before_verification() {
        use base64::Engine;
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"RS256"}"#),
            enc(r#"{"iss":"https://idp"}"#)
        );
        assert_eq!(unverified_issuer(&token).unwrap(), "https://idp");
        assert!(unverified_issuer("a.b").is_err());
        let no_iss = format!("{}.{}.sig", enc("{}"), enc("{}"));
        assert!(
            unverified_issuer(&no_iss)
                .unwrap_err()
                .description
                .contains("iss")
        );
    }

    #[test]
    fn refusals_tell_the_client_nothing_about_the_configuration() {
        let r = Refused::invalid(r#"audience ["account"] does not include any of ["grafana"]"#);
        let resp = r.response("id", true);
        let h = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert_eq!(
            h,
            "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"The bearer token is not valid for this route.\""
        );
        assert_eq!(r.public, INVALID);
        assert!(
            r.description.contains("grafana"),
            "the log keeps the detail"
        );
    }
}

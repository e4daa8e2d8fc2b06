//! OpenID Connect relying party (`idp_provider: oidc`, e.g. Keycloak, Dex,
//! Authentik): discovery, authorization-code flow with PKCE S256 and a nonce,
//! ID-token validation (signature from the provider's JWKS, iss, aud, exp,
//! nonce — done by the `openidconnect` crate), userinfo merged into the
//! identity, and the RP-initiated logout URL.
//!
//! The flow's secrets (PKCE verifier, nonce) are produced here and carried by
//! the caller (sealed in `state`), so nothing is kept per flow on the server.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse,
};

pub use crate::session::Tokens;

use crate::session::Identity;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What configures one OpenID provider.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// `idp_provider` (for messages and the `idp` of identities).
    pub provider: String,
    /// `idp_provider_url`: the issuer.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// `idp_scopes` (default `openid profile email offline_access`).
    pub scopes: Vec<String>,
    /// `idp_request_params`: added to the authorization URL.
    pub request_params: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    #[error("identity provider discovery at {issuer} failed: {message}")]
    Discovery { issuer: String, message: String },
    #[error("identity provider URL is invalid: {0}")]
    Url(String),
    #[error("the identity provider refused the sign-in: {0}")]
    Exchange(String),
    #[error("the ID token is not valid: {0}")]
    IdToken(String),
    #[error("the identity provider's userinfo failed: {0}")]
    UserInfo(String),
}

/// Why a refresh did not work.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The provider will never accept this refresh token again (e.g.
    /// `invalid_grant`): the session must end.
    #[error("the identity provider revoked the session: {0}")]
    Permanent(String),
    /// The provider could not be reached or failed: try again later, keep
    /// the session meanwhile.
    #[error("token refresh failed for now: {0}")]
    Temporary(String),
}

/// One authorization request: where to send the user, and the secrets the
/// callback needs back.
pub struct Authorization {
    pub url: String,
    pub pkce_verifier: String,
    pub nonce: String,
}

/// An HTTP error from the client the OIDC library uses.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// The HTTP client the OIDC library calls (a named type: a closure's
/// future would not be `Send` for every lifetime).
#[derive(Clone)]
struct Http(reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, HttpError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(call(&self.0, request))
    }
}

pub struct Oidc {
    client: Client,
    http: Http,
    issuer: IssuerUrl,
    jwks_uri: openidconnect::JsonWebKeySetUrl,
    /// The provider's signing keys; re-fetched when a signature does not
    /// verify (key rotation), at most every 30 s.
    jwks: std::sync::RwLock<openidconnect::core::CoreJsonWebKeySet>,
    jwks_fetched: tokio::sync::Mutex<std::time::Instant>,
    settings: OidcSettings,
    end_session: Option<String>,
    userinfo: Option<String>,
}

impl Oidc {
    /// Discovers the provider (`<issuer>/.well-known/openid-configuration`).
    pub async fn discover(settings: OidcSettings) -> Result<Oidc, OidcError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Discovery {
                issuer: settings.issuer.clone(),
                message: e.to_string(),
            })?;
        let issuer =
            IssuerUrl::new(settings.issuer.clone()).map_err(|e| OidcError::Url(e.to_string()))?;
        let http = Http(http);
        let metadata = CoreProviderMetadata::discover_async(issuer.clone(), &http)
            .await
            .map_err(|e| OidcError::Discovery {
                issuer: settings.issuer.clone(),
                message: error_chain(&e),
            })?;
        // Fields the core metadata type does not keep.
        let raw: serde_json::Value = http
            .0
            .get(format!(
                "{}/.well-known/openid-configuration",
                settings.issuer.trim_end_matches('/')
            ))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| OidcError::Discovery {
                issuer: settings.issuer.clone(),
                message: e.to_string(),
            })?
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let end_session = raw["end_session_endpoint"].as_str().map(String::from);
        let userinfo = raw["userinfo_endpoint"].as_str().map(String::from);
        let jwks_uri = metadata.jwks_uri().clone();
        let jwks = metadata.jwks().clone();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(settings.client_id.clone()),
            Some(ClientSecret::new(settings.client_secret.clone())),
        );
        Ok(Oidc {
            client,
            http,
            issuer,
            jwks_uri,
            jwks: std::sync::RwLock::new(jwks),
            // Allow a first re-fetch at once.
            jwks_fetched: tokio::sync::Mutex::new(
                std::time::Instant::now()
                    .checked_sub(Duration::from_secs(30))
                    .unwrap_or_else(std::time::Instant::now),
            ),
            settings,
            end_session,
            userinfo,
        })
    }

    pub fn provider(&self) -> &str {
        &self.settings.provider
    }

    /// The authorization URL. `make_state` receives the PKCE verifier and the
    /// nonce and returns the `state` parameter (the caller seals them in it).
    pub fn authorize(
        &self,
        redirect_uri: &str,
        make_state: impl FnOnce(&str, &str) -> String,
    ) -> Result<Authorization, OidcError> {
        let client = self.client.clone().set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_string())
                .map_err(|e| OidcError::Url(e.to_string()))?,
        );
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = Nonce::new_random();
        let nonce_for_url = nonce.clone();
        let state = make_state(verifier.secret(), nonce.secret());
        let mut req = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || nonce_for_url,
            )
            .set_pkce_challenge(challenge);
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(scope.clone()));
        }
        for (k, v) in &self.settings.request_params {
            req = req.add_extra_param(k.clone(), v.clone());
        }
        let (url, _, _) = req.url();
        Ok(Authorization {
            url: url.to_string(),
            pkce_verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
        })
    }

    /// Exchanges the code, validates the ID token and reads userinfo.
    pub async fn exchange(
        &self,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
        now: u64,
    ) -> Result<(Identity, Tokens), OidcError> {
        let client = self.client.clone().set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_string())
                .map_err(|e| OidcError::Url(e.to_string()))?,
        );
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(error_chain(&e)))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::IdToken("the token response has no id_token".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        let verify = |keys: openidconnect::core::CoreJsonWebKeySet| {
            let verifier = openidconnect::core::CoreIdTokenVerifier::new_confidential_client(
                ClientId::new(self.settings.client_id.clone()),
                ClientSecret::new(self.settings.client_secret.clone()),
                self.issuer.clone(),
                keys,
            );
            id_token.claims(&verifier, &nonce).map(|_| ())
        };
        let current = self.jwks.read().unwrap_or_else(|e| e.into_inner()).clone();
        match verify(current) {
            Ok(()) => {}
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(first)) => {
                // The provider may have rotated its keys: fetch them again.
                let fresh = self
                    .refetch_jwks()
                    .await
                    .ok_or_else(|| OidcError::IdToken(error_chain(&first)))?;
                verify(fresh).map_err(|e| OidcError::IdToken(error_chain(&e)))?;
            }
            Err(e) => return Err(OidcError::IdToken(error_chain(&e))),
        }
        // Verified above: read every claim, not just the standard ones.
        let raw_id_token = id_token.to_string();
        let mut claims = jwt_payload(&raw_id_token)
            .ok_or_else(|| OidcError::IdToken("unreadable payload".into()))?;
        let access_token = response.access_token().secret().clone();
        if let Some(url) = &self.userinfo {
            let info = self.userinfo(url, &access_token).await?;
            if info.get("sub").is_some() && info.get("sub") != claims.get("sub") {
                return Err(OidcError::UserInfo(
                    "userinfo `sub` differs from the ID token's".into(),
                ));
            }
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
        let tokens = Tokens {
            access_token,
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
            id_token: Some(raw_id_token),
            expires_at: response.expires_in().map(|d| now + d.as_secs()),
            refreshed_at: now,
        };
        Ok((
            identity_from_claims(&self.settings.provider, claims),
            tokens,
        ))
    }

    /// Fetches the provider's keys again, unless that was done in the last
    /// 30 s (forged tokens must not make gatehouse hammer the provider).
    async fn refetch_jwks(&self) -> Option<openidconnect::core::CoreJsonWebKeySet> {
        let mut last = self.jwks_fetched.lock().await;
        if last.elapsed() < Duration::from_secs(30) {
            return None;
        }
        *last = std::time::Instant::now();
        match openidconnect::core::CoreJsonWebKeySet::fetch_async(&self.jwks_uri, &self.http).await
        {
            Ok(keys) => {
                tracing::info!(provider = %self.settings.provider, "refetched the provider's signing keys");
                *self.jwks.write().unwrap_or_else(|e| e.into_inner()) = keys.clone();
                Some(keys)
            }
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "cannot fetch the provider's signing keys");
                None
            }
        }
    }

    /// Uses the refresh token; the provider may rotate it.
    pub async fn refresh(&self, tokens: &Tokens, now: u64) -> Result<Tokens, RefreshError> {
        use openidconnect::RequestTokenError;
        let Some(refresh_token) = &tokens.refresh_token else {
            return Err(RefreshError::Permanent("no refresh token".into()));
        };
        let refresh_token = openidconnect::RefreshToken::new(refresh_token.clone());
        let request = self
            .client
            .exchange_refresh_token(&refresh_token)
            .map_err(|e| RefreshError::Temporary(e.to_string()))?;
        let response = match request.request_async(&self.http).await {
            Ok(r) => r,
            Err(RequestTokenError::ServerResponse(e)) => {
                use openidconnect::core::CoreErrorResponseType as E;
                let permanent = matches!(
                    e.error(),
                    E::InvalidGrant | E::InvalidClient | E::UnauthorizedClient
                );
                let msg = format!(
                    "{}{}",
                    e.error(),
                    e.error_description()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                );
                return Err(if permanent {
                    RefreshError::Permanent(msg)
                } else {
                    RefreshError::Temporary(msg)
                });
            }
            Err(e) => return Err(RefreshError::Temporary(error_chain(&e))),
        };
        Ok(Tokens {
            access_token: response.access_token().secret().clone(),
            refresh_token: response
                .refresh_token()
                .map(|t| t.secret().clone())
                .or_else(|| tokens.refresh_token.clone()),
            id_token: response
                .id_token()
                .map(|t| t.to_string())
                .or_else(|| tokens.id_token.clone()),
            expires_at: response.expires_in().map(|d| now + d.as_secs()),
            refreshed_at: now,
        })
    }

    async fn userinfo(
        &self,
        url: &str,
        access_token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        let resp = self
            .http
            .0
            .get(url)
            .bearer_auth(access_token)
            .header("Accept", "application/json")
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| OidcError::UserInfo(e.to_string()))?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| OidcError::UserInfo(e.to_string()))?;
        match serde_json::from_slice(&bytes) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            // Signed (JWT) userinfo: the ID token already gave the identity.
            _ => Ok(serde_json::Map::new()),
        }
    }

    /// RP-initiated logout at the provider, when it has an end-session endpoint.
    pub fn end_session_url(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: &str,
    ) -> Option<String> {
        let mut url = url::Url::parse(self.end_session.as_deref()?).ok()?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair("client_id", &self.settings.client_id);
            q.append_pair("post_logout_redirect_uri", post_logout_redirect_uri);
        }
        Some(url.into())
    }
}

async fn call(
    http: &reqwest::Client,
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let mut builder = http.request(parts.method, parts.uri.to_string()).body(body);
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let resp = builder
        .send()
        .await
        .map_err(|e| HttpError(error_chain(&e)))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| HttpError(e.to_string()))?
        .to_vec();
    let mut out = http::Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn jwt_payload(jwt: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let payload = jwt.split('.').nth(1)?;
    match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The identity from verified claims: `groups` always a list (a string
/// becomes one group), `name` falls back to the username parts or email.
pub fn identity_from_claims(
    provider: &str,
    claims: serde_json::Map<String, serde_json::Value>,
) -> Identity {
    let text = |k: &str| {
        claims
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let groups = match claims.get("groups") {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|g| g.as_str().map(String::from))
            .collect(),
        Some(serde_json::Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    };
    let email = text("email");
    let mut name = text("name");
    if name.is_empty() {
        name = [text("given_name"), text("family_name")]
            .join(" ")
            .trim()
            .to_string();
    }
    if name.is_empty() {
        name = text("preferred_username");
    }
    if name.is_empty() {
        name = email.clone();
    }
    let sub = if provider == "azure" && claims.contains_key("oid") {
        text("oid")
    } else {
        text("sub")
    };
    const BASE: &[&str] = &[
        "iss",
        "aud",
        "exp",
        "iat",
        "nbf",
        "nonce",
        "at_hash",
        "c_hash",
        "auth_time",
        "azp",
        "sid",
        "jti",
    ];
    let extra = claims
        .into_iter()
        .filter(|(k, _)| !BASE.contains(&k.as_str()))
        .collect();
    Identity {
        sub,
        email,
        name,
        groups,
        idp: provider.to_string(),
        claims: extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn identities_from_claims() {
        let id = identity_from_claims(
            "oidc",
            map(
                json!({"sub": "u1", "email": "a@b.c", "groups": ["x", 1, "y"], "iss": "i", "realm_access": {"roles": ["r"]}}),
            ),
        );
        assert_eq!(id.sub, "u1");
        assert_eq!(id.groups, ["x", "y"]);
        assert_eq!(id.name, "a@b.c", "name falls back to the email");
        assert!(id.claims.contains_key("realm_access") && !id.claims.contains_key("iss"));
        let id = identity_from_claims(
            "oidc",
            map(
                json!({"sub": "u2", "groups": null, "given_name": "Ada", "family_name": "Lovelace"}),
            ),
        );
        assert_eq!(id.groups, Vec::<String>::new(), "never null");
        assert_eq!(id.name, "Ada Lovelace");
        let id = identity_from_claims("azure", map(json!({"sub": "pairwise", "oid": "object-id"})));
        assert_eq!(id.sub, "object-id", "Azure's oid is the user id");
    }
}

#[cfg(test)]
mod send_check {
    use super::*;
    fn is_send<T: Send>(_: &T) {}
    #[allow(dead_code)]
    async fn futures_are_send(o: &Oidc, s: OidcSettings) {
        let f = Oidc::discover(s);
        is_send(&f);
        let g = o.exchange("a", "b", "c", "d", 0);
        is_send(&g);
    }
}

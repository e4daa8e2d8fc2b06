//! Sign-in on the HTTP side: the login page of the built-in directory, the
//! one-time hand-off from the authenticate host to a route host, the session
//! lookup on every protected request, and the `/.pomerium/` endpoints.
//!
//! Flow (Pomerium's, with the built-in directory as the IdP):
//! 1. a route host answers an unauthenticated page request with a 302 to
//!    `<authenticate>/.pomerium/sign_in?pomerium_redirect_uri=<original URL>`
//!    (the authenticate host is `authenticate_service_url`, or the route host
//!    itself); API clients get 401;
//! 2. the login form posts back; a right password creates the session and the
//!    authenticate host's cookie;
//! 3. the route host receives `/.pomerium/callback/?pomerium_session_encrypted=`
//!    — sealed with `shared_secret`, bound to that host, valid 5 minutes and
//!    usable once — and sets its own cookie, then redirects to the original URL.
//!
//! Redirect targets are only ever origins gatehouse serves: https (plain http
//! only for routes configured so), on a host and port a route serves (no open
//! redirects). A hand-off is bound to the browser that started the flow: the
//! route host sets a short-lived "pending sign-in" cookie holding a random
//! nonce and sends the nonce's hash along; the authenticate host seals that
//! hash into the hand-off, and the route host accepts the hand-off only from
//! the browser holding the nonce.
//!
//! Every session lookup names its [`Scope`]: a session made from a token is
//! good only where that token would be accepted, and only the main sign-in's
//! sessions are handed over to other hosts or reach the console.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_config::{CookieSettings, Provider, SameSite, SignIn};
use gatehouse_identity::codec::{self, Handoff, valid_binding};
use gatehouse_identity::cookie::{Handle, Sealer};
use gatehouse_identity::github::{GitHub, GitHubSettings};
use gatehouse_identity::local::{Directory, HashGate, Throttle};
use gatehouse_identity::oidc::{Oidc, OidcSettings};
use gatehouse_identity::session::{Session, SessionId, unix_now};
use gatehouse_identity::store::SessionStore;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::pages::{self, html_escape};

/// Lifetime of a sign-in hand-off and of a login form.
const HANDOFF_SECS: u64 = 300;
const FORM_SECS: u64 = 1800;
/// Largest login form accepted.
const MAX_FORM: usize = 16 * 1024;

/// The authenticate service's state that outlives configuration reloads:
/// throttling, hashing, refresh locks and the random secrets used when none
/// are configured. The session store, metrics and assertion cache are the
/// proxy's; this holds handles to them.
pub struct IdentityState {
    pub store: Arc<gatehouse_identity::store::Counted>,
    pub throttle: Throttle,
    /// Password hashes that may run (and wait) at once, process-wide.
    pub hashing: HashGate,
    /// One lock per session being refreshed, so concurrent requests refresh once.
    refreshing: std::sync::Mutex<std::collections::HashMap<SessionId, Arc<tokio::sync::Mutex<()>>>>,
    random_cookie_key: [u8; 32],
    random_shared_key: [u8; 32],
    /// Where sign-ins, refreshes and store errors are counted.
    metrics: Arc<crate::metrics::Metrics>,
    /// A signed-out session's cached assertions are dropped here.
    assertions: Arc<crate::assertion::Assertions>,
}

impl IdentityState {
    pub fn new(
        sign_in: &SignIn,
        store: Arc<gatehouse_identity::store::Counted>,
        metrics: Arc<crate::metrics::Metrics>,
        assertions: Arc<crate::assertion::Assertions>,
    ) -> IdentityState {
        let t = sign_in.throttle;
        if sign_in.cookie_secret.is_none() && !matches!(sign_in.provider, Provider::None) {
            tracing::warn!(
                "no cookie_secret configured: using a random one; sessions end when gatehouse restarts"
            );
        }
        if sign_in.shared_secret.is_none() && sign_in.authenticate.is_some() {
            tracing::warn!(
                "no shared_secret configured: using a random one; other gatehouse instances cannot complete sign-ins started here"
            );
        }
        IdentityState {
            store,
            throttle: Throttle::new(t.failures, t.window.as_secs(), t.lockout.as_secs()),
            hashing: HashGate::for_this_machine(),
            refreshing: Default::default(),
            random_cookie_key: rand::random(),
            random_shared_key: rand::random(),
            metrics,
            assertions,
        }
    }

    /// Stores a new session for a user who just signed in (`via`: how, for
    /// the log) and counts it. `None` when the store refused (logged): the
    /// caller answers 503.
    async fn open_session(
        &self,
        identity: gatehouse_identity::Identity,
        lifetime: Duration,
        tokens: Option<gatehouse_identity::oidc::Tokens>,
        via: &'static str,
    ) -> Option<Session> {
        let mut session = Session::new(identity, unix_now(), lifetime.as_secs());
        session.tokens = tokens;
        self.store_session(session, via).await
    }

    /// Stores a session made elsewhere (a token hand-off) and counts it.
    async fn store_session(&self, session: Session, via: &'static str) -> Option<Session> {
        if let Err(e) = self.store.put(&session).await {
            self.metrics.store_error();
            tracing::error!(error = %e, "cannot store the new session");
            return None;
        }
        let id = &session.identity;
        self.metrics
            .sign_in(&id.idp, crate::metrics::SignInResult::Success);
        tracing::info!(user = %id.sub, idp = %id.idp, via, "signed in");
        Some(session)
    }

    /// Ends a session here: its record and its cached assertions.
    async fn end_session(
        &self,
        id: &SessionId,
    ) -> Result<(), gatehouse_identity::store::StoreError> {
        self.assertions.forget_session(id);
        self.store.delete(id).await
    }
}

/// An OpenID provider, discovered on first use (and again after a failure).
struct LazyOidc {
    settings: OidcSettings,
    discovered: tokio::sync::Mutex<Option<Arc<Oidc>>>,
}

impl LazyOidc {
    async fn get(&self) -> Result<Arc<Oidc>, gatehouse_identity::oidc::OidcError> {
        let mut slot = self.discovered.lock().await;
        if let Some(o) = &*slot {
            return Ok(o.clone());
        }
        let o = Arc::new(Oidc::discover(self.settings.clone()).await?);
        *slot = Some(o.clone());
        Ok(o)
    }
}

impl IdentityState {
    /// The shared key in force when `shared_secret` is not configured.
    pub fn shared_key(&self) -> [u8; 32] {
        self.random_shared_key
    }
}

/// Sign-in settings of one running configuration.
pub struct Auth {
    pub cookie: CookieSettings,
    cookie_sealer: Sealer,
    shared_sealer: Sealer,
    directory: Option<Arc<Directory>>,
    oidc: Option<Arc<LazyOidc>>,
    github: Option<Arc<GitHub>>,
    /// Name of a configured provider that is not built yet.
    unsupported: Option<String>,
    authenticate: Option<gatehouse_config::AuthenticateUrl>,
    /// The authenticate host's own cookie name, built once.
    authenticate_cookie: String,
    signout_redirect: Option<String>,
    /// Route hosts whose cookie has its own SameSite (`cookie_same_site` on
    /// the route, for embedding).
    host_same_site: Vec<(gatehouse_config::HostPattern, SameSite)>,
    /// `programmatic_redirect_domain_whitelist`.
    pub(crate) programmatic_domains: Vec<String>,
    /// The `idp` a main sign-in's session carries under this configuration;
    /// sessions of another provider (or records from before provenance was
    /// stored, made from tokens) are signed out.
    main_idp: Option<String>,
    /// Every route's `from`: the origins sign-in may return to.
    route_origins: Vec<gatehouse_config::From>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("built-in user directory: {0}")]
    Directory(#[from] gatehouse_identity::local::DirectoryError),
    #[error("github: {0}")]
    GitHub(gatehouse_identity::github::GitHubError),
}

impl Auth {
    pub fn new(sign_in: &SignIn, state: &IdentityState) -> Result<Auth, AuthError> {
        let mut github = None;
        let (directory, oidc, unsupported) = match &sign_in.provider {
            Provider::None => (None, None, None),
            Provider::Local(users) => (Some(Arc::new(Directory::new(users.clone())?)), None, None),
            Provider::GitHub(g) => {
                let settings = GitHubSettings::new(
                    g.url.as_deref(),
                    g.client_id.clone(),
                    g.client_secret.clone(),
                    g.scopes.clone(),
                );
                github = Some(Arc::new(GitHub::new(settings).map_err(AuthError::GitHub)?));
                (None, None, None)
            }
            Provider::Oidc(p) => {
                let settings = OidcSettings {
                    provider: p.name.clone(),
                    issuer: p.issuer.clone(),
                    client_id: p.client_id.clone(),
                    client_secret: p.client_secret.clone(),
                    scopes: p.scopes.clone(),
                    request_params: p.request_params.clone(),
                };
                let lazy = LazyOidc {
                    settings,
                    discovered: tokio::sync::Mutex::new(None),
                };
                (None, Some(Arc::new(lazy)), None)
            }
            Provider::NotYetSupported(p) => (None, None, Some(p.clone())),
        };
        Ok(Auth {
            cookie: sign_in.cookie.clone(),
            cookie_sealer: Sealer::new(
                sign_in
                    .cookie_secret
                    .as_ref()
                    .unwrap_or(&state.random_cookie_key),
            ),
            shared_sealer: Sealer::new(
                sign_in
                    .shared_secret
                    .as_ref()
                    .unwrap_or(&state.random_shared_key),
            ),
            directory,
            oidc,
            github,
            unsupported,
            authenticate: sign_in.authenticate.clone(),
            authenticate_cookie: format!("{}_authenticate", sign_in.cookie.name),
            signout_redirect: sign_in.signout_redirect_url.clone(),
            host_same_site: Vec::new(),
            programmatic_domains: vec!["localhost".into()],
            main_idp: match &sign_in.provider {
                Provider::Local(_) => Some("local".into()),
                Provider::GitHub(_) => Some("github".into()),
                Provider::Oidc(p) => Some(p.name.clone()),
                Provider::None | Provider::NotYetSupported(_) => None,
            },
            route_origins: Vec::new(),
        })
    }

    /// Takes the routes' own `cookie_same_site` values.
    /// (and their origins, where sign-in may return to).
    pub fn set_route_cookies(&mut self, routes: &[gatehouse_config::Route]) {
        self.host_same_site = routes
            .iter()
            .filter_map(|r| Some((r.from.host.clone(), r.cookie_same_site?)))
            .collect();
        self.route_origins = routes.iter().map(|r| r.from.clone()).collect();
    }

    /// The SameSite of the cookie on `host`.
    fn same_site(&self, host: &str) -> Option<SameSite> {
        use gatehouse_config::HostPattern;
        self.host_same_site
            .iter()
            .find(|(p, _)| match p {
                HostPattern::Exact(h) => h == host,
                HostPattern::Wildcard(suffix) => host.ends_with(suffix.as_str()),
            })
            .map(|(_, s)| *s)
            .or(self.cookie.same_site)
    }

    pub fn can_sign_in(&self) -> bool {
        self.directory.is_some() || self.oidc.is_some() || self.github.is_some()
    }

    /// The cookie this host uses: the authenticate host has its own.
    fn cookie_name(&self, host: &str) -> &str {
        match &self.authenticate {
            Some(a) if a.host == host => &self.authenticate_cookie,
            _ => &self.cookie.name,
        }
    }

    pub fn is_authenticate_host(&self, host: &str) -> bool {
        self.authenticate.as_ref().is_some_and(|a| a.host == host)
    }

    /// Where sign-in happens for a request on `origin` (scheme://host[:port]).
    pub fn sign_in_origin(&self, origin: &str) -> String {
        match &self.authenticate {
            Some(a) => a.origin(),
            None => origin.to_string(),
        }
    }

    pub fn cookie_header_name(&self) -> &str {
        &self.cookie.name
    }
}

/// What the proxy knows about the request's host.
pub struct Host<'a> {
    /// Lower-case host name without port.
    pub name: &'a str,
    /// `scheme://host[:port]` as the client addressed it.
    pub origin: String,
}

/// Where a session is about to be used; a session outside its provenance's
/// reach is "signed out" there (never an error that says why).
#[derive(Clone, Copy)]
pub enum Scope<'a> {
    /// A request to `route`: token-made sessions only where the route would
    /// accept their token as a bearer token. A console route takes only the
    /// main sign-in.
    Route {
        config: &'a gatehouse_config::Config,
        route: &'a gatehouse_config::Route,
    },
    /// gatehouse's own pages on the host (who am I, sign-out): token-made
    /// sessions only on the host they were made on.
    OwnPages,
    /// Only the main sign-in: hand-offs to other hosts, programmatic tokens.
    MainSignIn,
}

impl Auth {
    /// True when `session` may be used on `host` within `scope` at `now`.
    pub fn in_scope(&self, session: &Session, host: &str, scope: Scope<'_>, now: u64) -> bool {
        let p = &session.provenance;
        if p.is_main_sign_in() && self.main_idp.as_deref() != Some(session.identity.idp.as_str()) {
            // Another provider's session, or a token-made record stored
            // before provenance was: not a main sign-in of this configuration.
            return false;
        }
        match scope {
            Scope::Route { route, .. }
                if matches!(route.action, gatehouse_config::RouteAction::Console) =>
            {
                p.is_main_sign_in()
            }
            Scope::Route { config, route } => p.allows_route(config, route, host, now),
            Scope::OwnPages => p.allows_host(host, now),
            Scope::MainSignIn => p.is_main_sign_in(),
        }
    }
}

/// The signed-in session of a request within `scope`, if any. Anything
/// wrong with the cookie (tampered, expired, unknown, out of scope, store
/// error) means signed out.
pub async fn session(
    auth: &Auth,
    state: &IdentityState,
    headers: &HeaderMap,
    host: &str,
    scope: Scope<'_>,
) -> Option<Session> {
    let name = auth.cookie_name(host);
    // A host-only cookie and a `cookie_domain` one may share the name (a
    // few at most are looked at). Two good ones for different sessions are
    // ambiguous, maybe one planted by another site: signed out, never the
    // first.
    let mut found: Option<Session> = None;
    for value in cookie_values(headers, name).take(4) {
        if let Some(s) = session_from_handle(auth, state, name, value, host, scope).await {
            match &found {
                Some(f) if f.id != s.id => {
                    tracing::warn!(
                        host,
                        "two different sessions in one request: treated as signed out"
                    );
                    return None;
                }
                Some(_) => {}
                None => found = Some(s),
            }
        }
    }
    found
}

/// What a programmatic-login token is sealed for (never a cookie's name).
const TOKEN_PURPOSE: &str = "pomerium_jwt";

/// The session a programmatic-login token (`pomerium_jwt`) stands for: the
/// same server-side session as the browser's, so it ends with it.
pub async fn token_session(
    auth: &Auth,
    state: &IdentityState,
    token: &str,
    host: &str,
    scope: Scope<'_>,
) -> Option<Session> {
    session_from_handle(auth, state, TOKEN_PURPOSE, token, host, scope).await
}

/// True when the request carries this host's session cookie.
pub fn has_session_cookie(auth: &Auth, headers: &HeaderMap, host: &str) -> bool {
    cookie_value(headers, auth.cookie_name(host)).is_some()
}

async fn session_from_handle(
    auth: &Auth,
    state: &IdentityState,
    name: &str,
    value: &str,
    host: &str,
    scope: Scope<'_>,
) -> Option<Session> {
    let now = unix_now();
    let handle = Handle::open(&auth.cookie_sealer, name, value, now)?;
    let mut session = match state.store.get(&handle.session).await {
        Ok(Some(s)) if s.is_live(now) && auth.in_scope(&s, host, scope, now) => s,
        Ok(_) => return None,
        Err(e) => {
            state.metrics.store_error();
            tracing::warn!(error = %e, "session lookup failed; treating the request as signed out");
            return None;
        }
    };
    // The built-in directory is the source of truth on every request: a
    // removed user is signed out, changed groups apply at once.
    if session.provenance.is_main_sign_in() && session.identity.idp == "local" {
        session.identity = auth.directory.as_ref()?.current(&session.identity.sub)?;
    }
    match &session.tokens {
        Some(t) if t.needs_refresh(now) => refresh(auth, state, session, now).await,
        _ => Some(session),
    }
}

/// Refreshes the provider's tokens about a minute before they expire, once
/// per session however many requests arrive together. A permanent refusal
/// ends the session; an outage keeps it until it expires.
async fn refresh(
    auth: &Auth,
    state: &IdentityState,
    session: Session,
    now: u64,
) -> Option<Session> {
    let Some(lazy) = &auth.oidc else {
        return Some(session);
    };
    let lock = {
        let mut map = state.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(session.id).or_default().clone()
    };
    let result = {
        let _guard = lock.lock().await;
        refresh_locked(lazy, state, session, now).await
    };
    let mut map = state.refreshing.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = map.get(&result.0) {
        if Arc::strong_count(l) <= 2 {
            map.remove(&result.0);
        }
    }
    result.1
}

async fn refresh_locked(
    lazy: &LazyOidc,
    state: &IdentityState,
    session: Session,
    now: u64,
) -> (SessionId, Option<Session>) {
    let id = session.id;
    // One refresh across every instance sharing the store: whoever holds
    // the lease refreshes; the others wait for its result a little, then
    // carry on with the session as it is (the identity does not change).
    let lease = match state.store.lease(&id, REFRESH_LEASE).await {
        Ok(Some(lease)) => lease,
        Ok(None) => return (id, wait_for_refresh(state, session, now).await),
        Err(e) => {
            state.metrics.store_error();
            tracing::debug!(error = %e, "no refresh lease: the store is unreachable");
            return (id, Some(session));
        }
    };
    let result = refresh_leased(lazy, state, session, now).await;
    if let Err(e) = state.store.release(lease).await {
        tracing::debug!(error = %e, "cannot release the refresh lease; it expires by itself");
    }
    (id, result)
}

/// How long one instance may hold the right to refresh a session: more
/// than discovery plus the token request can take (10 s each).
const REFRESH_LEASE: Duration = Duration::from_secs(30);

/// Another instance is refreshing: its result, if it comes within 2 s.
async fn wait_for_refresh(state: &IdentityState, session: Session, now: u64) -> Option<Session> {
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match state.store.get_fresh(&session.id).await {
            Ok(Some(s)) if !s.is_live(now) => return None,
            Ok(Some(s)) if !s.tokens.as_ref().is_some_and(|t| t.needs_refresh(now)) => {
                return Some(s);
            }
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(_) => break,
        }
    }
    Some(session)
}

async fn refresh_leased(
    lazy: &LazyOidc,
    state: &IdentityState,
    session: Session,
    now: u64,
) -> Option<Session> {
    let id = session.id;
    // Another request or instance may have refreshed while this one waited.
    let mut current = match state.store.get_fresh(&id).await {
        Ok(Some(s)) if s.is_live(now) => s,
        Ok(_) => return None,
        Err(_) => return Some(session),
    };
    let Some(tokens) = current.tokens.clone().filter(|t| t.needs_refresh(now)) else {
        return Some(current);
    };
    let outcome = match lazy.get().await {
        Ok(oidc) => oidc.refresh(&tokens, now).await,
        Err(e) => Err(gatehouse_identity::oidc::RefreshError::Temporary(
            e.to_string(),
        )),
    };
    match outcome {
        Ok(new) => {
            current.tokens = Some(new);
            if let Err(e) = state.store.put(&current).await {
                state.metrics.store_error();
                tracing::warn!(error = %e, "cannot store refreshed tokens");
            }
            state
                .metrics
                .refresh(crate::metrics::RefreshResult::Success);
            tracing::info!(user = %current.identity.sub, "refreshed session tokens");
            Some(current)
        }
        Err(gatehouse_identity::oidc::RefreshError::Permanent(why)) => {
            state
                .metrics
                .refresh(crate::metrics::RefreshResult::Refused);
            tracing::warn!(user = %current.identity.sub, reason = %why, "token refresh refused: ending the session");
            if let Err(e) = state.end_session(&id).await {
                tracing::warn!(error = %e, "cannot delete the session");
            }
            None
        }
        Err(gatehouse_identity::oidc::RefreshError::Temporary(why)) => {
            state
                .metrics
                .refresh(crate::metrics::RefreshResult::TemporaryFailure);
            tracing::warn!(user = %current.identity.sub, reason = %why, "token refresh failed for now; the session continues");
            // Do not hammer a provider that is down: wait before the next try.
            let mut t = tokens;
            t.refreshed_at = now;
            current.tokens = Some(t);
            let _ = state.store.put(&current).await;
            Some(current)
        }
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &'a str) -> Option<&'a str> {
    cookie_values(headers, name).next()
}

/// Every value of the cookie `name` the request carries, in order.
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Removes gatehouse's own cookies from what the upstream sees.
pub fn strip_cookies(headers: &mut HeaderMap, name: &str) {
    let values: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    if !values
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.contains(name)))
    {
        return;
    }
    headers.remove(header::COOKIE);
    let prefix = format!("{name}_");
    for v in values {
        let Ok(s) = v.to_str() else { continue };
        let kept: Vec<&str> = s
            .split(';')
            .map(str::trim)
            .filter(|pair| {
                let k = pair.split_once('=').map_or(*pair, |(k, _)| k);
                k != name && !k.starts_with(&prefix)
            })
            .filter(|p| !p.is_empty())
            .collect();
        if !kept.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
                headers.append(header::COOKIE, v);
            }
        }
    }
}

/// A session cookie (or its removal, `max_age: None`); `shared` gives it
/// `cookie_domain` when one is configured (else it is host-only).
fn set_cookie(
    auth: &Auth,
    host: &str,
    name: &str,
    value: &str,
    max_age: Option<u64>,
    secure: bool,
    shared: bool,
) -> HeaderValue {
    let c = &auth.cookie;
    let mut s = format!("{name}={value}; Path=/");
    match max_age {
        Some(a) => s.push_str(&format!("; Max-Age={a}")),
        None => s.push_str("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
    }
    if let Some(d) = c.domain.as_ref().filter(|_| shared) {
        s.push_str(&format!("; Domain={d}"));
    }
    let same_site = auth.same_site(host);
    if secure || same_site == Some(SameSite::None) {
        s.push_str("; Secure");
    }
    if c.http_only {
        s.push_str("; HttpOnly");
    }
    match same_site {
        Some(SameSite::Lax) => s.push_str("; SameSite=Lax"),
        Some(SameSite::Strict) => s.push_str("; SameSite=Strict"),
        Some(SameSite::None) => s.push_str("; SameSite=None; Partitioned"),
        None => {}
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("_invalid=1"))
}

fn session_cookie(auth: &Auth, host: &str, session: &Session, secure: bool) -> HeaderValue {
    let name = auth.cookie_name(host);
    let handle = Handle {
        session: session.id,
        expires_at: session.expires_at,
    };
    let value = handle.seal(&auth.cookie_sealer, name);
    let max_age = session.expires_at.saturating_sub(unix_now());
    // A token-made session is good on its own host only: its cookie never
    // takes `cookie_domain`.
    let shared = session.provenance.is_main_sign_in();
    set_cookie(auth, host, name, &value, Some(max_age), secure, shared)
}

fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut resp = Response::new(body::full(Bytes::from(page)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    resp
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(body::full(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The answer for a protected route without a session: a redirect to sign
/// in for page loads, 401 for API calls (fetch/XHR never get a redirect).
pub fn unauthenticated(
    auth: &Auth,
    headers: &HeaderMap,
    host: &Host<'_>,
    path_and_query: &str,
    request_id: &str,
) -> Response<Body> {
    if !auth.can_sign_in() {
        let reason = match &auth.unsupported {
            Some(p) => format!("This route needs sign-in, and the `{p}` identity provider is not supported by this gatehouse build yet."),
            None => "This route needs sign-in, and no identity provider is configured (set `idp_provider`).".to_string(),
        };
        return pages::page(
            StatusCode::UNAUTHORIZED,
            &reason,
            "sign_in_unavailable",
            request_id,
            pages::wants_json(headers),
        );
    }
    if !prefers_html(headers) {
        let mut resp = pages::page(
            StatusCode::UNAUTHORIZED,
            "Sign-in required.",
            "user-unauthenticated",
            request_id,
            true,
        );
        let login = sign_in_url(
            auth,
            &host.origin,
            &format!("{}{}", host.origin, path_and_query),
        );
        if let Ok(v) = HeaderValue::from_str(&login) {
            resp.headers_mut()
                .insert(header::HeaderName::from_static("x-pomerium-sign-in-url"), v);
        }
        return resp;
    }
    let target = format!("{}{}", host.origin, path_and_query);
    // The browser side is always https (see `ConnInfo::external_https`).
    start_sign_in(auth, host, &target, true)
}

/// How long a route host waits for the hand-off of a sign-in it started.
const PENDING_SECS: u64 = 600;

/// Sends the browser to sign in, coming back to `target` on this host. When
/// sign-in happens on another host, this browser gets a pending sign-in
/// cookie (a random nonce, host-only) and the sign-in URL carries the nonce's
/// hash, which the hand-off must carry back (see [`callback`]).
fn start_sign_in(auth: &Auth, host: &Host<'_>, target: &str, secure: bool) -> Response<Body> {
    let url = sign_in_url(auth, &host.origin, target);
    if auth.sign_in_origin(&host.origin) == host.origin {
        return redirect(&url);
    }
    let (nonce, binding) = new_binding();
    let mut resp = redirect(&format!("{url}&pomerium_binding={binding}"));
    let cookie = format!(
        "{}={nonce}; Path=/.pomerium/callback; Max-Age={PENDING_SECS}; HttpOnly; SameSite=Lax{}",
        pending_cookie_name(auth, &binding),
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// A new browser binding: the nonce (kept in the browser) and its hash (sent
/// to the authenticate host and sealed into the hand-off).
fn new_binding() -> (String, String) {
    use base64::Engine;
    let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let binding = binding_of(&nonce);
    (nonce, binding)
}

fn binding_of(nonce: &str) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, nonce.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The pending sign-in cookie of one flow: named after its binding, so
/// several tabs signing in at once keep their own.
fn pending_cookie_name(auth: &Auth, binding: &str) -> String {
    pending_cookie_named(&auth.cookie.name, binding)
}

fn pending_cookie_named(cookie_name: &str, binding: &str) -> String {
    format!(
        "{cookie_name}_pending_{}",
        binding.get(..10).unwrap_or(binding)
    )
}

/// True when the request carries the pending sign-in cookie whose nonce
/// hashes to `binding`.
fn holds_binding(auth: &Auth, headers: &HeaderMap, binding: &str) -> bool {
    holds_binding_named(headers, &auth.cookie.name, binding)
}

fn holds_binding_named(headers: &HeaderMap, cookie_name: &str, binding: &str) -> bool {
    let name = pending_cookie_named(cookie_name, binding);
    cookie_values(headers, &name).take(4).any(|nonce| {
        aws_lc_rs::constant_time::verify_slices_are_equal(
            binding_of(nonce).as_bytes(),
            binding.as_bytes(),
        )
        .is_ok()
    })
}

/// Where to sign in for a request on `origin`, coming back to `target`.
pub fn sign_in_url(auth: &Auth, origin: &str, target: &str) -> String {
    format!(
        "{}/.pomerium/sign_in?pomerium_redirect_uri={}",
        auth.sign_in_origin(origin),
        enc(target)
    )
}

/// Page navigations get redirects; everything else (fetch, XHR, curl) 401.
pub(crate) fn prefers_html(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    accept.split(',').any(|p| {
        let media = p.split(';').next().unwrap_or("").trim();
        media.eq_ignore_ascii_case("text/html")
            || media.eq_ignore_ascii_case("application/xhtml+xml")
    }) && !pages::wants_json(headers)
}

/// The gatehouse endpoints under `/.pomerium/`, on route hosts and on the
/// authenticate host. `None` when the path is not one of them.
pub async fn endpoint(
    auth: &Auth,
    state: &IdentityState,
    req: Request<Incoming>,
    host: &Host<'_>,
    allowed_redirect: &(dyn Fn(&str, Option<u16>) -> bool + Sync),
    caller: crate::request::Caller<'_>,
    request_id: &str,
) -> Result<Response<Body>, Request<Incoming>> {
    // The sign-in throttle counts per client address (the canonical one:
    // behind trusted proxies, not the proxy's own).
    let conn = caller.conn;
    let (peer, secure) = (caller.ip, conn.external_https());
    let allowed_redirect = &Targets {
        auth,
        allowed: allowed_redirect,
        local_port: conn.local_port,
    };
    let path = req.uri().path();
    let method = req.method().clone();
    match (path, &method) {
        ("/.pomerium/sign_in", &Method::GET | &Method::POST) if !state.store.available() => {
            let mut resp = pages::page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable for a moment: gatehouse cannot reach its session store. People already signed in are not affected. Try again shortly.",
                "session_store_unavailable",
                request_id,
                pages::wants_json(req.headers()),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            Ok(resp)
        }
        ("/.pomerium/sign_in", &Method::GET) => {
            Ok(sign_in_page(auth, state, &req, host, allowed_redirect, secure).await)
        }
        ("/.pomerium/sign_in", &Method::POST) => {
            Ok(sign_in_post(auth, state, req, host, allowed_redirect, peer, secure).await)
        }
        ("/.pomerium/callback" | "/.pomerium/callback/", &Method::GET) => {
            Ok(callback(auth, state, &req, host, secure).await)
        }
        ("/oauth2/callback", &Method::GET) => {
            Ok(oidc_callback(auth, state, &req, host, allowed_redirect, secure).await)
        }
        ("/.pomerium/user", &Method::GET) => Ok(
            match session(auth, state, req.headers(), host.name, Scope::OwnPages).await {
                Some(s) => json(StatusCode::OK, user_json(&s)),
                None => pages::page(
                    StatusCode::UNAUTHORIZED,
                    "Not signed in.",
                    "user-unauthenticated",
                    request_id,
                    true,
                ),
            },
        ),
        ("/.pomerium" | "/.pomerium/", &Method::GET) => {
            let s = session(auth, state, req.headers(), host.name, Scope::OwnPages).await;
            Ok(html(StatusCode::OK, user_page(auth, s.as_ref(), host)))
        }
        // A signed link (the session's own sign-out token) signs out at once.
        ("/.pomerium/sign_out", &Method::GET)
            if query_param(req.uri().query(), "token").is_some() =>
        {
            Ok(sign_out_post(auth, state, req, host, allowed_redirect, secure).await)
        }
        ("/.pomerium/sign_out", &Method::GET) => {
            let s = session(auth, state, req.headers(), host.name, Scope::OwnPages).await;
            Ok(html(StatusCode::OK, sign_out_page(auth, s.as_ref())))
        }
        ("/.pomerium/sign_out", &Method::POST) => {
            Ok(sign_out_post(auth, state, req, host, allowed_redirect, secure).await)
        }
        ("/.pomerium/api/v1/login", &Method::GET) => {
            Ok(programmatic_login(auth, &req, host, request_id))
        }
        ("/.pomerium/api/v1/login", _) => Ok(pages::page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed.",
            "method_not_allowed",
            request_id,
            true,
        )),
        ("/.pomerium/programmatic", &Method::GET) => {
            Ok(programmatic_finish(auth, state, &req, host, secure).await)
        }
        ("/.pomerium/signed_out", &Method::GET) => Ok(notice(
            StatusCode::OK,
            "Signed out",
            "You are signed out",
            "You can close this page.",
        )),
        _ if path.starts_with("/.pomerium/")
            && matches!(
                path,
                "/.pomerium/sign_in" | "/.pomerium/sign_out" | "/.pomerium/user"
            ) =>
        {
            let mut resp = pages::page(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed.",
                "method_not_allowed",
                request_id,
                false,
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            Ok(resp)
        }
        _ => Err(req),
    }
}

/// `/.pomerium/api/v1/login?pomerium_redirect_uri=...` (Pomerium's
/// programmatic login): the sign-in URL, as text. After sign-in the browser
/// lands on `/.pomerium/programmatic` of this host, which sends it to the
/// client's redirect URI with `pomerium_jwt=<token>`.
fn programmatic_login(
    auth: &Auth,
    req: &Request<Incoming>,
    host: &Host<'_>,
    request_id: &str,
) -> Response<Body> {
    let Some(target) = query_param(req.uri().query(), "pomerium_redirect_uri") else {
        return pages::page(
            StatusCode::NOT_FOUND,
            "pomerium_redirect_uri is required.",
            "not_found",
            request_id,
            true,
        );
    };
    let allowed = url::Url::parse(&target).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.username().is_empty()
            && u.password().is_none()
            && u.host_str().is_some_and(|h| {
                let h = h.to_ascii_lowercase();
                auth.programmatic_domains
                    .iter()
                    .any(|d| h == *d || h.ends_with(&format!(".{d}")))
            })
    });
    if allowed.is_none() {
        return pages::page(
            StatusCode::BAD_REQUEST,
            "pomerium_redirect_uri is not on a host in programmatic_redirect_domain_whitelist.",
            "invalid_redirect",
            request_id,
            true,
        );
    }
    let state = form_token(auth, "programmatic", &target);
    let back = format!("{}/.pomerium/programmatic?state={state}", host.origin);
    let mut resp = Response::new(body::full(Bytes::from(sign_in_url(
        auth,
        &host.origin,
        &back,
    ))));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The end of a programmatic login: the signed-in browser is sent to the
/// client's redirect URI with the token, bound to the session.
async fn programmatic_finish(
    auth: &Auth,
    state: &IdentityState,
    req: &Request<Incoming>,
    host: &Host<'_>,
    secure: bool,
) -> Response<Body> {
    let sealed = query_param(req.uri().query(), "state").unwrap_or_default();
    let Some(target) = open_form_token(auth, "programmatic", &sealed) else {
        return notice(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "Cannot finish the login",
            "The login link has expired. Start again from your command-line tool.",
        );
    };
    // Only the main sign-in's sessions become programmatic tokens.
    let Some(session) = session(auth, state, req.headers(), host.name, Scope::MainSignIn).await
    else {
        let here = format!("{}/.pomerium/programmatic?state={sealed}", host.origin);
        return start_sign_in(auth, host, &here, secure);
    };
    let token = Handle {
        session: session.id,
        expires_at: session.expires_at,
    }
    .seal(&auth.cookie_sealer, TOKEN_PURPOSE);
    let Ok(mut url) = url::Url::parse(&target) else {
        return notice(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "Cannot finish the login",
            "Bad redirect address.",
        );
    };
    url.query_pairs_mut().append_pair("pomerium_jwt", &token);
    tracing::info!(user = %session.identity.sub, "programmatic login: token handed to the client");
    redirect(url.as_str())
}

/// `POST /.pomerium/sign_in_with_token`: the one-time hand-off for an app
/// that already holds a token for the user (the embedding page of an
/// iframe). The form carries `token` (a JWT the target route accepts, per
/// its `bearer_token_format`) and `pomerium_redirect_uri` (a URL on this
/// host). gatehouse verifies the token, creates the session, sets this
/// host's cookie and answers 303 to the URL: the token never travels in a
/// URL and is never logged. The POST must come from this origin or from one
/// of the route's `frame_ancestors` (no login CSRF from other sites).
pub async fn sign_in_with_token(
    rt: &crate::runtime::Runtime,
    state: &IdentityState,
    req: Request<Incoming>,
    host: &Host<'_>,
    port: u16,
    secure: bool,
    request_id: &str,
) -> Response<Body> {
    let auth = &rt.auth;
    let bad = |status: StatusCode, msg: &str| {
        pages::page(status, msg, "token_sign_in_refused", request_id, false)
    };
    if req.method() != Method::POST {
        let mut resp = bad(
            StatusCode::METHOD_NOT_ALLOWED,
            "Send the token with POST (a form), never in a URL.",
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let form = match read_form(req).await {
        Some(f) => f,
        None => return bad(StatusCode::BAD_REQUEST, "The form could not be read."),
    };
    let field = |k: &str| form_field(&form, k);
    let target = match field("pomerium_redirect_uri") {
        "" => format!("{}/", host.origin),
        t => t.to_string(),
    };
    let Some(target_url) = url::Url::parse(&target)
        .ok()
        .filter(|u| u.origin().ascii_serialization() == host.origin)
    else {
        return bad(
            StatusCode::BAD_REQUEST,
            "pomerium_redirect_uri must be a URL on this host.",
        );
    };
    // The same canonical path (under the configured rules) as a request to
    // that URL would get.
    let Ok(crate::request::CanonicalPath { path, .. }) =
        crate::request::canonical_path(target_url.path(), &rt.config.request)
    else {
        return bad(
            StatusCode::BAD_REQUEST,
            "pomerium_redirect_uri has an invalid path.",
        );
    };
    let Some(index) = rt.table.find(&rt.config.routes, host.name, port, &path) else {
        return bad(
            StatusCode::BAD_REQUEST,
            "No route serves pomerium_redirect_uri.",
        );
    };
    let route = &rt.config.routes[index];
    let allowed_origin = match &origin {
        None => false,
        Some(o) if *o == host.origin => true,
        Some(o) => route
            .frame_ancestors
            .iter()
            .flatten()
            .any(|a| origin_matches(a, o)),
    };
    if !allowed_origin {
        tracing::warn!(route = %route.label(), origin = origin.as_deref().unwrap_or("(none)"), "token sign-in from an origin not in the route's frame_ancestors: refused");
        return bad(
            StatusCode::FORBIDDEN,
            "This page may not sign users in here: its origin is not in the route's frame_ancestors.",
        );
    }
    let Some(bearer) = rt
        .bearer
        .as_ref()
        .filter(|_| route.bearer_token_format != gatehouse_config::BearerTokenFormat::Default)
    else {
        return bad(
            StatusCode::BAD_REQUEST,
            "This route does not accept tokens: set its bearer_token_format (jwt with identity_providers).",
        );
    };
    let verified = match bearer.verify(route, field("token").trim()).await {
        Ok(s) => s,
        Err(refused) => return refused.response(request_id, false),
    };
    // The session is as wide as the token: this host, routes that accept
    // the token, until the token expires (if before `cookie_expire`).
    let gatehouse_identity::session::Provenance::Token(mut grant) = verified.provenance else {
        return bad(
            StatusCode::BAD_REQUEST,
            "This route does not accept tokens: set its bearer_token_format (jwt with identity_providers).",
        );
    };
    grant.host = host.name.to_string();
    let mut identity = verified.identity;
    identity.claims.remove("aud");
    let made = Session::from_token(identity, unix_now(), auth.cookie.expire.as_secs(), grant);
    let Some(session) = state.store_session(made, "token").await else {
        return bad(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sessions cannot be stored right now. Try again shortly.",
        );
    };
    let mut resp = redirect(target_url.as_str());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    resp.headers_mut().append(
        header::SET_COOKIE,
        session_cookie(auth, host.name, &session, secure),
    );
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// An `Origin` against a `frame_ancestors` source (`https://*.example.com`
/// covers subdomains).
fn origin_matches(source: &str, origin: &str) -> bool {
    let source = source.to_ascii_lowercase();
    if source == origin {
        return true;
    }
    match source.split_once("://*.") {
        Some((scheme, rest)) => origin
            .strip_prefix(scheme)
            .and_then(|o| o.strip_prefix("://"))
            .is_some_and(|o| o.ends_with(&format!(".{rest}"))),
        None => false,
    }
}

fn user_json(s: &Session) -> serde_json::Value {
    let id = &s.identity;
    let mut v = serde_json::json!({
        "sub": id.sub,
        "user": id.sub,
        "email": id.email,
        "groups": id.groups,
        "name": id.name,
        "sid": s.id.to_hex(),
        "idp": id.idp,
        "expires_at": s.expires_at,
    });
    if let serde_json::Value::Object(map) = &mut v {
        for (k, val) in &id.claims {
            map.entry(k.clone()).or_insert(val.clone());
        }
    }
    v
}

/// Where sign-in may send a browser: origins gatehouse serves.
pub(crate) struct Targets<'a> {
    auth: &'a Auth,
    /// The route table's answer for a host and port.
    allowed: &'a (dyn Fn(&str, Option<u16>) -> bool + Sync),
    /// The port gatehouse listens on: what a `from` without a port serves,
    /// besides its scheme's default port (behind a load balancer).
    local_port: u16,
}

impl Targets<'_> {
    fn serves_origin(&self, url: &url::Url) -> bool {
        serves_origin(
            url,
            self.auth.authenticate.as_ref(),
            &self.auth.route_origins,
            self.local_port,
        ) && url
            .host_str()
            .is_some_and(|h| (self.allowed)(&h.to_ascii_lowercase(), url.port_or_known_default()))
    }
}

/// True when a route's `from` (or the authenticate service) serves `url`'s
/// exact origin: its host, its port, and https unless that `from` is plain
/// http by configuration. A `from` without a port serves the port gatehouse
/// listens on, and the scheme's default port (behind a load balancer).
fn serves_origin(
    url: &url::Url,
    authenticate: Option<&gatehouse_config::AuthenticateUrl>,
    routes: &[gatehouse_config::From],
    local_port: u16,
) -> bool {
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return false,
    };
    let Some(port) = url.port_or_known_default() else {
        return false;
    };
    let serves = |from_https: bool, from_port: Option<u16>| {
        (https || !from_https)
            && match from_port {
                Some(p) => p == port,
                None => url.port().is_none() || port == local_port,
            }
    };
    if let Some(a) = authenticate.filter(|a| a.host == host) {
        return serves(a.https, a.port);
    }
    routes.iter().any(|f| {
        let host_matches = match &f.host {
            gatehouse_config::HostPattern::Exact(h) => *h == host,
            gatehouse_config::HostPattern::Wildcard(suffix) => host.ends_with(suffix.as_str()),
        };
        host_matches && serves(f.https, f.port)
    })
}

/// Checks a `pomerium_redirect_uri`: an absolute URL on an origin gatehouse
/// serves (see [`Targets::serves_origin`]), without credentials.
fn checked_redirect(target: &str, allowed: &Targets<'_>) -> Option<url::Url> {
    let url = url::Url::parse(target).ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    allowed.serves_origin(&url).then_some(url)
}

/// A form token of `purpose`, good for [`FORM_SECS`].
fn form_token(auth: &Auth, purpose: &str, payload: &str) -> String {
    codec::seal_form_token(
        &auth.cookie_sealer,
        purpose,
        payload,
        unix_now() + FORM_SECS,
    )
}

fn open_form_token(auth: &Auth, purpose: &str, token: &str) -> Option<String> {
    codec::open_form_token(&auth.cookie_sealer, purpose, token, unix_now())
}

/// A form post from another site is refused: the one CSRF rule
/// ([`crate::csrf::same_origin`]), against this host's origin.
fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    url::Url::parse(origin)
        .ok()
        .is_some_and(|u| crate::csrf::same_origin(headers, &u.origin()))
}

async fn sign_in_page(
    auth: &Auth,
    state: &IdentityState,
    req: &Request<Incoming>,
    host: &Host<'_>,
    allowed: &Targets<'_>,
    secure: bool,
) -> Response<Body> {
    let query = req.uri().query();
    let target = query_param(query, "pomerium_redirect_uri")
        .unwrap_or_else(|| format!("{}/.pomerium/", host.origin));
    let Some(target_url) = checked_redirect(&target, allowed) else {
        return notice(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "Cannot sign in",
            "The address to return to after sign-in is not one this gatehouse serves.",
        );
    };
    // The browser binding of the route host that sent the browser here.
    let binding = query_param(query, "pomerium_binding").filter(|b| valid_binding(b));
    let binding = binding.as_deref();
    if !auth.can_sign_in() {
        return notice(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign in",
            "Sign-in is not available",
            "No supported identity provider is configured.",
        );
    }
    // Already signed in on the authenticate host: hand the session over at once.
    if let Some(s) = session(auth, state, req.headers(), host.name, Scope::MainSignIn).await {
        return finish(auth, state, &s, host, &target_url, binding, None).await;
    }
    if let Some(lazy) = &auth.oidc {
        return start_oidc(auth, lazy, host, &target, binding, secure).await;
    }
    if let Some(github) = &auth.github {
        return start_github(auth, github, host, &target, binding, secure);
    }
    html(StatusCode::OK, login_form(auth, &target, binding, None, ""))
}

/// What the login form's sealed token carries: where to go, and the browser
/// binding of the route host that started the flow.
fn open_login_form(auth: &Auth, token: &str) -> Option<(String, Option<String>)> {
    codec::open_login_form(&auth.cookie_sealer, token, unix_now())
}

/// Too many sign-in attempts (429) or too many at once for this server
/// (503): the form again, with `Retry-After`.
fn sign_in_refused(
    auth: &Auth,
    status: StatusCode,
    wait: u64,
    msg: &str,
    (target, binding, username): (&str, Option<&str>, &str),
) -> Response<Body> {
    let mut resp = html(
        status,
        login_form(auth, target, binding, Some(msg), username),
    );
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

async fn sign_in_post(
    auth: &Auth,
    state: &IdentityState,
    req: Request<Incoming>,
    host: &Host<'_>,
    allowed: &Targets<'_>,
    peer: IpAddr,
    secure: bool,
) -> Response<Body> {
    let bad = |msg: &str| notice(StatusCode::BAD_REQUEST, "Sign in", "Cannot sign in", msg);
    let Some(directory) = auth.directory.clone() else {
        return bad("No supported identity provider is configured.");
    };
    if !same_origin(req.headers(), &host.origin) {
        return bad("The sign-in form was sent from another site.");
    }
    let form = match read_form(req).await {
        Some(f) => f,
        None => return bad("The sign-in form could not be read."),
    };
    let field = |k: &str| form_field(&form, k);
    let Some((target, binding)) = open_login_form(auth, field("token")) else {
        return bad("The sign-in form has expired. Go back and reload the page.");
    };
    let Some(target_url) = checked_redirect(&target, allowed) else {
        return bad("The address to return to after sign-in is not one this gatehouse serves.");
    };
    let username = field("username").trim().to_string();
    let password = field("password").to_string();
    let again = (target.as_str(), binding.as_deref(), username.as_str());
    let now = unix_now();
    // The attempt takes its slot (per user and per address) before any
    // hashing, so concurrent attempts cannot all be checked.
    let throttle_key = directory.throttle_key(&username);
    let attempt = match state.throttle.reserve(&throttle_key, peer, now) {
        Ok(a) => a,
        Err(wait) => {
            let minutes = wait.div_ceil(60);
            let msg = format!(
                "Too many failed sign-in attempts. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            state
                .metrics
                .sign_in("local", crate::metrics::SignInResult::Failure);
            tracing::info!(user = %username, client = %peer, "sign-in throttled");
            return sign_in_refused(auth, StatusCode::TOO_MANY_REQUESTS, wait, &msg, again);
        }
    };
    let user = username.clone();
    let Ok(verified) = state
        .hashing
        .run(move || directory.verify(&user, &password))
        .await
    else {
        attempt.cancel();
        tracing::warn!(client = %peer, "sign-in refused: too many passwords being checked at once");
        return sign_in_refused(
            auth,
            StatusCode::SERVICE_UNAVAILABLE,
            1,
            "Sign-in is busy right now. Try again in a moment.",
            again,
        );
    };
    let Some(identity) = verified else {
        attempt.failed();
        state
            .metrics
            .sign_in("local", crate::metrics::SignInResult::Failure);
        tracing::info!(user = %username, client = %peer, "sign-in failed");
        return html(
            StatusCode::UNAUTHORIZED,
            login_form(
                auth,
                &target,
                binding.as_deref(),
                Some("Wrong username or password."),
                &username,
            ),
        );
    };
    attempt.succeeded();
    let Some(session) = state
        .open_session(identity, auth.cookie.expire, None, "password")
        .await
    else {
        return notice(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign in",
            "Sign-in is unavailable",
            "Sessions cannot be stored right now. Try again shortly.",
        );
    };
    let cookie = session_cookie(auth, host.name, &session, secure);
    finish(
        auth,
        state,
        &session,
        host,
        &target_url,
        binding.as_deref(),
        Some(cookie),
    )
    .await
}

/// After sign-in: straight back when the target is this host (or shares
/// its cookie), else through the target host's `/.pomerium/callback/` with a
/// one-time hand-off bound to the target's origin and to the browser
/// (`binding`, from the route host that started the flow). Without a
/// binding the browser is first sent to the target host to get one.
async fn finish(
    auth: &Auth,
    state: &IdentityState,
    session: &Session,
    host: &Host<'_>,
    target: &url::Url,
    binding: Option<&str>,
    cookie: Option<HeaderValue>,
) -> Response<Body> {
    let target_host = target.host_str().unwrap_or("").to_ascii_lowercase();
    let shares_cookie = auth.cookie.domain.as_ref().is_some_and(|d| {
        (target_host == *d || target_host.ends_with(&format!(".{d}")))
            && !auth.is_authenticate_host(host.name)
    });
    let origin = target.origin().ascii_serialization();
    let mut resp = if target_host == host.name || shares_cookie {
        redirect(target.as_str())
    } else if !session.provenance.is_main_sign_in() {
        // Only the main sign-in travels to other hosts.
        return notice(
            StatusCode::FORBIDDEN,
            "Sign in",
            "Cannot sign in there",
            "This session cannot be used on another site. Sign in again.",
        );
    } else if let Some(binding) = binding {
        let token: [u8; 16] = rand::random();
        let expires = unix_now() + HANDOFF_SECS;
        if let Err(e) = state.store.put_once(token, expires).await {
            tracing::error!(error = %e, "cannot store the sign-in hand-off");
            return notice(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign in",
                "Sign-in is unavailable",
                "Try again shortly.",
            );
        }
        let sealed = codec::seal_handoff(
            &auth.shared_sealer,
            &Handoff {
                session: session.id,
                token,
                expires,
                binding: binding.to_string(),
                origin: origin.clone(),
            },
        );
        redirect(&format!(
            "{origin}/.pomerium/callback/?pomerium_session_encrypted={sealed}&pomerium_redirect_uri={}",
            enc(target.as_str())
        ))
    } else {
        // The flow did not start at the target host (a bookmark, a CLI's
        // login URL, forward-auth): the target host binds this browser first
        // and sends it straight back here, already signed in.
        redirect(&format!(
            "{origin}/.pomerium/callback/?pomerium_redirect_uri={}",
            enc(target.as_str())
        ))
    };
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// Lifetime of an OpenID sign-in round trip.
const OIDC_FLOW_SECS: u64 = 600;

fn idp_unavailable(e: &dyn std::fmt::Display) -> Response<Body> {
    tracing::error!(error = %e, "identity provider unavailable");
    notice(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign in",
        "Sign-in is unavailable",
        "The identity provider cannot be reached right now. Try again in a moment.",
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The authorization URL, with the flow's secrets sealed into `state`.
/// `handoff`: the browser binding of the route host that started the flow.
#[allow(clippy::too_many_arguments)]
fn authorize_flow(
    auth: &Auth,
    oidc: &Oidc,
    redirect_uri: &str,
    target: &str,
    flow_id: &str,
    binding: &str,
    handoff: Option<&str>,
    exp: u64,
) -> Result<gatehouse_identity::oidc::Authorization, gatehouse_identity::oidc::OidcError> {
    oidc.authorize(redirect_uri, |verifier, nonce| {
        let flow = codec::FlowState {
            target: target.to_string(),
            verifier: verifier.to_string(),
            nonce: nonce.to_string(),
            flow_id: flow_id.to_string(),
            binding: binding.to_string(),
            handoff: handoff.map(String::from),
            expires: exp,
        };
        codec::seal_flow_state(&auth.cookie_sealer, &flow)
    })
}

/// Sends the browser to the OpenID provider. The flow's secrets travel in
/// the sealed `state`; a cookie named after this one flow binds it to the
/// browser (login CSRF), so several tabs can sign in at once.
async fn start_oidc(
    auth: &Auth,
    lazy: &LazyOidc,
    host: &Host<'_>,
    target: &str,
    handoff: Option<&str>,
    secure: bool,
) -> Response<Body> {
    let oidc = match lazy.get().await {
        Ok(o) => o,
        Err(e) => return idp_unavailable(&e),
    };
    let flow_id = hex(&rand::random::<[u8; 6]>());
    let binding = hex(&rand::random::<[u8; 16]>());
    let redirect_uri = format!("{}/oauth2/callback", host.origin);
    let exp = unix_now() + OIDC_FLOW_SECS;
    let authz = match authorize_flow(
        auth,
        &oidc,
        &redirect_uri,
        target,
        &flow_id,
        &binding,
        handoff,
        exp,
    ) {
        Ok(a) => a,
        Err(e) => return idp_unavailable(&e),
    };
    let mut resp = redirect(&authz.url);
    bind_flow(auth, &mut resp, &flow_id, &binding, secure);
    resp
}

fn sign_in_failed(status: StatusCode, msg: &str) -> Response<Body> {
    notice(status, "Sign in", "Sign-in failed", msg)
}

/// Sends the browser to GitHub; the same sealed state and per-flow cookie
/// as the OpenID flow (no PKCE or nonce: GitHub is plain OAuth2).
fn start_github(
    auth: &Auth,
    github: &GitHub,
    host: &Host<'_>,
    target: &str,
    handoff: Option<&str>,
    secure: bool,
) -> Response<Body> {
    let flow_id = hex(&rand::random::<[u8; 6]>());
    let binding = hex(&rand::random::<[u8; 16]>());
    let exp = unix_now() + OIDC_FLOW_SECS;
    let flow = codec::FlowState {
        target: target.to_string(),
        verifier: String::new(),
        nonce: String::new(),
        flow_id: flow_id.clone(),
        binding: binding.clone(),
        handoff: handoff.map(String::from),
        expires: exp,
    };
    let state = codec::seal_flow_state(&auth.cookie_sealer, &flow);
    let redirect_uri = format!("{}/oauth2/callback", host.origin);
    let mut resp = redirect(&github.authorize_url(&redirect_uri, &state));
    bind_flow(auth, &mut resp, &flow_id, &binding, secure);
    resp
}

/// Binds a sign-in flow to this browser: a cookie named after the one flow
/// (so concurrent tabs never overwrite each other's), read back at
/// `/oauth2/callback`.
fn bind_flow(auth: &Auth, resp: &mut Response<Body>, flow_id: &str, binding: &str, secure: bool) {
    let name = format!("{}_csrf_{flow_id}", auth.cookie.name);
    let cookie = format!(
        "{name}={binding}; Path=/oauth2/callback; Max-Age={OIDC_FLOW_SECS}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `/oauth2/callback`: the provider sends the browser back with a code.
async fn oidc_callback(
    auth: &Auth,
    state: &IdentityState,
    req: &Request<Incoming>,
    host: &Host<'_>,
    allowed: &Targets<'_>,
    secure: bool,
) -> Response<Body> {
    if auth.oidc.is_none() && auth.github.is_none() {
        return sign_in_failed(
            StatusCode::NOT_FOUND,
            "No OAuth2 or OpenID provider is configured.",
        );
    }
    let q = req.uri().query();
    if let Some(err) = query_param(q, "error") {
        let desc = query_param(q, "error_description").unwrap_or_default();
        return sign_in_failed(
            StatusCode::UNAUTHORIZED,
            &format!("The identity provider refused the sign-in: {err} {desc}"),
        );
    }
    let (Some(code), Some(sealed)) = (query_param(q, "code"), query_param(q, "state")) else {
        return sign_in_failed(
            StatusCode::BAD_REQUEST,
            "The identity provider's answer is incomplete.",
        );
    };
    let now = unix_now();
    let flow = match codec::open_flow_state(&auth.cookie_sealer, &sealed, now) {
        Ok(flow) => flow,
        Err(codec::FlowError::Invalid) => {
            return sign_in_failed(
                StatusCode::BAD_REQUEST,
                "This sign-in answer is not valid. Go back to the page you wanted and try again.",
            );
        }
        Err(codec::FlowError::Expired) => {
            return sign_in_failed(
                StatusCode::BAD_REQUEST,
                "This sign-in took too long. Go back to the page you wanted and try again.",
            );
        }
    };
    let cookie_name = format!("{}_csrf_{}", auth.cookie.name, flow.flow_id);
    if cookie_value(req.headers(), &cookie_name) != Some(flow.binding.as_str()) {
        return sign_in_failed(
            StatusCode::BAD_REQUEST,
            "This sign-in was not started in this browser.",
        );
    }
    let Some(target_url) = checked_redirect(&flow.target, allowed) else {
        return sign_in_failed(
            StatusCode::BAD_REQUEST,
            "The address to return to is not one this gatehouse serves.",
        );
    };
    let redirect_uri = format!("{}/oauth2/callback", host.origin);
    let exchanged = match (&auth.github, &auth.oidc) {
        (Some(github), _) => github
            .exchange(&redirect_uri, &code)
            .await
            .map_err(|e| e.to_string()),
        (None, Some(lazy)) => {
            let oidc = match lazy.get().await {
                Ok(o) => o,
                Err(e) => return idp_unavailable(&e),
            };
            oidc.exchange(&redirect_uri, &code, &flow.verifier, &flow.nonce, now)
                .await
                .map_err(|e| e.to_string())
        }
        (None, None) => Err("no provider".to_string()),
    };
    let (identity, tokens) = match exchanged {
        Ok(r) => r,
        Err(e) => {
            let idp = if auth.github.is_some() {
                "github"
            } else {
                "oidc"
            };
            state
                .metrics
                .sign_in(idp, crate::metrics::SignInResult::Failure);
            tracing::warn!(error = %e, "sign-in failed");
            return sign_in_failed(StatusCode::UNAUTHORIZED, &e);
        }
    };
    let Some(session) = state
        .open_session(identity, auth.cookie.expire, Some(tokens), "provider")
        .await
    else {
        return sign_in_failed(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sessions cannot be stored right now. Try again shortly.",
        );
    };
    let cookie = session_cookie(auth, host.name, &session, secure);
    let handoff = flow.handoff.as_deref();
    let mut resp = finish(
        auth,
        state,
        &session,
        host,
        &target_url,
        handoff,
        Some(cookie),
    )
    .await;
    let clear = format!("{cookie_name}=; Path=/oauth2/callback; Max-Age=0; HttpOnly; SameSite=Lax");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// `/.pomerium/callback/` on a route host: takes a hand-off from the
/// authenticate host. The hand-off must be genuine, unexpired, unused, meant
/// for this origin, and presented by the browser that started the sign-in
/// (it holds the pending cookie whose nonce hashes to the sealed binding).
/// Without a hand-off, the browser is bound here and sent to sign in.
async fn callback(
    auth: &Auth,
    state: &IdentityState,
    req: &Request<Incoming>,
    host: &Host<'_>,
    secure: bool,
) -> Response<Body> {
    let fail = || {
        notice(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "This sign-in link is not valid",
            "It has expired, was already used, was meant for another site, or was started in another browser. Go back to the page you wanted and sign in again.",
        )
    };
    let q = req.uri().query();
    let Some(target) = query_param(q, "pomerium_redirect_uri") else {
        return fail();
    };
    // The return address must be on this very origin (scheme, host and
    // port: not another port or plain http of the same host).
    let here = url::Url::parse(&host.origin)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let Some(target_url) = url::Url::parse(&target)
        .ok()
        .filter(|u| u.origin().ascii_serialization() == here)
    else {
        return fail();
    };
    let Some(sealed) = query_param(q, "pomerium_session_encrypted") else {
        return start_sign_in(auth, host, target_url.as_str(), secure);
    };
    let Some(handoff) = codec::open_handoff(&auth.shared_sealer, &sealed) else {
        return fail();
    };
    let now = unix_now();
    if now >= handoff.expires || handoff.origin != here {
        return fail();
    }
    // Used up before the browser check: a hand-off that reaches the wrong
    // browser first (an attacker's link, a binding an attacker chose) is
    // gone for good, not left for its maker to replay.
    match state.store.take_once(handoff.token, now).await {
        Ok(true) => {}
        Ok(false) => return fail(),
        Err(e) => {
            tracing::error!(error = %e, "cannot check the sign-in hand-off");
            return fail();
        }
    }
    if !holds_binding(auth, req.headers(), &handoff.binding) {
        tracing::warn!(host = %host.name, "sign-in hand-off presented by a browser that did not start the sign-in: refused");
        return fail();
    }
    let session = match state.store.get(&handoff.session).await {
        Ok(Some(s)) if s.is_live(now) && auth.in_scope(&s, host.name, Scope::MainSignIn, now) => s,
        _ => return fail(),
    };
    let mut resp = redirect(target_url.as_str());
    resp.headers_mut().append(
        header::SET_COOKIE,
        session_cookie(auth, host.name, &session, secure),
    );
    let clear = format!(
        "{}=; Path=/.pomerium/callback; Max-Age=0; HttpOnly; SameSite=Lax{}",
        pending_cookie_name(auth, &handoff.binding),
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn sign_out_post(
    auth: &Auth,
    state: &IdentityState,
    req: Request<Incoming>,
    host: &Host<'_>,
    allowed: &Targets<'_>,
    secure: bool,
) -> Response<Body> {
    // A form must come from this site; a link carries its token in the query.
    let link = req.method() == Method::GET;
    if !link && !same_origin(req.headers(), &host.origin) {
        return notice(
            StatusCode::BAD_REQUEST,
            "Sign out",
            "Cannot sign out",
            "The form was sent from another site.",
        );
    }
    let current = session(auth, state, req.headers(), host.name, Scope::OwnPages).await;
    let query_target = query_param(req.uri().query(), "pomerium_redirect_uri");
    let token = if link {
        query_param(req.uri().query(), "token").unwrap_or_default()
    } else {
        let form = read_form(req).await.unwrap_or_default();
        form.into_iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    let token = token.as_str();
    if let Some(s) = &current {
        if open_form_token(auth, "sign-out", token).as_deref() != Some(s.id.to_hex().as_str()) {
            return notice(
                StatusCode::BAD_REQUEST,
                "Sign out",
                "Cannot sign out",
                "The sign-out form has expired. Reload the page and try again.",
            );
        }
        if let Err(e) = state.end_session(&s.id).await {
            tracing::error!(error = %e, "cannot delete the session at sign-out");
        }
        tracing::info!(user = %s.identity.sub, "signed out");
    }
    let target = query_target
        .and_then(|t| checked_redirect(&t, allowed))
        .map(|u| u.to_string())
        .or_else(|| auth.signout_redirect.clone())
        .unwrap_or_else(|| format!("{}/.pomerium/signed_out", host.origin));
    // End the provider's session too (RP-initiated logout), then come back.
    let mut idp_logout = None;
    if let (Some(lazy), Some(s)) = (&auth.oidc, &current) {
        if let Ok(oidc) = lazy.get().await {
            let hint = s.tokens.as_ref().and_then(|t| t.id_token.as_deref());
            idp_logout = oidc.end_session_url(hint, &target);
        }
    }
    let mut resp = redirect(idp_logout.as_deref().unwrap_or(&target));
    let name = auth.cookie_name(host.name);
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(auth, host.name, name, "", None, secure, true),
    );
    if auth.cookie.domain.is_some() {
        // A token-made session's cookie is host-only: clear that one too.
        resp.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(auth, host.name, name, "", None, secure, false),
        );
    }
    resp
}

/// One field of a form read by [`read_form`]; empty when absent.
fn form_field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

async fn read_form(req: Request<Incoming>) -> Option<Vec<(String, String)>> {
    let bytes = body::collect_limited(req.into_body(), MAX_FORM).await?;
    Some(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

/// A short page: a heading and one sentence, both escaped.
fn notice(status: StatusCode, title: &str, heading: &str, text: &str) -> Response<Body> {
    html(
        status,
        page_shell(
            title,
            &format!(
                "<h1>{}</h1><p>{}</p>",
                html_escape(heading),
                html_escape(text)
            ),
        ),
    )
}

fn page_shell(title: &str, content: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{} · gatehouse</title>\
<style>{STYLE}</style></head><body><main>{content}<footer>gatehouse</footer></main></body></html>\n",
        html_escape(title)
    )
}

fn login_form(
    auth: &Auth,
    target: &str,
    binding: Option<&str>,
    error: Option<&str>,
    username: &str,
) -> String {
    let token =
        codec::seal_login_form(&auth.cookie_sealer, target, binding, unix_now() + FORM_SECS);
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", html_escape(e)))
        .unwrap_or_default();
    page_shell(
        "Sign in",
        &format!(
            "<h1>Sign in</h1>{error}<form method=\"post\" action=\"/.pomerium/sign_in\">\
<input type=\"hidden\" name=\"token\" value=\"{token}\">\
<label for=\"username\">Username or email</label>\
<input id=\"username\" name=\"username\" value=\"{username}\" autocomplete=\"username\" {focus_user} required>\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" {focus_password} required>\
<button type=\"submit\">Sign in</button></form>",
            username = html_escape(username),
            focus_user = if username.is_empty() { "autofocus" } else { "" },
            focus_password = if username.is_empty() { "" } else { "autofocus" },
        ),
    )
}

fn user_page(auth: &Auth, s: Option<&Session>, host: &Host<'_>) -> String {
    let Some(s) = s else {
        let link = format!(
            "/.pomerium/sign_in?pomerium_redirect_uri={}",
            enc(&format!("{}/.pomerium/", host.origin))
        );
        let sign_in = if auth.can_sign_in() && auth.authenticate.is_none() {
            format!(
                "<p><a class=\"button\" href=\"{}\">Sign in</a></p>",
                html_escape(&link)
            )
        } else {
            String::new()
        };
        return page_shell(
            "Not signed in",
            &format!("<h1>You are not signed in</h1>{sign_in}"),
        );
    };
    let id = &s.identity;
    let groups = if id.groups.is_empty() {
        "none".to_string()
    } else {
        id.groups.join(", ")
    };
    let claims = serde_json::to_string_pretty(&user_json(s)).unwrap_or_default();
    let remaining = s.expires_at.saturating_sub(unix_now());
    page_shell(
        "Who am I",
        &format!(
            "<h1>{name}</h1><dl><dt>User</dt><dd>{sub}</dd><dt>Email</dt><dd>{email}</dd><dt>Groups</dt><dd>{groups}</dd>\
<dt>Signed in with</dt><dd>{idp}</dd><dt>Session ends in</dt><dd>{h} h {m} min</dd></dl>\
<details><summary>All claims</summary><pre>{claims}</pre></details>\
<form method=\"post\" action=\"/.pomerium/sign_out\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
<button type=\"submit\">Sign out</button></form>",
            name = html_escape(&id.name),
            sub = html_escape(&id.sub),
            email = html_escape(&id.email),
            groups = html_escape(&groups),
            idp = html_escape(&id.idp),
            h = remaining / 3600,
            m = remaining % 3600 / 60,
            claims = html_escape(&claims),
            token = form_token(auth, "sign-out", &s.id.to_hex()),
        ),
    )
}

fn sign_out_page(auth: &Auth, s: Option<&Session>) -> String {
    match s {
        None => page_shell("Sign out", "<h1>You are not signed in</h1>"),
        Some(s) => {
            let token = form_token(auth, "sign-out", &s.id.to_hex());
            page_shell(
                "Sign out",
                &format!(
                    "<h1>Sign out?</h1><p>You are signed in as {}.</p><form method=\"post\" action=\"/.pomerium/sign_out\">\
<input type=\"hidden\" name=\"token\" value=\"{token}\"><button type=\"submit\">Sign out</button></form>\
<p class=\"id\">Or use this <a href=\"/.pomerium/sign_out?token={token}\" rel=\"nofollow\">sign-out link</a> (valid 30 minutes, for this session only).</p>",
                    html_escape(&s.identity.email),
                ),
            )
        }
    }
}

const STYLE: &str = "body{margin:0;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f5f6f8;color:#1f2430}\
main{max-width:26rem;margin:10vh auto;padding:2rem 2.25rem;background:#fff;border-radius:12px;\
box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}h1{margin:0 0 1rem;font-size:1.4rem}\
label{display:block;margin:.75rem 0 .25rem;font-weight:600;font-size:.9rem}\
input{box-sizing:border-box;width:100%;padding:.55rem .7rem;border:1px solid #c9ced8;border-radius:8px;font:inherit}\
input:focus{outline:2px solid #3b6ef5;outline-offset:1px}\
button,.button{display:inline-block;margin-top:1.25rem;padding:.6rem 1.2rem;border:0;border-radius:8px;background:#3b6ef5;\
color:#fff;font:inherit;font-weight:600;cursor:pointer;text-decoration:none}button:focus{outline:2px solid #1f2430}\
.error{padding:.6rem .8rem;border-radius:8px;background:#fdecec;color:#9b1c1c}dl{display:grid;grid-template-columns:auto 1fr;\
gap:.3rem 1rem}dt{color:#5b6170}dd{margin:0}pre{overflow:auto;font-size:.8rem;background:#f5f6f8;padding:.75rem;border-radius:8px}\
footer{margin-top:1.5rem;color:#9aa0ad;font-size:.8rem}@media (prefers-color-scheme:dark){body{background:#15171c;color:#e6e8ee}\
main{background:#1f2229;box-shadow:none}input{background:#15171c;color:#e6e8ee;border-color:#3a3f4b}pre{background:#15171c}}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cookies_are_stripped_others_kept() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; _pomerium=secret; b=2"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("_pomerium_csrf=x"));
        strip_cookies(&mut h, "_pomerium");
        let all: Vec<&str> = h
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(all, ["a=1; b=2"]);
    }

    #[test]
    fn frame_ancestor_origins() {
        assert!(origin_matches(
            "https://parent.example.com",
            "https://parent.example.com"
        ));
        assert!(origin_matches(
            "https://*.example.com",
            "https://a.example.com"
        ));
        assert!(!origin_matches(
            "https://*.example.com",
            "https://example.com"
        ));
        assert!(!origin_matches(
            "https://*.example.com",
            "http://a.example.com"
        ));
        assert!(!origin_matches(
            "https://parent.example.com",
            "https://evil.example.com"
        ));
        assert!(!origin_matches("'self'", "https://a.example.com"));
    }

    fn from(url: &str) -> gatehouse_config::From {
        let u = url::Url::parse(url).unwrap();
        let host = u.host_str().unwrap().to_string();
        gatehouse_config::From {
            https: u.scheme() == "https",
            host: match host.strip_prefix('*') {
                Some(suffix) => gatehouse_config::HostPattern::Wildcard(suffix.into()),
                None => gatehouse_config::HostPattern::Exact(host),
            },
            port: u.port(),
        }
    }

    #[test]
    fn redirect_targets_are_origins_gatehouse_serves() {
        let routes = [
            from("https://app.localhost"),
            from("https://pinned.localhost:9443"),
            from("http://plain.localhost"),
            from("https://*.apps.localhost"),
        ];
        let auth = gatehouse_config::AuthenticateUrl {
            https: true,
            host: "authenticate.localhost".into(),
            port: Some(8443),
        };
        let ok = |u: &str| serves_origin(&url::Url::parse(u).unwrap(), Some(&auth), &routes, 8443);
        for good in [
            "https://app.localhost:8443/x?y=1",
            "https://app.localhost/x",
            "https://pinned.localhost:9443/",
            "http://plain.localhost:8443/",
            "https://plain.localhost/",
            "https://a.apps.localhost:8443/",
            "https://authenticate.localhost:8443/.pomerium/",
        ] {
            assert!(ok(good), "{good}");
        }
        for bad in [
            "http://app.localhost:8443/",
            "http://app.localhost/",
            "https://app.localhost:9999/",
            "https://pinned.localhost:8443/",
            "https://pinned.localhost/",
            "http://plain.localhost:9999/",
            "https://authenticate.localhost/",
            "http://authenticate.localhost:8443/",
            "https://evil.example/",
            "https://apps.localhost:8443/",
            "ftp://app.localhost/",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }

    #[test]
    fn browsers_prove_their_binding() {
        let (nonce, binding) = new_binding();
        assert!(valid_binding(&binding));
        assert_eq!(binding_of(&nonce), binding);
        assert!(!valid_binding("short") && !valid_binding(&"=".repeat(43)));
        // The sealed hand-off itself is `gatehouse_identity::codec`'s (tested there).
        // The pending cookie that proves the binding.
        let mut headers = HeaderMap::new();
        let name = format!("_pomerium_pending_{}", &binding[..10]);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=1; {name}={nonce}")).unwrap(),
        );
        assert!(holds_binding_named(&headers, "_pomerium", &binding));
        let (other_nonce, _) = new_binding();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{name}={other_nonce}")).unwrap(),
        );
        assert!(!holds_binding_named(&headers, "_pomerium", &binding));
        assert!(!holds_binding_named(
            &HeaderMap::new(),
            "_pomerium",
            &binding
        ));
    }
}

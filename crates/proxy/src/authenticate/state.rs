//! The authenticate service's state: what outlives reloads
//! ([`IdentityState`]) and one configuration's sign-in settings ([`Auth`]),
//! with the request facts every flow reads ([`Host`], [`Scope`]).

use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::{CookieSettings, Provider, SameSite, SignIn};
use gatehouse_identity::cookie::Sealer;
use gatehouse_identity::github::{GitHub, GitHubSettings};
use gatehouse_identity::local::{Directory, HashGate, Throttle};
use gatehouse_identity::oidc::{Oidc, OidcSettings};
use gatehouse_identity::session::{Session, SessionId, unix_now};
use gatehouse_identity::store::SessionStore;

/// Lifetime of a sign-in hand-off and of a login form.
pub(super) const HANDOFF_SECS: u64 = 300;
pub(super) const FORM_SECS: u64 = 1800;
/// Largest login form accepted.
pub(super) const MAX_FORM: usize = 16 * 1024;

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
    pub(super) refreshing:
        std::sync::Mutex<std::collections::HashMap<SessionId, Arc<tokio::sync::Mutex<()>>>>,
    pub(super) random_cookie_key: [u8; 32],
    pub(super) random_shared_key: [u8; 32],
    /// Where sign-ins, refreshes and store errors are counted.
    pub(super) metrics: Arc<crate::metrics::Metrics>,
    /// A signed-out session's cached assertions are dropped here.
    pub(super) assertions: Arc<gatehouse_assertion::Cache<http::HeaderValue>>,
}

impl IdentityState {
    pub fn new(
        sign_in: &SignIn,
        store: Arc<gatehouse_identity::store::Counted>,
        metrics: Arc<crate::metrics::Metrics>,
        assertions: Arc<gatehouse_assertion::Cache<http::HeaderValue>>,
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
    pub(super) async fn open_session(
        &self,
        identity: gatehouse_identity::Identity,
        lifetime: Duration,
        tokens: Option<gatehouse_identity::oidc::Tokens>,
        via: &'static str,
        client: &str,
    ) -> Option<Session> {
        let mut session = Session::new(identity, unix_now(), lifetime.as_secs());
        session.tokens = tokens;
        session.client = client.to_string();
        self.store_session(session, via).await
    }

    /// Stores a session made elsewhere (a token hand-off) and counts it.
    pub(super) async fn store_session(
        &self,
        session: Session,
        via: &'static str,
    ) -> Option<Session> {
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
    pub(super) async fn end_session(
        &self,
        id: &SessionId,
    ) -> Result<(), gatehouse_identity::store::StoreError> {
        self.assertions.forget_session(&id.0);
        self.store.delete(id).await
    }
}

/// An OpenID provider, discovered on first use (and again after a failure).
pub(super) struct LazyOidc {
    pub(super) settings: OidcSettings,
    pub(super) discovered: tokio::sync::Mutex<Option<Arc<Oidc>>>,
}

impl LazyOidc {
    /// The provider `p` as client `client_id` (the global one or a route's).
    fn new(p: &gatehouse_config::OidcProvider, client_id: &str, client_secret: &str) -> LazyOidc {
        LazyOidc {
            settings: OidcSettings {
                provider: p.name.clone(),
                issuer: p.issuer.clone(),
                client_id: client_id.to_string(),
                client_secret: client_secret.to_string(),
                scopes: p.scopes.clone(),
                request_params: p.request_params.clone(),
            },
            discovered: tokio::sync::Mutex::new(None),
        }
    }

    pub(super) async fn get(&self) -> Result<Arc<Oidc>, gatehouse_identity::oidc::OidcError> {
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
    pub(super) cookie_sealer: Sealer,
    pub(super) shared_sealer: Sealer,
    pub(super) directory: Option<Arc<Directory>>,
    pub(super) oidc: Option<Arc<LazyOidc>>,
    /// Routes' own clients of the same provider, by key (`idp_client_id`
    /// on a route).
    pub(super) route_oidc: Vec<(String, Arc<LazyOidc>)>,
    pub(super) github: Option<Arc<GitHub>>,
    /// Name of a configured provider that is not built yet.
    pub(super) unsupported: Option<String>,
    pub(super) authenticate: Option<gatehouse_config::AuthenticateUrl>,
    /// The authenticate host's own cookie name, built once.
    pub(super) authenticate_cookie: String,
    pub(super) signout_redirect: Option<String>,
    /// Route hosts whose cookie has its own SameSite (`cookie_same_site` on
    /// the route, for embedding).
    pub(super) host_same_site: Vec<(gatehouse_config::HostPattern, SameSite)>,
    /// `programmatic_redirect_domain_whitelist`.
    pub(crate) programmatic_domains: Vec<String>,
    /// The `idp` a main sign-in's session carries under this configuration;
    /// sessions of another provider (or records from before provenance was
    /// stored, made from tokens) are signed out.
    pub(super) main_idp: Option<String>,
    /// Every route's `from`: the origins sign-in may return to.
    pub(super) route_origins: Vec<gatehouse_config::From>,
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
            Provider::Oidc(p) => (
                None,
                Some(Arc::new(LazyOidc::new(p, &p.client_id, &p.client_secret))),
                None,
            ),
            Provider::NotYetSupported(p) => (None, None, Some(p.clone())),
        };
        let route_oidc = match &sign_in.provider {
            Provider::Oidc(p) => sign_in
                .route_clients
                .iter()
                .map(|c| {
                    let lazy = LazyOidc::new(p, &c.client_id, &c.client_secret);
                    (c.key.clone(), Arc::new(lazy))
                })
                .collect(),
            _ => Vec::new(),
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
            route_oidc,
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
    pub(super) fn same_site(&self, host: &str) -> Option<SameSite> {
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

    /// The OpenID client for sessions of `idp` (a route's own, by its key;
    /// the global one otherwise).
    pub(super) fn oidc_for(&self, idp: &str) -> Option<&Arc<LazyOidc>> {
        self.route_oidc
            .iter()
            .find(|(k, _)| k == idp)
            .map(|(_, o)| o)
            .or(self.oidc.as_ref())
    }

    /// Whether `idp` names a route's own client of this configuration.
    pub(super) fn is_route_client(&self, idp: &str) -> bool {
        self.route_oidc.iter().any(|(k, _)| k == idp)
    }

    /// The `idp` a main sign-in for `route` must carry.
    pub(super) fn idp_of<'a>(&'a self, route: &'a gatehouse_config::Route) -> Option<&'a str> {
        route.idp_client.as_deref().or(self.main_idp.as_deref())
    }

    pub fn can_sign_in(&self) -> bool {
        self.directory.is_some() || self.oidc.is_some() || self.github.is_some()
    }

    /// The cookie this host uses: the authenticate host has its own.
    pub(super) fn cookie_name(&self, host: &str) -> &str {
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
        let idp = session.identity.idp.as_str();
        if p.is_main_sign_in()
            && self.main_idp.as_deref() != Some(idp)
            && !self.is_route_client(idp)
        {
            // Another provider's session, or a token-made record stored
            // before provenance was: not a main sign-in of this configuration.
            return false;
        }
        // Made with a client this configuration no longer has for that
        // `idp` (the global client id changed, a route client moved): out.
        if p.is_main_sign_in()
            && !session.client.is_empty()
            && self
                .oidc_for(idp)
                .is_none_or(|o| o.settings.client_id != session.client)
        {
            return false;
        }
        if let Scope::Route { route, .. } = scope {
            // A route with its own client takes only sessions made with it,
            // and the others only the global client's (as Pomerium: another
            // client may admit users this one does not).
            if p.is_main_sign_in() && self.idp_of(route) != Some(idp) {
                return false;
            }
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

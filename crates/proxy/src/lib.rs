//! The gatehouse data plane.
//!
//! Owns: listeners and TLS (SNI, self-signed fallback), the route table,
//! forwarding (headers, rewrites, streaming bodies, websockets, upstream
//! pools), gatehouse's own pages, and applying a new configuration without
//! dropping requests. Must not: parse configuration files (that is
//! `gatehouse-config`) or watch files and signals (that is the binary).
//!
//! A request's phases are in [`dispatch`]; the error → status mapping is in
//! [`error`].
#![forbid(unsafe_code)]

pub mod access_log;
pub mod acme;
pub mod answers;
pub mod assertion;
pub mod authenticate;
pub mod authorize;
pub mod balance;
pub mod bearer;
pub mod body;
pub mod client_cert;
pub mod csrf;
pub mod deadline;
pub mod dispatch;
pub mod error;
pub mod forward;
pub mod forward_auth;
pub mod health;
pub mod identity_headers;
pub mod lane;
pub mod metrics;
pub mod otlp;
pub mod portal;
pub mod private_file;
pub mod proxy_protocol;
pub mod published;
mod relay;
pub mod request;
pub mod routing;
pub mod runtime;
pub mod server;

pub mod hex;

pub mod tls;
pub mod trace;
pub mod tunnel;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use gatehouse_config::Config;
use gatehouse_identity::Session;
use http::{Request, Response};

use crate::body::{Body, RequestBody};
use crate::runtime::Runtime;
use gatehouse_identity::console_store::ConsoleStore;

pub use server::{Listeners, bind, serve};

/// Listener settings fixed at start; changing them needs a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub address: String,
    pub insecure: bool,
    pub http_redirect_addr: Option<String>,
    pub http1_only: bool,
    pub timeout_read: Duration,
    pub timeout_idle: Duration,
    /// Port HTTPS is served on, for redirects from `http_redirect_addr`.
    pub https_port: u16,
    /// `use_proxy_protocol`: every connection starts with a PROXY header.
    pub proxy_protocol: bool,
    /// A digest of the metrics listener's settings (address, basic auth,
    /// certificate, client CA), read at start: a change needs a restart.
    pub metrics_digest: [u8; 32],
}

impl Settings {
    fn of(config: &Config) -> Settings {
        Settings {
            address: config.address.clone(),
            insecure: config.insecure_server,
            http_redirect_addr: config.http_redirect_addr.clone(),
            http1_only: config
                .options
                .codec_type
                .as_ref()
                .is_some_and(|c| c.value == "http1"),
            timeout_read: config.timeout_read,
            timeout_idle: config.timeout_idle,
            https_port: config
                .address
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(443),
            proxy_protocol: config.options.use_proxy_protocol == Some(true),
            metrics_digest: metrics_digest(config),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    #[error(transparent)]
    Store(#[from] gatehouse_identity::store::StoreError),
}

/// A configuration checked and built, ready to be put in force.
pub struct Prepared {
    certs: tls::CertStore,
    runtime: runtime::Runtime,
    keys: Vec<String>,
    /// What autocert is to cover under this configuration.
    acme: acme::Plan,
}

/// The answer of a [`RouteService`]: boxed, as the service is a trait
/// object (it is not on the hot path).
pub type Answer<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send + 'a>>;

/// A service mounted on the proxy from a crate above it (the console):
/// the dispatcher calls it for a route whose action is
/// [`RouteAction::Console`](gatehouse_config::RouteAction::Console), once
/// the route's policy has allowed the request. It gets what it needs with
/// each call and keeps no reference to the proxy: anything it does outside
/// a request (applying a change, following other instances) is handed the
/// proxy by whoever owns both (the binary).
pub trait RouteService: Send + Sync {
    /// Answers `req`, which the route's policy has allowed.
    ///
    /// `proxy` is the proxy serving the request (to put a change in force
    /// with [`Proxy::prepare`] and [`Proxy::commit`]); `runtime` is the
    /// configuration in force when the request arrived; `session` is the
    /// one the [`Permit`](crate::authorize::Permit) was granted to, if any;
    /// `request_id` is the request's `X-Request-Id`. The dispatcher adds
    /// the route's response headers to the answer.
    fn serve<'a>(
        &'a self,
        proxy: &'a Proxy,
        runtime: &'a Runtime,
        req: Request<RequestBody>,
        session: Option<&'a Session>,
        request_id: &'a str,
    ) -> Answer<'a>;
}

/// The running proxy: the current runtime and certificates, both swapped
/// atomically by [`Proxy::apply`].
pub struct Proxy {
    pub(crate) runtime: ArcSwap<runtime::Runtime>,
    pub(crate) certs: Arc<tls::CertResolver>,
    /// Autocert's manager, told each configuration's plan (`None` without
    /// a Tokio runtime at start).
    acme_plan: Option<tokio::sync::watch::Sender<acme::Plan>>,
    /// The TLS settings new connections get (certificates through the
    /// resolver; the client-certificate verifier of the configuration in
    /// force).
    pub(crate) server_tls: ArcSwap<rustls::ServerConfig>,
    clients: upstream::ClientCache,
    /// The authenticate service's lasting state (throttle, secrets).
    pub(crate) identity: authenticate::IdentityState,
    /// Sessions, shared by every instance using the same store.
    pub(crate) store: Arc<gatehouse_identity::store::Counted>,
    /// Signed assertions, reused across requests and reloads.
    pub(crate) assertions: Arc<assertion::Assertions>,
    /// Process-wide metrics (served on `metrics_address`).
    pub(crate) metrics: Arc<metrics::Metrics>,
    /// What serves console routes, registered by the binary.
    pub(crate) console: Option<Arc<dyn RouteService>>,
    /// The session store's backend as the console's store, when it can be
    /// one (opened once, with the session store).
    console_store: Option<Arc<dyn ConsoleStore>>,
    pub(crate) settings: Settings,
    /// The session store opened at start.
    pub(crate) storage: gatehouse_config::Storage,
    /// Set when the drain starts (health: `proxy.service` is TERMINATING).
    pub(crate) draining: std::sync::atomic::AtomicBool,
}

impl Proxy {
    /// Builds the proxy for `config`, with `console` serving its console
    /// routes (`None`: they answer that the console is not configured).
    pub fn new(
        config: Config,
        console: Option<Arc<dyn RouteService>>,
    ) -> Result<Arc<Proxy>, ApplyError> {
        let settings = Settings::of(&config);
        let clients = upstream::ClientCache::default();
        let certs = cert_store(&config)?;
        let (store, console_store) =
            gatehouse_identity::backend::open_shared(&config.sign_in.storage)?;
        let metrics = Arc::new(metrics::Metrics::with_store(store.clone()));
        let assertions = Arc::new(assertion::new_cache());
        let identity = authenticate::IdentityState::new(
            &config.sign_in,
            store.clone(),
            metrics.clone(),
            assertions.clone(),
        );
        let storage = config.sign_in.storage.clone();
        tracing::info!(store = %storage.describe(), "session store");
        let lasting = runtime::Lasting {
            clients: &clients,
            identity: &identity,
            metrics: &metrics,
            assertions: &assertions,
        };
        let plan = acme_plan(&config, &certs);
        let (rt, _) = runtime::Runtime::build(config, &lasting)?;
        let acme_certs = Arc::new(acme::Certs::default());
        let acme_plan = acme::start(
            acme_certs.clone(),
            Some(acme::Shared {
                store: store.clone(),
                key: rt
                    .config
                    .sign_in
                    .shared_secret
                    .unwrap_or_else(|| identity.shared_key()),
            }),
            plan,
        );
        let certs = Arc::new(tls::CertResolver {
            store: ArcSwap::from_pointee(certs),
            acme: acme_certs,
        });
        let server_tls = ArcSwap::new(tls::server_config(
            certs.clone(),
            !settings.http1_only,
            rt.client_auth.as_ref().map(|a| a.handshake.clone()),
        ));
        Ok(Arc::new(Proxy {
            runtime: ArcSwap::from_pointee(rt),
            certs,
            acme_plan,
            server_tls,
            clients,
            identity,
            store,
            assertions,
            metrics,
            console,
            console_store,
            settings,
            storage,
            draining: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Applies a new configuration. On error nothing changes. Requests and
    /// connections in flight keep the configuration they started with.
    pub fn apply(&self, config: Config) -> Result<(), ApplyError> {
        let new_settings = Settings::of(&config);
        if new_settings != self.settings {
            tracing::warn!(
                "listener settings (address, insecure_server, http_redirect_addr, codec_type, timeout_read, timeout_idle, use_proxy_protocol, metrics_*, health_check_addr) changed: they apply after a restart"
            );
        }
        if config.sign_in.storage != self.storage {
            tracing::warn!(
                "databroker_storage_* changed: the session store in use stays {} until a restart",
                self.storage.describe()
            );
        }
        let prepared = self.prepare(config)?;
        self.commit(prepared);
        Ok(())
    }

    /// Everything [`Proxy::apply`] checks and builds, without putting it in
    /// force (the console saves a change only once it is known to work).
    pub fn prepare(&self, config: Config) -> Result<Prepared, ApplyError> {
        let certs = cert_store(&config)?;
        let acme = acme_plan(&config, &certs);
        let (runtime, keys) = runtime::Runtime::build(config, &self.lasting())?;
        Ok(Prepared {
            certs,
            runtime,
            keys,
            acme,
        })
    }

    /// What a new runtime is built with: the state that outlives it.
    fn lasting(&self) -> runtime::Lasting<'_> {
        runtime::Lasting {
            clients: &self.clients,
            identity: &self.identity,
            metrics: &self.metrics,
            assertions: &self.assertions,
        }
    }

    /// Puts a prepared configuration in force, atomically.
    pub fn commit(&self, prepared: Prepared) {
        self.certs.store.store(Arc::new(prepared.certs));
        if let Some(tx) = &self.acme_plan {
            tx.send_replace(prepared.acme);
        }
        self.server_tls.store(tls::server_config(
            self.certs.clone(),
            !self.settings.http1_only,
            prepared
                .runtime
                .client_auth
                .as_ref()
                .map(|a| a.handshake.clone()),
        ));
        self.runtime.store(Arc::new(prepared.runtime));
        self.clients.retain(&prepared.keys);
    }

    /// The runtime (configuration and its built state) in force.
    pub fn runtime(&self) -> arc_swap::Guard<Arc<runtime::Runtime>> {
        self.runtime.load()
    }

    /// The session store's backend as a store for the console's state,
    /// when it can be one (the embedded file, Redis); opened at start with
    /// the session store, as both share one file or connection.
    pub fn console_store(&self) -> Option<&Arc<dyn ConsoleStore>> {
        self.console_store.as_ref()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The session store (shared by every instance using the same backend).
    pub fn sessions(&self) -> &Arc<gatehouse_identity::store::Counted> {
        &self.store
    }

    /// The process-wide metrics (served on `metrics_address`).
    pub fn metrics(&self) -> &std::sync::Arc<metrics::Metrics> {
        &self.metrics
    }
}

/// The metrics and health listeners' settings as one digest (secrets
/// included, so only a digest is kept).
fn metrics_digest(config: &Config) -> [u8; 32] {
    let o = &config.options;
    let mut text = String::new();
    for v in [
        &o.metrics_address,
        &o.metrics_basic_auth,
        &o.metrics_certificate,
        &o.metrics_certificate_file,
        &o.metrics_certificate_key,
        &o.metrics_certificate_key_file,
        &o.metrics_client_ca,
        &o.metrics_client_ca_file,
        &o.health_check_addr,
    ] {
        text.push_str(v.as_ref().map_or("", |v| v.value.as_str()));
        text.push('\0');
    }
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn cert_store(config: &Config) -> Result<tls::CertStore, tls::TlsError> {
    if config.insecure_server {
        return Ok(tls::CertStore::default());
    }
    if config.certificates.is_empty() {
        let cert = tls::self_signed(config)?;
        if config.autocert.is_some() {
            tracing::info!(
                "autocert: a self-signed certificate serves each host until its certificate is obtained"
            );
        } else {
            tracing::warn!(
                "NO CERTIFICATE CONFIGURED: serving a self-signed certificate generated at start. \
                 Browsers will warn; set `certificate_file`/`certificate_key_file` (or `certificates`), or `autocert: true`, for real use"
            );
        }
        let mut store = tls::CertStore::new(std::slice::from_ref(&cert))?;
        store.stand_in = true;
        return Ok(store);
    }
    tls::CertStore::new(&config.certificates)
}

/// What autocert covers: its hosts that no configured certificate names.
fn acme_plan(config: &Config, certs: &tls::CertStore) -> acme::Plan {
    let a = config.autocert.as_ref()?;
    let mut a = a.clone();
    // The self-signed stand-in names every host: only configured ones count.
    if !config.certificates.is_empty() {
        a.hosts.retain(|h| !certs.covers(h));
    }
    Some(Arc::new(a))
}

/// A header map from pairs, for unit tests.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

//! Upstream connections: pooled HTTP clients (shared by routes with equal
//! TLS settings and kept across reloads) and weighted round-robin choice of
//! the `to` target.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gatehouse_config::{UpstreamScheme, UpstreamTls};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

pub type HttpClient = Client<HttpsConnector<HttpConnector>, crate::body::Body>;

/// How to reach one route's upstreams.
#[derive(Clone)]
pub struct UpstreamClients {
    /// http and https targets; ALPN decides HTTP/1.1 or HTTP/2 for https.
    pub auto: HttpClient,
    /// HTTP/1.1 only: websocket upgrades cannot ride on HTTP/2.
    pub http1: HttpClient,
    /// h2c targets: HTTP/2 with prior knowledge.
    pub h2c: HttpClient,
    /// Idle HTTP/1 connections to http targets, for lanes.
    pub lanes: Arc<crate::lane::Pool>,
}

impl UpstreamClients {
    pub fn for_target(&self, scheme: UpstreamScheme, upgrade: bool) -> &HttpClient {
        match scheme {
            UpstreamScheme::H2c => &self.h2c,
            _ if upgrade => &self.http1,
            _ => &self.auto,
        }
    }
}

/// Clients by TLS settings, kept across reloads so pooled connections survive.
pub struct ClientCache {
    clients: Mutex<HashMap<String, UpstreamClients>>,
    /// One pool of idle HTTP/1 connections to plain-HTTP upstreams (TLS
    /// settings do not apply to them).
    lanes: Arc<crate::lane::Pool>,
}

impl Default for ClientCache {
    fn default() -> ClientCache {
        ClientCache {
            clients: Mutex::default(),
            lanes: Arc::new(crate::lane::Pool::new(http_connector())),
        }
    }
}

impl ClientCache {
    pub fn get(&self, tls: &UpstreamTls) -> Result<UpstreamClients, rustls::Error> {
        let key = tls.pool_key();
        let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let clients = build_clients(tls, self.lanes.clone())?;
        map.insert(key, clients.clone());
        Ok(clients)
    }

    /// Drops clients no route uses any more (after a reload).
    pub fn retain(&self, keys: &[String]) {
        let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|k, _| keys.contains(k));
    }
}

fn http_connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    http.set_keepalive(Some(Duration::from_secs(60)));
    http
}

fn build_clients(
    tls: &UpstreamTls,
    lanes: Arc<crate::lane::Pool>,
) -> Result<UpstreamClients, rustls::Error> {
    let tls_config = client_tls_config(tls)?;
    let connector = |h2: bool| {
        let b = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config.clone())
            .https_or_http();
        let b = match &tls.server_name {
            Some(name) => match ServerName::try_from(name.clone()) {
                Ok(n) => b.with_server_name_resolver(FixedServerNameResolver::new(n)),
                Err(_) => b,
            },
            None => b,
        };
        if h2 {
            b.enable_all_versions().wrap_connector(http_connector())
        } else {
            b.enable_http1().wrap_connector(http_connector())
        }
    };
    let builder = || {
        let mut b = Client::builder(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(crate::lane::IDLE_TIMEOUT)
            .pool_max_idle_per_host(crate::lane::MAX_IDLE_PER_AUTHORITY)
            .http1_preserve_header_case(false)
            .http2_adaptive_window(true);
        b
    };
    Ok(UpstreamClients {
        auto: builder().build(connector(true)),
        http1: builder().build(connector(false)),
        h2c: {
            let mut b = builder();
            b.http2_only(true);
            b.build(connector(false))
        },
        lanes,
    })
}

fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for err in &found.errors {
                tracing::warn!(error = %err, "could not load a system CA certificate");
            }
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!("no system CA certificates found: https upstreams need tls_custom_ca or tls_skip_verify");
            }
            Arc::new(store)
        })
        .clone()
}

/// TLS to servers gatehouse calls on its own behalf (the OTLP collector):
/// the system's CAs.
pub(crate) fn system_tls_config() -> Result<ClientConfig, rustls::Error> {
    system_tls_config_with(&[])
}

/// As [`system_tls_config`], also trusting `extra` (a private CA: the
/// ACME server's `autocert_trusted_ca`).
pub(crate) fn system_tls_config_with(
    extra: &[CertificateDer<'static>],
) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = if extra.is_empty() {
        system_roots()
    } else {
        let mut store = RootCertStore::clone(&system_roots());
        for ca in extra {
            store.add(ca.clone())?;
        }
        Arc::new(store)
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn client_tls_config(tls: &UpstreamTls) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if tls.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else if !tls.custom_ca.is_empty() {
        let mut store = RootCertStore::empty();
        for ca in &tls.custom_ca {
            store.add(ca.clone())?;
        }
        builder.with_root_certificates(store)
    } else {
        builder.with_root_certificates(system_roots())
    };
    match &tls.client_cert {
        Some(c) => builder.with_client_auth_cert(c.chain.clone(), c.key.clone_key()),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// `tls_skip_verify`: accept any upstream certificate (signatures on the
/// handshake are still checked so the connection is a real TLS session).
#[derive(Debug)]
pub struct NoVerify(pub Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

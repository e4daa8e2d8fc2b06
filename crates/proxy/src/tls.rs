//! Downstream TLS: certificate choice by SNI (exact name, then wildcard,
//! then the first certificate), swappable at reload without touching open
//! connections, and the self-signed certificate for quickstarts.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_config::{Certificate, Config, HostPattern};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The certificates in force; replaced whole on reload.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored as `.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
    /// The self-signed stand-in (no certificate configured): an autocert
    /// certificate goes before it.
    pub stand_in: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate {origin}: unsupported private key: {source}")]
    Key {
        origin: String,
        source: rustls::Error,
    },
    #[error("certificate {origin}: the private key does not match the certificate")]
    Mismatch { origin: String },
    #[error("certificate {origin}: cannot parse: {message}")]
    Parse { origin: String, message: String },
    #[error("cannot generate a self-signed certificate: {0}")]
    SelfSigned(String),
}

impl CertStore {
    pub fn new(certs: &[Certificate]) -> Result<CertStore, TlsError> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let mut store = CertStore::default();
        for c in certs {
            let key = provider
                .key_provider
                .load_private_key(c.key.clone_key())
                .map_err(|source| TlsError::Key {
                    origin: c.origin.clone(),
                    source,
                })?;
            let ck = CertifiedKey::new(c.chain.clone(), key);
            if let Err(rustls::Error::InconsistentKeys(_)) = ck.keys_match() {
                return Err(TlsError::Mismatch {
                    origin: c.origin.clone(),
                });
            }
            let ck = Arc::new(ck);
            for name in cert_names(c)? {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix('*') {
                    Some(suffix) if suffix.starts_with('.') => {
                        store
                            .wildcard
                            .entry(suffix.to_string())
                            .or_insert_with(|| ck.clone());
                    }
                    _ => {
                        store.exact.entry(name).or_insert_with(|| ck.clone());
                    }
                }
            }
            if store.default.is_none() {
                store.default = Some(ck);
            }
        }
        Ok(store)
    }

    pub fn is_empty(&self) -> bool {
        self.default.is_none()
    }

    /// A configured certificate naming `host` (lower case), exactly or by
    /// a wildcard (which covers exactly one label).
    fn named(&self, host: &str) -> Option<&Arc<CertifiedKey>> {
        self.exact.get(host).or_else(|| {
            let dot = host.find('.')?;
            self.wildcard.get(&host[dot..])
        })
    }

    /// Whether a configured certificate names `host` (autocert leaves such
    /// hosts alone).
    pub fn covers(&self, host: &str) -> bool {
        self.named(host).is_some()
    }
}

/// DNS names (SAN, else CN) a certificate is valid for.
fn cert_names(c: &Certificate) -> Result<Vec<String>, TlsError> {
    let Some(leaf) = c.chain.first() else {
        return Ok(Vec::new());
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| TlsError::Parse {
            origin: c.origin.clone(),
            message: e.to_string(),
        })?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_string());
            }
        }
    }
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.push(s.to_string());
            }
        }
    }
    Ok(names)
}

/// The resolver rustls calls per handshake: a configured certificate that
/// names the host, else one obtained by autocert, else a configured
/// default (or the self-signed one). A TLS-ALPN-01 handshake (ALPN
/// `acme-tls/1` only) gets the challenge's answer, or nothing.
pub struct CertResolver {
    pub store: ArcSwap<CertStore>,
    pub acme: Arc<crate::acme::Certs>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = hello.server_name().map(str::to_ascii_lowercase);
        // RFC 8737: a validation offers `acme-tls/1` and nothing else.
        if let Some(alpn) = hello.alpn() {
            let offered: Vec<&[u8]> = alpn.collect();
            if offered == [crate::acme::ACME_TLS_ALPN] {
                return self.acme.challenge(host.as_deref()?);
            }
        }
        let store = self.store.load();
        if let Some(host) = host.as_deref() {
            if let Some(ck) = store.named(host).filter(|_| !store.stand_in) {
                return Some(ck.clone());
            }
            if let Some(ck) = self.acme.for_host(host) {
                return Some(ck);
            }
            if let Some(ck) = store.named(host) {
                return Some(ck.clone());
            }
        }
        store.default.clone()
    }
}

/// Builds the rustls server config around the shared resolver; with
/// `client_auth`, client certificates are asked for (see
/// [`crate::client_cert`]).
pub fn server_config(
    resolver: Arc<CertResolver>,
    http2: bool,
    client_auth: Option<Arc<crate::client_cert::HandshakeVerifier>>,
) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions");
    let builder = match client_auth {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(resolver);
    cfg.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    // TLS-ALPN-01 (autocert): negotiated only when the client offers
    // nothing else; such a connection is closed after its handshake.
    cfg.alpn_protocols.push(crate::acme::ACME_TLS_ALPN.to_vec());
    Arc::new(cfg)
}

/// The metrics listener's TLS settings: its certificate and, with
/// `metrics_client_ca`, a client certificate required from scrapers.
pub fn metrics_server_config(
    m: &gatehouse_config::MetricsTls,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions");
    let builder = if m.client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for ca in &m.client_ca {
            roots.add(ca.clone()).map_err(|e| TlsError::Parse {
                origin: "metrics_client_ca".into(),
                message: e.to_string(),
            })?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Parse {
                    origin: "metrics_client_ca".into(),
                    message: e.to_string(),
                })?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut cfg = builder
        .with_single_cert(m.certificate.chain.clone(), m.certificate.key.clone_key())
        .map_err(|e| TlsError::Parse {
            origin: m.certificate.origin.clone(),
            message: e.to_string(),
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A self-signed certificate for every host the routes serve, plus
/// `localhost` and `*.localhost`, for quickstarts without certificates.
pub fn self_signed(config: &Config) -> Result<Certificate, TlsError> {
    let mut names = vec!["localhost".to_string(), "*.localhost".to_string()];
    for r in &config.routes {
        let n = match &r.from.host {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Wildcard(s) => format!("*{s}"),
        };
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "gatehouse self-signed");
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    Ok(Certificate {
        chain: vec![cert.der().clone()],
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        origin: "self-signed".into(),
    })
}

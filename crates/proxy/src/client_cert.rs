//! Client certificates (downstream mTLS), as Pomerium: asked for in the TLS
//! handshake whenever a CA is configured, then judged per route.
//!
//! - The handshake ([`HandshakeVerifier`]) always checks that the client
//!   holds the key of the certificate it presents (the handshake
//!   signature). With `enforcement: reject_connection` it also requires a
//!   certificate and verifies it against every configured CA, so a missing
//!   or invalid one fails the handshake. Otherwise any certificate is
//!   accepted there, as Envoy's `ACCEPT_UNTRUSTED`: whether it is valid
//!   depends on the route (a route's `tls_downstream_client_ca` replaces
//!   `downstream_mtls.ca`).
//! - A route's [`Judge`] decides validity: the chain to its CAs (with the
//!   intermediates the client sent), the time, the client-auth usage, the
//!   revocation lists (the leaf's, when its issuer has one),
//!   `max_verify_depth` and
//!   `match_subject_alt_names`. The verdict is kept per connection.
//! - [`PeerCert`] is what a connection presented: the chain, and the facts
//!   the policy and the header templates read (fingerprint, SPKI hash,
//!   SANs), computed once per connection.

use std::sync::{Arc, Mutex};

use base64::Engine;
use gatehouse_config::{ClientCertRules, Enforcement, SanKind, SanMatcher};
use gatehouse_policy::CertFacts;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use x509_parser::extensions::GeneralName;

/// Verdicts kept per connection (one per route CA asked about).
const VERDICTS_PER_CONNECTION: usize = 16;

/// The most certificates a client may present (its leaf and
/// intermediates), and their total size: a chain is kept for the
/// connection's life, so it is bounded.
pub const MAX_CHAIN_CERTS: usize = 6;
pub const MAX_CHAIN_BYTES: usize = 16 * 1024;

/// Why the client-certificate settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("client certificates: {0}")]
pub struct ClientCertError(String);

/// Judges certificates against one set of CAs (the global one, or a
/// route's), with the global revocation, depth and name rules.
pub struct Judge {
    verifier: Arc<dyn ClientCertVerifier>,
    /// The CAs themselves: a client may send a copy along.
    roots: Vec<CertificateDer<'static>>,
    san: Vec<SanMatcher>,
    max_depth: u32,
}

impl std::fmt::Debug for Judge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judge")
            .field("roots", &self.roots.len())
            .finish()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl Judge {
    pub fn new(
        cas: &[CertificateDer<'static>],
        rules: &ClientCertRules,
    ) -> Result<Judge, ClientCertError> {
        let mut roots = RootCertStore::empty();
        for ca in cas {
            roots
                .add(ca.clone())
                .map_err(|e| ClientCertError(format!("a CA certificate cannot be used: {e}")))?;
        }
        let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
        if !rules.crls.is_empty() {
            // Only the leaf's revocation (Envoy's `only_verify_leaf_cert_crl`),
            // and, as Pomerium's authorize service, only when its issuer
            // has a list: a CA without one revokes nothing.
            builder = builder
                .with_crls(rules.crls.iter().cloned())
                .only_check_end_entity_revocation()
                .allow_unknown_revocation_status();
        }
        let verifier = builder
            .build()
            .map_err(|e| ClientCertError(format!("cannot build the verifier: {e}")))?;
        Ok(Judge {
            verifier,
            roots: cas.to_vec(),
            san: rules.match_subject_alt_names.clone(),
            max_depth: rules.max_verify_depth,
        })
    }

    /// Whether `cert` is valid here, computed once per connection.
    pub fn valid(self: &Arc<Judge>, cert: &PeerCert) -> bool {
        let key = Arc::as_ptr(self) as usize;
        let mut cache = cert.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, v)) = cache.iter().find(|(k, _, _)| *k == key) {
            return *v;
        }
        let verdict = match self.check(&cert.chain) {
            Ok(()) => true,
            Err(why) => {
                tracing::info!(
                    subject = %cert.subject,
                    fingerprint = %cert.facts.fingerprint,
                    reason = %why,
                    "client certificate not valid here"
                );
                false
            }
        };
        if cache.len() >= VERDICTS_PER_CONNECTION {
            // The oldest verdict goes.
            cache.remove(0);
        }
        // The judge is kept with its verdict, so its address is not reused.
        cache.push((key, self.clone(), verdict));
        verdict
    }

    fn check(&self, chain: &[CertificateDer<'static>]) -> Result<(), String> {
        let (leaf, intermediates) = chain.split_first().ok_or("no certificate")?;
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(|e| e.to_string())?;
        if self.max_depth > 0 && self.depth(chain) > self.max_depth as usize {
            return Err("chain longer than max_verify_depth".into());
        }
        if !self.san.is_empty() {
            let (_, parsed) =
                x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| e.to_string())?;
            if !sans(&parsed).iter().any(|(kind, name)| {
                self.san
                    .iter()
                    .any(|m| m.kind == *kind && m.pattern.is_match(name))
            }) {
                return Err("no subject alternative name matches".into());
            }
        }
        Ok(())
    }

    /// An upper bound of the verified chain's length minus one, as Go
    /// counts it (1: the leaf is issued by a trusted CA itself; 2: through
    /// one intermediate...). The verified path can only use the
    /// intermediates the client sent, so their number (copies of trusted
    /// CAs aside) plus one bounds it: a chain padded with certificates the
    /// path does not need is refused rather than measured by names, which
    /// a decoy certificate could fake.
    fn depth(&self, chain: &[CertificateDer<'static>]) -> usize {
        1 + chain[1..]
            .iter()
            .filter(|c| !self.roots.iter().any(|r| r == *c))
            .count()
    }
}

/// The subject alternative names of a certificate, by kind.
fn sans(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<(SanKind, String)> {
    let mut out = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => out.push((SanKind::Dns, d.to_string())),
                GeneralName::RFC822Name(e) => out.push((SanKind::Email, e.to_string())),
                GeneralName::URI(u) => out.push((SanKind::Uri, u.to_string())),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        out.push((SanKind::IpAddress, ip.to_string()));
                    }
                }
                // Microsoft's user principal name (1.3.6.1.4.1.311.20.2.3),
                // a UTF8String inside an explicit tag.
                GeneralName::OtherName(oid, value)
                    if oid.to_id_string() == "1.3.6.1.4.1.311.20.2.3" =>
                {
                    if let Some(upn) = utf8_in_explicit(value) {
                        out.push((SanKind::UserPrincipalName, upn));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The UTF8String inside `[0] EXPLICIT` (an otherName's value), leniently.
fn utf8_in_explicit(value: &[u8]) -> Option<String> {
    // [0] { UTF8String }: skip the outer tag and length, then the inner.
    let inner = der_contents(value)?;
    let (tag, text) = (inner.first()?, der_contents(inner)?);
    (*tag == 0x0c).then(|| String::from_utf8(text.to_vec()).ok())?
}

fn der_contents(v: &[u8]) -> Option<&[u8]> {
    let len = *v.get(1)? as usize;
    if len < 0x80 {
        return v.get(2..2 + len);
    }
    let n = len & 0x7f;
    if n == 0 || n > 2 {
        return None;
    }
    let mut l = 0usize;
    for b in v.get(2..2 + n)? {
        l = (l << 8) | *b as usize;
    }
    v.get(2 + n..2 + n + l)
}

/// What a connection presented.
pub struct PeerCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub facts: CertFacts,
    /// For the access log: the leaf's subject and issuer, RFC 4514.
    pub subject: String,
    pub issuer: String,
    /// Verdicts of the judges that looked at it: (judge address, judge, valid).
    verdicts: Mutex<Vec<(usize, Arc<Judge>, bool)>>,
}

impl std::fmt::Debug for PeerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCert")
            .field("fingerprint", &self.facts.fingerprint)
            .finish()
    }
}

impl PeerCert {
    /// The facts of a presented chain (its leaf first); `None` when the
    /// leaf cannot be read.
    pub fn new(chain: Vec<CertificateDer<'static>>) -> Option<PeerCert> {
        let leaf = chain.first()?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
        let sha256 = |b: &[u8]| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
        let fingerprint = crate::hex::lower(sha256(leaf.as_ref()).as_ref());
        let spki_hash = base64::engine::general_purpose::STANDARD
            .encode(sha256(parsed.tbs_certificate.subject_pki.raw).as_ref());
        let mut facts = CertFacts {
            fingerprint,
            spki_hash,
            ..CertFacts::default()
        };
        for (kind, name) in sans(&parsed) {
            match kind {
                SanKind::Email => facts.san_email.push(name),
                SanKind::Dns => facts.san_dns.push(name),
                SanKind::Uri => facts.san_uri.push(name),
                _ => {}
            }
        }
        let subject = parsed.subject().to_string();
        let issuer = parsed.issuer().to_string();
        Some(PeerCert {
            facts,
            subject,
            issuer,
            chain,
            verdicts: Mutex::new(Vec::new()),
        })
    }
}

/// A configuration's client-certificate state: the handshake's verifier,
/// and the judge of routes without a CA of their own.
#[derive(Debug)]
pub struct ClientAuth {
    pub handshake: Arc<HandshakeVerifier>,
    /// `downstream_mtls.ca`'s judge (`None`: routes without their own CA
    /// accept any certificate as valid, as Pomerium).
    pub global: Option<Arc<Judge>>,
    rules: ClientCertRules,
}

impl ClientAuth {
    pub fn new(rules: &ClientCertRules) -> Result<ClientAuth, ClientCertError> {
        let global = if rules.ca.is_empty() {
            None
        } else {
            Some(Arc::new(Judge::new(&rules.ca, rules)?))
        };
        let all = Arc::new(Judge::new(&rules.all_cas, rules)?);
        let hints = rules
            .all_cas
            .iter()
            .filter_map(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok())
            .map(|(_, c)| DistinguishedName::from(c.subject().as_raw().to_vec()))
            .collect();
        let handshake = Arc::new(HandshakeVerifier {
            reject: rules.enforcement == Enforcement::RejectConnection,
            all,
            hints,
            algorithms: provider().signature_verification_algorithms,
        });
        Ok(ClientAuth {
            handshake,
            global,
            rules: rules.clone(),
        })
    }

    /// The judge of a route: its own CA's, or the global one.
    pub fn judge_for(
        &self,
        route_ca: &[CertificateDer<'static>],
    ) -> Result<Option<Arc<Judge>>, ClientCertError> {
        if route_ca.is_empty() {
            Ok(self.global.clone())
        } else {
            Judge::new(route_ca, &self.rules).map(|j| Some(Arc::new(j)))
        }
    }
}

/// The handshake's client-certificate verifier (see the module docs).
#[derive(Debug)]
pub struct HandshakeVerifier {
    reject: bool,
    /// Every configured CA, for `reject_connection`.
    all: Arc<Judge>,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for HandshakeVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.reject
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let bytes: usize = end_entity.len() + intermediates.iter().map(|c| c.len()).sum::<usize>();
        if intermediates.len() + 1 > MAX_CHAIN_CERTS || bytes > MAX_CHAIN_BYTES {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(ClientCertError(
                    format!(
                        "a client certificate chain of {} certificates, {bytes} bytes (at most {MAX_CHAIN_CERTS}, {MAX_CHAIN_BYTES} bytes)",
                        intermediates.len() + 1
                    ),
                )))),
            ));
        }
        // Every presented leaf must at least be a certificate.
        if x509_parser::parse_x509_certificate(end_entity.as_ref()).is_err() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            ));
        }
        if self.reject {
            let chain: Vec<CertificateDer<'static>> = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
            self.all.check(&chain).map_err(|e| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                    rustls::OtherError(Arc::new(ClientCertError(e))),
                ))
            })?;
        }
        Ok(ClientCertVerified::assertion())
    }

    // The signatures prove that the client holds the certificate's key:
    // checked whatever the enforcement, or a certificate copied from
    // anywhere would pass `client_certificate` matchers.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

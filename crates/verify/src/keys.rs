//! Where the public keys come from, and the cache of fetched key sets.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;

use crate::error::Error;

/// Where a [`Verifier`](crate::Verifier) gets the proxy's public keys.
pub struct Keys(Source);

enum Source {
    Url(String),
    Discovery(String),
    File(PathBuf),
    Jwks(Vec<u8>),
    Pem(Vec<u8>),
}

impl Keys {
    /// The proxy's JWKS, for example
    /// `https://app.example.com/.well-known/pomerium/jwks.json`. Fetched on
    /// first use, cached, fetched again after the TTL or for an unknown key.
    pub fn jwks_url(url: impl Into<String>) -> Keys {
        Keys(Source::Url(url.into()))
    }

    /// An OpenID provider's keys, found through its discovery document
    /// (`<issuer>/.well-known/openid-configuration` → `jwks_uri`), which is
    /// read on the first fetch and must name the same issuer.
    pub fn discover(issuer: impl Into<String>) -> Keys {
        Keys(Source::Discovery(issuer.into()))
    }

    /// A JWKS document on disk (read like a URL: again after the TTL and for
    /// an unknown key, so replacing the file rotates keys).
    pub fn jwks_file(path: impl Into<PathBuf>) -> Keys {
        Keys(Source::File(path.into()))
    }

    /// A JWKS document given as bytes (fixed).
    pub fn jwks_json(json: impl Into<Vec<u8>>) -> Keys {
        Keys(Source::Jwks(json.into()))
    }

    /// One or more PEM public keys (`PUBLIC KEY`, `RSA PUBLIC KEY`), fixed.
    pub fn pem(pem: impl Into<Vec<u8>>) -> Keys {
        Keys(Source::Pem(pem.into()))
    }
}

/// One usable public key.
pub(crate) struct Key {
    kid: Option<String>,
    /// The JWK's `alg`, when it names a signing algorithm this crate knows.
    alg: Option<Algorithm>,
    family: AlgorithmFamily,
    curve: Option<EllipticCurve>,
    key: DecodingKey,
}

impl Key {
    fn fits(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        // A key without an id (PEM) may verify any token of its type.
        if let (Some(kid), Some(own)) = (kid, self.kid.as_deref())
            && own != kid
        {
            return false;
        }
        if self.alg.is_some_and(|key_alg| key_alg != alg) {
            return false;
        }
        if family_of(alg) != self.family {
            return false;
        }
        match (alg, &self.curve) {
            (Algorithm::ES256, Some(c)) => *c == EllipticCurve::P256,
            (Algorithm::ES384, Some(c)) => *c == EllipticCurve::P384,
            _ => true,
        }
    }
}

fn family_of(alg: Algorithm) -> AlgorithmFamily {
    use Algorithm as A;
    match alg {
        A::HS256 | A::HS384 | A::HS512 => AlgorithmFamily::Hmac,
        A::ES256 | A::ES384 => AlgorithmFamily::Ec,
        A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 => AlgorithmFamily::Rsa,
        A::EdDSA => AlgorithmFamily::Ed,
    }
}

/// A parsed key set.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// The keys that may verify a token with this `kid` (none: any) and alg.
    pub(crate) fn matching(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &DecodingKey> {
        self.keys
            .iter()
            .filter(move |k| k.fits(kid, alg))
            .map(|k| &k.key)
    }

    fn has(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        self.matching(kid, alg).next().is_some()
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    /// Parses a JWKS document. Keys this crate cannot use (symmetric keys,
    /// encryption keys, unknown types) are skipped with a log line; a
    /// document with no usable key is an error.
    pub(crate) fn from_jwks(bytes: &[u8]) -> Result<KeySet, String> {
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not a JSON document: {e}"))?;
        let Some(items) = doc.get("keys").and_then(Value::as_array) else {
            return Err("not a JWKS (no \"keys\" array)".into());
        };
        let mut keys = Vec::new();
        for item in items {
            let kid = item.get("kid").and_then(Value::as_str).unwrap_or("");
            let jwk: Jwk = match serde_json::from_value(item.clone()) {
                Ok(j) => j,
                Err(e) => {
                    tracing::debug!(kid, "skipping a key this verifier cannot read: {e}");
                    continue;
                }
            };
            if matches!(
                jwk.common.public_key_use,
                Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
            ) {
                continue;
            }
            let (family, curve) = match &jwk.algorithm {
                AlgorithmParameters::EllipticCurve(p) => {
                    (AlgorithmFamily::Ec, Some(p.curve.clone()))
                }
                AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
                AlgorithmParameters::OctetKeyPair(_) => (AlgorithmFamily::Ed, None),
                // A symmetric key in a public key set is a trap (anyone who
                // reads the JWKS could sign): never use it.
                AlgorithmParameters::OctetKey(_) => {
                    tracing::warn!(kid, "ignoring a symmetric (oct) key in the key set");
                    continue;
                }
            };
            let key = match DecodingKey::from_jwk(&jwk) {
                Ok(k) => k,
                Err(e) => {
                    tracing::debug!(kid, "skipping an unusable key: {e}");
                    continue;
                }
            };
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                alg: match jwk.common.key_algorithm {
                    None => None,
                    // A key for another purpose (encryption) never verifies.
                    Some(a) => match a.to_string().parse::<Algorithm>() {
                        Ok(alg) => Some(alg),
                        Err(_) => continue,
                    },
                },
                family,
                curve,
                key,
            });
        }
        if keys.is_empty() {
            return Err("the key set has no usable signing key".into());
        }
        Ok(KeySet { keys })
    }

    /// Parses one or more PEM public keys.
    pub(crate) fn from_pem(bytes: &[u8]) -> Result<KeySet, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "PEM is not text".to_string())?;
        let mut keys = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("-----BEGIN ") {
            let block = &rest[start..];
            let Some(end_marker) = block.find("-----END ") else {
                return Err("unterminated PEM block".into());
            };
            let end = block[end_marker..]
                .find("\n")
                .map(|i| end_marker + i + 1)
                .unwrap_or(block.len());
            let pem = &block[..end];
            rest = &block[end..];
            if pem.contains("PRIVATE KEY") {
                return Err(
                    "a private key was given: give the public key (openssl ec -pubout)".into(),
                );
            }
            let parsed = DecodingKey::from_ec_pem(pem.as_bytes())
                .map(|k| (k, AlgorithmFamily::Ec))
                .or_else(|_| {
                    DecodingKey::from_rsa_pem(pem.as_bytes()).map(|k| (k, AlgorithmFamily::Rsa))
                })
                .or_else(|_| {
                    DecodingKey::from_ed_pem(pem.as_bytes()).map(|k| (k, AlgorithmFamily::Ed))
                });
            match parsed {
                Ok((key, family)) => keys.push(Key {
                    kid: None,
                    alg: None,
                    family,
                    curve: None,
                    key,
                }),
                Err(e) => return Err(format!("unreadable PEM public key: {e}")),
            }
        }
        if keys.is_empty() {
            return Err("no PEM public key found".into());
        }
        Ok(KeySet { keys })
    }
}

pub(crate) struct FetchSettings {
    pub(crate) ttl: Duration,
    pub(crate) refetch_interval: Duration,
    pub(crate) ca_pem: Vec<Vec<u8>>,
    pub(crate) timeout: Duration,
}

enum Fetcher {
    Url {
        client: reqwest::Client,
        url: String,
        /// Discovery: `url` is the issuer; the key set's URL, once known.
        discovered: Option<std::sync::Mutex<Option<String>>>,
    },
    File(PathBuf),
}

#[derive(Default)]
struct State {
    set: Arc<KeySet>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
    etag: Option<String>,
}

/// The verifier's keys: fixed, or fetched and cached.
pub(crate) struct KeyCache {
    fetcher: Option<Fetcher>,
    source_name: String,
    state: RwLock<State>,
    fetch_lock: tokio::sync::Mutex<()>,
    ttl: Duration,
    refetch_interval: Duration,
}

impl KeyCache {
    pub(crate) fn new(keys: Keys, settings: FetchSettings) -> Result<KeyCache, Error> {
        let fixed = |set: KeySet, name: &str| KeyCache {
            fetcher: None,
            source_name: name.to_string(),
            state: RwLock::new(State {
                set: Arc::new(set),
                ..State::default()
            }),
            fetch_lock: tokio::sync::Mutex::new(()),
            ttl: settings.ttl,
            refetch_interval: settings.refetch_interval,
        };
        let fetched = |fetcher: Fetcher, name: String| KeyCache {
            fetcher: Some(fetcher),
            source_name: name,
            state: RwLock::new(State::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
            ttl: settings.ttl,
            refetch_interval: settings.refetch_interval,
        };
        let discovery = matches!(keys.0, Source::Discovery(_));
        Ok(match keys.0 {
            Source::Jwks(bytes) => fixed(
                KeySet::from_jwks(&bytes).map_err(|e| Error::Config(format!("JWKS: {e}")))?,
                "the given JWKS",
            ),
            Source::Pem(bytes) => fixed(
                KeySet::from_pem(&bytes).map_err(|e| Error::Config(format!("PEM: {e}")))?,
                "the given PEM keys",
            ),
            Source::File(path) => {
                let name = path.display().to_string();
                fetched(Fetcher::File(path), name)
            }
            Source::Url(url) | Source::Discovery(url) => {
                let parsed = url::Url::parse(&url)
                    .map_err(|e| Error::Config(format!("JWKS URL {url:?}: {e}")))?;
                if !matches!(parsed.scheme(), "https" | "http") {
                    return Err(Error::Config(format!(
                        "JWKS URL {url:?}: only http and https are supported"
                    )));
                }
                let mut builder = reqwest::Client::builder()
                    .timeout(settings.timeout)
                    .redirect(reqwest::redirect::Policy::limited(3))
                    .user_agent(concat!("gatehouse-verify/", env!("CARGO_PKG_VERSION")));
                for pem in &settings.ca_pem {
                    let certs = reqwest::Certificate::from_pem_bundle(pem)
                        .map_err(|e| Error::Config(format!("CA certificate: {e}")))?;
                    if certs.is_empty() {
                        return Err(Error::Config("CA file holds no certificate".into()));
                    }
                    for cert in certs {
                        builder = builder.add_root_certificate(cert);
                    }
                }
                // RFC 6761: names under .localhost are the loopback host, whatever
                // the system resolver says (glibc does not know them).
                if let Some(host) = parsed.host_str()
                    && (host == "localhost" || host.ends_with(".localhost"))
                {
                    let port = parsed.port_or_known_default().unwrap_or(443);
                    builder =
                        builder.resolve(host, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
                }
                let client = builder
                    .build()
                    .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
                let name = if discovery {
                    format!("the keys of {url}")
                } else {
                    url.clone()
                };
                fetched(
                    Fetcher::Url {
                        client,
                        url,
                        discovered: discovery.then(Default::default),
                    },
                    name,
                )
            }
        })
    }

    pub(crate) fn source_name(&self) -> &str {
        &self.source_name
    }

    fn unavailable(&self, message: impl Into<String>) -> Error {
        Error::KeySet {
            source_name: self.source_name.clone(),
            message: message.into(),
        }
    }

    /// The current key set, fetched again when stale or when it lacks the
    /// token's key (rate limited). Errors when no key can verify the token.
    pub(crate) async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<KeySet>, Error> {
        let (set, fetched_at, attempted_at) = {
            let s = self.state.read().unwrap_or_else(|p| p.into_inner());
            (s.set.clone(), s.fetched_at, s.attempted_at)
        };
        let missing = |set: &KeySet, hint: &'static str| match kid {
            Some(kid) => Error::UnknownKey {
                kid: kid.to_string(),
                hint: if set.len() == 0 { "" } else { hint },
            },
            None => Error::NoMatchingKey {
                alg: format!("{alg:?}"),
            },
        };
        if self.fetcher.is_none() {
            return if set.has(kid, alg) {
                Ok(set)
            } else {
                Err(missing(&set, ""))
            };
        }
        let stale = fetched_at.is_none_or(|t| t.elapsed() >= self.ttl);
        let may_refetch = attempted_at.is_none_or(|t| t.elapsed() >= self.refetch_interval);
        if set.len() == 0 && !may_refetch {
            return Err(self.unavailable(format!(
                "the last fetch failed; next attempt within {}s",
                self.refetch_interval.as_secs()
            )));
        }
        if (stale || !set.has(kid, alg)) && may_refetch {
            match self.fetch(attempted_at).await {
                Ok(fresh) => {
                    return if fresh.has(kid, alg) {
                        Ok(fresh)
                    } else {
                        Err(missing(&fresh, " (just fetched)"))
                    };
                }
                Err(e) if set.len() == 0 => return Err(e),
                Err(e) => {
                    // Keep serving with the keys we have: a proxy restart
                    // must not sign everyone out of the app.
                    tracing::warn!("using the cached key set: {e}");
                }
            }
        }
        if set.has(kid, alg) {
            Ok(set)
        } else {
            Err(missing(
                &set,
                " (not fetched again yet: the last fetch was too recent)",
            ))
        }
    }

    /// Fetches now (used by `Verifier::refresh`).
    pub(crate) async fn refresh(&self) -> Result<usize, Error> {
        if self.fetcher.is_none() {
            return Ok(self
                .state
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .set
                .len());
        }
        let before = self
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .attempted_at;
        self.fetch(before).await.map(|s| s.len())
    }

    /// One fetch at a time; a caller that waited while another fetched
    /// uses that result instead of fetching again.
    async fn fetch(&self, seen_attempt: Option<Instant>) -> Result<Arc<KeySet>, Error> {
        let _guard = self.fetch_lock.lock().await;
        {
            let s = self.state.read().unwrap_or_else(|p| p.into_inner());
            if s.attempted_at != seen_attempt {
                return if s.fetched_at == s.attempted_at && s.fetched_at.is_some() {
                    Ok(s.set.clone())
                } else {
                    Err(self.unavailable("the last fetch failed"))
                };
            }
        }
        let now = Instant::now();
        let etag = self
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .etag
            .clone();
        let result = self.load(etag).await;
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        s.attempted_at = Some(now);
        match result {
            Ok(Loaded::NotModified) => {
                s.fetched_at = Some(now);
                Ok(s.set.clone())
            }
            Ok(Loaded::Fresh(set, etag)) => {
                tracing::debug!(source = %self.source_name, keys = set.len(), "key set loaded");
                s.set = Arc::new(set);
                s.fetched_at = Some(now);
                s.etag = etag;
                Ok(s.set.clone())
            }
            Err(message) => Err(self.unavailable(message)),
        }
    }

    async fn load(&self, etag: Option<String>) -> Result<Loaded, String> {
        match self.fetcher.as_ref() {
            None => Err("fixed key set".into()),
            Some(Fetcher::File(path)) => {
                let bytes = tokio::fs::read(path).await.map_err(|e| e.to_string())?;
                KeySet::from_jwks(&bytes).map(|s| Loaded::Fresh(s, None))
            }
            Some(Fetcher::Url {
                client,
                url,
                discovered,
            }) => {
                let jwks_url = match discovered {
                    None => url.clone(),
                    Some(slot) => {
                        let known = slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        match known {
                            Some(u) => u,
                            None => {
                                let u = discover(client, url).await?;
                                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(u.clone());
                                u
                            }
                        }
                    }
                };
                let mut request = client.get(&jwks_url).header("accept", "application/json");
                if let Some(etag) = &etag {
                    request = request.header("if-none-match", etag);
                }
                let response = request.send().await.map_err(|e| error_chain(&e))?;
                let status = response.status();
                if status == reqwest::StatusCode::NOT_MODIFIED && etag.is_some() {
                    return Ok(Loaded::NotModified);
                }
                if !status.is_success() {
                    return Err(format!("HTTP status {status}"));
                }
                let etag = response
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
                let bytes = response.bytes().await.map_err(|e| error_chain(&e))?;
                if bytes.len() > 1 << 20 {
                    return Err("the key set is larger than 1 MiB".into());
                }
                KeySet::from_jwks(&bytes).map(|s| Loaded::Fresh(s, etag))
            }
        }
    }
}

/// Reads `jwks_uri` from an issuer's discovery document.
async fn discover(client: &reqwest::Client, issuer: &str) -> Result<String, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let response = client
        .get(&url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("discovery {url}: {}", error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(format!(
            "discovery {url}: HTTP status {}",
            response.status()
        ));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("discovery {url}: {}", error_chain(&e)))?;
    let doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("discovery {url}: not JSON: {e}"))?;
    let named = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
    if named != issuer {
        return Err(format!(
            "discovery {url} names issuer {named:?}, not {issuer:?}"
        ));
    }
    doc.get("jwks_uri")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| format!("discovery {url} has no jwks_uri"))
}

enum Loaded {
    NotModified,
    Fresh(KeySet, Option<String>),
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

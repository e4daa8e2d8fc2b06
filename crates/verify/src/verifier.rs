//! The verifier: its configuration ([`Builder`]) and the checks of a token
//! (structure, pinned algorithm, key, signature, times, issuer, audience,
//! expected claims).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::identity::Identity;
use crate::keys::{self, Keys};

/// The request header that carries the assertion.
pub const ASSERTION_HEADER: &str = "x-pomerium-jwt-assertion";

/// Configures a [`Verifier`]; see [`Verifier::builder`].
#[must_use]
pub struct Builder {
    keys: Keys,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    algorithms: Vec<Algorithm>,
    expect: Vec<(String, Value)>,
    cache_ttl: Duration,
    refetch_interval: Duration,
    ca_pem: Vec<Vec<u8>>,
    timeout: Duration,
}

impl Builder {
    /// Accept tokens whose `iss` is this value (may be called several
    /// times). gatehouse's issuer is the route host (`grafana.example.com`),
    /// or `https://grafana.example.com/` with `jwt_issuer_format: uri`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accept tokens whose `aud` contains this value (may be called several
    /// times). Strongly recommended: without it, an assertion minted for
    /// another route is accepted too.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock skew allowed on `exp`, `nbf` and `iat` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Accept only these algorithms (default: ES256). Symmetric algorithms
    /// (HS256/384/512) are refused by [`Builder::build`]: a verifier holds
    /// public keys only.
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// Require a claim to have exactly this JSON value (for a list claim
    /// such as `groups`, a string value means "contains").
    pub fn expect_claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.expect.push((name.into(), value.into()));
        self
    }

    /// How long fetched keys are trusted before they are fetched again
    /// (default 60 minutes). Keys are also fetched again, at most once per
    /// `refetch_interval`, when a token names an unknown key.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// The shortest time between two fetches caused by unknown key ids
    /// (default 10 s).
    pub fn refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// Trust this CA (PEM) for the JWKS URL, in addition to the system
    /// roots: for a gatehouse with a self-signed or private-CA certificate.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem.push(pem.into());
        self
    }

    /// Timeout for one JWKS fetch (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and builds the verifier. Keys from a URL are
    /// fetched on first use (or with [`Verifier::refresh`]).
    pub fn build(self) -> Result<Verifier, Error> {
        if self.algorithms.is_empty() {
            return Err(Error::Config("no algorithm allowed".into()));
        }
        if let Some(alg) = self
            .algorithms
            .iter()
            .find(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(Error::Config(format!(
                "{alg:?} is symmetric: a verifier of public keys never accepts HS algorithms"
            )));
        }
        let leeway = self.leeway.as_secs();
        let validations = self
            .algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = leeway;
                v.validate_nbf = true;
                let mut required = vec!["exp"];
                if self.issuers.is_empty() {
                    v.iss = None;
                } else {
                    v.set_issuer(&self.issuers);
                    required.push("iss");
                }
                if self.audiences.is_empty() {
                    v.validate_aud = false;
                } else {
                    v.set_audience(&self.audiences);
                    required.push("aud");
                }
                v.set_required_spec_claims(&required);
                (alg, v)
            })
            .collect();
        let key_source = keys::KeyCache::new(
            self.keys,
            keys::FetchSettings {
                ttl: self.cache_ttl,
                refetch_interval: self.refetch_interval,
                ca_pem: self.ca_pem,
                timeout: self.timeout,
            },
        )?;
        Ok(Verifier {
            inner: Arc::new(Inner {
                keys: key_source,
                validations,
                issuers: self.issuers,
                audiences: self.audiences,
                leeway,
                expect: self.expect,
            }),
        })
    }
}

/// Verifies assertions. Cheap to clone (shared state); share one per key
/// source so the key cache is shared too.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: keys::KeyCache,
    validations: Vec<(Algorithm, Validation)>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: u64,
    expect: Vec<(String, Value)>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.inner.keys.source_name())
            .field("issuers", &self.inner.issuers)
            .field("audiences", &self.inner.audiences)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

impl Verifier {
    /// Starts a configuration with where the public keys come from.
    pub fn builder(keys: Keys) -> Builder {
        Builder {
            keys,
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(60),
            algorithms: vec![Algorithm::ES256],
            expect: Vec::new(),
            cache_ttl: Duration::from_secs(3600),
            refetch_interval: Duration::from_secs(10),
            ca_pem: Vec::new(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Fetches (or reads) the key set now, for example at startup so the
    /// first request does not wait and a wrong URL shows at once.
    pub async fn refresh(&self) -> Result<usize, Error> {
        self.inner.keys.refresh().await
    }

    /// Verifies a token: structure, algorithm (pinned), key, signature,
    /// `exp`/`nbf` with leeway, issuer, audience and expected claims.
    pub async fn verify(&self, token: &str) -> Result<Identity, Error> {
        let inner = &*self.inner;
        let token = token.trim();
        let header = parse_header(token)?;
        if header.alg.eq_ignore_ascii_case("none") {
            return Err(Error::Unsigned);
        }
        // Compared as parsed algorithms: no string is built per token.
        let wanted = header.alg.parse::<Algorithm>().ok();
        let Some((alg, validation)) = inner.validations.iter().find(|(a, _)| Some(*a) == wanted)
        else {
            let allowed = inner
                .validations
                .iter()
                .map(|(a, _)| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::AlgorithmNotAllowed {
                alg: header.alg,
                allowed,
            });
        };
        let candidates = inner.keys.keys_for(header.kid.as_deref(), *alg).await?;
        let mut tried = false;
        for key in candidates.matching(header.kid.as_deref(), *alg) {
            tried = true;
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, validation) {
                Ok(data) => {
                    self.check_expected(&data.claims)?;
                    return Ok(Identity::from_claims(data.claims));
                }
                Err(e) => match self.explain(token, e) {
                    // Another key (no kid) may still verify it.
                    Error::BadSignature => {}
                    // The signature verified; the claims are wrong.
                    other => return Err(other),
                },
            }
        }
        Err(if tried {
            Error::BadSignature
        } else {
            Error::NoMatchingKey { alg: header.alg }
        })
    }

    fn check_expected(&self, claims: &Map<String, Value>) -> Result<(), Error> {
        for (name, expected) in &self.inner.expect {
            let Some(got) = claims.get(name) else {
                return Err(Error::MissingClaim(name.clone()));
            };
            let ok = match (got, expected) {
                (Value::Array(items), Value::String(_)) => items.contains(expected),
                _ => got == expected,
            };
            if !ok {
                return Err(Error::ClaimMismatch {
                    claim: name.clone(),
                    expected: expected.to_string(),
                    got: got.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Turns a jsonwebtoken error into one that names the values involved.
    fn explain(&self, token: &str, e: jsonwebtoken::errors::Error) -> Error {
        use jsonwebtoken::errors::ErrorKind as K;
        let inner = &*self.inner;
        // Only reached for the claims after the signature verified (or for
        // the signature error itself), so reading them here is safe.
        let claims = || -> Map<String, Value> {
            token
                .split('.')
                .nth(1)
                .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match e.kind() {
            K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidRsaKey(_) => Error::BadSignature,
            K::InvalidAlgorithm => Error::BadSignature,
            K::ExpiredSignature => Error::Expired {
                exp: claims().get("exp").and_then(Value::as_u64).unwrap_or(0),
                now,
                leeway: inner.leeway,
            },
            K::ImmatureSignature => Error::NotYetValid {
                nbf: claims().get("nbf").and_then(Value::as_u64).unwrap_or(0),
                now,
                leeway: inner.leeway,
            },
            K::InvalidIssuer => Error::WrongIssuer {
                got: claims()
                    .get("iss")
                    .map(|v| v.as_str().map(String::from).unwrap_or(v.to_string()))
                    .unwrap_or_default(),
                expected: inner.issuers.clone(),
            },
            K::InvalidAudience => Error::WrongAudience {
                got: Identity::from_claims(claims()).audience,
                expected: inner.audiences.clone(),
            },
            K::MissingRequiredClaim(c) => Error::MissingClaim(c.clone()),
            K::InvalidClaimFormat(c) => Error::Malformed(format!("claim {c:?} has the wrong type")),
            other => Error::Malformed(format!("{other:?}")),
        }
    }
}

fn parse_header(token: &str) -> Result<RawHeader, Error> {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| Error::Malformed("the header is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Malformed(format!("the header is not a JOSE header: {e}")))
}

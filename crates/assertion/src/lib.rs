//! Upstream identity: signing keys (PEM, rotation, a key derived from
//! `shared_secret`), minting the `X-Pomerium-Jwt-Assertion` JWT, and the
//! JWKS document that apps verify it with.
//!
//! Keys are parsed once, when a configuration is loaded, never per request.
//! Must not: know about sessions, storage or HTTP.
#![forbid(unsafe_code)]

use aws_lc_rs::agreement;
use aws_lc_rs::digest;
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::pem::{PemObject, SectionKind};

/// How long an assertion is valid (Pomerium: 5 minutes).
pub const LIFETIME_SECS: u64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    #[error(
        "signing_key: no PEM private key found (expected EC P-256 as `EC PRIVATE KEY` or `PRIVATE KEY`, raw or base64)"
    )]
    NoKey,
    #[error("signing_key: key {index} is not a usable P-256 or RSA private key: {why}")]
    Unusable { index: usize, why: String },
}

/// A key that can sign: EC P-256 (ES256) or RSA (RS256), as Pomerium.
enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl Signer {
    fn alg(&self) -> &'static str {
        match self {
            Signer::Ec(_) => "ES256",
            Signer::Rsa(_) => "RS256",
        }
    }

    /// The public JWK members and the RFC 7638 thumbprint input.
    fn jwk(&self) -> (serde_json::Value, String) {
        match self {
            Signer::Ec(pair) => {
                // Uncompressed point: 0x04 || X || Y.
                let point = pair.public_key().as_ref();
                let (x, y) = (
                    URL_SAFE_NO_PAD.encode(&point[1..33]),
                    URL_SAFE_NO_PAD.encode(&point[33..65]),
                );
                let thumb = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
                (
                    serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                    thumb,
                )
            }
            Signer::Rsa(pair) => {
                let public = pair.public_key();
                let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
                let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
                let thumb = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
                (serde_json::json!({"kty": "RSA", "n": n, "e": e}), thumb)
            }
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Signer::Ec(pair) => pair
                .sign(&rng, message)
                .expect("ECDSA signing with a valid key")
                .as_ref()
                .to_vec(),
            Signer::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .expect("RSA signing with a valid key");
                sig
            }
        }
    }
}

/// The keys in force: the first signs, all are published.
pub struct SigningKeys {
    signer: Signer,
    kid: String,
    /// The header part of every JWT, encoded once.
    header_b64: String,
    jwks: Vec<u8>,
    etag: String,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKeys(kid {})", self.kid)
    }
}

impl SigningKeys {
    /// From `signing_key`: PEM (one or more blocks: the first signs, all are
    /// published), raw or base64-encoded.
    pub fn from_pem(text: &str) -> Result<SigningKeys, KeyError> {
        let trimmed = text.trim();
        let pem = if trimmed.contains("-----BEGIN") {
            trimmed.as_bytes().to_vec()
        } else {
            let compact: String = trimmed.split_whitespace().collect();
            STANDARD.decode(compact).map_err(|_| KeyError::NoKey)?
        };
        let mut pairs = Vec::new();
        for (index, section) in <(SectionKind, Vec<u8>)>::pem_slice_iter(&pem).enumerate() {
            let Ok((kind, der)) = section else {
                return Err(KeyError::NoKey);
            };
            let unusable = |why: String| KeyError::Unusable {
                index: index + 1,
                why,
            };
            let signer = match kind {
                SectionKind::EcPrivateKey => {
                    EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                        .map(Signer::Ec)
                        .map_err(|e| unusable(e.to_string()))?
                }
                SectionKind::RsaPrivateKey => RsaKeyPair::from_der(&der)
                    .map(Signer::Rsa)
                    .map_err(|e| unusable(e.to_string()))?,
                SectionKind::PrivateKey => {
                    match EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    {
                        Ok(pair) => Signer::Ec(pair),
                        Err(ec) => RsaKeyPair::from_pkcs8(&der)
                            .map(Signer::Rsa)
                            .map_err(|rsa| unusable(format!("not P-256 ({ec}) nor RSA ({rsa})")))?,
                    }
                }
                _ => continue,
            };
            pairs.push(signer);
        }
        Self::from_pairs(pairs)
    }

    /// A P-256 key derived from `shared_secret` (HKDF-SHA256, info
    /// `derived-jwt-signing-key`), so every replica with the secret agrees.
    pub fn derive(shared_secret: &[u8]) -> SigningKeys {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]);
        let prk = salt.extract(shared_secret);
        // A scalar outside [1, n) is vanishingly rare; try the next block then.
        for counter in 0u8..=255 {
            let info = [
                b"derived-jwt-signing-key".as_slice(),
                &[counter][..counter.min(1) as usize],
            ];
            let mut scalar = [0u8; 32];
            let okm = prk
                .expand(&info, Scalar)
                .expect("32 bytes is a valid HKDF length");
            okm.fill(&mut scalar).expect("32 bytes");
            if let Some(pair) = pair_from_scalar(&scalar) {
                return Self::from_pairs(vec![Signer::Ec(pair)]).expect("one key");
            }
        }
        unreachable!("no valid P-256 scalar in 256 HKDF blocks")
    }

    fn from_pairs(pairs: Vec<Signer>) -> Result<SigningKeys, KeyError> {
        let mut keys = Vec::new();
        for signer in &pairs {
            let (mut jwk, thumbprint_input) = signer.jwk();
            let kid = hex(digest::digest(&digest::SHA256, thumbprint_input.as_bytes()).as_ref());
            if let Some(map) = jwk.as_object_mut() {
                map.insert("use".into(), "sig".into());
                map.insert("alg".into(), signer.alg().into());
                map.insert("kid".into(), kid.into());
            }
            keys.push(jwk);
        }
        let signer = pairs.into_iter().next().ok_or(KeyError::NoKey)?;
        let kid = keys[0]["kid"].as_str().unwrap_or_default().to_string();
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": keys })).expect("JSON");
        // FNV-64 of the body, as Pomerium's ETag.
        let etag = format!(
            "\"{:016x}\"",
            jwks.iter()
                .fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b))
                    .wrapping_mul(0x100000001b3))
        );
        let header = serde_json::json!({"alg": signer.alg(), "kid": kid, "typ": "JWT"});
        Ok(SigningKeys {
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            signer,
            kid,
            jwks,
            etag,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `/.well-known/pomerium/jwks.json` and its ETag.
    pub fn jwks(&self) -> (&[u8], &str) {
        (&self.jwks, &self.etag)
    }

    /// `ES256` or `RS256`, after the signing key.
    pub fn alg(&self) -> &'static str {
        self.signer.alg()
    }

    /// Signs `claims` (a JSON object) as a JWT.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{}.{payload}", self.header_b64);
        let sig = self.signer.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

struct Scalar;

impl hkdf::KeyType for Scalar {
    fn len(&self) -> usize {
        32
    }
}

fn pair_from_scalar(scalar: &[u8; 32]) -> Option<EcdsaKeyPair> {
    let private = agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, scalar).ok()?;
    let public = private.compute_public_key().ok()?;
    EcdsaKeyPair::from_private_key_and_public_key(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        scalar,
        public.as_ref(),
    )
    .ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new P-256 private key as PKCS#8 PEM (`gatehouse keygen`).
pub fn generate_pem() -> String {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .expect("key generation");
    let b64 = STANDARD.encode(doc.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// Who the assertion is about (empty for public routes).
pub struct Subject<'a> {
    pub user: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub groups: &'a [String],
    pub sid: &'a str,
}

/// The claims Pomerium puts in the assertion: `iss` (host, or
/// `https://host/` with `jwt_issuer_format: uri`), `aud` (host), `sub` =
/// `user`, `email`, `groups` (always a list), `name`, `sid`, `jti`, `iat`,
/// `exp` = `iat` + 300.
pub fn claims(host: &str, issuer_uri: bool, subject: &Subject<'_>, now: u64) -> serde_json::Value {
    let iss = if issuer_uri {
        format!("https://{host}/")
    } else {
        host.to_string()
    };
    let jti: [u8; 16] = {
        let mut b = [0u8; 16];
        aws_lc_rs::rand::fill(&mut b).expect("system randomness");
        b[6] = (b[6] & 0x0f) | 0x40; // UUID v4
        b[8] = (b[8] & 0x3f) | 0x80;
        b
    };
    let h = hex(&jti);
    let jti = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    serde_json::json!({
        "iss": iss,
        "aud": host,
        "sub": subject.user,
        "user": subject.user,
        "email": subject.email,
        "groups": subject.groups,
        "name": subject.name,
        "sid": subject.sid,
        "jti": jti,
        "iat": now,
        "exp": now + LIFETIME_SECS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // `openssl ecparam -genkey -name prime256v1 -noout` (SEC1), as Pomerium's docs.
    const SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIPKaSw6GOJ/2V1RFF9ebbj1Pc+L3+ttvyWEebyxdfLyHoAoGCCqGSM49
AwEHoUQDQgAEtL5dYvN1Bb81vxBBKgsnlvayY+w3VO50Lp7e/tbhsjfemIpp3IZV
JRisZ5KzajB3IIfBqhIJ7C97f7FpUBk5Ow==
-----END EC PRIVATE KEY-----
";

    #[test]
    fn sec1_pem_raw_or_base64_and_rotation() {
        let a = SigningKeys::from_pem(SEC1).unwrap();
        let b = SigningKeys::from_pem(&STANDARD.encode(SEC1)).unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.kid().len(), 64);
        let second = generate_pem();
        let both = SigningKeys::from_pem(&format!("{SEC1}{second}")).unwrap();
        assert_eq!(both.kid(), a.kid(), "the first key signs");
        let (jwks, etag) = both.jwks();
        let doc: serde_json::Value = serde_json::from_slice(jwks).unwrap();
        assert_eq!(
            doc["keys"].as_array().unwrap().len(),
            2,
            "all keys are published"
        );
        assert_eq!(doc["keys"][0]["kid"], a.kid());
        assert!(etag.starts_with('"'));
        assert_eq!(
            SigningKeys::from_pem("nonsense").unwrap_err(),
            KeyError::NoKey
        );
    }

    #[test]
    fn derived_keys_agree_across_replicas() {
        let a = SigningKeys::derive(&[7u8; 32]);
        let b = SigningKeys::derive(&[7u8; 32]);
        let c = SigningKeys::derive(&[8u8; 32]);
        assert_eq!(a.kid(), b.kid());
        assert_ne!(a.kid(), c.kid());
    }

    #[test]
    fn tokens_verify_with_the_published_key() {
        let keys = SigningKeys::from_pem(SEC1).unwrap();
        let groups: Vec<String> = vec![];
        let c = claims(
            "app.example.com",
            false,
            &Subject {
                user: "u",
                email: "e",
                name: "n",
                groups: &groups,
                sid: "s",
            },
            1000,
        );
        assert_eq!(c["groups"], serde_json::json!([]), "never null");
        assert_eq!(c["exp"], 1300);
        let token = keys.sign(&c);
        let parts: Vec<&str> = token.split('.').collect();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "ES256", "kid": keys.kid(), "typ": "JWT"})
        );
        // Verify with the JWKS coordinates.
        let (jwks, _) = keys.jwks();
        let doc: serde_json::Value = serde_json::from_slice(jwks).unwrap();
        let x = URL_SAFE_NO_PAD
            .decode(doc["keys"][0]["x"].as_str().unwrap())
            .unwrap();
        let y = URL_SAFE_NO_PAD
            .decode(doc["keys"][0]["y"].as_str().unwrap())
            .unwrap();
        let mut point = vec![4u8];
        point.extend(x);
        point.extend(y);
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            point,
        );
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        let uri = claims(
            "h",
            true,
            &Subject {
                user: "",
                email: "",
                name: "",
                groups: &groups,
                sid: "",
            },
            0,
        );
        assert_eq!(uri["iss"], "https://h/");
        assert_eq!(uri["aud"], "h");
    }
}

/// Signed assertions kept per (session, configuration, route, host) until
/// they are within a minute of expiry, so the ~16 µs ES256 signature is not
/// paid per request. Bounded. The key holds the configuration generation,
/// so an assertion minted under one configuration (one signing key, one
/// route list) is never served under the next; [`Cache::clear`] on reload
/// frees the old ones, [`Cache::forget_session`] a signed-out session's.
///
/// A hit allocates nothing and takes only a read lock: the map is keyed by
/// the host's keyed hash (foldhash, seeded per process, so request hosts on
/// a wildcard route cannot be chosen to collide), and the host itself is
/// compared before a value is served (an assertion is never given to a host
/// it was not minted for).
pub struct Cache<V> {
    entries:
        std::sync::RwLock<std::collections::HashMap<Slot, Entry<V>, foldhash::fast::RandomState>>,
    hosts: foldhash::fast::RandomState,
    capacity: usize,
    generation: std::sync::atomic::AtomicU64,
}

/// What an assertion is for: the session (zeros for public routes), the
/// configuration generation, the route (its index) and the request host.
#[derive(Clone, Copy, Debug)]
pub struct CacheKey<'a> {
    pub session: [u8; 16],
    pub generation: u64,
    pub route: usize,
    pub host: &'a str,
}

/// A key with the host as its hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Slot {
    session: [u8; 16],
    generation: u64,
    route: usize,
    host: u64,
}

struct Entry<V> {
    host: Box<str>,
    value: V,
    expires: u64,
}

/// Re-mint when less than this many seconds remain.
pub const REMINT_BEFORE_SECS: u64 = 60;

impl<V: Clone> Cache<V> {
    pub fn new(capacity: usize) -> Cache<V> {
        Cache {
            entries: Default::default(),
            hosts: Default::default(),
            capacity: capacity.max(1),
            generation: Default::default(),
        }
    }

    /// A number for a new configuration (the generation in keys). What was
    /// cached under older ones is dropped: it may be signed with a key no
    /// longer in force.
    pub fn next_generation(&self) -> u64 {
        self.clear();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// The cached value for `key`, or `mint()`'s (value, expiry) stored.
    pub fn get_or_mint(
        &self,
        key: CacheKey<'_>,
        now: u64,
        mint: impl FnOnce() -> Option<(V, u64)>,
    ) -> Option<V> {
        use std::hash::BuildHasher;
        let slot = Slot {
            session: key.session,
            generation: key.generation,
            route: key.route,
            host: self.hosts.hash_one(key.host),
        };
        {
            let map = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = map.get(&slot)
                && *e.host == *key.host
                && e.expires > now + REMINT_BEFORE_SECS
            {
                return Some(e.value.clone());
            }
        }
        // Signed outside the lock: other requests are not held up.
        let (value, expires) = mint()?;
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity {
            map.retain(|_, e| e.expires > now + REMINT_BEFORE_SECS);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(
            slot,
            Entry {
                host: key.host.into(),
                value: value.clone(),
                expires,
            },
        );
        Some(value)
    }

    /// Drops every entry of one session (sign-out).
    pub fn forget_session(&self, session: &[u8; 16]) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| &k.session != session);
    }

    /// Drops everything (a new configuration, perhaps a new key).
    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod rsa_tests {
    use super::*;

    #[test]
    fn rsa_keys_sign_rs256_and_publish_n_and_e() {
        let pem = std::process::Command::new("openssl")
            .args(["genrsa", "2048"])
            .output()
            .expect("openssl is installed");
        let keys = SigningKeys::from_pem(&String::from_utf8_lossy(&pem.stdout)).unwrap();
        assert_eq!(keys.alg(), "RS256");
        let doc: serde_json::Value = serde_json::from_slice(keys.jwks().0).unwrap();
        let k = &doc["keys"][0];
        assert_eq!(
            (k["kty"].as_str(), k["alg"].as_str()),
            (Some("RSA"), Some("RS256"))
        );
        let token = keys.sign(&serde_json::json!({"sub": "x"}));
        let parts: Vec<&str> = token.split('.').collect();
        let n = URL_SAFE_NO_PAD.decode(k["n"].as_str().unwrap()).unwrap();
        let e = URL_SAFE_NO_PAD.decode(k["e"].as_str().unwrap()).unwrap();
        let public = aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e };
        public
            .verify(
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .unwrap();
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[test]
    fn reuses_until_a_minute_before_expiry_and_stays_bounded() {
        let cache: Cache<u32> = Cache::new(2);
        let key = |s: &str| CacheKey {
            session: [s.as_bytes()[0]; 16],
            generation: 0,
            route: 0,
            host: "h",
        };
        let mut mints = 0;
        let mut get = |k: &str, now: u64| {
            cache.get_or_mint(key(k), now, || {
                mints += 1;
                Some((mints, now + LIFETIME_SECS))
            })
        };
        assert_eq!(get("a", 1000), Some(1));
        assert_eq!(get("a", 1100), Some(1), "cached");
        assert_eq!(get("a", 1239), Some(1), "61 s left: still cached");
        assert_eq!(get("a", 1240), Some(2), "60 s left: re-minted");
        assert_eq!(get("b", 1240), Some(3));
        assert_eq!(get("c", 1240), Some(4), "over capacity: older entries go");
        assert!(cache.len() <= 2);
        cache.forget_session(&[b'c'; 16]);
        assert!(cache.len() <= 1);
        cache.clear();
        assert!(cache.is_empty());
    }

    /// A host whose hash meets another's is never served the other's
    /// assertion: the host itself is compared.
    #[test]
    fn a_host_hash_collision_mints_instead_of_serving_another_hosts_assertion() {
        use std::hash::BuildHasher;
        let cache: Cache<&str> = Cache::new(10);
        let key = |host| CacheKey {
            session: [1; 16],
            generation: 0,
            route: 0,
            host,
        };
        assert_eq!(
            cache.get_or_mint(key("a.example"), 1000, || Some(("for a", 2000))),
            Some("for a")
        );
        // Plant a's entry where b's hash points (a collision).
        {
            let mut map = cache.entries.write().unwrap();
            let planted = Entry {
                host: "a.example".into(),
                value: "for a",
                expires: 2000,
            };
            let slot = Slot {
                session: [1; 16],
                generation: 0,
                route: 0,
                host: cache.hosts.hash_one("b.example"),
            };
            map.insert(slot, planted);
        }
        assert_eq!(
            cache.get_or_mint(key("b.example"), 1000, || Some(("for b", 2000))),
            Some("for b")
        );
        assert_eq!(
            cache.get_or_mint(key("b.example"), 1001, || Some(("again", 2000))),
            Some("for b"),
            "cached now"
        );
    }
}

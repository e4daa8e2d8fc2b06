//! Why a token was not accepted.

/// Why a token was not accepted. Every variant names the problem precisely
/// enough to fix a configuration from the message alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request carried no assertion header.
    #[error("no X-Pomerium-Jwt-Assertion header (is the route's pass_identity_headers on?)")]
    Missing,
    /// A valid assertion without a user (a public route), where a user is
    /// required.
    #[error("the assertion carries no signed-in user (public route)")]
    Anonymous,
    /// Not a JWT (three base64url parts, JSON header and claims).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `alg: none` is never accepted.
    #[error("token is unsigned (alg \"none\"); never accepted")]
    Unsigned,
    /// The token's algorithm is not one this verifier accepts.
    #[error("token algorithm {alg} is not allowed (allowed: {allowed})")]
    AlgorithmNotAllowed { alg: String, allowed: String },
    /// No published key has the token's key id.
    #[error("no key with kid {kid:?} in the key set{hint}")]
    UnknownKey { kid: String, hint: &'static str },
    /// No key matches the token's algorithm (token without `kid`).
    #[error("no key in the key set can verify an {alg} token")]
    NoMatchingKey { alg: String },
    /// The signature does not verify.
    #[error("signature does not verify (token altered, or signed by another key)")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired at {exp} (now {now}, leeway {leeway}s)")]
    Expired { exp: u64, now: u64, leeway: u64 },
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not valid before {nbf} (now {now}, leeway {leeway}s)")]
    NotYetValid { nbf: u64, now: u64, leeway: u64 },
    /// `iss` is not an expected issuer.
    #[error("issuer {got:?} is not the expected {expected:?}")]
    WrongIssuer { got: String, expected: Vec<String> },
    /// No `aud` value is an expected audience.
    #[error("audience {got:?} does not include any of {expected:?}")]
    WrongAudience {
        got: Vec<String>,
        expected: Vec<String>,
    },
    /// A claim that must be present is absent.
    #[error("claim {0:?} is missing")]
    MissingClaim(String),
    /// A claim configured with `expect_claim` has another value.
    #[error("claim {claim:?} is {got}, expected {expected}")]
    ClaimMismatch {
        claim: String,
        expected: String,
        got: String,
    },
    /// The key set could not be fetched or read (a server-side problem, not
    /// the client's).
    #[error("cannot load the key set from {source_name}: {message}")]
    KeySet {
        source_name: String,
        message: String,
    },
    /// The verifier is misconfigured (reported by
    /// [`Builder::build`](crate::Builder::build)).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// True when the key set is unavailable: the token may be fine, the
    /// verifier cannot tell (answer 503, not 401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::KeySet { .. })
    }
}

//! gatehouse-verify: verify the identity assertion that gatehouse (or
//! Pomerium) forwards to upstream applications in `X-Pomerium-Jwt-Assertion`.
//!
//! A [`Verifier`] holds the proxy's public keys (fetched from its JWKS URL,
//! read from a JWKS file, or given as PEM), the expected issuer and audience,
//! and the allowed algorithms; [`Verifier::verify`] checks a token and returns
//! a typed [`Identity`]. Keys fetched from a URL are cached (`cache_ttl`,
//! 60 minutes by default, as Grafana does) and fetched again when a token
//! names a key the cache does not know, at most once per `refetch_interval`
//! so forged key ids cannot cause a fetch storm.
//!
//! ```no_run
//! # async fn demo(token: &str) -> Result<(), gatehouse_verify::Error> {
//! use gatehouse_verify::{Keys, Verifier};
//! let verifier = Verifier::builder(Keys::jwks_url(
//!     "https://grafana.example.com/.well-known/pomerium/jwks.json",
//! ))
//! .issuer("grafana.example.com")
//! .audience("grafana.example.com")
//! .build()?;
//! let identity = verifier.verify(token).await?;
//! println!("{} <{}> in {:?}", identity.user, identity.email, identity.groups);
//! # Ok(()) }
//! ```
//!
//! With the `tower` feature, [`VerifyLayer`] checks every request; with the
//! `axum` feature, [`Identity`] is also an axum extractor.
//!
//! This crate depends on none of gatehouse's proxy crates: it is what an
//! upstream application links, nothing more. It must never accept `alg:
//! none`, a symmetric (HS*) algorithm, or a key whose type does not match
//! the token's algorithm.
#![forbid(unsafe_code)]

mod error;
#[cfg(feature = "axum")]
mod extract;
mod identity;
mod keys;
#[cfg(feature = "tower")]
mod layer;
mod verifier;

pub use error::Error;
#[cfg(feature = "axum")]
pub use extract::Rejection;
pub use identity::Identity;
pub use keys::Keys;
#[cfg(feature = "tower")]
pub use layer::{VerifyLayer, VerifyService};
pub use verifier::{ASSERTION_HEADER, Builder, Verifier};

/// Algorithms a verifier may be configured to accept (asymmetric only).
pub use jsonwebtoken::Algorithm as Alg;

#[cfg(test)]
mod tests;

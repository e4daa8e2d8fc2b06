//! Upstream identity: signing keys (PEM, rotation, derived key), minting and
//! caching the `X-Pomerium-Jwt-Assertion` JWT, and the JWKS documents.
//!
//! Must not: know about sessions storage or HTTP. Filled in by the assertion
//! issue.
#![forbid(unsafe_code)]

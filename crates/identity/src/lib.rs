//! Sign-in and sessions: OIDC relying party, GitHub OAuth2, the built-in user
//! directory, session records and stores, the cookie codec and CSRF state.
//!
//! Must not: route requests or sign upstream assertions. Filled in by the
//! sign-in issue.
#![forbid(unsafe_code)]

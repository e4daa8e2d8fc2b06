//! Sign-in and sessions: the built-in user directory, the OIDC relying party
//! session records and their stores (memory, file, Redis), the cookie
//! codec and the one-time sign-in hand-off.
//!
//! Pure where it can be: codecs, password checks and throttling take their
//! inputs (time included) as arguments. Must not: route requests, render
//! pages or sign upstream assertions.
#![forbid(unsafe_code)]

pub mod backend;
pub mod codec;
pub mod console_store;
pub mod cookie;
pub mod github;
pub mod local;
pub mod oidc;
pub mod redis_store;
pub mod session;
pub mod store;

pub use session::{Identity, Session, SessionId};

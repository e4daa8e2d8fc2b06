//! `Identity` as an axum extractor.

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::error::Error;
use crate::identity::Identity;
use crate::verifier::{ASSERTION_HEADER, Verifier};

/// Why the [`Identity`] extractor refused a request.
#[derive(Debug)]
pub enum Rejection {
    /// The assertion is missing or does not verify (401), or the key set
    /// is unavailable (503).
    Invalid(Error),
    /// Neither a [`VerifyLayer`](crate::VerifyLayer) nor an
    /// `Extension<Verifier>` is installed on the router (500).
    NoVerifier,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Invalid(e) => e.fmt(f),
            Rejection::NoVerifier => f.write_str(
                "the Identity extractor needs a VerifyLayer or an Extension<Verifier> on the router",
            ),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Invalid(e) => crate::layer::error_response(&e),
            Rejection::NoVerifier => {
                (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
            }
        }
    }
}

/// Takes the identity a [`VerifyLayer`](crate::VerifyLayer) verified, or
/// verifies the assertion with the `Verifier` installed as an
/// `Extension` (then an anonymous assertion is refused). Use `Option<Identity>` where a missing or invalid
/// assertion should not reject the request.
impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(identity) = parts.extensions.get::<Identity>() {
            return Ok(identity.clone());
        }
        let Some(verifier) = parts.extensions.get::<Verifier>().cloned() else {
            return Err(Rejection::NoVerifier);
        };
        let token = parts
            .headers
            .get(ASSERTION_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or(Rejection::Invalid(Error::Missing))?;
        let identity = verifier.verify(token).await.map_err(Rejection::Invalid)?;
        if identity.is_anonymous() {
            return Err(Rejection::Invalid(Error::Anonymous));
        }
        parts.extensions.insert(identity.clone());
        Ok(identity)
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Identity {
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match <Identity as FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(identity) => Ok(Some(identity)),
            Err(Rejection::Invalid(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

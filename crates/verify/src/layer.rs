//! A tower layer that verifies the assertion on every request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::error::Error;
use crate::verifier::{ASSERTION_HEADER, Verifier};

/// Verifies `X-Pomerium-Jwt-Assertion` before the inner service runs: a
/// valid token puts its [`Identity`](crate::Identity) in the request
/// extensions; otherwise the answer is 401 (503 when the key set cannot be
/// loaded) with the reason as plain text, and the inner service never sees
/// the request. Anonymous assertions (public routes) are refused unless
/// [`VerifyLayer::allow_anonymous`] is set.
#[derive(Clone, Debug)]
pub struct VerifyLayer {
    verifier: Verifier,
    allow_anonymous: bool,
}

impl VerifyLayer {
    pub fn new(verifier: Verifier) -> VerifyLayer {
        VerifyLayer {
            verifier,
            allow_anonymous: false,
        }
    }

    /// Also pass requests whose assertion carries no user (routes with
    /// `allow_public_unauthenticated_access`).
    pub fn allow_anonymous(mut self) -> VerifyLayer {
        self.allow_anonymous = true;
        self
    }
}

impl<S> tower_layer::Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> VerifyService<S> {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
            allow_anonymous: self.allow_anonymous,
        }
    }
}

/// The service made by [`VerifyLayer`].
#[derive(Clone, Debug)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
    allow_anonymous: bool,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower_service::Service<Request<B>> for VerifyService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    R: From<String>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let allow_anonymous = self.allow_anonymous;
        Box::pin(async move {
            let token = request
                .headers()
                .get(ASSERTION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let result = match token {
                None => Err(Error::Missing),
                Some(token) => verifier.verify(&token).await,
            };
            match result {
                Ok(identity) if identity.is_anonymous() && !allow_anonymous => {
                    Ok(error_response(&Error::Anonymous))
                }
                Ok(identity) => {
                    request.extensions_mut().insert(identity);
                    inner.call(request).await
                }
                Err(e) => {
                    tracing::info!(error = %e, "assertion refused");
                    Ok(error_response(&e))
                }
            }
        })
    }
}

/// The answer for a refused assertion: 401, or 503 when the key set is
/// unavailable, with the reason as plain text.
pub(crate) fn error_response<R: From<String>>(e: &Error) -> Response<R> {
    let status = if e.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNAUTHORIZED
    };
    refusal(status, &e.to_string())
}

fn refusal<R: From<String>>(status: StatusCode, message: &str) -> Response<R> {
    let mut response = Response::new(R::from(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

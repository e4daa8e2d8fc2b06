//! Services mounted on the proxy from crates above it.
//!
//! The proxy serves a route whose action is [`RouteAction::Console`] by
//! calling the [`RouteService`] the binary registered with [`Proxy::new`],
//! once the route's policy has allowed the request. The service gets what
//! it needs with each call and keeps no reference to the proxy: anything it
//! does outside a request (applying a change, following other instances)
//! is handed the proxy by whoever owns both (the binary).
//!
//! [`RouteAction::Console`]: gatehouse_config::RouteAction::Console

use std::future::Future;
use std::pin::Pin;

use gatehouse_identity::Session;
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::Proxy;
use crate::body::Body;
use crate::runtime::Runtime;

/// The answer of a [`RouteService`]: boxed, as the service is a trait
/// object (it is not on the hot path).
pub type Answer<'a> = Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

/// Answers the requests of the routes it is mounted on (the console's).
pub trait RouteService: Send + Sync {
    /// Answers `req`, which the route's policy has allowed.
    ///
    /// `proxy` is the proxy serving the request (to put a change in force
    /// with [`Proxy::prepare`] and [`Proxy::commit`]); `runtime` is the
    /// configuration in force when the request arrived; `session` is the
    /// one the [`Permit`](crate::authorize::Permit) was granted to, if any;
    /// `request_id` is the request's `X-Request-Id`. The dispatcher adds
    /// the route's response headers to the answer.
    fn serve<'a>(
        &'a self,
        proxy: &'a Proxy,
        runtime: &'a Runtime,
        req: Request<Incoming>,
        session: Option<&'a Session>,
        request_id: &'a str,
    ) -> Answer<'a>;
}

/// The answer for a console route when no console is registered: as the
/// console answers when it is not configured (503, nothing changed).
pub(crate) fn unmounted(headers: &HeaderMap, request_id: &str) -> Response<Body> {
    crate::pages::page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The console is not configured.",
        "unavailable",
        request_id,
        crate::pages::wants_json(headers),
    )
}

//! Serving the console host: who may use it, the one check against
//! cross-site writes, then the JSON API or the pages.

use gatehouse_identity::Session;
use gatehouse_proxy::Proxy;
use gatehouse_proxy::RouteService;
use gatehouse_proxy::body::{Body, RequestBody};
use gatehouse_proxy::runtime::Runtime;
use http::{Request, Response, header};

use crate::{Console, api, html};

impl RouteService for Console {
    fn serve<'a>(
        &'a self,
        proxy: &'a Proxy,
        runtime: &'a Runtime,
        req: Request<RequestBody>,
        session: Option<&'a Session>,
        request_id: &'a str,
    ) -> gatehouse_proxy::Answer<'a> {
        Box::pin(serve(self, proxy, runtime, req, session, request_id))
    }
}

/// Serves the console host. The route's policy has allowed the request.
async fn serve(
    console: &Console,
    proxy: &Proxy,
    rt: &Runtime,
    req: Request<RequestBody>,
    session: Option<&Session>,
    request_id: &str,
) -> Response<Body> {
    // Only a session from the main sign-in manages the console: one made
    // from a route's token is scoped to that route (identify already
    // enforces it; the console does not rely on that alone).
    let session = session.filter(|s| s.provenance.is_main_sign_in());
    let Some(session) = session else {
        // A policy that lets anyone in without a session (`accept: true`)
        // must not open the console.
        let json = gatehouse_proxy::answers::wants_json(req.headers());
        let e = gatehouse_proxy::error::ProxyError::NeedsUser;
        return gatehouse_proxy::error::response(&e, request_id, json);
    };
    let path = req.uri().path().to_string();
    let api = path.starts_with("/api/v1");
    // One check for pages and API, before anything reads the body.
    if !write_allowed(rt, &req) {
        tracing::warn!(
            method = %req.method(),
            path = %path,
            from = %claimed_origin(req.headers()),
            request_id,
            "console: a cookie-authenticated write from another origin (or none) was refused"
        );
        return if api {
            api::cross_origin()
        } else {
            html::cross_origin(console, session)
        };
    }
    if let Some(rest) = path.strip_prefix("/api/v1") {
        return api::serve(console, proxy, rt, req, rest, session).await;
    }
    html::serve(console, proxy, rt, req, &path, session).await
}

/// The authority the request addressed (`:authority` or `Host`).
fn authority(req: &Request<RequestBody>) -> &str {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or_default()
}

/// [`gatehouse_proxy::csrf::write_allowed`] for this request: the console's origin is the
/// host the browser addressed, in the scheme the console is served on.
fn write_allowed(rt: &Runtime, req: &Request<RequestBody>) -> bool {
    let authority = authority(req);
    let https = rt.config.console.as_ref().is_none_or(|c| c.from.https);
    let own = gatehouse_proxy::csrf::own_origin(https, authority);
    // The cookie `authorize::identify` would have read for this host.
    let host = gatehouse_proxy::csrf::host_name(authority);
    let cookie = gatehouse_proxy::authenticate::has_session_cookie(&rt.auth, req.headers(), &host);
    gatehouse_proxy::csrf::write_allowed(req.method(), req.headers(), own.as_ref(), cookie)
}

/// Where a refused write said it came from, for the log: an origin only
/// (a `Referer`'s path and query may hold secrets).
fn claimed_origin(headers: &http::HeaderMap) -> String {
    let origin_of = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| url::Url::parse(v).ok())
            .map(|u| u.origin().ascii_serialization())
    };
    match headers.get(header::ORIGIN) {
        Some(o) if o.as_bytes() == b"null" => "Origin: null".into(),
        Some(_) => match origin_of(header::ORIGIN) {
            Some(o) => format!("Origin: {o}"),
            None => "Origin: (not an origin)".into(),
        },
        None => match origin_of(header::REFERER) {
            Some(o) => format!("Referer on {o}"),
            None => "(no Origin or Referer)".into(),
        },
    }
}

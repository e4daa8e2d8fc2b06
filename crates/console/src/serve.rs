//! Serving the console host: who may use it, the one check against
//! cross-site writes, then the JSON API or the pages; and what both read
//! (the request body, the routes with their counters).

use bytes::Bytes;
use gatehouse_identity::Session;
use gatehouse_proxy::Proxy;
use gatehouse_proxy::body::{self, Body};
use gatehouse_proxy::mount::RouteService;
use gatehouse_proxy::runtime::Runtime;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use crate::state::{ChangeError, ConsoleRoute, FieldError, State};
use crate::{Console, api, html};

/// Largest request body the console reads (an imported config included).
const MAX_BODY: usize = 1024 * 1024;

/// The identity a change is recorded under.
pub(crate) fn who(session: &Session) -> String {
    if session.identity.email.is_empty() {
        session.identity.sub.clone()
    } else {
        session.identity.email.clone()
    }
}

impl RouteService for Console {
    fn serve<'a>(
        &'a self,
        proxy: &'a Proxy,
        runtime: &'a Runtime,
        req: Request<Incoming>,
        session: Option<&'a Session>,
        request_id: &'a str,
    ) -> gatehouse_proxy::mount::Answer<'a> {
        Box::pin(serve(self, proxy, runtime, req, session, request_id))
    }
}

/// Serves the console host. The route's policy has allowed the request.
async fn serve(
    console: &Console,
    proxy: &Proxy,
    rt: &Runtime,
    req: Request<Incoming>,
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
        return gatehouse_proxy::pages::page(
            StatusCode::FORBIDDEN,
            "The console needs a signed-in user: its policy must name who may use it.",
            "console_needs_user",
            request_id,
            gatehouse_proxy::pages::wants_json(req.headers()),
        );
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
fn authority(req: &Request<Incoming>) -> &str {
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
fn write_allowed(rt: &Runtime, req: &Request<Incoming>) -> bool {
    let authority = authority(req);
    let https = rt.config.console.as_ref().is_none_or(|c| c.from.https);
    let own = gatehouse_proxy::csrf::own_origin(https, authority);
    // The cookie `authorize::identify` would have read for this host.
    let host = gatehouse_proxy::csrf::host_name(authority);
    let cookie = gatehouse_proxy::signin::has_session_cookie(&rt.auth, req.headers(), &host);
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

pub(crate) async fn read_body(req: Request<Incoming>) -> Result<Bytes, ChangeError> {
    body::collect_limited(req.into_body(), MAX_BODY)
        .await
        .ok_or_else(|| {
            ChangeError::Invalid(vec![FieldError {
                field: String::new(),
                message: format!("the request body could not be read (at most {MAX_BODY} bytes)"),
            }])
        })
}

pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(body::full(body.into()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The file's routes and the console's, for the list page and the API.
pub(crate) struct Listed<'a> {
    pub route: &'a gatehouse_config::Route,
    pub counts: gatehouse_proxy::metrics::RouteCounts,
    pub per_minute: Option<f64>,
}

pub(crate) fn listed<'a>(console: &Console, rt: &'a Runtime) -> Vec<Listed<'a>> {
    rt.config
        .routes
        .iter()
        .zip(&rt.routes)
        .filter(|(r, _)| !matches!(r.action, gatehouse_config::RouteAction::Console))
        .map(|(route, state)| {
            let counts = state.metrics.counts();
            Listed {
                route,
                per_minute: console.rate(&route.label().to_string(), counts.requests),
                counts,
            }
        })
        .collect()
}

/// Console routes the running configuration does not have (they no longer
/// fit the file; see [`Console::load_file`]).
pub(crate) fn not_in_force<'a>(state: &'a State, rt: &Runtime) -> Vec<&'a ConsoleRoute> {
    state
        .routes
        .iter()
        .filter(|r| {
            !rt.config
                .routes
                .iter()
                .any(|c| c.console_id() == Some(&r.id))
        })
        .collect()
}

//! What the pages and the API both use: who made a change, the request
//! body, a plain response, and the routes with their counters.

use bytes::Bytes;
use gatehouse_identity::Session;
use gatehouse_proxy::body::{self, Body, RequestBody};
use gatehouse_proxy::runtime::Runtime;
use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::Console;
use crate::state::{ChangeError, ConsoleRoute, FieldError, State};

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

pub(crate) async fn read_body(req: Request<RequestBody>) -> Result<Bytes, ChangeError> {
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
    /// Requests in the last minute (a count; the page shows it).
    pub last_minute: Option<u64>,
}

pub(crate) fn listed<'a>(console: &Console, rt: &'a Runtime) -> Vec<Listed<'a>> {
    rt.config
        .routes
        .iter()
        .zip(&rt.routes)
        .filter(|(r, _)| !matches!(r.action, gatehouse_config::RouteAction::Console))
        .map(|(route, state)| {
            let counts = state.metrics.counts();
            let label = route.label().to_string();
            Listed {
                route,
                per_minute: console.rate(&label, counts.requests),
                last_minute: console.recent(&label, counts.requests),
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

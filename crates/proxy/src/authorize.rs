//! Identify and decide: who the request is (session cookie, programmatic
//! token, bearer JWT), and the route's policy on it. One [`decide`] for
//! proxied requests and forward-auth questions alike, so every decision is
//! counted and logged in one place; only it makes the [`Permit`] that
//! forwarding, the console and forward-auth's 200 require.

use std::sync::Arc;

use gatehouse_config::{Route, RouteAction};
use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

use crate::authenticate::{self, IdentityState};
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::runtime::{RouteState, Runtime};

/// A request the route's policy allowed: the route and who asked (why it
/// was allowed is counted and logged by [`decide`]). Made only by
/// [`decide`], so whatever acts on a route has been through the policy
/// (and counted) first.
pub struct Permit<'r> {
    route: &'r Route,
    state: &'r RouteState,
    session: Option<Arc<gatehouse_identity::Session>>,
}

impl<'r> Permit<'r> {
    pub fn route(&self) -> &'r Route {
        self.route
    }
    pub fn state(&self) -> &'r RouteState {
        self.state
    }
    /// The signed-in user, when the route's policy looked at one.
    pub fn session(&self) -> Option<&gatehouse_identity::Session> {
        self.session.as_deref()
    }
}

/// The route's policy on a request.
// Lives on the stack for one request: boxing the permit would allocate.
#[allow(clippy::large_enum_variant)]
pub enum Decided<'r> {
    Allowed(Permit<'r>),
    /// A 403; the reasons only reach the page with `show_error_details`.
    Denied(gatehouse_policy::Reasons),
    /// Nobody signed in, and the policy needs someone.
    SignIn,
}

/// Who the request is: a programmatic-login token, a bearer JWT (on routes
/// that accept them) or the session cookie. A bad programmatic token means
/// signed out; a bad bearer token is refused (the reason is logged). A
/// session is looked up within this route's scope: one made from a token
/// counts only where the route accepts that token, and the console takes
/// only the main sign-in.
pub(crate) async fn identify(
    rt: &Runtime,
    identity: &IdentityState,
    route: &Route,
    headers: &HeaderMap,
    host: &str,
) -> Result<Option<Arc<gatehouse_identity::Session>>, crate::bearer::Refused> {
    use crate::bearer::{Credential, Refused};
    let scope = authenticate::Scope::Route {
        config: &rt.config,
        route,
    };
    match crate::bearer::credential(headers) {
        Credential::Pomerium(token) => {
            Ok(authenticate::token_session(&rt.auth, identity, token, host, scope).await)
        }
        Credential::Bearer(token)
            if route.bearer_token_format != gatehouse_config::BearerTokenFormat::Default =>
        {
            if authenticate::has_session_cookie(&rt.auth, headers, host) {
                return Err(Refused::bad_request(
                    "The request carries both a session cookie and a bearer token; send only one.",
                ));
            }
            match &rt.bearer {
                // The console takes only the main sign-in, never a bearer token.
                Some(_) if matches!(route.action, RouteAction::Console) => Ok(None),
                Some(b) => b.verify(route, token).await.map(|s| Some(Arc::new(s))),
                None => Err(Refused::invalid("this route does not accept bearer tokens")),
            }
        }
        _ => Ok(authenticate::session(&rt.auth, identity, headers, host, scope).await),
    }
}

/// A session as the policy sees it.
struct SessionSubject<'a>(&'a gatehouse_identity::Session);

impl gatehouse_policy::Subject for SessionSubject<'_> {
    fn user_id(&self) -> &str {
        &self.0.identity.sub
    }
    fn email(&self) -> &str {
        &self.0.identity.email
    }
    fn groups(&self) -> &[String] {
        &self.0.identity.groups
    }
    fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.0.identity.claims.get(name)
    }
}

/// `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub(crate) fn is_cors_preflight(method: &str, headers: &HeaderMap) -> bool {
    method == "OPTIONS"
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// What the policy is asked about a request (besides who sends it).
pub(crate) struct Asked<'a> {
    pub method: &'a str,
    /// Normalized.
    pub path: &'a str,
    pub source_ip: std::net::IpAddr,
    pub cors_preflight: bool,
    /// The connection's client certificate (forward-auth questions have
    /// none: the proxy in front terminated TLS).
    pub client_cert: Option<&'a crate::client_cert::PeerCert>,
    /// For the authorize log: the host asked for, the query, the headers.
    pub host: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

/// The route's policy decides; the decision is counted and logged. Shared
/// by proxied requests and forward-auth questions.
pub(crate) fn decide<'r>(
    metrics: &Metrics,
    route: &'r Route,
    state: &'r RouteState,
    session: Option<Arc<gatehouse_identity::Session>>,
    asked: Asked<'_>,
    request_id: &HeaderValue,
    log: &[gatehouse_config::AuthorizeField],
) -> Decided<'r> {
    let subject = session.as_deref().map(SessionSubject);
    // Judged only where the policy looks at it (the verdict is kept per
    // connection).
    let client_cert = state.client_cert(asked.client_cert);
    let facts = gatehouse_policy::Facts {
        client_cert,
        subject: subject
            .as_ref()
            .map(|s| s as &dyn gatehouse_policy::Subject),
        method: asked.method,
        path: asked.path,
        source_ip: asked.source_ip,
        cors_preflight: asked.cors_preflight,
        now: gatehouse_identity::session::unix_now() as i64,
    };
    let mut decision = state.policy.evaluate(&facts);
    // A servlet container reads `/secret;x` as `/secret`: the policy must
    // allow both readings (the stricter decision stands).
    if let (gatehouse_policy::Decision::Allow(_), Some(cut)) =
        (decision, crate::request::without_parameters(asked.path))
    {
        let servlet = state.policy.evaluate(&gatehouse_policy::Facts {
            path: &cut,
            ..facts
        });
        if !matches!(servlet, gatehouse_policy::Decision::Allow(_)) {
            decision = servlet;
        }
    }
    // Counted here, once, for every decision: proxied requests and
    // forward-auth questions alike (the console's allowed/denied columns).
    metrics.decision(decision);
    state.metrics.decided(&decision);
    log_decision(
        log,
        route,
        state,
        &asked,
        session.as_deref(),
        decision,
        request_id,
    );
    match decision {
        // The reasons were counted and logged above.
        gatehouse_policy::Decision::Allow(_) => Decided::Allowed(Permit {
            route,
            state,
            session,
        }),
        gatehouse_policy::Decision::Deny(reasons) => Decided::Denied(reasons),
        gatehouse_policy::Decision::SignIn(_) => Decided::SignIn,
    }
}

/// One structured line per decision (target `gatehouse::authorize`), with
/// the `authorize_log_fields` asked for.
fn log_decision(
    fields: &[gatehouse_config::AuthorizeField],
    route: &Route,
    state: &RouteState,
    asked: &Asked<'_>,
    session: Option<&gatehouse_identity::Session>,
    decision: gatehouse_policy::Decision,
    request_id: &HeaderValue,
) {
    use gatehouse_config::AuthorizeField as F;
    if !tracing::enabled!(target: "gatehouse::authorize", tracing::Level::INFO) {
        return;
    }
    let (result, reasons) = match decision {
        gatehouse_policy::Decision::Allow(r) => ("allow", r),
        gatehouse_policy::Decision::Deny(r) => ("deny", r),
        gatehouse_policy::Decision::SignIn(r) => ("sign-in", r),
    };
    let has = |f: F| fields.contains(&f);
    let identity = session.map(|s| &s.identity);
    let removed = match (identity, &state.groups_filter) {
        (Some(id), Some(keep)) if has(F::RemovedGroupsCount) => id
            .groups
            .iter()
            .filter(|g| keep.binary_search(g).is_err())
            .count(),
        _ => 0,
    };
    let header_names: Vec<HeaderName> = fields
        .iter()
        .filter_map(|f| match f {
            F::Header(h) => Some(h.clone()),
            _ => None,
        })
        .collect();
    let headers = if has(F::Headers) {
        Some(crate::access_log::headers_json(asked.headers, None))
    } else if !header_names.is_empty() {
        Some(crate::access_log::headers_json(
            asked.headers,
            Some(&header_names),
        ))
    } else {
        None
    };
    tracing::info!(
        target: "gatehouse::authorize",
        result,
        reasons = %reasons,
        route = %route.label(),
        "request-id" = has(F::RequestId).then(|| request_id.to_str().unwrap_or_default()),
        method = has(F::Method).then_some(asked.method),
        path = has(F::Path).then_some(asked.path),
        query = has(F::Query).then(|| asked.query.map(crate::access_log::redact_query)).flatten().as_deref(),
        host = has(F::Host).then_some(asked.host),
        // Written through Display: nothing allocated for them per request.
        ip = has(F::Ip).then(|| tracing::field::display(asked.source_ip)),
        "session-id" = has(F::SessionId).then(|| session.map(|s| s.id.to_hex())).flatten().as_deref(),
        user = has(F::User).then(|| identity.map_or("", |i| i.sub.as_str())),
        email = has(F::Email).then(|| identity.map_or("", |i| i.email.as_str())),
        "route-id" = has(F::RouteId).then(|| tracing::field::display(route.label())),
        "removed-groups-count" = (has(F::RemovedGroupsCount) && removed > 0).then_some(removed),
        headers = headers.as_deref(),
        "authorize check"
    );
}

/// Whether `session` may open `path` on a route now, from `source_ip`
/// (the routes portal): the route's policy, evaluated as for a `GET`.
/// Nothing is counted or logged.
pub(crate) fn may_open(
    state: &RouteState,
    session: &gatehouse_identity::Session,
    path: &str,
    source_ip: std::net::IpAddr,
    client_cert: Option<&crate::client_cert::PeerCert>,
) -> bool {
    let subject = SessionSubject(session);
    let client_cert = state.client_cert(client_cert);
    let facts = gatehouse_policy::Facts {
        subject: Some(&subject),
        method: "GET",
        path,
        source_ip,
        cors_preflight: false,
        client_cert,
        now: gatehouse_identity::session::unix_now() as i64,
    };
    matches!(
        state.policy.evaluate(&facts),
        gatehouse_policy::Decision::Allow(_)
    )
}

/// The refusal for a denied request: the policy's reasons only with
/// `show_error_details`.
pub(crate) fn denied(route: &Route, reasons: gatehouse_policy::Reasons) -> ProxyError {
    ProxyError::Denied(route.show_error_details.then(|| reasons.to_string()))
}

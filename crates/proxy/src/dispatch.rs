//! The dispatcher: one request, phase by phase, over one [`Exchange`].
//!
//! | phase | where | what may answer early |
//! |---|---|---|
//! | 1. **accept** | [`handle`] | request id, access-log line, `/ping` and `/healthz`, `CONNECT` (a TCP tunnel: [`crate::tunnel`]) |
//! | 2. **canonical request** | [`crate::request`] | one Host, header names, one canonical path, the client address (400) |
//! | 3. **early answers** | [`early`] | forward-auth ([`crate::forward_auth`]), published keys ([`crate::published`]), the authenticate service ([`crate::authenticate`]) |
//! | 4. **route** | [`route`] | host + canonical path → route (404) |
//! | 5. **identify** | [`crate::authorize::identify`] | session cookie, programmatic token or bearer JWT (401/400) |
//! | 6. **decide** | [`crate::authorize::decide`] | the route's policy: a [`Permit`], a 403 page or sign-in (302/401) |
//! | 7. **act** | [`act`] | the console, or [`crate::forward::act`]: a direct response, a redirect, or the upstream |
//! | 8. **respond** | [`handle`], [`act`] | the route's response headers, `X-Request-Id` |
//! | 9. **log** | [`handle`] | the route's counters and the access-log line (when the body ends) |
//!
//! Where headers are written: upstream requests in
//! [`crate::forward`]'s `upstream_request_headers` (the one place), upstream
//! responses in its `forward` (hop-by-hop and gatehouse's own cookies
//! dropped), the route's `set_response_headers` in [`act`], `X-Request-Id`
//! on every answer in [`handle`]. Every refusal is a [`ProxyError`] mapped
//! by [`crate::error::response`].

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::Proxy;
use crate::access_log::{Outcome, Pending as Line};
use crate::authenticate;
use crate::authorize::{Asked, Decided, Permit, decide, denied, identify, is_cors_preflight};
use crate::body::{self, Body, RequestBody};
use crate::error::ProxyError;
use crate::otlp::{SpanKind, Value};
use crate::request::{ConnInfo, split_authority};
use crate::runtime::Runtime;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the dispatcher knows about one request, filled in phase by phase
/// and read by the later ones.
pub(crate) struct Exchange<'a> {
    /// State that outlives configurations (sessions, metrics, console).
    pub proxy: &'a Proxy,
    /// The configuration in force when the request arrived.
    pub rt: &'a Runtime,
    pub conn: &'a ConnInfo,
    /// The lane this request's upstream exchange rides, driven by the
    /// task that serves the request (see [`crate::lane`]).
    pub lane: Option<&'a crate::lane::Lane>,
    pub request_id: HeaderValue,
    /// The client prefers JSON answers.
    pub json: bool,
    /// The route that matched (phase 4), for counters and the log.
    pub routed: Option<usize>,
    /// The access-log line, when the access log is on.
    pub line: Option<Box<Line>>,
    /// The request's trace, when tracing is configured (`otel_*`).
    pub trace: Option<Box<crate::trace::RequestTrace>>,
    /// `timeout_write`: when the whole exchange must be over (a websocket
    /// tunnel too).
    pub deadline: Option<tokio::time::Instant>,
}

impl Exchange<'_> {
    fn id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    /// The refusal page for `e`, through the one mapper.
    fn refuse(&self, e: &ProxyError) -> Response<Body> {
        crate::error::response(e, self.id(), self.json)
    }

    /// What the access log says about how the request ended, if it is on.
    fn outcome(&mut self) -> Option<&mut Outcome> {
        self.line.as_mut().map(|l| &mut l.outcome)
    }
}

/// Where a request is addressed, as read by the canonical phase.
pub(crate) struct Addressed<'a> {
    /// Lower-case host name, no port, no trailing dot.
    pub host: Cow<'a, str>,
    pub port: u16,
    /// As the client wrote it (`host[:port]`).
    pub authority: &'a str,
    /// The client, by `xff_num_trusted_hops`.
    pub client_ip: std::net::IpAddr,
}

impl Addressed<'_> {
    fn signin_host(&self, conn: &ConnInfo) -> authenticate::Host<'_> {
        authenticate::Host {
            name: &self.host,
            origin: origin(conn, self.authority),
        }
    }
}

/// Serves one request against the runtime in force when it arrived, and
/// counts it for its route. `lane`: where an HTTP/1 exchange with a
/// plain-HTTP upstream goes, if the caller's task drives one (the client
/// connection's for HTTP/1, the stream's own for HTTP/2); without it the
/// pooled clients carry every exchange. A lane given here must be polled
/// by the task that awaits this future (`lane::Joined`, `lane::OnLane`):
/// nothing else drives its connection, and the exchange would wait for
/// ever.
pub async fn handle(
    proxy: &Proxy,
    rt: &Runtime,
    mut req: Request<RequestBody>,
    conn: &ConnInfo,
    lane: Option<&crate::lane::Lane>,
) -> Response<Body> {
    // 1. accept
    let start = std::time::Instant::now();
    let request_id = request_id(req.headers());
    let trace = rt
        .tracer
        .as_ref()
        .filter(|_| !is_health_check(&req))
        .map(|t| t.begin(&mut req, conn.peer.ip(), conn.external_https(), &request_id));
    let line = (rt.access_log.enabled() && !is_health_check(&req)).then(|| {
        let hops = rt.config.request.xff_num_trusted_hops;
        let client = crate::request::client_address(conn.peer.ip(), req.headers(), hops)
            .unwrap_or(conn.peer.ip());
        rt.access_log
            .begin(&req, client, &request_id, start, conn.client_cert())
    });
    let mut ex = Exchange {
        proxy,
        rt,
        conn,
        lane,
        json: crate::answers::wants_json(req.headers()),
        request_id,
        routed: None,
        line,
        trace,
        deadline: rt
            .config
            .timeout_write
            .map(|limit| tokio::time::Instant::from_std(start + limit)),
    };
    let mut resp = match ex.deadline {
        None => serve(&mut ex, req).await,
        // Boxed: only configurations with a limit pay for its timer.
        Some(deadline) => Box::pin(within(&mut ex, req, deadline)).await,
    };
    // 8. respond: the id goes back to the client on every answer (unless
    // the app set its own), so a user's report can be matched to the log.
    resp.headers_mut()
        .entry(X_REQUEST_ID.clone())
        .or_insert(ex.request_id);
    // 9. log
    let metrics = match ex.routed {
        Some(i) => &rt.routes[i].metrics,
        None => &proxy.metrics.unrouted,
    };
    metrics.record(resp.status().as_u16(), start.elapsed());
    if let Some(r) = resp.extensions().get::<crate::error::Refusal>() {
        proxy.metrics.refusal(*r);
    }
    if let Some(trace) = ex.trace.take() {
        resp = trace.finish(resp);
    }
    match ex.line {
        Some(line) => line.attach(resp),
        None => resp,
    }
}

fn is_health_check<B>(req: &Request<B>) -> bool {
    matches!(req.uri().path(), "/ping" | "/healthz")
        && matches!(*req.method(), Method::GET | Method::HEAD)
}

/// Phases 1 to 8 for one request.
async fn serve(ex: &mut Exchange<'_>, mut req: Request<RequestBody>) -> Response<Body> {
    // Health checks answer on every host, before routing.
    if is_health_check(&req) {
        return crate::answers::ok_text();
    }
    // TCP tunnels (`tcp+https` routes): their own phases.
    if req.method() == Method::CONNECT {
        let connect = crate::tunnel::Connect {
            proxy: ex.proxy,
            rt: ex.rt,
            conn: ex.conn,
            request_id: &ex.request_id,
            outcome: ex.line.as_mut().map(|l| &mut l.outcome),
            deadline: ex.deadline,
        };
        let (routed, resp) = Box::pin(crate::tunnel::serve(connect, req)).await;
        ex.routed = routed;
        return resp;
    }
    // 2. canonical request: decided here once; everything below reads only it.
    // One binding for the request through the phases (reassigned, not
    // shadowed): each shadowing binding would be a 264-byte slot of its own
    // in this future, copied with it.
    req = match canonical(ex, req) {
        Ok(req) => req,
        Err(resp) => return resp,
    };
    let client_ip = match crate::request::client_address(
        ex.conn.peer.ip(),
        req.headers(),
        ex.rt.config.request.xff_num_trusted_hops,
    ) {
        Ok(ip) => ip,
        Err(e) => return ex.refuse(&ProxyError::Ambiguous(e)),
    };
    // A refcounted copy of the authority: the host can be borrowed from it
    // while the request itself moves on.
    let held = match req.uri().authority() {
        Some(a) => AuthorityBuf::Uri(a.clone()),
        None => match req.headers().get(header::HOST) {
            Some(h) => AuthorityBuf::Header(h.clone()),
            None => return ex.refuse(&ProxyError::NoHost),
        },
    };
    let authority = held.as_str();
    let Some((host, port)) = request_host(authority, ex.conn) else {
        return ex.refuse(&ProxyError::NoHost);
    };
    let at = Addressed {
        host,
        port,
        authority,
        client_ip,
    };
    // 3. early answers
    req = match early(ex, &at, req).await {
        Early::Answered(resp) => return resp,
        Early::Continue(req) => req,
    };
    // 4. route
    let index = match route(ex, &at, &req) {
        Ok(i) => i,
        Err(resp) => return resp,
    };
    let rt = ex.rt;
    let route = &rt.config.routes[index];
    let state = &rt.routes[index];
    ex.routed = Some(index);
    if let Some(o) = ex.outcome() {
        o.route = Some(route.label().to_string());
    }
    let authorize_start = ex
        .trace
        .as_ref()
        .filter(|t| t.recording())
        .map(|_| std::time::Instant::now());
    if let Some(t) = ex.trace.as_mut().filter(|t| t.recording()) {
        t.rename(format!("{} {}", req.method(), route.label()));
        t.set("upstream_cluster", Value::Str(route.label().to_string()));
    }
    // 5. identify: the session, when the policy looks at the user.
    let session = if state.policy.uses_subject() {
        match identify(rt, &ex.proxy.identity, route, req.headers(), &at.host).await {
            Ok(s) => s,
            Err(refused) => return refused.response(ex.id(), ex.json),
        }
    } else {
        None
    };
    if let (Some(o), Some(s)) = (ex.outcome(), &session) {
        o.user = Some(s.identity.sub.clone());
        o.email = Some(s.identity.email.clone());
    }
    // 6. decide
    let decided = decide(
        &ex.proxy.metrics,
        route,
        state,
        session,
        Asked {
            method: req.method().as_str(),
            path: req.uri().path(),
            source_ip: at.client_ip,
            cors_preflight: is_cors_preflight(req.method().as_str(), req.headers()),
            client_cert: ex.conn.client_cert(),
            host: &at.host,
            query: req.uri().query(),
            headers: req.headers(),
        },
        &ex.request_id,
        &rt.config.authorize_log,
    );
    if let (Some(t), Some(begun)) = (ex.trace.as_mut(), authorize_start) {
        let result = match &decided {
            Decided::Allowed(_) => "allow",
            Decided::Denied(_) => "deny",
            Decided::SignIn => "sign_in",
        };
        t.child(
            "authorize",
            SpanKind::Internal,
            crate::trace::new_span_id(),
            begun,
            vec![("gatehouse.authorize.result", Value::Str(result.into()))],
            false,
        );
    }
    // 7. act
    match decided {
        Decided::Allowed(permit) => act(ex, &at, permit, req).await,
        Decided::Denied(reasons) => {
            if let Some(o) = ex.outcome() {
                o.details = Some("denied");
            }
            let e = if reasons.contains(gatehouse_policy::Reason::ClientCertificateRequired)
                || reasons.contains(gatehouse_policy::Reason::InvalidClientCertificate)
            {
                crate::error::ProxyError::ClientCertificate
            } else {
                denied(route, reasons)
            };
            let resp = crate::error::refusal(&e, req.headers(), req.uri().path(), ex.id());
            with_response_headers(route, resp)
        }
        Decided::SignIn => {
            if let Some(o) = ex.outcome() {
                o.details = Some("sign_in");
            }
            let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let resp = authenticate::unauthenticated(
                &rt.auth,
                req.headers(),
                &at.signin_host(ex.conn),
                pq,
                ex.id(),
                route.idp_client.as_deref(),
            );
            with_response_headers(route, resp)
        }
    }
}

/// `timeout_write` (Envoy's `max_stream_duration`): the request and its
/// response within `limit` of its arrival. Before the response starts the
/// answer is 408; after, the response body is cut.
async fn within(
    ex: &mut Exchange<'_>,
    req: Request<RequestBody>,
    deadline: tokio::time::Instant,
) -> Response<Body> {
    match tokio::time::timeout_at(deadline, serve(ex, req)).await {
        Ok(resp) => resp.map(|b| crate::body::until(b, deadline)),
        Err(_) => {
            if let Some(o) = ex.outcome() {
                o.details = Some("stream_timeout");
            }
            ex.refuse(&ProxyError::StreamTimeout)
        }
    }
}

/// Phase 2: header names, one Host and one canonical path.
#[allow(clippy::result_large_err)]
fn canonical(
    ex: &Exchange<'_>,
    mut req: Request<RequestBody>,
) -> Result<Request<RequestBody>, Response<Body>> {
    let rules = &ex.rt.config.request;
    let authority = req.uri().authority().cloned();
    if let Err(e) = crate::request::check_headers(req.headers_mut(), authority.as_ref(), rules) {
        return Err(ex.refuse(&ProxyError::Ambiguous(e)));
    }
    match crate::request::canonicalize(req, rules) {
        Ok(crate::request::Canonical::Request(req)) => Ok(req),
        Ok(crate::request::Canonical::Redirect(location)) => {
            let mut r = Response::new(body::empty());
            *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            Err(r)
        }
        Err(e) => Err(ex.refuse(&ProxyError::Ambiguous(e))),
    }
}

enum Early {
    Answered(Response<Body>),
    Continue(Request<RequestBody>),
}

/// Phase 3: what gatehouse answers itself, before any route's policy.
async fn early(ex: &Exchange<'_>, at: &Addressed<'_>, req: Request<RequestBody>) -> Early {
    let rt = ex.rt;
    let proxy = ex.proxy;
    let (host, port) = (&*at.host, at.port);
    let path = req.uri().path();
    let route_host = rt.table.serves_host(host, port);
    // Forward-auth questions from a proxy in front (on any host: nginx
    // often calls gatehouse by address). `/oauth2/auth` is one only when it
    // describes another request or is not a route host's own path.
    if path == crate::forward_auth::PATH
        || (path == crate::forward_auth::OAUTH2_PATH
            && (crate::forward_auth::describes_original(req.headers()) || !route_host))
    {
        let resp = Box::pin(crate::forward_auth::handle(
            proxy,
            rt,
            &req,
            ex.conn,
            &ex.request_id,
        ))
        .await;
        return Early::Answered(resp);
    }
    // Published keys and discovery: on every route host and on the
    // authenticate host (Pomerium's control plane serves both), before any
    // policy.
    if path.starts_with("/.well-known/pomerium")
        && (route_host || rt.auth.is_authenticate_host(host))
        && let Some(resp) = crate::published::well_known(rt, &req, &at.signin_host(ex.conn))
    {
        return Early::Answered(resp);
    }
    // The raw assertion, when `runtime_flags: {pomerium_jwt_endpoint: true}`
    // (off by default, as Pomerium).
    if path == "/.pomerium/jwt" && route_host {
        let resp = Box::pin(crate::published::raw_assertion(
            proxy,
            rt,
            &req,
            (host, port),
            ex.id(),
            ex.json,
        ))
        .await;
        return Early::Answered(resp);
    }
    // The token hand-off of embedded routes, on route hosts.
    if path == "/.pomerium/sign_in_with_token" && route_host {
        let secure = ex.conn.external_https();
        // The route for the target URL: its canonical path (under the
        // configured rules, as a request to it would get) on this host.
        let find = |path: &str| {
            let canonical = crate::request::canonical_path(path, &rt.config.request)
                .map_err(|_| "pomerium_redirect_uri has an invalid path.")?;
            match rt
                .table
                .resolve(&rt.config.routes, host, port, &canonical.path)
            {
                Ok(i) => Ok(&rt.config.routes[i]),
                Err(crate::routing::Unresolved::NoRoute) => {
                    Err("No route serves pomerium_redirect_uri.")
                }
                Err(crate::routing::Unresolved::Ambiguous) => {
                    Err("pomerium_redirect_uri has an ambiguous path.")
                }
            }
        };
        let routes = authenticate::TokenRoutes {
            find: &find,
            bearer: rt.bearer.as_ref(),
        };
        let resp = Box::pin(authenticate::sign_in_with_token(
            &rt.auth,
            &proxy.identity,
            routes,
            req,
            &at.signin_host(ex.conn),
            secure,
            ex.id(),
        ))
        .await;
        return Early::Answered(resp);
    }
    // The routes portal, on route hosts.
    if (path == crate::portal::PAGE || path == crate::portal::API) && route_host {
        let resp = Box::pin(crate::portal::serve(
            proxy,
            rt,
            &req,
            &at.signin_host(ex.conn),
            at.client_ip,
            ex.conn,
            ex.id(),
        ))
        .await;
        return Early::Answered(resp);
    }
    // The authenticate service's endpoints, on route hosts and the
    // authenticate host.
    let auth = &rt.auth;
    let is_authenticate = auth.is_authenticate_host(host);
    let own_endpoint = (path.starts_with("/.pomerium") || path == "/oauth2/callback")
        && (is_authenticate || route_host);
    let req = if own_endpoint {
        let allowed = |h: &str, p: Option<u16>| {
            rt.table.serves_host(h, p.unwrap_or(port)) || auth.is_authenticate_host(h)
        };
        let caller = crate::request::Caller {
            conn: ex.conn,
            ip: at.client_ip,
            // Programmatic login signs in with the client of the route its
            // URL matches (as Pomerium), else the global one.
            route_idp: (path == "/.pomerium/api/v1/login")
                .then(|| {
                    rt.table
                        .resolve(&rt.config.routes, host, port, path)
                        .ok()
                        .or_else(|| rt.table.tunnel_of_host(host))
                })
                .flatten()
                .and_then(|i| rt.config.routes[i].idp_client.as_deref()),
        };
        let host_info = at.signin_host(ex.conn);
        match Box::pin(authenticate::endpoint(
            auth,
            &proxy.identity,
            req,
            &host_info,
            &allowed,
            caller,
            ex.id(),
        ))
        .await
        {
            Ok(resp) => return Early::Answered(resp),
            Err(req) => req,
        }
    } else {
        req
    };
    // The authenticate host serves nothing else (unless a route shares it).
    if is_authenticate && !route_host {
        let resp = if req.uri().path() == "/" {
            let mut r = Response::new(body::empty());
            *r.status_mut() = StatusCode::FOUND;
            r.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/.pomerium/"));
            r
        } else {
            ex.refuse(&ProxyError::NoRoute)
        };
        return Early::Answered(resp);
    }
    Early::Continue(req)
}

/// Phase 4: the route for host and canonical path. The servlet reading
/// (`;parameters` cut) must pick the same route.
#[allow(clippy::result_large_err)]
fn route(
    ex: &Exchange<'_>,
    at: &Addressed<'_>,
    req: &Request<RequestBody>,
) -> Result<usize, Response<Body>> {
    let rt = ex.rt;
    let path = req.uri().path();
    rt.table
        .resolve(&rt.config.routes, &at.host, at.port, path)
        .map_err(|u| ex.refuse(&unresolved(u)))
}

/// The refusal for a request no route takes.
fn unresolved(u: crate::routing::Unresolved) -> ProxyError {
    match u {
        crate::routing::Unresolved::NoRoute => ProxyError::NoRoute,
        crate::routing::Unresolved::Ambiguous => {
            ProxyError::Ambiguous(crate::request::Ambiguous::PathParameters)
        }
    }
}

/// Phase 7: what an allowed request gets, then the route's response headers.
async fn act(
    ex: &mut Exchange<'_>,
    at: &Addressed<'_>,
    permit: Permit<'_>,
    req: Request<RequestBody>,
) -> Response<Body> {
    let rt = ex.rt;
    let route = permit.route();
    if matches!(route.action, gatehouse_config::RouteAction::Console) {
        if let Some(o) = ex.outcome() {
            o.details = Some("gatehouse");
        }
        let resp = match &ex.proxy.console {
            Some(console) => {
                console
                    .serve(ex.proxy, rt, req, permit.session(), ex.id())
                    .await
            }
            None => unmounted(req.headers(), ex.id()),
        };
        return with_response_headers(route, resp);
    }
    let assertion = route
        .pass_identity_headers
        .then(|| {
            crate::assertion::assertion(
                rt,
                &ex.proxy.assertions,
                &ex.proxy.metrics,
                &at.host,
                route,
                permit.session(),
            )
        })
        .flatten();
    // The upstream's span: named in the `traceparent` it gets.
    let upstream_span = ex
        .trace
        .as_ref()
        .map(|_| (crate::trace::new_span_id(), std::time::Instant::now()));
    let ctx = crate::forward::RequestCtx {
        deadline: ex.deadline,
        traceparent: match (&ex.trace, &upstream_span) {
            (Some(t), Some((id, _))) => Some(t.traceparent(id)),
            _ => None,
        },
        conn: ex.conn,
        lane: ex.lane,
        request_id: &ex.request_id,
        cookie_name: &rt.auth.cookie.name,
        assertion,
        assertion_for: crate::assertion::chained_assertion(rt, route, ex.conn, req.headers()),
        session: permit.session(),
        upstream: Default::default(),
        owned_headers: &rt.owned_headers,
        rules: &rt.config.request,
        groups_filter: rt.routes[route.index].groups_filter.as_deref(),
        client_ip: at.client_ip,
        // Only a certificate valid for a CA of the route is vouched for
        // upstream (judged only for connections that presented one; the
        // verdict is kept per connection).
        client_cert: ex
            .conn
            .client_cert()
            .filter(|c| permit.state().vouches_for(c)),
    };
    let result = crate::forward::act(&permit, req, &ctx).await;
    if let (Some(t), Some((id, begun)), Some(to)) = (
        ex.trace.as_mut().filter(|t| t.recording()),
        upstream_span,
        ctx.upstream.get(),
    ) {
        let mut attributes = vec![
            ("server.address", Value::Str(to.host().to_string())),
            (
                "server.port",
                Value::Int(i64::from(to.port_u16().unwrap_or_default())),
            ),
        ];
        let error = match &result {
            Ok(resp) => {
                attributes.push((
                    "http.response.status_code",
                    Value::Int(i64::from(resp.status().as_u16())),
                ));
                resp.status().is_server_error()
            }
            Err(e) => {
                attributes.push(("error.type", Value::Str(e.code().to_string())));
                true
            }
        };
        t.child("upstream", SpanKind::Client, id, begun, attributes, error);
    }
    if let Some(o) = ex.line.as_mut().map(|l| &mut l.outcome) {
        o.upstream = ctx.upstream.get().map(|a| a.to_string());
        o.details = Some(match &result {
            Ok(_) if o.upstream.is_some() => "via_upstream",
            Ok(_) => "gatehouse",
            Err(e) => e.code(),
        });
    }
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            permit.state().metrics.upstream_error(e.code());
            if e.status().is_server_error() {
                tracing::warn!(route = %route.label(), request_id = %ex.id(), error = %e, source = ?std::error::Error::source(&e), "upstream request failed");
            }
            ex.refuse(&e)
        }
    };
    with_response_headers(route, resp)
}

/// The route's `set_response_headers`, on every answer for the route.
fn with_response_headers(
    route: &gatehouse_config::Route,
    mut resp: Response<Body>,
) -> Response<Body> {
    for (name, value) in &route.response_headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

/// `scheme://host[:port]` as the client addressed this gatehouse.
fn origin(conn: &ConnInfo, authority: &str) -> String {
    let scheme = if conn.external_https() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", authority.to_ascii_lowercase())
}

/// The authority a request named, held without borrowing the request.
enum AuthorityBuf {
    Uri(http::uri::Authority),
    Header(HeaderValue),
}

impl AuthorityBuf {
    fn as_str(&self) -> &str {
        match self {
            AuthorityBuf::Uri(a) => a.as_str(),
            AuthorityBuf::Header(h) => h.to_str().unwrap_or(""),
        }
    }
}

/// The request's host (lower-case, no port, no trailing dot) and port;
/// borrowed unless it had to be lower-cased.
fn request_host<'a>(authority: &'a str, conn: &ConnInfo) -> Option<(Cow<'a, str>, u16)> {
    let (host, port) = split_authority(authority)?;
    let host = host.trim_end_matches('.');
    let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    Some((host, port.unwrap_or(conn.local_port)))
}

/// The client's `X-Request-Id` when it is sane, else a new random one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut id = match headers.get(&X_REQUEST_ID) {
        Some(v)
            if !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(u8::is_ascii_graphic) =>
        {
            v.clone()
        }
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let n: u128 = rand::random();
            let mut buf = [0u8; 32];
            // A byte at a time (shifts of a u128 cost several instructions).
            for (pair, b) in buf.chunks_exact_mut(2).zip(n.to_be_bytes()) {
                pair[0] = HEX[usize::from(b >> 4)];
                pair[1] = HEX[usize::from(b & 0xf)];
            }
            HeaderValue::from_maybe_shared(fresh_id(&buf))
                .unwrap_or_else(|_| HeaderValue::from_static("0"))
        }
    };
    // Never indexed by HTTP/2's header compression (to clients and h2
    // upstreams): each id is new, so entering it into the compression
    // table, and searching the table for it, is work for nothing.
    id.set_sensitive(true);
    id
}

/// A new request id's bytes, cut from a 1 KiB block this thread fills
/// with ids: a refcounted slice, so neither making the id nor copying it
/// (to the upstream request, the log) allocates, but for one block per 32
/// ids. A block is freed when the last id cut from it is, so a long-lived
/// request (a stream, a websocket) keeps at most 1 KiB for its id.
fn fresh_id(hex: &[u8; 32]) -> bytes::Bytes {
    use std::cell::RefCell;
    thread_local! {
        static BLOCK: RefCell<bytes::BytesMut> = RefCell::new(bytes::BytesMut::new());
    }
    BLOCK.with(|block| {
        let mut block = block.borrow_mut();
        if block.capacity() < hex.len() {
            *block = bytes::BytesMut::with_capacity(1024);
        }
        block.extend_from_slice(hex);
        block.split().freeze()
    })
}

/// The answer for a console route when no console is registered: as the
/// console answers when it is not configured (503, nothing changed).
fn unmounted(headers: &HeaderMap, request_id: &str) -> Response<Body> {
    let json = crate::answers::wants_json(headers);
    crate::error::response(&crate::error::ProxyError::NotMounted, request_id, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_whole_and_distinct_across_blocks() {
        let ids: Vec<HeaderValue> = (0..100).map(|_| request_id(&HeaderMap::new())).collect();
        for id in &ids {
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        }
        let distinct: std::collections::HashSet<&[u8]> = ids.iter().map(|i| i.as_bytes()).collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn request_ids_are_kept_out_of_the_http2_compression_table() {
        let fresh = request_id(&HeaderMap::new());
        assert_eq!(fresh.len(), 32);
        assert!(fresh.is_sensitive());
        let mut h = HeaderMap::new();
        h.insert(
            X_REQUEST_ID.clone(),
            HeaderValue::from_static("client-id-1"),
        );
        let given = request_id(&h);
        assert_eq!(given, "client-id-1");
        assert!(given.is_sensitive());
        // Not a usable id: a fresh one instead.
        h.insert(X_REQUEST_ID.clone(), HeaderValue::from_static("two words"));
        assert_ne!(request_id(&h), "two words");
    }
}

//! Act on an allowed request (phase 7 of [`crate::dispatch`]): a direct
//! response, a redirect, or the upstream.
//!
//! Forwarding: [`upstream_request_headers`] is the one place that decides
//! which headers an upstream sees (the assertion comes from
//! [`crate::assertion`]); the body streams through untouched; on the way
//! back hop-by-hop headers and gatehouse's own cookies are dropped.

use std::borrow::Cow;

use gatehouse_config::{
    HostHeader, PathRewrite, Redirect, Route, RouteAction, TemplatePart, UpstreamScheme,
};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};

use crate::assertion::claim_value;
use crate::authorize::Permit;
use crate::body::{self, Body, RequestBody};
use crate::error::ProxyError;
use crate::request::split_authority;
use crate::runtime::RouteState;

/// Per-request facts the forwarding phases share.
pub struct RequestCtx<'a> {
    pub conn: &'a ConnInfo,
    /// The lane driven by this request's task, if any.
    pub lane: Option<&'a crate::lane::Lane>,
    pub request_id: &'a HeaderValue,
    /// gatehouse's session cookie, never forwarded.
    pub cookie_name: &'a str,
    /// `X-Pomerium-Jwt-Assertion` for routes that pass identity headers.
    pub assertion: Option<HeaderValue>,
    /// `X-Pomerium-Jwt-Assertion-For`: the assertion of a trusted gatehouse
    /// (or Pomerium) in front, chained upstream.
    pub assertion_for: Option<HeaderValue>,
    /// The signed-in session, if the route needed one.
    pub session: Option<&'a gatehouse_identity::Session>,
    /// Where the request went (for the access log).
    pub upstream: std::sync::OnceLock<http::uri::Authority>,
    /// Header names only gatehouse may write.
    pub owned_headers: &'a crate::identity_headers::OwnedHeaders,
    /// How requests are made canonical (a rewritten path is checked
    /// against them; `skip_xff_append`).
    pub rules: &'a gatehouse_config::RequestRules,
    /// The route's `jwt_groups_filter` (claim headers carry only these).
    pub groups_filter: Option<&'a [String]>,
    /// The client's address as policies see it (after trusted hops): the
    /// key of `ring_hash` and `maglev`.
    pub client_ip: std::net::IpAddr,
    /// The connection's client certificate, only when it is valid for the
    /// route: `${pomerium.client_cert_*}` templates vouch for it.
    pub client_cert: Option<&'a crate::client_cert::PeerCert>,
    /// W3C `traceparent` for the upstream (tracing on): it replaces the
    /// client's.
    pub traceparent: Option<HeaderValue>,
    /// `timeout_write`: a websocket tunnel is closed then.
    pub deadline: Option<tokio::time::Instant>,
}

pub use crate::request::ConnInfo;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static CLOSE: HeaderName = HeaderName::from_static("close");

/// The host the client asked for: HTTP/2 `:authority` (or an absolute
/// URI), else `Host`; empty when neither is there.
fn authority<B>(req: &Request<B>) -> &str {
    match req.uri().authority() {
        Some(a) => a.as_str(),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    }
}

/// What the route does with a request its policy allowed.
pub(crate) async fn act(
    permit: &Permit<'_>,
    req: Request<RequestBody>,
    ctx: &RequestCtx<'_>,
) -> Result<Response<Body>, ProxyError> {
    let (route, state) = (permit.route(), permit.state());
    match &route.action {
        RouteAction::Respond { status, body } => {
            let mut resp = Response::new(body::full(body.clone().into()));
            *resp.status_mut() = *status;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Ok(resp)
        }
        RouteAction::Redirect(r) => Ok(redirect(r, route, &req, ctx.conn)),
        RouteAction::Forward(targets) => {
            // Counted in flight (least_request) until the answer's head.
            let picked = state.balancer.pick(ctx.client_ip);
            // With outlier detection, what became of the client's body
            // decides whether a failure is the upstream's.
            let body_state = state
                .balancer
                .judges_outcomes()
                .then(|| std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0)));
            let result = forward(
                route,
                state,
                targets,
                picked.index,
                req,
                ctx,
                body_state.as_ref(),
            )
            .await;
            let Some(body_state) = body_state else {
                return result;
            };
            let sent = body_state.load(std::sync::atomic::Ordering::Relaxed);
            use crate::balance::Outcome;
            use crate::body::client_state::{BROKEN, SENT};
            let (outcome, result) = match result {
                Ok(resp) if resp.status().is_server_error() => {
                    (Some(Outcome::Status(resp.status().as_u16())), Ok(resp))
                }
                Ok(resp) => (Some(Outcome::Ok), Ok(resp)),
                // The client broke its body off: its fault, not the upstream's.
                Err(_) if sent == BROKEN => (None, Err(ProxyError::ClientBody)),
                // Still sending when it failed or timed out: nothing is
                // known of the upstream.
                Err(e @ (ProxyError::UpstreamReset(_) | ProxyError::UpstreamTimeout))
                    if sent != SENT =>
                {
                    (None, Err(e))
                }
                Err(
                    e @ (ProxyError::UpstreamConnect(_)
                    | ProxyError::UpstreamReset(_)
                    | ProxyError::UpstreamTimeout),
                ) => (Some(Outcome::Failed), Err(e)),
                // Refused before the upstream was asked: says nothing of it.
                Err(e) => (None, Err(e)),
            };
            if let Some(o) = outcome {
                state.balancer.report(picked.index, o);
            }
            result
        }
        // Served by the dispatcher (it needs the process-wide console).
        RouteAction::Console => Err(ProxyError::NoRoute),
    }
}

fn redirect(
    r: &Redirect,
    route: &Route,
    req: &Request<RequestBody>,
    conn: &ConnInfo,
) -> Response<Body> {
    let path = req.uri().path();
    let scheme = if r.https_redirect {
        "https"
    } else if let Some(s) = &r.scheme_redirect {
        s.as_str()
    } else if conn.external_https() {
        "https"
    } else {
        "http"
    };
    let (req_host, req_port) = split_authority(authority(req)).unwrap_or(("", None));
    let host = r
        .host_redirect
        .clone()
        .unwrap_or_else(|| req_host.to_string());
    let port = r
        .port_redirect
        .or(if r.https_redirect { None } else { req_port });
    let new_path = if let Some(p) = &r.path_redirect {
        p.clone()
    } else if let Some(p) = &r.prefix_rewrite {
        let matched = match &route.path_match {
            gatehouse_config::PathMatch::Prefix(m) | gatehouse_config::PathMatch::Exact(m) => {
                m.as_str()
            }
            _ => "/",
        };
        match path.strip_prefix(matched) {
            Some(rest) => format!("{p}{rest}"),
            None => path.to_string(),
        }
    } else {
        path.to_string()
    };
    let mut location = match port {
        Some(p) => format!("{scheme}://{host}:{p}{new_path}"),
        None => format!("{scheme}://{host}{new_path}"),
    };
    if !r.strip_query
        && let Some(q) = req.uri().query()
    {
        location.push('?');
        location.push_str(q);
    }
    let mut resp = Response::new(body::empty());
    *resp.status_mut() =
        StatusCode::from_u16(r.response_code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn is_websocket(headers: &HeaderMap) -> bool {
    lists(headers, &header::UPGRADE, "websocket") && lists(headers, &header::CONNECTION, "upgrade")
}

/// Whether the comma-separated values of `name` list `token` (any case).
pub(crate) fn lists(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

async fn forward(
    route: &Route,
    state: &RouteState,
    targets: &[gatehouse_config::UpstreamTarget],
    target_index: usize,
    mut req: Request<RequestBody>,
    ctx: &RequestCtx<'_>,
    body_state: Option<&std::sync::Arc<std::sync::atomic::AtomicU8>>,
) -> Result<Response<Body>, ProxyError> {
    let upgrade =
        route.allow_websockets && is_websocket(req.headers()) && req.version() == Version::HTTP_11;
    let target = &targets[target_index];
    let _ = ctx.upstream.set(target.authority.clone());

    // The path upstream: the canonical one the policy decided on, then
    // rewritten; its bytes are reused when no rewrite applies.
    let path_and_query = {
        match rewrite_path(&route.rewrite, req.uri().path()) {
            Cow::Borrowed(_) => match req.uri().path_and_query() {
                Some(pq) => pq.clone(),
                None => PathAndQuery::from_static("/"),
            },
            new_path => {
                // A rewrite must not make a path the upstream reads another
                // way (`prefix: /app` + `prefix_rewrite: /api/` turns
                // `/app../admin` into `/api/../admin`): its result is made
                // canonical too, and one that needs dot segments resolved
                // is refused (resolving them would leave the rewrite's base).
                let canonical = crate::request::canonical_path(&new_path, ctx.rules)
                    .map_err(ProxyError::Ambiguous)?;
                if canonical.dot_segments {
                    return Err(ProxyError::Ambiguous(
                        crate::request::Ambiguous::DotSegments,
                    ));
                }
                let pq = match req.uri().query() {
                    Some(q) => format!("{}?{q}", canonical.path),
                    None => canonical.path.into_owned(),
                };
                PathAndQuery::try_from(pq)
                    .map_err(|e| ProxyError::Internal(format!("upstream path: {e}")))?
            }
        }
    };
    // Requests to plain-HTTP upstreams ride the lane this task drives (the
    // client connection's for HTTP/1, the stream's own for HTTP/2); upgrades
    // and the other schemes go through the pooled clients. So do HTTP/2
    // requests with a body: once the answer has begun, a stream's lane is
    // driven only as fast as the client reads that answer, and an upload
    // must go on whether or not it does (as it does on an HTTP/1 lane,
    // whose connection task polls both ways).
    let h2_upload = req.version() == Version::HTTP_2 && !http_body::Body::is_end_stream(req.body());
    let lane = match (ctx.lane, target.scheme, upgrade || h2_upload) {
        (Some(lane), UpstreamScheme::Http, false) => Some(lane),
        _ => None,
    };
    let uri = if lane.is_some() {
        // An HTTP/1 connection of our own takes the origin form.
        Uri::from(path_and_query)
    } else {
        let scheme = match target.scheme {
            UpstreamScheme::Https => Scheme::HTTPS,
            // (`tcp://` targets are reached by tunnels, never here.)
            UpstreamScheme::Http | UpstreamScheme::H2c | UpstreamScheme::Tcp => Scheme::HTTP,
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(scheme);
        parts.authority = Some(target.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).map_err(|e| ProxyError::Internal(format!("upstream URI: {e}")))?
    };

    let original_host = match req.uri().authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => req.headers().get(header::HOST).cloned(),
    };
    let downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let host_value = upstream_host(
        route,
        &state.target_hosts[target_index],
        req.headers(),
        original_host.as_ref(),
        req.uri().path(),
    );
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    upstream_request_headers(
        req.headers_mut(),
        route,
        ctx,
        original_host,
        host_value,
        upgrade,
    );

    let req = req.map(|b| {
        let b = body::from_client(b, route.idle_timeout);
        match body_state {
            Some(st) => body::watched(b, st.clone()),
            None => b,
        }
    });
    let mut resp = match lane {
        Some(lane) => {
            // The pooled clients add `Host` when a header rule removed it;
            // a connection of our own needs it said.
            let mut req = req;
            if !req.headers().contains_key(header::HOST) {
                req.headers_mut()
                    .insert(header::HOST, state.target_hosts[target_index].clone());
            }
            let sent = lane.send(&state.clients.lanes, &target.authority, req);
            // The route's timeout on the connection's own timer (no timer
            // registered and cancelled per request); the exchange's future
            // pinned here, not copied into the timeout's. (Timeouts inline
            // here and below: a shared async helper made every request's
            // future 1 KiB larger.)
            let result = match route.timeout {
                Some(t) => match lane.within(t, std::pin::pin!(sent)).await {
                    Some(r) => r,
                    None => {
                        // The exchange was cut halfway: its connection goes.
                        lane.unbind();
                        return Err(ProxyError::UpstreamTimeout);
                    }
                },
                None => sent.await,
            };
            result.map_err(|e| match e {
                crate::lane::LaneError::Connect(e) => ProxyError::UpstreamConnect(e),
                crate::lane::LaneError::Reset(e) => ProxyError::UpstreamReset(Box::new(e)),
            })?
        }
        None => {
            let client = state.clients.for_target(target.scheme, upgrade);
            let fut = client.request(req);
            let result = match route.timeout {
                Some(t) => tokio::time::timeout(t, fut)
                    .await
                    .map_err(|_| ProxyError::UpstreamTimeout)?,
                None => fut.await,
            };
            result.map_err(|e| {
                if e.is_connect() {
                    ProxyError::UpstreamConnect(Box::new(e))
                } else {
                    ProxyError::UpstreamReset(Box::new(e))
                }
            })?
        }
    };

    if let (Some(downstream), StatusCode::SWITCHING_PROTOCOLS) = (downstream_upgrade, resp.status())
    {
        let upstream = hyper::upgrade::on(&mut resp);
        let deadline = ctx.deadline;
        let idle = route.idle_timeout;
        tokio::spawn(async move {
            let joined = async {
                match tokio::try_join!(downstream, upstream) {
                    Ok((down, up)) => tunnel(down, up, idle).await,
                    Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
                }
            };
            // `timeout_write` bounds the tunnel as the stream it is
            // (Envoy's `max_stream_duration`): both sides are closed then.
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, joined).await.is_err() {
                        tracing::debug!("websocket tunnel closed at timeout_write");
                    }
                }
                None => joined.await,
            }
        });
        let (parts, _) = resp.into_parts();
        let mut out = Response::from_parts(parts, body::empty());
        rewrite_headers(out.headers_mut(), &route.rewrite_response_headers);
        strip_hop_by_hop(out.headers_mut(), true);
        strip_own_set_cookies(out.headers_mut(), ctx.cookie_name);
        return Ok(out);
    }

    let (parts, incoming) = resp.into_parts();
    let mut out = Response::from_parts(parts, body::from_upstream(incoming, route.idle_timeout));
    rewrite_headers(out.headers_mut(), &route.rewrite_response_headers);
    strip_hop_by_hop(out.headers_mut(), false);
    strip_own_set_cookies(out.headers_mut(), ctx.cookie_name);
    Ok(out)
}

/// `rewrite_response_headers`, in order, on the upstream's answer (never on
/// gatehouse's own): each value of the named header that starts with the
/// rule's prefix gets the rule's value in its place. Runs before the
/// hop-by-hop and own-cookie filters, so a rewrite cannot slip past them.
fn rewrite_headers(headers: &mut HeaderMap, rules: &[gatehouse_config::RewriteHeader]) {
    for rule in rules {
        let http::header::Entry::Occupied(mut entry) = headers.entry(&rule.name) else {
            continue;
        };
        for v in entry.iter_mut() {
            let Some(rest) = v.as_bytes().strip_prefix(rule.prefix.as_bytes()) else {
                continue;
            };
            let mut new = Vec::with_capacity(rule.value.len() + rest.len());
            new.extend_from_slice(rule.value.as_bytes());
            new.extend_from_slice(rest);
            if let Ok(nv) = HeaderValue::from_bytes(&new) {
                *v = nv;
            }
        }
    }
}

/// Removes every `Authorization` value that is gatehouse's own token (the
/// client's other credentials stay), whichever of several values it is.
fn strip_own_tokens(headers: &mut HeaderMap) {
    remove_values(headers, &header::AUTHORIZATION, |v| {
        crate::bearer::is_own_token_value(v)
    });
}

/// Removes the values of `name` that `gone` picks and keeps the others, in
/// order; nothing is copied when none is picked.
fn remove_values(headers: &mut HeaderMap, name: &HeaderName, gone: impl Fn(&HeaderValue) -> bool) {
    if !headers.get_all(name).iter().any(&gone) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(name)
        .iter()
        .filter(|v| !gone(v))
        .cloned()
        .collect();
    headers.remove(name);
    for v in kept {
        headers.append(name.clone(), v);
    }
}

/// gatehouse's cookies (the session, `<name>_*`: pending sign-ins, CSRF,
/// the authenticate host's) are set by gatehouse alone: an upstream, maybe
/// a hostile co-tenant route on the same cookie domain, must not plant,
/// replace or delete them in a browser.
fn strip_own_set_cookies(headers: &mut HeaderMap, cookie_name: &str) {
    // Looked at on every response: nothing allocated unless one is found.
    let own =
        |v: &HeaderValue| crate::authenticate::is_own_cookie(v.as_bytes(), cookie_name.as_bytes());
    remove_values(headers, &header::SET_COOKIE, own);
}

/// A websocket after its upgrade: open while both ends keep it, or until
/// the route's `idle_timeout` of silence either way (as Envoy's stream idle
/// timeout closes it).
async fn tunnel(
    down: hyper::upgrade::Upgraded,
    up: hyper::upgrade::Upgraded,
    idle: Option<std::time::Duration>,
) {
    let down = hyper_util::rt::TokioIo::new(down);
    let up = hyper_util::rt::TokioIo::new(up);
    if let Err(e) = crate::relay::relay(down, up, idle).await {
        tracing::debug!(error = %e, "websocket tunnel closed with an error");
    }
}

fn rewrite_path<'a>(rewrite: &PathRewrite, path: &'a str) -> Cow<'a, str> {
    match rewrite {
        PathRewrite::None => path.into(),
        PathRewrite::Prefix {
            matched,
            replacement,
        } => match path.strip_prefix(matched.as_str()) {
            Some(rest) => {
                let mut out = replacement.clone();
                if out.ends_with('/') && rest.starts_with('/') {
                    out.push_str(&rest[1..]);
                } else {
                    out.push_str(rest);
                }
                if out.is_empty() || !out.starts_with('/') {
                    out.insert(0, '/');
                }
                out.into()
            }
            None => path.into(),
        },
        PathRewrite::Regex {
            pattern,
            substitution,
        } => {
            let out = pattern.replace_all(path, substitution.as_str());
            if out.starts_with('/') {
                out.into_owned().into()
            } else {
                format!("/{out}").into()
            }
        }
    }
}

fn upstream_host(
    route: &Route,
    target_host: &HeaderValue,
    headers: &HeaderMap,
    original_host: Option<&HeaderValue>,
    path: &str,
) -> HeaderValue {
    match &route.host {
        HostHeader::Upstream => target_host.clone(),
        HostHeader::Preserve => original_host
            .cloned()
            .unwrap_or_else(|| target_host.clone()),
        HostHeader::Literal(v) => v.clone(),
        HostHeader::FromHeader(name) => headers
            .get(name)
            .cloned()
            .unwrap_or_else(|| target_host.clone()),
        HostHeader::PathRegex {
            pattern,
            substitution,
        } => {
            let host = pattern.replace(path, substitution.as_str());
            HeaderValue::from_str(&host).unwrap_or_else(|_| target_host.clone())
        }
    }
}

/// Hop-by-hop header names (RFC 9110 §7.6.1: they describe one hop and are
/// never forwarded) present in a map, from one pass over its names.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct HopByHop(u8);

impl HopByHop {
    const CONNECTION: u8 = 1;
    const KEEP_ALIVE: u8 = 1 << 1;
    const PROXY_CONNECTION: u8 = 1 << 2;
    const TRANSFER_ENCODING: u8 = 1 << 3;
    const TRAILER: u8 = 1 << 4;
    const UPGRADE: u8 = 1 << 5;
    const TE: u8 = 1 << 6;
    /// A field named `Close` (reserved, RFC 9110 §7.6.1: `Connection:
    /// close` names it): rare, so the common `close` option needs no
    /// lookup of its own.
    const CLOSE: u8 = 1 << 7;

    /// The bit of `name`, or 0 for an end-to-end header (standard names
    /// compare as enum tags, without looking at bytes).
    fn bit(name: &HeaderName) -> u8 {
        if *name == header::CONNECTION {
            Self::CONNECTION
        } else if *name == header::TRANSFER_ENCODING {
            Self::TRANSFER_ENCODING
        } else if *name == header::TRAILER {
            Self::TRAILER
        } else if *name == header::UPGRADE {
            Self::UPGRADE
        } else if *name == header::TE {
            Self::TE
        } else if *name == KEEP_ALIVE {
            Self::KEEP_ALIVE
        } else if *name == PROXY_CONNECTION {
            Self::PROXY_CONNECTION
        } else if *name == CLOSE {
            Self::CLOSE
        } else {
            0
        }
    }

    /// The bit of a name a `Connection` value lists, in any case, or 0.
    /// (`bit` tells the same names apart by their `HeaderName`, a chain of
    /// enum-tag compares on every header name: a test keeps the two lists
    /// the same.)
    fn of_token(token: &str) -> u8 {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.len() == token.len() && n.eq_ignore_ascii_case(token))
            .map_or(0, |(_, bit)| *bit)
    }

    const NAMES: [(&'static str, u8); 8] = [
        ("connection", HopByHop::CONNECTION),
        ("keep-alive", HopByHop::KEEP_ALIVE),
        ("proxy-connection", HopByHop::PROXY_CONNECTION),
        ("transfer-encoding", HopByHop::TRANSFER_ENCODING),
        ("trailer", HopByHop::TRAILER),
        ("upgrade", HopByHop::UPGRADE),
        ("te", HopByHop::TE),
        ("close", HopByHop::CLOSE),
    ];

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// Removes the hop-by-hop headers (and those `Connection` names). Runs on
/// every request and response: one pass over the names, and a removal only
/// for a name that is there (the common request and answer have none, or
/// only `Connection`).
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut seen = HopByHop::default();
    for name in headers.keys() {
        seen.0 |= HopByHop::bit(name);
    }
    strip_seen_hop_by_hop(headers, seen, keep_upgrade);
}

fn strip_seen_hop_by_hop(headers: &mut HeaderMap, seen: HopByHop, keep_upgrade: bool) {
    // Names a `Connection` value lists that are hop-by-hop anyway (or
    // `close`): removed below only if present, without a lookup of their
    // own (the common `keep-alive` and `close` cost none when absent).
    let mut listed = 0u8;
    if seen.has(HopByHop::CONNECTION) {
        // The names `Connection` lists go too. Its values are taken out
        // first (refcounted, not copied) and each other name is removed by
        // a lookup of the text (a name built from it would be a heap copy).
        let mut values = headers.get_all(header::CONNECTION).iter();
        let first = values.next().cloned();
        // Empty (no allocation) unless the client sent several.
        let rest: Vec<HeaderValue> = values.cloned().collect();
        headers.remove(header::CONNECTION);
        for v in first.iter().chain(&rest) {
            listed |= remove_listed(headers, v, keep_upgrade);
        }
    }
    // (One pass over every name made `seen`: a name not in it is not there,
    // whether or not `Connection` lists it.)
    let gone = [
        (HopByHop::KEEP_ALIVE, &KEEP_ALIVE),
        (HopByHop::PROXY_CONNECTION, &PROXY_CONNECTION),
        (HopByHop::TRANSFER_ENCODING, &header::TRANSFER_ENCODING),
        (HopByHop::TRAILER, &header::TRAILER),
    ];
    for (bit, name) in gone {
        if seen.has(bit) {
            headers.remove(name);
        }
    }
    if listed & HopByHop::CLOSE != 0 && seen.has(HopByHop::CLOSE) {
        headers.remove(&CLOSE);
    }
    if !keep_upgrade {
        if seen.has(HopByHop::UPGRADE) {
            headers.remove(header::UPGRADE);
        }
    } else {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if listed & HopByHop::TE != 0 && seen.has(HopByHop::TE) {
        // Named by `Connection`: this hop's, whatever it says.
        headers.remove(header::TE);
    } else if seen.has(HopByHop::TE) {
        // `TE: trailers` is end-to-end in practice (gRPC needs it); nothing
        // else in any `TE` value passes.
        let trailers = |v: &HeaderValue| v.as_bytes().eq_ignore_ascii_case(b"trailers");
        let all = headers.get_all(header::TE);
        let only_trailers = all.iter().all(trailers);
        let any_trailers = all.iter().any(trailers);
        if !only_trailers {
            headers.remove(header::TE);
            if any_trailers {
                headers.insert(header::TE, HeaderValue::from_static("trailers"));
            }
        }
    }
}

/// Removes each header a `Connection` value names (but `Upgrade` when the
/// upgrade is kept), except the hop-by-hop names [`HopByHop`] tracks:
/// their bits are returned for the caller to remove. A token that is no
/// header name matches nothing.
fn remove_listed(headers: &mut HeaderMap, connection: &HeaderValue, keep_upgrade: bool) -> u8 {
    let Ok(text) = connection.to_str() else {
        return 0;
    };
    let mut listed = 0;
    for token in text.split(',').map(str::trim) {
        if token.is_empty() || (keep_upgrade && token.eq_ignore_ascii_case("upgrade")) {
            continue;
        }
        match HopByHop::of_token(token) {
            0 => {
                headers.remove(token);
            }
            bit => listed |= bit,
        }
    }
    listed
}

/// The one place that decides which headers an upstream sees.
fn upstream_request_headers(
    headers: &mut HeaderMap,
    route: &Route,
    ctx: &RequestCtx<'_>,
    original_host: Option<HeaderValue>,
    host: HeaderValue,
    upgrade: bool,
) {
    // One pass over the client's header names decides which edits apply:
    // a name that is not there costs no lookup.
    let mut hop = HopByHop::default();
    let (mut owned, mut cookie, mut authorization) = (false, false, false);
    for name in headers.keys() {
        // Any name may be owned (a configured claim header may be called
        // `Authorization`, `Cookie` or `X-Forwarded-For`): asked of each.
        owned |= ctx.owned_headers.owns(name.as_str());
        let bit = HopByHop::bit(name);
        if bit != 0 {
            hop.0 |= bit;
        } else if *name == header::COOKIE {
            cookie = true;
        } else if *name == header::AUTHORIZATION {
            authorization = true;
        }
    }
    strip_seen_hop_by_hop(headers, hop, upgrade);
    if owned {
        // Among them a client's `X-Forwarded-Host` and `-Proto`.
        ctx.owned_headers.strip(headers);
    }
    if let Some(a) = &ctx.assertion {
        headers.insert(
            HeaderName::from_static("x-pomerium-jwt-assertion"),
            a.clone(),
        );
    }
    if let Some(a) = &ctx.assertion_for {
        headers.insert(
            HeaderName::from_static("x-pomerium-jwt-assertion-for"),
            a.clone(),
        );
    }
    if route.pass_identity_headers {
        for (name, claim) in &route.claim_headers {
            let value = ctx
                .session
                .map(|s| claim_value(s, claim, ctx.groups_filter))
                .unwrap_or_default();
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name.clone(), v);
            }
        }
    }
    if cookie {
        crate::authenticate::strip_cookies(headers, ctx.cookie_name);
    }
    // gatehouse's own programmatic token never reaches an upstream
    // (`X-Pomerium-Authorization` went with the owned headers above).
    if authorization {
        strip_own_tokens(headers);
    }
    // gatehouse's trace context, before the route's own edits (a route may
    // remove or set `traceparent`).
    if let Some(tp) = &ctx.traceparent {
        headers.insert(crate::trace::TRACEPARENT.clone(), tp.clone());
    }
    for name in &route.remove_request_headers {
        headers.remove(name);
    }

    // X-Forwarded-For: the peer appended (Envoy's default), unless
    // `skip_xff_append`.
    let conn = ctx.conn;
    if !ctx.rules.skip_xff_append {
        let mut joined = String::new();
        for v in headers.get_all(&X_FORWARDED_FOR) {
            let v = v.to_str().map(str::trim).unwrap_or("");
            if !v.is_empty() {
                joined.push_str(v);
                joined.push_str(", ");
            }
        }
        let value = if joined.is_empty() {
            conn.peer_ip.clone()
        } else {
            joined.push_str(conn.peer_ip.to_str().unwrap_or_default());
            HeaderValue::from_str(&joined).unwrap_or_else(|_| conn.peer_ip.clone())
        };
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
    );
    // A client's own went with the owned headers.
    if let Some(h) = original_host {
        headers.insert(X_FORWARDED_HOST.clone(), h);
    }
    headers.insert(X_REQUEST_ID.clone(), ctx.request_id.clone());
    headers.insert(header::HOST, host);

    for (name, template) in &route.set_request_headers {
        let value = match template.as_literal() {
            Some(lit) => HeaderValue::from_str(lit).ok(),
            None => render_template(&template.parts, headers, ctx),
        };
        match value {
            Some(v) => {
                headers.insert(name.clone(), v);
            }
            None => {
                headers.remove(name);
            }
        }
    }
}

/// Renders `${pomerium.*}` parts (identity parts are empty without a session).
fn render_template(
    parts: &[TemplatePart],
    headers: &HeaderMap,
    ctx: &RequestCtx<'_>,
) -> Option<HeaderValue> {
    let tokens = ctx.session.and_then(|s| s.tokens.as_ref());
    let mut out = String::new();
    for p in parts {
        match p {
            TemplatePart::Literal(s) => out.push_str(s),
            TemplatePart::RequestHeader(h) => {
                if let Some(v) = headers.get(h).and_then(|v| v.to_str().ok()) {
                    out.push_str(v);
                }
            }
            TemplatePart::AccessToken => {
                out.push_str(tokens.map_or("", |t| t.access_token.as_str()))
            }
            TemplatePart::IdToken => {
                out.push_str(tokens.and_then(|t| t.id_token.as_deref()).unwrap_or(""))
            }
            TemplatePart::Jwt => out.push_str(
                ctx.assertion
                    .as_ref()
                    .and_then(|a| a.to_str().ok())
                    .unwrap_or(""),
            ),
            TemplatePart::ClientCertFingerprint => {
                if let Some(c) = ctx.client_cert {
                    out.push_str(&c.facts.fingerprint);
                }
            }
            // Names with a comma are left out: the list would be ambiguous.
            TemplatePart::ClientCertSanDns | TemplatePart::ClientCertSanEmail => {
                if let Some(c) = ctx.client_cert {
                    let names = match p {
                        TemplatePart::ClientCertSanDns => &c.facts.san_dns,
                        _ => &c.facts.san_email,
                    };
                    let mut first = true;
                    for n in names.iter().filter(|n| !n.contains(',')) {
                        if !first {
                            out.push(',');
                        }
                        out.push_str(n);
                        first = false;
                    }
                }
            }
        }
    }
    HeaderValue::from_str(&out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rewrites() {
        let rw = |m: &str, r: &str, p: &str| {
            rewrite_path(
                &PathRewrite::Prefix {
                    matched: m.into(),
                    replacement: r.into(),
                },
                p,
            )
            .into_owned()
        };
        assert_eq!(rw("/admin", "/", "/admin"), "/");
        assert_eq!(rw("/admin", "/", "/admin/x"), "/x");
        assert_eq!(rw("/grafana/", "/", "/grafana/d/1"), "/d/1");
        assert_eq!(rw("/", "/base", "/x"), "/basex");
        assert_eq!(rw("/", "/base/", "/x"), "/base/x");
        assert_eq!(rw("/app", "/base", "/app/x"), "/base/x");
    }

    #[test]
    fn regex_rewrite_with_groups() {
        let r = PathRewrite::Regex {
            pattern: regex::Regex::new("^/service/([^/]+)(/.*)$").unwrap(),
            substitution: "${2}/instance/${1}".into(),
        };
        assert_eq!(rewrite_path(&r, "/service/foo/bar"), "/bar/instance/foo");
    }

    #[test]
    fn hop_by_hop_and_spoofed_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        h.insert(
            "X-Pomerium-Jwt-Assertion",
            HeaderValue::from_static("forged"),
        );
        h.append(
            "x-pomerium-jwt-assertion",
            HeaderValue::from_static("forged2"),
        );
        h.insert(
            "X-POMERIUM-CLAIM-EMAIL",
            HeaderValue::from_static("ceo@example.com"),
        );
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        crate::identity_headers::OwnedHeaders::default().strip(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn every_name_any_connection_value_lists_is_removed() {
        let mut h = HeaderMap::new();
        // Several values, odd case and spaces, an empty item, a token that
        // is no header name, and the upgrade kept.
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("Keep-Alive, ,X-One"),
        );
        h.append(
            header::CONNECTION,
            HeaderValue::from_static(" x-TWO ,bad token,Upgrade"),
        );
        for name in ["x-one", "x-two", "keep-alive", "x-kept"] {
            h.insert(name, HeaderValue::from_static("1"));
        }
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h, true);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["connection", "upgrade", "x-kept"]);
        assert_eq!(h[header::CONNECTION], "upgrade");
        // Without the upgrade: `Upgrade` goes too.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
        // Hop-by-hop names listed (tracked without a lookup of their own):
        // `TE` named by `Connection` goes whole, `trailers` too; a field
        // named `Close` goes when `close` is listed.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("TE, close"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("close", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
        // Not listed: `TE: trailers` passes, `Close` too.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("close", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["close", "te"]);
    }

    #[test]
    fn hop_by_hop_names_and_tokens_agree() {
        let mut all = 0u8;
        for (name, bit) in HopByHop::NAMES {
            assert_eq!(HopByHop::bit(&HeaderName::from_static(name)), bit, "{name}");
            assert_eq!(
                HopByHop::of_token(&name.to_ascii_uppercase()),
                bit,
                "{name}"
            );
            all |= bit;
        }
        assert_eq!(all, u8::MAX, "every bit has its name");
        assert_eq!(HopByHop::bit(&header::HOST), 0);
        assert_eq!(HopByHop::of_token("x-secret"), 0);
    }

    #[test]
    fn authority_split() {
        assert_eq!(
            split_authority("a.example.com:8443"),
            Some(("a.example.com", Some(8443)))
        );
        assert_eq!(
            split_authority("a.example.com"),
            Some(("a.example.com", None))
        );
        assert_eq!(split_authority("[::1]:8443"), Some(("[::1]", Some(8443))));
        assert_eq!(split_authority("a:bad"), None);
        assert_eq!(split_authority(""), None);
    }
}

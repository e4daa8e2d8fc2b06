//! TCP tunnels (`from: tcp+https://host:port`, `to: tcp://addr:port`), as
//! Pomerium's: a client (`gatehouse tcp`, `pomerium-cli tcp`, Pomerium
//! Desktop) sends `CONNECT host:port` over HTTP/1.1 or HTTP/2 with its
//! programmatic token (`Authorization: Pomerium <token>`); the route's
//! policy decides as for any request; an allowed tunnel gets `200` and its
//! bytes go to the target and back until either side closes (or
//! `timeout_write`).
//!
//! Answers a tunnel client reads (as `pomerium-cli` does): `401` sign in
//! (never a redirect), `403` denied, `404` no such tunnel, `503` the
//! target cannot be reached (as Envoy; `pomerium-cli` keeps its token on
//! 503 and drops it on other errors).
//!
//! A tunnel lasts while bytes flow: the connection's read and idle
//! deadlines do not cut it (its relay holds a request in flight); the
//! route's `idle_timeout` closes a tunnel with no bytes either way for
//! that long, and `timeout_write` any tunnel at that age.

use http::{Request, Response, StatusCode};

use crate::Proxy;
use crate::access_log::Outcome;
use crate::authorize::{Asked, Decided, decide, denied, identify};
use crate::body::{self, Body, RequestBody};
use crate::error::ProxyError;
use crate::request::ConnInfo;
use crate::runtime::Runtime;

/// What the dispatcher hands a `CONNECT`.
pub(crate) struct Connect<'a> {
    pub proxy: &'a Proxy,
    pub rt: &'a Runtime,
    pub conn: &'a ConnInfo,
    pub request_id: &'a http::HeaderValue,
    /// The access log's outcome, when the log is on.
    pub outcome: Option<&'a mut Outcome>,
    /// `timeout_write`: when the tunnel is closed.
    pub deadline: Option<tokio::time::Instant>,
}

/// Serves one `CONNECT`: the route it opened (for the counters) and the
/// answer.
pub(crate) async fn serve(
    c: Connect<'_>,
    mut req: Request<RequestBody>,
) -> (Option<usize>, Response<Body>) {
    let id = c.request_id.to_str().unwrap_or_default();
    let refuse = |e: &ProxyError| {
        let mut r = crate::error::response(e, id, true);
        // HTTP/1.1: bytes a client sent after its refused CONNECT are not
        // read as requests.
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        r
    };
    // The header rules every request gets (one Host, names, underscores).
    let authority_for_check = req.uri().authority().cloned();
    if let Err(e) = crate::request::check_headers(
        req.headers_mut(),
        authority_for_check.as_ref(),
        &c.rt.config.request,
    ) {
        return (None, refuse(&ProxyError::Ambiguous(e)));
    }
    // `CONNECT host:port`: the authority-form target (HTTP/1.1) or
    // `:authority` (HTTP/2); a `Host` saying otherwise is ambiguous.
    let Some(authority) = req.uri().authority().cloned() else {
        return (None, refuse(&ProxyError::NoHost));
    };
    if let Some(h) = req.headers().get(http::header::HOST)
        && !h
            .as_bytes()
            .eq_ignore_ascii_case(authority.as_str().as_bytes())
    {
        return (
            None,
            refuse(&ProxyError::Ambiguous(
                crate::request::Ambiguous::HostMismatch,
            )),
        );
    }
    let Some(port) = authority.port_u16() else {
        return (None, refuse(&ProxyError::NoRoute));
    };
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    let Some(index) = c.rt.table.tunnel(&host, port) else {
        return (None, refuse(&ProxyError::NoRoute));
    };
    let route = &c.rt.config.routes[index];
    let state = &c.rt.routes[index];
    let client_ip = match crate::request::client_address(
        c.conn.peer.ip(),
        req.headers(),
        c.rt.config.request.xff_num_trusted_hops,
    ) {
        Ok(ip) => ip,
        Err(e) => return (Some(index), refuse(&ProxyError::Ambiguous(e))),
    };
    let mut outcome = c.outcome;
    if let Some(o) = outcome.as_deref_mut() {
        o.route = Some(route.label().to_string());
    }
    let session = if state.policy.uses_subject() {
        match identify(c.rt, &c.proxy.identity, route, req.headers(), &host).await {
            Ok(s) => s,
            Err(refused) => return (Some(index), refused.response(id, true)),
        }
    } else {
        None
    };
    if let (Some(o), Some(s)) = (outcome.as_deref_mut(), &session) {
        o.user = Some(s.identity.sub.clone());
        o.email = Some(s.identity.email.clone());
    }
    let decided = decide(
        &c.proxy.metrics,
        route,
        state,
        session,
        Asked {
            method: "CONNECT",
            path: "",
            source_ip: client_ip,
            cors_preflight: false,
            client_cert: c.conn.client_cert(),
            host: &host,
            query: None,
            headers: req.headers(),
        },
        c.request_id,
        &c.rt.config.authorize_log,
    );
    let set = |o: Option<&mut Outcome>, d: &'static str| {
        if let Some(o) = o {
            o.details = Some(d);
        }
    };
    match decided {
        Decided::Allowed(_) => {}
        Decided::Denied(reasons) => {
            set(outcome, "denied");
            let e = if reasons.contains(gatehouse_policy::Reason::ClientCertificateRequired)
                || reasons.contains(gatehouse_policy::Reason::InvalidClientCertificate)
            {
                ProxyError::ClientCertificate
            } else {
                denied(route, reasons)
            };
            return (Some(index), refuse(&e));
        }
        // A tunnel client signs in by itself (programmatic login): 401.
        Decided::SignIn => {
            set(outcome, "sign_in");
            return (Some(index), refuse(&ProxyError::SignInRequired));
        }
    }
    let gatehouse_config::RouteAction::Forward(targets) = &route.action else {
        return (Some(index), refuse(&ProxyError::NoRoute));
    };
    let picked = state.balancer.pick(client_ip);
    let target = &targets[picked.index];
    let connect = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect(target.authority.as_str()),
    )
    .await;
    let upstream = match connect {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            set(outcome, "upstream_connect");
            tracing::warn!(route = %route.label(), request_id = %id, error = %e, "tunnel target unreachable");
            return (Some(index), unavailable(id));
        }
        Err(_) => {
            set(outcome, "upstream_connect");
            tracing::warn!(route = %route.label(), request_id = %id, "tunnel target did not accept within 10 s");
            return (Some(index), unavailable(id));
        }
    };
    let _ = upstream.set_nodelay(true);
    if let Some(o) = outcome {
        o.upstream = Some(target.authority.to_string());
        o.details = Some("via_upstream");
    }
    let downstream = hyper::upgrade::on(&mut req);
    let deadline = c.deadline;
    let idle = route.idle_timeout;
    let label = route.label().to_string();
    let held = req
        .extensions()
        .get::<crate::deadline::TunnelActivity>()
        .map(|a| a.hold());
    tokio::spawn(async move {
        let _held = held;
        let relay = async {
            let down = match downstream.await {
                Ok(d) => d,
                Err(e) => return tracing::debug!(error = %e, "tunnel upgrade failed"),
            };
            let down = hyper_util::rt::TokioIo::new(down);
            let result = crate::relay::relay(down, upstream, idle).await;
            if let Err(e) = result {
                tracing::debug!(route = %label, error = %e, "tunnel closed with an error");
            }
        };
        match deadline {
            Some(d) => {
                if tokio::time::timeout_at(d, relay).await.is_err() {
                    tracing::debug!("tunnel closed at timeout_write");
                }
            }
            None => relay.await,
        }
    });
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::OK;
    (Some(index), resp)
}

/// The target cannot be reached: 503, as Envoy answers (a tunnel client
/// keeps its token and tries again later).
fn unavailable(request_id: &str) -> Response<Body> {
    let mut r = crate::error::response(&ProxyError::TunnelUnreachable, request_id, true);
    r.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    r
}

//! The routes portal, as Pomerium's: `/.pomerium/routes` (a page) and
//! `/.pomerium/api/v1/routes` (JSON) on every route host, listing the
//! routes the signed-in user may open. Unlike Pomerium, which guesses from
//! a few simple rules, each route's policy is evaluated for the user (as a
//! `GET` of the route's path, from the user's address, now).

use std::fmt::Write as _;

use gatehouse_config::{HostPattern, PathMatch, Route};
use http::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::Proxy;
use crate::answers;
use crate::authenticate::{self, Host, Scope};
use crate::body::{Body, RequestBody};
use crate::error::ProxyError;
use crate::runtime::Runtime;

pub const PAGE: &str = "/.pomerium/routes";
pub const API: &str = "/.pomerium/api/v1/routes";

/// One route as the portal lists it.
struct Entry<'a> {
    route: &'a Route,
    /// Where to open it (`None` for wildcard hosts and regex paths).
    link: Option<String>,
}

/// Answers the portal's two paths.
pub(crate) async fn serve(
    proxy: &Proxy,
    rt: &Runtime,
    req: &Request<RequestBody>,
    host: &Host<'_>,
    client_ip: std::net::IpAddr,
    conn: &crate::request::ConnInfo,
    request_id: &str,
) -> Response<Body> {
    let path = req.uri().path();
    if req.method() != Method::GET {
        let e = ProxyError::MethodNotAllowed { allow: Some("GET") };
        return crate::error::response(&e, request_id, answers::wants_json(req.headers()));
    }
    let session = authenticate::session(
        &rt.auth,
        &proxy.identity,
        req.headers(),
        host.name,
        Scope::OwnPages,
    )
    .await;
    let Some(session) = session else {
        let pq = req.uri().path_and_query().map_or(path, |p| p.as_str());
        return authenticate::unauthenticated(&rt.auth, req.headers(), host, pq, request_id, None);
    };
    let entries: Vec<Entry<'_>> = rt
        .config
        .routes
        .iter()
        .zip(&rt.routes)
        .filter(|(route, state)| {
            // The session must be one this route would take (a token-made
            // session is good only where its token is), on its host.
            let route_host = match &route.from.host {
                HostPattern::Exact(h) => h.as_str(),
                HostPattern::Wildcard(_) => host.name,
            };
            let scope = Scope::Route {
                config: &rt.config,
                route,
            };
            let now = gatehouse_identity::session::unix_now();
            if !rt.auth.in_scope(&session, route_host, scope, now) {
                return false;
            }
            let probe = match &route.path_match {
                PathMatch::Exact(p) | PathMatch::Prefix(p) => p.as_str(),
                PathMatch::Any | PathMatch::Regex(_) => "/",
            };
            crate::authorize::may_open(state, &session, probe, client_ip, conn.client_cert())
        })
        .map(|(route, _)| Entry {
            route,
            link: link(route),
        })
        .collect();
    if path == API {
        let routes: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "id": id(e.route),
                    "name": name(e.route),
                    "type": "http",
                    "from": e.route.from.to_string(),
                    "description": e.route.description.as_deref().unwrap_or(""),
                    "logo_url": e.route.logo_url.as_deref().unwrap_or(""),
                })
            })
            .collect();
        let mut resp = answers::json(StatusCode::OK, json!({ "routes": routes }));
        resp.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        return resp;
    }
    let mut list = String::new();
    for e in &entries {
        let title = answers::html_escape(&name(e.route));
        let description = e
            .route
            .description
            .as_deref()
            .map(|d| format!("<br><small>{}</small>", answers::html_escape(d)))
            .unwrap_or_default();
        let _ = match &e.link {
            Some(url) => write!(
                list,
                "<li><a href=\"{}\">{title}</a>{description}</li>",
                answers::html_escape(url)
            ),
            None => write!(
                list,
                "<li>{title} <code>{}</code>{description}</li>",
                answers::html_escape(&e.route.from.to_string())
            ),
        };
    }
    let content = if entries.is_empty() {
        "<h1>Routes</h1><p>No route is open to you.</p>".to_string()
    } else {
        format!("<h1>Routes</h1><ul class=\"routes\">{list}</ul>")
    };
    let mut resp = answers::html(
        StatusCode::OK,
        answers::shell(answers::Layout::Card, "Routes", &content),
    );
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// Where the route opens: its host and its path, when they are one place.
fn link(route: &Route) -> Option<String> {
    if !matches!(route.from.host, HostPattern::Exact(_)) {
        return None;
    }
    let path = match &route.path_match {
        PathMatch::Any => "/",
        PathMatch::Exact(p) | PathMatch::Prefix(p) => p.as_str(),
        PathMatch::Regex(_) => return None,
    };
    Some(format!("{}{path}", route.from))
}

/// The route's name, or one made from its host's first label (and its
/// path), as Pomerium names unnamed routes. The console lists unnamed
/// routes by it too.
pub fn name(route: &Route) -> String {
    if let Some(n) = route.name.as_deref().filter(|n| !n.is_empty()) {
        return n.to_string();
    }
    let host = match &route.from.host {
        HostPattern::Exact(h) => h.split('.').next().unwrap_or(h).to_string(),
        HostPattern::Wildcard(s) => s
            .trim_start_matches('.')
            .split('.')
            .next()
            .unwrap_or("")
            .to_string(),
    };
    match &route.path_match {
        PathMatch::Exact(p) | PathMatch::Prefix(p) if p != "/" => {
            let slug = p.trim_matches('/').replace('/', "-").to_ascii_lowercase();
            format!("{host}-{slug}")
        }
        PathMatch::Regex(_) => format!("{host}-re"),
        _ => host,
    }
}

/// A stable id: the first 16 hex digits of a SHA-256 over what makes the
/// route (from, path matcher, action), so it survives reloads.
fn id(route: &Route) -> String {
    let mut text = route.from.to_string();
    match &route.path_match {
        PathMatch::Any => {}
        PathMatch::Exact(p) => {
            let _ = write!(text, "|path={p}");
        }
        PathMatch::Prefix(p) => {
            let _ = write!(text, "|prefix={p}");
        }
        PathMatch::Regex(r) => {
            let _ = write!(text, "|regex={}", r.as_str());
        }
    }
    let _ = write!(text, "|{:?}", route.action);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    crate::hex::lower(&digest.as_ref()[..8])
}

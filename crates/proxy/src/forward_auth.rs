//! Forward-auth: gatehouse as the authorizer of a proxy that stays in front
//! (nginx `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth`).
//!
//! The proxy asks `/.pomerium/forward_auth` (or oauth2-proxy's spelling,
//! `/oauth2/auth`) about each request, describing the original with
//! `X-Original-URL` / `X-Original-URI` / `X-Original-Method` (nginx) or
//! `X-Forwarded-Proto` / `-Host` / `-Uri` / `-Method` (Traefik, Caddy), and
//! passing the client's headers (cookies, `Authorization`) through. The
//! original URL picks the route; its policy decides, exactly as when
//! gatehouse proxies itself:
//!
//! - **200** with the identity headers for the proxy to copy upstream:
//!   `X-Pomerium-Jwt-Assertion`, the route's claim headers and
//!   `X-Auth-Request-User` / `-Email` / `-Groups` / `-Preferred-Username`;
//! - **401** with `Location` (and `X-Pomerium-Sign-In-Url`): the sign-in URL
//!   that brings the user back to the original URL. Traefik and Caddy pass a
//!   gatehouse answer to the client as it is, so page navigations there get
//!   the **302** itself; nginx's `auth_request` only understands 2xx, 401
//!   and 403, so nginx-style requests always get 401;
//! - **403** when the policy denies (or no route matches).
//!
//! Only peers in `forward_auth_trusted_sources` (default loopback) may ask:
//! the forwarded headers are believed from them alone.

use gatehouse_identity::Session;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::answers;
use crate::assertion::{assertion, claim_value};
use crate::authenticate;
use crate::authorize::{Asked, Decided, decide, denied, identify, is_cors_preflight};
use crate::body::{self, Body, RequestBody};
use crate::error::ProxyError;
use crate::request::{ConnInfo, split_authority};
use crate::runtime::Runtime;

/// The endpoint's own path.
pub const PATH: &str = "/.pomerium/forward_auth";
/// oauth2-proxy's path, for nginx configurations written for it.
pub const OAUTH2_PATH: &str = "/oauth2/auth";

static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// True when the request describes another one (it is a forward-auth
/// question, whatever its path says).
pub fn describes_original(headers: &HeaderMap) -> bool {
    headers.contains_key(&X_ORIGINAL_URL)
        || headers.contains_key(&X_ORIGINAL_URI)
        || headers.contains_key(&X_FORWARDED_URI)
}

/// The request the proxy in front is asking about.
#[derive(Debug, PartialEq, Eq)]
struct Original {
    method: String,
    https: bool,
    /// Lower-case `host[:port]`.
    authority: String,
    path_and_query: String,
    /// nginx style (`X-Original-*`): the answer must be 2xx, 401 or 403.
    nginx: bool,
}

impl Original {
    fn from_headers(headers: &HeaderMap, method: &Method) -> Result<Original, &'static str> {
        let text = |n: &HeaderName| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
        let method = text(&X_ORIGINAL_METHOD)
            .or_else(|| text(&X_FORWARDED_METHOD))
            .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(str::to_ascii_uppercase)
            .unwrap_or_else(|| method.as_str().to_string());
        if let Some(full) = text(&X_ORIGINAL_URL) {
            // Split by hand, not as a WHATWG URL: that reading would take
            // `app:@public` as userinfo and a host nginx never served, and
            // would resolve `\` and dots before gatehouse could refuse them.
            let (https, rest) = if let Some(r) = strip_prefix_ci(full, "https://") {
                (true, r)
            } else if let Some(r) = strip_prefix_ci(full, "http://") {
                (false, r)
            } else {
                return Err("X-Original-URL must be an absolute http or https URL");
            };
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, pq) = rest.split_at(end);
            if !crate::request::valid_authority(authority.as_bytes()) {
                return Err("X-Original-URL has no valid host");
            }
            let pq = if pq.starts_with('/') {
                pq.to_string()
            } else {
                format!("/{pq}")
            };
            return Ok(Original {
                method,
                https,
                authority: authority.to_ascii_lowercase(),
                path_and_query: pq,
                nginx: true,
            });
        }
        let nginx = headers.contains_key(&X_ORIGINAL_URI);
        let path_and_query = text(&X_ORIGINAL_URI)
            .or_else(|| text(&X_FORWARDED_URI))
            .ok_or("the original request is not described: send X-Original-URL (nginx), or X-Forwarded-Host and X-Forwarded-Uri (Traefik, Caddy)")?;
        if !path_and_query.starts_with('/') {
            return Err("the original URI must start with /");
        }
        let authority = text(&X_FORWARDED_HOST)
            .or_else(|| text(&header::HOST))
            .map(|h| h.split(',').next().unwrap_or("").trim())
            .filter(|h| !h.is_empty())
            .ok_or("the original host is not described: send X-Forwarded-Host")?;
        if !crate::request::valid_authority(authority.as_bytes()) {
            return Err("the original host is not valid");
        }
        let https = !text(&X_FORWARDED_PROTO).is_some_and(|p| p.eq_ignore_ascii_case("http"));
        Ok(Original {
            method,
            https,
            authority: authority.to_ascii_lowercase(),
            path_and_query: path_and_query.to_string(),
            nginx,
        })
    }

    fn origin(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.authority
        )
    }

    fn url(&self) -> String {
        format!("{}{}", self.origin(), self.path_and_query)
    }

    fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }
}

/// The original request a forward-auth question describes, as
/// `(method, url)`, or why it cannot be read (a pure entry point for the
/// header fuzzer).
pub fn original_target(headers: &HeaderMap) -> Result<(String, String), &'static str> {
    Original::from_headers(headers, &Method::GET).map(|o| (o.method.clone(), o.url()))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(|_| &s[prefix.len()..])
}

/// Answers one forward-auth question.
pub async fn handle(
    proxy: &crate::Proxy,
    rt: &Runtime,
    req: &Request<RequestBody>,
    conn: &ConnInfo,
    request_id: &HeaderValue,
) -> Response<Body> {
    let id = request_id.to_str().unwrap_or_default();
    let headers = req.headers();
    let json = answers::wants_json(headers);
    let refuse = |e: ProxyError| crate::error::response(&e, id, json);
    let rules = &rt.config.request;
    let peer = conn.peer.ip().to_canonical();
    if !rt
        .config
        .forward_auth_trusted_sources
        .iter()
        .any(|n| n.contains(&peer))
    {
        tracing::warn!(client = %peer, request_id = id, "forward-auth request from an address not in forward_auth_trusted_sources: refused");
        return refuse(ProxyError::ForwardAuthUntrusted);
    }
    let original = match Original::from_headers(headers, req.method()) {
        Ok(o) => o,
        Err(why) => {
            return refuse(ProxyError::ForwardAuthBadRequest(why));
        }
    };
    let Some((host, port)) = split_authority(&original.authority) else {
        return refuse(ProxyError::ForwardAuthBadRequest(
            "The original host is not valid.",
        ));
    };
    let host = host.trim_end_matches('.');
    let port = port.unwrap_or(if original.https { 443 } else { 80 });
    // The same canonical path as a request gatehouse proxies itself; an
    // ambiguous one is refused (the proxy in front then refuses it too).
    // The proxy in front forwards the raw path, not gatehouse's canonical
    // one: a path that needs dot segments resolved would be read one way
    // here and maybe another way upstream, so it is refused.
    let path = match crate::request::canonical_path(original.path(), rules) {
        Ok(c) if c.dot_segments => {
            let e = crate::request::Ambiguous::DotSegments;
            return refuse(ProxyError::Ambiguous(e));
        }
        Ok(c) => c.path,
        Err(e) => return refuse(ProxyError::Ambiguous(e)),
    };
    let index = match rt.table.resolve(&rt.config.routes, host, port, &path) {
        Ok(i) => i,
        Err(crate::routing::Unresolved::NoRoute) => {
            tracing::info!(url = %original.url(), request_id = id, "forward-auth: no route matches the original request");
            return refuse(ProxyError::ForwardAuthNoRoute);
        }
        Err(crate::routing::Unresolved::Ambiguous) => {
            return refuse(ProxyError::Ambiguous(
                crate::request::Ambiguous::PathParameters,
            ));
        }
    };
    let route = &rt.config.routes[index];
    let state = &rt.routes[index];

    let session: Option<std::sync::Arc<Session>> = if state.policy.uses_subject() {
        match identify(rt, &proxy.identity, route, headers, host).await {
            Ok(s) => s,
            Err(refused) => return refused.response(id, json),
        }
    } else {
        None
    };
    // The proxy in front appended its client to X-Forwarded-For (one more
    // trusted hop than xff_num_trusted_hops counts). Without it the client
    // is unknown: a policy on `source_ip` cannot decide (guessing would
    // hand it the proxy's own address), others do not need it.
    let client = match crate::request::forwarded_client(headers, rules.xff_num_trusted_hops) {
        Ok(ip) => ip,
        Err(e) if state.policy.uses_source_ip() => {
            return refuse(ProxyError::Ambiguous(e));
        }
        Err(_) => peer,
    };
    let decided = decide(
        &proxy.metrics,
        route,
        state,
        session,
        Asked {
            method: &original.method,
            path: &path,
            source_ip: client,
            cors_preflight: is_cors_preflight(&original.method, headers),
            client_cert: None,
            host,
            query: original.path_and_query.split_once('?').map(|(_, q)| q),
            headers,
        },
        request_id,
        &rt.config.authorize_log,
    );
    match decided {
        Decided::Allowed(permit) => {
            let mut resp = Response::new(body::empty());
            let h = resp.headers_mut();
            // Every name gatehouse owns is in the answer, blank unless set
            // below: a proxy that copies a header the answer lacks would
            // pass the client's forged copy on.
            for name in &rt.owned_headers.written {
                h.insert(name.clone(), HeaderValue::from_static(""));
            }
            let session = permit.session();
            if let Some(a) = assertion(rt, &proxy.assertions, &proxy.metrics, host, route, session)
            {
                h.insert(HeaderName::from_static("x-pomerium-jwt-assertion"), a);
            }
            if let Some(s) = session {
                identity_headers(h, route, s, state.groups_filter.as_deref());
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        // Never shaped like `error::refusal`: a proxy in front reads any 2xx
        // (a robots.txt answer) as "allowed".
        Decided::Denied(reasons) => crate::error::response(&denied(route, reasons), id, json),
        Decided::SignIn => {
            if !rt.auth.can_sign_in() {
                return authenticate::unauthenticated(
                    &rt.auth,
                    headers,
                    &authenticate::Host {
                        name: host,
                        origin: original.origin(),
                    },
                    &original.path_and_query,
                    id,
                    route.idp_client.as_deref(),
                );
            }
            let url = authenticate::sign_in_url_for(
                &rt.auth,
                &original.origin(),
                &original.url(),
                route.idp_client.as_deref(),
            );
            let query = original.path_and_query.split_once('?').map(|(_, q)| q);
            let redirect = !original.nginx && answers::should_redirect(headers, query);
            let mut resp = if redirect {
                let mut r = Response::new(body::empty());
                *r.status_mut() = StatusCode::FOUND;
                r
            } else {
                crate::error::response(&ProxyError::SignInRequired, id, json)
            };
            if let Ok(v) = HeaderValue::from_str(&url) {
                resp.headers_mut().insert(header::LOCATION, v.clone());
                resp.headers_mut()
                    .insert(HeaderName::from_static("x-pomerium-sign-in-url"), v);
            }
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
    }
}

/// The identity headers of a 200 answer: the route's claim headers and
/// oauth2-proxy's `X-Auth-Request-*` set.
fn identity_headers(
    h: &mut HeaderMap,
    route: &gatehouse_config::Route,
    s: &Session,
    groups_filter: Option<&[String]>,
) {
    for (name, claim) in &route.claim_headers {
        if let Ok(v) = HeaderValue::from_str(&claim_value(s, claim, groups_filter)) {
            h.insert(name.clone(), v);
        }
    }
    let id = &s.identity;
    let preferred = id
        .claims
        .get("preferred_username")
        .and_then(|v| v.as_str())
        .unwrap_or(&id.sub);
    for (name, value) in [
        ("x-auth-request-user", id.sub.as_str()),
        ("x-auth-request-email", id.email.as_str()),
        ("x-auth-request-preferred-username", preferred),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    let groups = crate::assertion::visible_groups(&id.groups, groups_filter);
    if let Ok(v) = HeaderValue::from_str(&groups.join(",")) {
        h.insert(HeaderName::from_static("x-auth-request-groups"), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_headers as headers;

    #[test]
    fn nginx_original_url() {
        let o = Original::from_headers(
            &headers(&[
                ("x-original-url", "https://App.localhost:8443/a/b?x=1"),
                ("x-original-method", "post"),
            ]),
            &Method::GET,
        )
        .unwrap();
        assert_eq!(o.method, "POST");
        assert_eq!(o.authority, "app.localhost:8443");
        assert_eq!(o.path_and_query, "/a/b?x=1");
        assert_eq!(o.path(), "/a/b");
        assert!(o.https && o.nginx);
        assert_eq!(o.url(), "https://app.localhost:8443/a/b?x=1");
    }

    #[test]
    fn traefik_and_caddy_forwarded_headers() {
        let o = Original::from_headers(
            &headers(&[
                ("host", "gatehouse:8080"),
                ("x-forwarded-host", "grafana.localhost"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-uri", "/d/x"),
                ("x-forwarded-method", "DELETE"),
            ]),
            &Method::GET,
        )
        .unwrap();
        assert_eq!(o.method, "DELETE");
        assert_eq!(o.url(), "http://grafana.localhost/d/x");
        assert!(!o.nginx);
        // nginx with X-Original-URI: host from Host, scheme https by default.
        let o = Original::from_headers(
            &headers(&[("host", "app.localhost"), ("x-original-uri", "/p")]),
            &Method::GET,
        )
        .unwrap();
        assert_eq!(o.url(), "https://app.localhost/p");
        assert!(o.nginx);
        assert!(Original::from_headers(&headers(&[("host", "a")]), &Method::GET).is_err());
        assert!(
            Original::from_headers(&headers(&[("x-original-url", "ftp://a/")]), &Method::GET)
                .is_err()
        );
        assert!(
            Original::from_headers(
                &headers(&[("host", "a"), ("x-forwarded-uri", "x")]),
                &Method::GET
            )
            .is_err()
        );
    }
}

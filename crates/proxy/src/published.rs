//! What gatehouse publishes on every route host, before any policy:
//! `/.well-known/pomerium/jwks.json` (the assertion's keys),
//! `/.well-known/pomerium` (discovery), and `/.pomerium/jwt` (the raw
//! assertion, when enabled).

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::assertion::assertion;
use crate::authenticate;
use crate::body::{self, Body, RequestBody};
use crate::error::ProxyError;
use crate::runtime::Runtime;

/// `/.pomerium/jwt`: the signed-in user's assertion for this host.
pub(crate) async fn raw_assertion(
    proxy: &crate::Proxy,
    rt: &Runtime,
    req: &Request<RequestBody>,
    (host, port): (&str, u16),
    id: &str,
    json: bool,
) -> Response<Body> {
    let enabled = rt
        .config
        .options
        .runtime_flags
        .as_ref()
        .and_then(|f| f.get("pomerium_jwt_endpoint"))
        .copied()
        .unwrap_or(false);
    let route = rt
        .table
        .find(&rt.config.routes, host, port, "/")
        .map(|i| &rt.config.routes[i]);
    let (true, Some(route)) = (enabled, route) else {
        return crate::error::response(&ProxyError::NoRoute, id, json);
    };
    let scope = authenticate::Scope::Route {
        config: &rt.config,
        route,
    };
    let Some(session) =
        authenticate::session(&rt.auth, &proxy.identity, req.headers(), host, scope).await
    else {
        return crate::error::response(&ProxyError::NotSignedIn, id, json);
    };
    match assertion(
        rt,
        &proxy.assertions,
        &proxy.metrics,
        host,
        route,
        Some(&session),
    ) {
        Some(jwt) => {
            let mut resp = Response::new(body::full(bytes::Bytes::copy_from_slice(jwt.as_bytes())));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jwt"),
            );
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        None => crate::error::response(&ProxyError::Internal("cannot sign".into()), id, json),
    }
}

/// `/.well-known/pomerium/jwks.json` (keys, cacheable for 60 s, ETag) and
/// `/.well-known/pomerium` (discovery), both open to any origin.
pub(crate) fn well_known(
    rt: &Runtime,
    req: &Request<RequestBody>,
    host: &authenticate::Host<'_>,
) -> Option<Response<Body>> {
    let (status, body, etag) = match req.uri().path() {
        "/.well-known/pomerium/jwks.json" => {
            let (jwks, etag) = rt.signing.jwks();
            let fresh = req
                .headers()
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == etag.as_bytes());
            if fresh {
                (StatusCode::NOT_MODIFIED, bytes::Bytes::new(), Some(etag))
            } else {
                (
                    StatusCode::OK,
                    bytes::Bytes::copy_from_slice(jwks),
                    Some(etag),
                )
            }
        }
        "/.well-known/pomerium" | "/.well-known/pomerium/" => {
            let doc = serde_json::json!({
                "issuer": format!("{}/", host.origin),
                "jwks_uri": format!("{}/.well-known/pomerium/jwks.json", host.origin),
                "authentication_callback_endpoint": format!("{}/oauth2/callback", rt.auth.sign_in_origin(&host.origin)),
                "frontchannel_logout_uri": format!("{}/.pomerium/sign_out", host.origin),
            });
            (StatusCode::OK, bytes::Bytes::from(doc.to_string()), None)
        }
        _ => return None,
    };
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=60"),
        );
        h.insert(header::ETAG, etag);
    }
    Some(resp)
}

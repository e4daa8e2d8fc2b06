//! Starting a sign-in: the answer for a protected route without a
//! session (302 to sign in, or 401), and the pending-sign-in binding that
//! ties the later hand-off to this browser.

use http::Response;
use http::header::{self, HeaderMap, HeaderValue};

use crate::answers::{self, redirect};
use crate::body::Body;
use crate::error::ProxyError;

use super::cookies::cookie_values;
use super::forms::enc;
use super::state::{Auth, Host};

/// The answer for a protected route without a session: a redirect to sign
/// in, unless the client prefers JSON, plain text or gRPC, or is a program
/// with a token of its own (401; see [`answers::should_redirect`]).
/// `idp`: the route's own client of the provider (its key), if it has one.
pub fn unauthenticated(
    auth: &Auth,
    headers: &HeaderMap,
    host: &Host<'_>,
    path_and_query: &str,
    request_id: &str,
    idp: Option<&str>,
) -> Response<Body> {
    if !auth.can_sign_in() {
        let e = ProxyError::SignInUnavailable(auth.unsupported.clone());
        return crate::error::response(&e, request_id, answers::wants_json(headers));
    }
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    if !answers::should_redirect(headers, query) || path == "/robots.txt" {
        let mut resp =
            crate::error::refusal(&ProxyError::SignInRequired, headers, path, request_id);
        let login = sign_in_url_for(
            auth,
            &host.origin,
            &format!("{}{}", host.origin, path_and_query),
            idp,
        );
        if let Ok(v) = HeaderValue::from_str(&login) {
            resp.headers_mut()
                .insert(header::HeaderName::from_static("x-pomerium-sign-in-url"), v);
        }
        return resp;
    }
    let target = format!("{}{}", host.origin, path_and_query);
    // The browser side is always https (see `ConnInfo::external_https`).
    start_sign_in(auth, host, &target, true, idp)
}

/// How long a route host waits for the hand-off of a sign-in it started.
pub(super) const PENDING_SECS: u64 = 600;

/// Sends the browser to sign in, coming back to `target` on this host. When
/// sign-in happens on another host, this browser gets a pending sign-in
/// cookie (a random nonce, host-only) and the sign-in URL carries the nonce's
/// hash, which the hand-off must carry back (see [`callback`]).
pub(super) fn start_sign_in(
    auth: &Auth,
    host: &Host<'_>,
    target: &str,
    secure: bool,
    idp: Option<&str>,
) -> Response<Body> {
    let url = sign_in_url_for(auth, &host.origin, target, idp);
    if auth.sign_in_origin(&host.origin) == host.origin {
        return redirect(&url);
    }
    let (nonce, binding) = new_binding();
    let mut resp = redirect(&format!("{url}&pomerium_binding={binding}"));
    let cookie = format!(
        "{}={nonce}; Path=/.pomerium/callback; Max-Age={PENDING_SECS}; HttpOnly; SameSite=Lax{}",
        pending_cookie_name(auth, &binding),
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// A new browser binding: the nonce (kept in the browser) and its hash (sent
/// to the authenticate host and sealed into the hand-off).
pub(super) fn new_binding() -> (String, String) {
    use base64::Engine;
    let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let binding = binding_of(&nonce);
    (nonce, binding)
}

pub(super) fn binding_of(nonce: &str) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, nonce.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The pending sign-in cookie of one flow: named after its binding, so
/// several tabs signing in at once keep their own.
pub(super) fn pending_cookie_name(auth: &Auth, binding: &str) -> String {
    pending_cookie_named(&auth.cookie.name, binding)
}

pub(super) fn pending_cookie_named(cookie_name: &str, binding: &str) -> String {
    format!(
        "{cookie_name}_pending_{}",
        binding.get(..10).unwrap_or(binding)
    )
}

/// True when the request carries the pending sign-in cookie whose nonce
/// hashes to `binding`.
pub(super) fn holds_binding(auth: &Auth, headers: &HeaderMap, binding: &str) -> bool {
    holds_binding_named(headers, &auth.cookie.name, binding)
}

pub(super) fn holds_binding_named(headers: &HeaderMap, cookie_name: &str, binding: &str) -> bool {
    let name = pending_cookie_named(cookie_name, binding);
    cookie_values(headers, &name).take(4).any(|nonce| {
        aws_lc_rs::constant_time::verify_slices_are_equal(
            binding_of(nonce).as_bytes(),
            binding.as_bytes(),
        )
        .is_ok()
    })
}

/// Where to sign in for a request on `origin`, coming back to `target`.
pub fn sign_in_url(auth: &Auth, origin: &str, target: &str) -> String {
    sign_in_url_for(auth, origin, target, None)
}

/// The same, with a route's own client of the provider (`idp`, its key)
/// named as Pomerium names it (`pomerium_idp_id`).
pub fn sign_in_url_for(auth: &Auth, origin: &str, target: &str, idp: Option<&str>) -> String {
    let mut url = format!(
        "{}/.pomerium/sign_in?pomerium_redirect_uri={}",
        auth.sign_in_origin(origin),
        enc(target)
    );
    if let Some(idp) = idp.filter(|i| auth.is_route_client(i)) {
        url.push_str("&pomerium_idp_id=");
        url.push_str(&enc(idp));
    }
    url
}

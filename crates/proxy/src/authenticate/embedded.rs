//! The token hand-off of embedded routes (`/.pomerium/sign_in_with_token`):
//! a session made from a signed token, for frames.

use gatehouse_identity::session::{Session, unix_now};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::answers::redirect;
use crate::body::{Body, RequestBody};
use crate::error::ProxyError;

use super::cookies::session_cookie;
use super::forms::{form_field, read_form};
use super::state::{Auth, Host, IdentityState};

/// What a token sign-in needs of the configuration in force.
pub struct TokenRoutes<'a> {
    /// The route on this host for a URL path (made canonical under the
    /// configured rules, as a request to it would be), or why there is none.
    pub find: &'a (dyn Fn(&str) -> Result<&'a gatehouse_config::Route, &'static str> + Sync),
    /// The bearer-token verifiers, when some route accepts tokens.
    pub bearer: Option<&'a crate::bearer::Bearer>,
}

/// `POST /.pomerium/sign_in_with_token`: the one-time hand-off for an app
/// that already holds a token for the user (the embedding page of an
/// iframe). The form carries `token` (a JWT the target route accepts, per
/// its `bearer_token_format`) and `pomerium_redirect_uri` (a URL on this
/// host). gatehouse verifies the token, creates the session, sets this
/// host's cookie and answers 303 to the URL: the token never travels in a
/// URL and is never logged. The POST must come from this origin or from one
/// of the route's `frame_ancestors` (no login CSRF from other sites).
pub async fn sign_in_with_token(
    auth: &Auth,
    state: &IdentityState,
    routes: TokenRoutes<'_>,
    req: Request<RequestBody>,
    host: &Host<'_>,
    secure: bool,
    request_id: &str,
) -> Response<Body> {
    let bad = |status: StatusCode, msg: &'static str| {
        crate::error::response(
            &ProxyError::TokenSignInRefused(status, msg),
            request_id,
            false,
        )
    };
    if req.method() != Method::POST {
        let mut resp = bad(
            StatusCode::METHOD_NOT_ALLOWED,
            "Send the token with POST (a form), never in a URL.",
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let form = match read_form(req).await {
        Some(f) => f,
        None => return bad(StatusCode::BAD_REQUEST, "The form could not be read."),
    };
    let field = |k: &str| form_field(&form, k);
    let target = match field("pomerium_redirect_uri") {
        "" => format!("{}/", host.origin),
        t => t.to_string(),
    };
    let Some(target_url) = url::Url::parse(&target)
        .ok()
        .filter(|u| u.origin().ascii_serialization() == host.origin)
    else {
        return bad(
            StatusCode::BAD_REQUEST,
            "pomerium_redirect_uri must be a URL on this host.",
        );
    };
    let route = match (routes.find)(target_url.path()) {
        Ok(route) => route,
        Err(why) => return bad(StatusCode::BAD_REQUEST, why),
    };
    let allowed_origin = match &origin {
        None => false,
        Some(o) if *o == host.origin => true,
        Some(o) => route
            .frame_ancestors
            .iter()
            .flatten()
            .any(|a| origin_matches(a, o)),
    };
    if !allowed_origin {
        tracing::warn!(route = %route.label(), origin = origin.as_deref().unwrap_or("(none)"), "token sign-in from an origin not in the route's frame_ancestors: refused");
        return bad(
            StatusCode::FORBIDDEN,
            "This page may not sign users in here: its origin is not in the route's frame_ancestors.",
        );
    }
    let Some(bearer) = routes
        .bearer
        .as_ref()
        .filter(|_| route.bearer_token_format != gatehouse_config::BearerTokenFormat::Default)
    else {
        return bad(
            StatusCode::BAD_REQUEST,
            "This route does not accept tokens: set its bearer_token_format (jwt with identity_providers).",
        );
    };
    let verified = match bearer.verify(route, field("token").trim()).await {
        Ok(s) => s,
        Err(refused) => return refused.response(request_id, false),
    };
    // The session is as wide as the token: this host, routes that accept
    // the token, until the token expires (if before `cookie_expire`).
    let gatehouse_identity::session::Provenance::Token(mut grant) = verified.provenance else {
        return bad(
            StatusCode::BAD_REQUEST,
            "This route does not accept tokens: set its bearer_token_format (jwt with identity_providers).",
        );
    };
    grant.host = host.name.to_string();
    let mut identity = verified.identity;
    identity.claims.remove("aud");
    let made = Session::from_token(identity, unix_now(), auth.cookie.expire.as_secs(), grant);
    let Some(session) = state.store_session(made, "token").await else {
        return bad(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sessions cannot be stored right now. Try again shortly.",
        );
    };
    let mut resp = redirect(target_url.as_str());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    resp.headers_mut().append(
        header::SET_COOKIE,
        session_cookie(auth, host.name, &session, secure),
    );
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// An `Origin` against a `frame_ancestors` source (`https://*.example.com`
/// covers subdomains).
pub(super) fn origin_matches(source: &str, origin: &str) -> bool {
    let source = source.to_ascii_lowercase();
    if source == origin {
        return true;
    }
    match source.split_once("://*.") {
        Some((scheme, rest)) => origin
            .strip_prefix(scheme)
            .and_then(|o| o.strip_prefix("://"))
            .is_some_and(|o| o.ends_with(&format!(".{rest}"))),
        None => false,
    }
}

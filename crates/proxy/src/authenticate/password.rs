//! The built-in directory's login form: page, post, throttling.

use std::net::IpAddr;

use gatehouse_identity::codec::{self, valid_binding};
use gatehouse_identity::session::unix_now;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::answers::{html, notice};
use crate::body::{Body, RequestBody};

use super::cookies::session_cookie;
use super::forms::{form_field, query_param, read_form, same_origin};
use super::handoff::finish;
use super::idp::{start_github, start_oidc};
use super::pages::login_form;
use super::sessions::session;
use super::state::{Auth, Host, IdentityState, Scope};
use super::targets::{Targets, checked_redirect};

pub(super) async fn sign_in_page(
    auth: &Auth,
    state: &IdentityState,
    req: &Request<RequestBody>,
    host: &Host<'_>,
    allowed: &Targets<'_>,
    secure: bool,
) -> Response<Body> {
    let query = req.uri().query();
    let target = query_param(query, "pomerium_redirect_uri")
        .unwrap_or_else(|| format!("{}/.pomerium/", host.origin));
    let Some(target_url) = checked_redirect(&target, allowed) else {
        return notice(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "Cannot sign in",
            "The address to return to after sign-in is not one this gatehouse serves.",
        );
    };
    // The browser binding of the route host that sent the browser here.
    let binding = query_param(query, "pomerium_binding").filter(|b| valid_binding(b));
    let binding = binding.as_deref();
    if !auth.can_sign_in() {
        return notice(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign in",
            "Sign-in is not available",
            "No supported identity provider is configured.",
        );
    }
    // Which client of the provider: a route's own (`pomerium_idp_id`, as
    // Pomerium's sign-in URLs carry it), or the global one.
    let idp = query_param(query, "pomerium_idp_id").unwrap_or_default();
    if !idp.is_empty() && !auth.is_route_client(&idp) {
        return notice(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "Cannot sign in",
            "This sign-in names an identity provider this gatehouse does not have.",
        );
    }
    // Already signed in on the authenticate host with that client: hand the
    // session over at once.
    if let Some(s) = session(auth, state, req.headers(), host.name, Scope::MainSignIn).await {
        let same = if idp.is_empty() {
            !auth.is_route_client(&s.identity.idp)
        } else {
            s.identity.idp == idp
        };
        if same {
            return finish(auth, state, &s, host, &target_url, binding, None).await;
        }
    }
    if let Some(lazy) = auth.oidc_for(&idp) {
        return start_oidc(auth, lazy, host, &target, binding, secure, &idp).await;
    }
    if let Some(github) = &auth.github {
        return start_github(auth, github, host, &target, binding, secure);
    }
    html(StatusCode::OK, login_form(auth, &target, binding, None, ""))
}

/// What the login form's sealed token carries: where to go, and the browser
/// binding of the route host that started the flow.
pub(super) fn open_login_form(auth: &Auth, token: &str) -> Option<(String, Option<String>)> {
    codec::open_login_form(&auth.cookie_sealer, token, unix_now())
}

/// Too many sign-in attempts (429) or too many at once for this server
/// (503): the form again, with `Retry-After`.
pub(super) fn sign_in_refused(
    auth: &Auth,
    status: StatusCode,
    wait: u64,
    msg: &str,
    (target, binding, username): (&str, Option<&str>, &str),
) -> Response<Body> {
    let mut resp = html(
        status,
        login_form(auth, target, binding, Some(msg), username),
    );
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

pub(super) async fn sign_in_post(
    auth: &Auth,
    state: &IdentityState,
    req: Request<RequestBody>,
    host: &Host<'_>,
    allowed: &Targets<'_>,
    peer: IpAddr,
    secure: bool,
) -> Response<Body> {
    let bad = |msg: &str| notice(StatusCode::BAD_REQUEST, "Sign in", "Cannot sign in", msg);
    let Some(directory) = auth.directory.clone() else {
        return bad("No supported identity provider is configured.");
    };
    if !same_origin(req.headers(), &host.origin) {
        return bad("The sign-in form was sent from another site.");
    }
    let form = match read_form(req).await {
        Some(f) => f,
        None => return bad("The sign-in form could not be read."),
    };
    let field = |k: &str| form_field(&form, k);
    let Some((target, binding)) = open_login_form(auth, field("token")) else {
        return bad("The sign-in form has expired. Go back and reload the page.");
    };
    let Some(target_url) = checked_redirect(&target, allowed) else {
        return bad("The address to return to after sign-in is not one this gatehouse serves.");
    };
    let username = field("username").trim().to_string();
    let password = field("password").to_string();
    let again = (target.as_str(), binding.as_deref(), username.as_str());
    let now = unix_now();
    // The attempt takes its slot (per user and per address) before any
    // hashing, so concurrent attempts cannot all be checked.
    let throttle_key = directory.throttle_key(&username);
    let attempt = match state.throttle.reserve(&throttle_key, peer, now) {
        Ok(a) => a,
        Err(wait) => {
            let minutes = wait.div_ceil(60);
            let msg = format!(
                "Too many failed sign-in attempts. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            state
                .metrics
                .sign_in("local", crate::metrics::SignInResult::Failure);
            tracing::info!(user = %username, client = %peer, "sign-in throttled");
            return sign_in_refused(auth, StatusCode::TOO_MANY_REQUESTS, wait, &msg, again);
        }
    };
    let user = username.clone();
    let Ok(verified) = state
        .hashing
        .run(move || directory.verify(&user, &password))
        .await
    else {
        attempt.cancel();
        tracing::warn!(client = %peer, "sign-in refused: too many passwords being checked at once");
        return sign_in_refused(
            auth,
            StatusCode::SERVICE_UNAVAILABLE,
            1,
            "Sign-in is busy right now. Try again in a moment.",
            again,
        );
    };
    let Some(identity) = verified else {
        attempt.failed();
        state
            .metrics
            .sign_in("local", crate::metrics::SignInResult::Failure);
        tracing::info!(user = %username, client = %peer, "sign-in failed");
        return html(
            StatusCode::UNAUTHORIZED,
            login_form(
                auth,
                &target,
                binding.as_deref(),
                Some("Wrong username or password."),
                &username,
            ),
        );
    };
    attempt.succeeded();
    let Some(session) = state
        .open_session(identity, auth.cookie.expire, None, "password", "")
        .await
    else {
        return notice(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign in",
            "Sign-in is unavailable",
            "Sessions cannot be stored right now. Try again shortly.",
        );
    };
    let cookie = session_cookie(auth, host.name, &session, secure);
    finish(
        auth,
        state,
        &session,
        host,
        &target_url,
        binding.as_deref(),
        Some(cookie),
    )
    .await
}

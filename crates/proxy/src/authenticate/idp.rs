//! Sign-in with an OpenID Connect provider or GitHub: the authorization
//! request, the flow state, and the callback.

use gatehouse_identity::codec;
use gatehouse_identity::github::GitHub;
use gatehouse_identity::oidc::Oidc;
use gatehouse_identity::session::unix_now;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::answers::{notice, redirect};
use crate::body::{Body, RequestBody};

use super::cookies::{cookie_value, session_cookie};
use super::forms::query_param;
use super::handoff::finish;
use super::state::{Auth, Host, IdentityState, LazyOidc};
use super::targets::{Targets, checked_redirect};

/// Lifetime of an OpenID sign-in round trip.
pub(super) const OIDC_FLOW_SECS: u64 = 600;

pub(super) fn idp_unavailable(e: &dyn std::fmt::Display) -> Response<Body> {
    tracing::error!(error = %e, "identity provider unavailable");
    notice(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign in",
        "Sign-in is unavailable",
        "The identity provider cannot be reached right now. Try again in a moment.",
    )
}

/// The authorization URL, with the flow's secrets sealed into `state`.
/// `handoff`: the browser binding of the route host that started the flow.
#[allow(clippy::too_many_arguments)]
pub(super) fn authorize_flow(
    auth: &Auth,
    oidc: &Oidc,
    redirect_uri: &str,
    target: &str,
    flow_id: &str,
    binding: &str,
    handoff: Option<&str>,
    exp: u64,
    idp: &str,
) -> Result<gatehouse_identity::oidc::Authorization, gatehouse_identity::oidc::OidcError> {
    oidc.authorize(redirect_uri, |verifier, nonce| {
        let flow = codec::FlowState {
            target: target.to_string(),
            verifier: verifier.to_string(),
            nonce: nonce.to_string(),
            flow_id: flow_id.to_string(),
            binding: binding.to_string(),
            handoff: handoff.map(String::from),
            expires: exp,
            idp: idp.to_string(),
        };
        codec::seal_flow_state(&auth.cookie_sealer, &flow)
    })
}

/// Sends the browser to the OpenID provider. The flow's secrets travel in
/// the sealed `state`; a cookie named after this one flow binds it to the
/// browser (login CSRF), so several tabs can sign in at once. `idp`: a
/// route's own client (its key), or empty for the global one.
pub(super) async fn start_oidc(
    auth: &Auth,
    lazy: &LazyOidc,
    host: &Host<'_>,
    target: &str,
    handoff: Option<&str>,
    secure: bool,
    idp: &str,
) -> Response<Body> {
    let oidc = match lazy.get().await {
        Ok(o) => o,
        Err(e) => return idp_unavailable(&e),
    };
    let flow_id = crate::hex::lower(&rand::random::<[u8; 6]>());
    let binding = crate::hex::lower(&rand::random::<[u8; 16]>());
    let redirect_uri = format!("{}/oauth2/callback", host.origin);
    let exp = unix_now() + OIDC_FLOW_SECS;
    let authz = match authorize_flow(
        auth,
        &oidc,
        &redirect_uri,
        target,
        &flow_id,
        &binding,
        handoff,
        exp,
        idp,
    ) {
        Ok(a) => a,
        Err(e) => return idp_unavailable(&e),
    };
    let mut resp = redirect(&authz.url);
    bind_flow(auth, &mut resp, &flow_id, &binding, secure);
    resp
}

pub(super) fn sign_in_failed(status: StatusCode, msg: &str) -> Response<Body> {
    notice(status, "Sign in", "Sign-in failed", msg)
}

/// Sends the browser to GitHub; the same sealed state and per-flow cookie
/// as the OpenID flow (no PKCE or nonce: GitHub is plain OAuth2).
pub(super) fn start_github(
    auth: &Auth,
    github: &GitHub,
    host: &Host<'_>,
    target: &str,
    handoff: Option<&str>,
    secure: bool,
) -> Response<Body> {
    let flow_id = crate::hex::lower(&rand::random::<[u8; 6]>());
    let binding = crate::hex::lower(&rand::random::<[u8; 16]>());
    let exp = unix_now() + OIDC_FLOW_SECS;
    let flow = codec::FlowState {
        target: target.to_string(),
        verifier: String::new(),
        nonce: String::new(),
        flow_id: flow_id.clone(),
        binding: binding.clone(),
        handoff: handoff.map(String::from),
        expires: exp,
        idp: String::new(),
    };
    let state = codec::seal_flow_state(&auth.cookie_sealer, &flow);
    let redirect_uri = format!("{}/oauth2/callback", host.origin);
    let mut resp = redirect(&github.authorize_url(&redirect_uri, &state));
    bind_flow(auth, &mut resp, &flow_id, &binding, secure);
    resp
}

/// Binds a sign-in flow to this browser: a cookie named after the one flow
/// (so concurrent tabs never overwrite each other's), read back at
/// `/oauth2/callback`.
pub(super) fn bind_flow(
    auth: &Auth,
    resp: &mut Response<Body>,
    flow_id: &str,
    binding: &str,
    secure: bool,
) {
    let name = format!("{}_csrf_{flow_id}", auth.cookie.name);
    let cookie = format!(
        "{name}={binding}; Path=/oauth2/callback; Max-Age={OIDC_FLOW_SECS}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `/oauth2/callback`: the provider sends the browser back with a code.
pub(super) async fn oidc_callback(
    auth: &Auth,
    state: &IdentityState,
    req: &Request<RequestBody>,
    host: &Host<'_>,
    allowed: &Targets<'_>,
    secure: bool,
) -> Response<Body> {
    if auth.oidc.is_none() && auth.github.is_none() {
        return sign_in_failed(
            StatusCode::NOT_FOUND,
            "No OAuth2 or OpenID provider is configured.",
        );
    }
    let q = req.uri().query();
    if let Some(err) = query_param(q, "error") {
        let desc = query_param(q, "error_description").unwrap_or_default();
        return sign_in_failed(
            StatusCode::UNAUTHORIZED,
            &format!("The identity provider refused the sign-in: {err} {desc}"),
        );
    }
    let (Some(code), Some(sealed)) = (query_param(q, "code"), query_param(q, "state")) else {
        return sign_in_failed(
            StatusCode::BAD_REQUEST,
            "The identity provider's answer is incomplete.",
        );
    };
    let now = unix_now();
    let flow = match codec::open_flow_state(&auth.cookie_sealer, &sealed, now) {
        Ok(flow) => flow,
        Err(codec::FlowError::Invalid) => {
            return sign_in_failed(
                StatusCode::BAD_REQUEST,
                "This sign-in answer is not valid. Go back to the page you wanted and try again.",
            );
        }
        Err(codec::FlowError::Expired) => {
            return sign_in_failed(
                StatusCode::BAD_REQUEST,
                "This sign-in took too long. Go back to the page you wanted and try again.",
            );
        }
    };
    let cookie_name = format!("{}_csrf_{}", auth.cookie.name, flow.flow_id);
    if cookie_value(req.headers(), &cookie_name) != Some(flow.binding.as_str()) {
        return sign_in_failed(
            StatusCode::BAD_REQUEST,
            "This sign-in was not started in this browser.",
        );
    }
    let Some(target_url) = checked_redirect(&flow.target, allowed) else {
        return sign_in_failed(
            StatusCode::BAD_REQUEST,
            "The address to return to is not one this gatehouse serves.",
        );
    };
    let redirect_uri = format!("{}/oauth2/callback", host.origin);
    // The client the flow was started with (a route's own, or the global).
    let lazy = if flow.idp.is_empty() {
        auth.oidc.as_ref()
    } else if auth.is_route_client(&flow.idp) {
        auth.oidc_for(&flow.idp)
    } else {
        // A client the configuration no longer has.
        None
    };
    let client = match (&auth.github, lazy) {
        (None, Some(l)) => l.settings.client_id.clone(),
        _ => String::new(),
    };
    let exchanged = match (&auth.github, lazy) {
        (Some(github), _) => github
            .exchange(&redirect_uri, &code)
            .await
            .map_err(|e| e.to_string()),
        (None, Some(lazy)) => {
            let oidc = match lazy.get().await {
                Ok(o) => o,
                Err(e) => return idp_unavailable(&e),
            };
            oidc.exchange(&redirect_uri, &code, &flow.verifier, &flow.nonce, now)
                .await
                .map_err(|e| e.to_string())
        }
        (None, None) => Err("no provider".to_string()),
    };
    let (mut identity, tokens) = match exchanged {
        Ok(r) => r,
        Err(e) => {
            let idp = if auth.github.is_some() {
                "github"
            } else {
                "oidc"
            };
            state
                .metrics
                .sign_in(idp, crate::metrics::SignInResult::Failure);
            tracing::warn!(error = %e, "sign-in failed");
            return sign_in_failed(StatusCode::UNAUTHORIZED, &e);
        }
    };
    // Sessions of a route's own client say so: they are good only on
    // routes with that client.
    if !flow.idp.is_empty() {
        identity.idp = flow.idp.clone();
    }
    let Some(session) = state
        .open_session(
            identity,
            auth.cookie.expire,
            Some(tokens),
            "provider",
            &client,
        )
        .await
    else {
        return sign_in_failed(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sessions cannot be stored right now. Try again shortly.",
        );
    };
    let cookie = session_cookie(auth, host.name, &session, secure);
    let handoff = flow.handoff.as_deref();
    let mut resp = finish(
        auth,
        state,
        &session,
        host,
        &target_url,
        handoff,
        Some(cookie),
    )
    .await;
    let clear = format!("{cookie_name}=; Path=/oauth2/callback; Max-Age=0; HttpOnly; SameSite=Lax");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

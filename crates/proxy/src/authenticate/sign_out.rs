//! Signing out: the confirmation page's post and the one-click link.

use http::header::{self};
use http::{Method, Request, Response, StatusCode};

use crate::answers::{notice, redirect};
use crate::body::{Body, RequestBody};

use super::cookies::set_cookie;
use super::forms::{open_form_token, query_param, read_form, same_origin};
use super::sessions::session;
use super::state::{Auth, Host, IdentityState, Scope};
use super::targets::{Targets, checked_redirect};

pub(super) async fn sign_out_post(
    auth: &Auth,
    state: &IdentityState,
    req: Request<RequestBody>,
    host: &Host<'_>,
    allowed: &Targets<'_>,
    secure: bool,
) -> Response<Body> {
    // A form must come from this site; a link carries its token in the query.
    let link = req.method() == Method::GET;
    if !link && !same_origin(req.headers(), &host.origin) {
        return notice(
            StatusCode::BAD_REQUEST,
            "Sign out",
            "Cannot sign out",
            "The form was sent from another site.",
        );
    }
    let current = session(auth, state, req.headers(), host.name, Scope::OwnPages).await;
    let query_target = query_param(req.uri().query(), "pomerium_redirect_uri");
    let token = if link {
        query_param(req.uri().query(), "token").unwrap_or_default()
    } else {
        let form = read_form(req).await.unwrap_or_default();
        form.into_iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    let token = token.as_str();
    if let Some(s) = &current {
        if open_form_token(auth, "sign-out", token).as_deref() != Some(s.id.to_hex().as_str()) {
            return notice(
                StatusCode::BAD_REQUEST,
                "Sign out",
                "Cannot sign out",
                "The sign-out form has expired. Reload the page and try again.",
            );
        }
        if let Err(e) = state.end_session(&s.id).await {
            tracing::error!(error = %e, "cannot delete the session at sign-out");
        }
        tracing::info!(user = %s.identity.sub, "signed out");
    }
    let target = query_target
        .and_then(|t| checked_redirect(&t, allowed))
        .map(|u| u.to_string())
        .or_else(|| auth.signout_redirect.clone())
        .unwrap_or_else(|| format!("{}/.pomerium/signed_out", host.origin));
    // End the provider's session too (RP-initiated logout), then come back.
    let mut idp_logout = None;
    if let Some((lazy, s)) = current
        .as_ref()
        .and_then(|s| Some((auth.oidc_for(&s.identity.idp)?, s)))
        && let Ok(oidc) = lazy.get().await
    {
        let hint = s.tokens.as_ref().and_then(|t| t.id_token.as_deref());
        idp_logout = oidc.end_session_url(hint, &target);
    }
    let mut resp = redirect(idp_logout.as_deref().unwrap_or(&target));
    let name = auth.cookie_name(host.name);
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(auth, host.name, name, "", None, secure, true),
    );
    if auth.cookie.domain.is_some() {
        // A token-made session's cookie is host-only: clear that one too.
        resp.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(auth, host.name, name, "", None, secure, false),
        );
    }
    resp
}

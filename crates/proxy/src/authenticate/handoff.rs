//! After sign-in: back to the target, through the target host's
//! `/.pomerium/callback/` with a one-time hand-off bound to the browser.

use gatehouse_identity::codec::{self, Handoff};
use gatehouse_identity::session::{Session, unix_now};
use gatehouse_identity::store::SessionStore;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::answers::{notice, redirect};
use crate::body::{Body, RequestBody};

use super::cookies::session_cookie;
use super::forms::{enc, query_param};
use super::start::{holds_binding, pending_cookie_name, start_sign_in};
use super::state::{Auth, HANDOFF_SECS, Host, IdentityState, Scope};

/// After sign-in: straight back when the target is this host (or shares
/// its cookie), else through the target host's `/.pomerium/callback/` with a
/// one-time hand-off bound to the target's origin and to the browser
/// (`binding`, from the route host that started the flow). Without a
/// binding the browser is first sent to the target host to get one.
pub(super) async fn finish(
    auth: &Auth,
    state: &IdentityState,
    session: &Session,
    host: &Host<'_>,
    target: &url::Url,
    binding: Option<&str>,
    cookie: Option<HeaderValue>,
) -> Response<Body> {
    let target_host = target.host_str().unwrap_or("").to_ascii_lowercase();
    let shares_cookie = auth.cookie.domain.as_ref().is_some_and(|d| {
        (target_host == *d || target_host.ends_with(&format!(".{d}")))
            && !auth.is_authenticate_host(host.name)
    });
    let origin = target.origin().ascii_serialization();
    let mut resp = if target_host == host.name || shares_cookie {
        redirect(target.as_str())
    } else if !session.provenance.is_main_sign_in() {
        // Only the main sign-in travels to other hosts.
        return notice(
            StatusCode::FORBIDDEN,
            "Sign in",
            "Cannot sign in there",
            "This session cannot be used on another site. Sign in again.",
        );
    } else if let Some(binding) = binding {
        let token: [u8; 16] = rand::random();
        let expires = unix_now() + HANDOFF_SECS;
        if let Err(e) = state.store.put_once(token, expires).await {
            tracing::error!(error = %e, "cannot store the sign-in hand-off");
            return notice(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign in",
                "Sign-in is unavailable",
                "Try again shortly.",
            );
        }
        let sealed = codec::seal_handoff(
            &auth.shared_sealer,
            &Handoff {
                session: session.id,
                token,
                expires,
                binding: binding.to_string(),
                origin: origin.clone(),
            },
        );
        redirect(&format!(
            "{origin}/.pomerium/callback/?pomerium_session_encrypted={sealed}&pomerium_redirect_uri={}",
            enc(target.as_str())
        ))
    } else {
        // The flow did not start at the target host (a bookmark, a CLI's
        // login URL, forward-auth): the target host binds this browser first
        // and sends it straight back here, already signed in (with the same
        // client of the provider, named as the sign-in named it).
        let idp = if auth.is_route_client(&session.identity.idp) {
            format!("&pomerium_idp_id={}", enc(&session.identity.idp))
        } else {
            String::new()
        };
        redirect(&format!(
            "{origin}/.pomerium/callback/?pomerium_redirect_uri={}{idp}",
            enc(target.as_str())
        ))
    };
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// `/.pomerium/callback/` on a route host: takes a hand-off from the
/// authenticate host. The hand-off must be genuine, unexpired, unused, meant
/// for this origin, and presented by the browser that started the sign-in
/// (it holds the pending cookie whose nonce hashes to the sealed binding).
/// Without a hand-off, the browser is bound here and sent to sign in.
pub(super) async fn callback(
    auth: &Auth,
    state: &IdentityState,
    req: &Request<RequestBody>,
    host: &Host<'_>,
    secure: bool,
) -> Response<Body> {
    let fail = || {
        notice(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "This sign-in link is not valid",
            "It has expired, was already used, was meant for another site, or was started in another browser. Go back to the page you wanted and sign in again.",
        )
    };
    let q = req.uri().query();
    let Some(target) = query_param(q, "pomerium_redirect_uri") else {
        return fail();
    };
    // The return address must be on this very origin (scheme, host and
    // port: not another port or plain http of the same host).
    let here = url::Url::parse(&host.origin)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let Some(target_url) = url::Url::parse(&target)
        .ok()
        .filter(|u| u.origin().ascii_serialization() == here)
    else {
        return fail();
    };
    let Some(sealed) = query_param(q, "pomerium_session_encrypted") else {
        let idp = query_param(q, "pomerium_idp_id").filter(|i| auth.is_route_client(i));
        return start_sign_in(auth, host, target_url.as_str(), secure, idp.as_deref());
    };
    let Some(handoff) = codec::open_handoff(&auth.shared_sealer, &sealed) else {
        return fail();
    };
    let now = unix_now();
    if now >= handoff.expires || handoff.origin != here {
        return fail();
    }
    // Used up before the browser check: a hand-off that reaches the wrong
    // browser first (an attacker's link, a binding an attacker chose) is
    // gone for good, not left for its maker to replay.
    match state.store.take_once(handoff.token, now).await {
        Ok(true) => {}
        Ok(false) => return fail(),
        Err(e) => {
            tracing::error!(error = %e, "cannot check the sign-in hand-off");
            return fail();
        }
    }
    if !holds_binding(auth, req.headers(), &handoff.binding) {
        tracing::warn!(host = %host.name, "sign-in hand-off presented by a browser that did not start the sign-in: refused");
        return fail();
    }
    let session = match state.store.get(&handoff.session).await {
        Ok(Some(s)) if s.is_live(now) && auth.in_scope(&s, host.name, Scope::MainSignIn, now) => s,
        _ => return fail(),
    };
    let mut resp = redirect(target_url.as_str());
    resp.headers_mut().append(
        header::SET_COOKIE,
        session_cookie(auth, host.name, &session, secure),
    );
    let clear = format!(
        "{}=; Path=/.pomerium/callback; Max-Age=0; HttpOnly; SameSite=Lax{}",
        pending_cookie_name(auth, &handoff.binding),
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

//! The authenticate service (Pomerium's counterpart): sign-in flows,
//! sessions and their refresh, cookies, programmatic login, the token
//! hand-offs, sign-out and their pages. It depends on ground-floor types
//! ([`crate::request`]'s `Caller`, [`Host`], the request id) and on the
//! proxy's session store, metrics and assertion cache through handles in
//! [`IdentityState`], never on the dispatcher or the runtime.
//!
//! | file | owns |
//! |---|---|
//! | `state.rs` | [`IdentityState`] (what outlives reloads), [`Auth`] (one configuration's sign-in settings), [`Host`], [`Scope`] |
//! | `cookies.rs` | reading, setting and stripping gatehouse's cookies |
//! | `forms.rs` | query parameters, sealed form tokens, same-origin posts, bounded form bodies |
//! | `targets.rs` | where a sign-in may return to (no open redirects) |
//! | `sessions.rs` | the session behind a request, within its scope; refresh |
//! | `start.rs` | the answer without a session (302/401) and the pending-sign-in binding |
//! | `pages.rs` | login form, who am I, sign out, in [`crate::answers`]' shell |
//! | `handoff.rs` | after sign-in: the one-time hand-off and `/.pomerium/callback/` |
//! | `password.rs`, `idp.rs` | the built-in directory's form; OpenID Connect and GitHub |
//! | `programmatic.rs`, `embedded.rs` | `/.pomerium/api/v1/login`; `/.pomerium/sign_in_with_token` |
//! | `sign_out.rs` | signing out |
//! | `mod.rs` | [`endpoint`]: which `/.pomerium/` path goes where |
//!
//! Flow (Pomerium's, with the built-in directory as the IdP):
//! 1. a route host answers an unauthenticated page request with a 302 to
//!    `<authenticate>/.pomerium/sign_in?pomerium_redirect_uri=<original URL>`
//!    (the authenticate host is `authenticate_service_url`, or the route host
//!    itself); API clients get 401;
//! 2. the login form posts back; a right password creates the session and the
//!    authenticate host's cookie;
//! 3. the route host receives `/.pomerium/callback/?pomerium_session_encrypted=`
//!    — sealed with `shared_secret`, bound to that host, valid 5 minutes and
//!    usable once — and sets its own cookie, then redirects to the original URL.
//!
//! Redirect targets are only ever origins gatehouse serves: https (plain http
//! only for routes configured so), on a host and port a route serves (no open
//! redirects). A hand-off is bound to the browser that started the flow: the
//! route host sets a short-lived "pending sign-in" cookie holding a random
//! nonce and sends the nonce's hash along; the authenticate host seals that
//! hash into the hand-off, and the route host accepts the hand-off only from
//! the browser holding the nonce.
//!
//! Every session lookup names its [`Scope`]: a session made from a token is
//! good only where that token would be accepted, and only the main sign-in's
//! sessions are handed over to other hosts or reach the console.

mod cookies;
mod embedded;
mod forms;
mod handoff;
mod idp;
mod pages;
mod password;
mod programmatic;
mod sessions;
mod sign_out;
mod start;
mod state;
mod targets;
#[cfg(test)]
mod tests;

use gatehouse_identity::store::SessionStore;
use http::{Method, Request, Response, StatusCode};

use crate::answers::{self, html, json, notice};
use crate::body::{Body, RequestBody};
use crate::error::ProxyError;

use forms::query_param;
use handoff::callback;
use idp::oidc_callback;
use pages::{sign_out_page, user_json, user_page};
use password::{sign_in_page, sign_in_post};
use programmatic::{programmatic_finish, programmatic_login};
use sign_out::sign_out_post;
use targets::Targets;

pub use cookies::{is_own_cookie, strip_cookies};
pub use embedded::{TokenRoutes, sign_in_with_token};
pub use sessions::{has_session_cookie, session, token_session};
pub use start::{sign_in_url, sign_in_url_for, unauthenticated};
pub use state::{Auth, AuthError, Host, IdentityState, Scope};

/// The gatehouse endpoints under `/.pomerium/`, on route hosts and on the
/// authenticate host. `None` when the path is not one of them.
pub async fn endpoint(
    auth: &Auth,
    state: &IdentityState,
    req: Request<RequestBody>,
    host: &Host<'_>,
    allowed_redirect: &(dyn Fn(&str, Option<u16>) -> bool + Sync),
    caller: crate::request::Caller<'_>,
    request_id: &str,
) -> Result<Response<Body>, Request<RequestBody>> {
    // The sign-in throttle counts per client address (the canonical one:
    // behind trusted proxies, not the proxy's own).
    let conn = caller.conn;
    let (peer, secure) = (caller.ip, conn.external_https());
    let allowed_redirect = &Targets {
        auth,
        allowed: allowed_redirect,
        local_port: conn.local_port,
    };
    let path = req.uri().path();
    let method = req.method().clone();
    match (path, &method) {
        ("/.pomerium/sign_in", &Method::GET | &Method::POST) if !state.store.available() => {
            let json = answers::wants_json(req.headers());
            let e = ProxyError::SessionStoreUnavailable;
            Ok(crate::error::response(&e, request_id, json))
        }
        ("/.pomerium/sign_in", &Method::GET) => {
            Ok(sign_in_page(auth, state, &req, host, allowed_redirect, secure).await)
        }
        ("/.pomerium/sign_in", &Method::POST) => {
            Ok(sign_in_post(auth, state, req, host, allowed_redirect, peer, secure).await)
        }
        ("/.pomerium/callback" | "/.pomerium/callback/", &Method::GET) => {
            Ok(callback(auth, state, &req, host, secure).await)
        }
        ("/oauth2/callback", &Method::GET) => {
            Ok(oidc_callback(auth, state, &req, host, allowed_redirect, secure).await)
        }
        ("/.pomerium/user", &Method::GET) => Ok(
            match session(auth, state, req.headers(), host.name, Scope::OwnPages).await {
                Some(s) => json(StatusCode::OK, user_json(&s)),
                None => crate::error::response(&ProxyError::NotSignedIn, request_id, true),
            },
        ),
        ("/.pomerium" | "/.pomerium/", &Method::GET) => {
            let s = session(auth, state, req.headers(), host.name, Scope::OwnPages).await;
            Ok(html(StatusCode::OK, user_page(auth, s.as_deref(), host)))
        }
        // A signed link (the session's own sign-out token) signs out at once.
        ("/.pomerium/sign_out", &Method::GET)
            if query_param(req.uri().query(), "token").is_some() =>
        {
            Ok(sign_out_post(auth, state, req, host, allowed_redirect, secure).await)
        }
        ("/.pomerium/sign_out", &Method::GET) => {
            let s = session(auth, state, req.headers(), host.name, Scope::OwnPages).await;
            Ok(html(StatusCode::OK, sign_out_page(auth, s.as_deref())))
        }
        ("/.pomerium/sign_out", &Method::POST) => {
            Ok(sign_out_post(auth, state, req, host, allowed_redirect, secure).await)
        }
        ("/.pomerium/api/v1/login", &Method::GET) => Ok(programmatic_login(
            auth,
            &req,
            host,
            caller.route_idp,
            request_id,
        )),
        ("/.pomerium/api/v1/login", _) => Ok(crate::error::response(
            &ProxyError::MethodNotAllowed { allow: None },
            request_id,
            true,
        )),
        ("/.pomerium/programmatic", &Method::GET) => {
            Ok(programmatic_finish(auth, state, &req, host, secure).await)
        }
        ("/.pomerium/signed_out", &Method::GET) => Ok(notice(
            StatusCode::OK,
            "Signed out",
            "You are signed out",
            "You can close this page.",
        )),
        _ if path.starts_with("/.pomerium/")
            && matches!(
                path,
                "/.pomerium/sign_in" | "/.pomerium/sign_out" | "/.pomerium/user"
            ) =>
        {
            let e = ProxyError::MethodNotAllowed {
                allow: Some("GET, POST"),
            };
            Ok(crate::error::response(&e, request_id, false))
        }
        _ => Err(req),
    }
}

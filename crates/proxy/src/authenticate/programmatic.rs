//! Programmatic login (`/.pomerium/api/v1/login`): a token handed to a
//! command-line client through a whitelisted redirect.

use bytes::Bytes;
use gatehouse_identity::cookie::Handle;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::answers::{notice, redirect};
use crate::body::{self, Body, RequestBody};
use crate::error::ProxyError;

use super::forms::{form_token, open_form_token, query_param};
use super::sessions::{TOKEN_PURPOSE, session};
use super::start::{sign_in_url_for, start_sign_in};
use super::state::{Auth, Host, IdentityState, Scope};

/// `/.pomerium/api/v1/login?pomerium_redirect_uri=...` (Pomerium's
/// programmatic login): the sign-in URL, as text. After sign-in the browser
/// lands on `/.pomerium/programmatic` of this host, which sends it to the
/// client's redirect URI with `pomerium_jwt=<token>`.
///
/// The provider client is the one of the route the request's URL matches
/// (`route_idp`, a route's own `idp_client_id`), else the global one, as
/// Pomerium (`GetIdentityProviderForRequestURL`): its token then works on
/// that route.
pub(super) fn programmatic_login(
    auth: &Auth,
    req: &Request<RequestBody>,
    host: &Host<'_>,
    route_idp: Option<&str>,
    request_id: &str,
) -> Response<Body> {
    let Some(target) = query_param(req.uri().query(), "pomerium_redirect_uri") else {
        return crate::error::response(&ProxyError::ProgrammaticNoRedirect, request_id, true);
    };
    let allowed = url::Url::parse(&target).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.username().is_empty()
            && u.password().is_none()
            && u.host()
                .is_some_and(|h| redirect_allowed(&h, &auth.programmatic_domains))
    });
    if allowed.is_none() {
        let e = ProxyError::ProgrammaticRedirectRefused;
        return crate::error::response(&e, request_id, true);
    }
    // The client goes with the target, sealed: the finish asks for a
    // session of that client.
    let payload = format!("{}\n{target}", route_idp.unwrap_or_default());
    let state = form_token(auth, "programmatic", &payload);
    let back = format!("{}/.pomerium/programmatic?state={state}", host.origin);
    let mut resp = Response::new(body::full(Bytes::from(sign_in_url_for(
        auth,
        &host.origin,
        &back,
        route_idp,
    ))));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The end of a programmatic login: the signed-in browser is sent to the
/// client's redirect URI with the token, bound to the session.
pub(super) async fn programmatic_finish(
    auth: &Auth,
    state: &IdentityState,
    req: &Request<RequestBody>,
    host: &Host<'_>,
    secure: bool,
) -> Response<Body> {
    let sealed = query_param(req.uri().query(), "state").unwrap_or_default();
    let opened = open_form_token(auth, "programmatic", &sealed);
    let Some((idp, target)) = opened.as_deref().and_then(|p| p.split_once('\n')) else {
        return notice(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "Cannot finish the login",
            "The login link has expired. Start again from your command-line tool.",
        );
    };
    // Only the main sign-in's sessions become programmatic tokens, and only
    // those of the client the login was asked for.
    let route_idp = (!idp.is_empty()).then_some(idp);
    let wanted = route_idp.or(auth.main_idp.as_deref());
    let found = session(auth, state, req.headers(), host.name, Scope::MainSignIn).await;
    let Some(session) = found.filter(|s| Some(s.identity.idp.as_str()) == wanted) else {
        let here = format!("{}/.pomerium/programmatic?state={sealed}", host.origin);
        return start_sign_in(auth, host, &here, secure, route_idp);
    };
    let token = Handle {
        session: session.id,
        expires_at: session.expires_at,
    }
    .seal(&auth.cookie_sealer, TOKEN_PURPOSE);
    let Ok(mut url) = url::Url::parse(target) else {
        return notice(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "Cannot finish the login",
            "Bad redirect address.",
        );
    };
    url.query_pairs_mut().append_pair("pomerium_jwt", &token);
    tracing::info!(user = %session.identity.sub, "programmatic login: token handed to the client");
    redirect(url.as_str())
}

/// Pomerium's `IsRedirectAllowed`: the host exactly as whitelisted, and
/// `localhost` for any loopback address too (CLIs listen on 127.0.0.1);
/// `*.example.com` (gatehouse's) for any subdomain. Never a subdomain of
/// a plain entry (a resolver may send `cli.localhost` to the network).
fn redirect_allowed(host: &url::Host<&str>, whitelist: &[String]) -> bool {
    let loopback = match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    let name = match host {
        url::Host::Domain(d) => d.to_ascii_lowercase(),
        other => other.to_string(),
    };
    whitelist.iter().any(|d| {
        (d == "localhost" && loopback)
            || name == *d
            || d.strip_prefix("*.")
                .is_some_and(|s| name.ends_with(&format!(".{s}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_allowed_as_pomerium_allows_them() {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ok = |u: &str, l: &[&str]| {
            let u = url::Url::parse(u).unwrap();
            redirect_allowed(&u.host().unwrap(), &list(l))
        };
        assert!(ok("http://localhost:8000/cb", &["localhost"]));
        assert!(ok("http://127.0.0.1:8000/", &["localhost"]));
        assert!(ok("http://[::1]:8000/", &["localhost"]));
        assert!(!ok("http://cli.localhost/", &["localhost"]));
        assert!(!ok("http://localhost.evil.example/", &["localhost"]));
        assert!(!ok("http://a.example.com/", &["example.com"]));
        assert!(ok("http://example.com/", &["example.com"]));
        assert!(ok("http://a.example.com/", &["*.example.com"]));
        assert!(!ok("http://example.com.evil/", &["*.example.com"]));
        assert!(!ok("http://10.0.0.1/", &["localhost"]));
    }
}

//! The one rule against cross-site request forgery, for the console and
//! the sign-in and sign-out forms.
//!
//! A write (any method but GET, HEAD and OPTIONS) must say it comes from
//! the page's own origin: `Origin`, or when a
//! client sends none, `Referer`. Only a request that was authenticated by a
//! token in a header — which no browser attaches on its own — and carries
//! no session cookie is exempt. Nothing else (`Authorization: Basic`,
//! `X-Requested-With`, a JSON content type, ...) lifts the rule: a browser
//! resends cached Basic credentials and cookies cross-site, and JSON from
//! another site is only held back by CORS, which is not ours to rely on.
//!
//! Pure functions over the request head, so the rule is tested directly.

use http::{HeaderMap, Method, header};
use url::{Origin, Url};

use crate::bearer::{self, Credential};

/// Whether `method` may change something: every method but GET, HEAD and
/// OPTIONS (an unknown method is a write, so it is checked too).
pub(crate) fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The console's own origin for a request addressed to `authority`
/// (`host[:port]`), in the scheme the console is served on. `None` when the
/// authority is not a plain `host[:port]` (then no write is same-origin).
pub fn own_origin(https: bool, authority: &str) -> Option<Origin> {
    let scheme = if https { "https" } else { "http" };
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', '\\']) {
        return None;
    }
    origin_only(&format!("{scheme}://{authority}"))
}

/// Whether the request says it was sent from `own`.
///
/// `Origin` decides when present: exactly one, a serialized origin (no
/// path), equal to `own` (scheme, host and port; host case and a default
/// port do not matter). `Origin: null` (sandboxed frames, redirects,
/// `file:` pages) is refused. Without `Origin`, a `Referer` on `own`
/// decides; without both the request is refused, as browsers send
/// `Origin` on every POST, PUT, PATCH and DELETE.
pub(crate) fn same_origin(headers: &HeaderMap, own: &Origin) -> bool {
    let mut origins = headers.get_all(header::ORIGIN).iter();
    if let Some(origin) = origins.next() {
        // Two `Origin` headers are no browser's: ambiguity is refused.
        if origins.next().is_some() {
            return false;
        }
        return origin
            .to_str()
            .ok()
            .and_then(origin_only)
            .is_some_and(|o| &o == own);
    }
    let mut referers = headers.get_all(header::REFERER).iter();
    match (referers.next(), referers.next()) {
        (Some(referer), None) => referer
            .to_str()
            .ok()
            .and_then(|r| Url::parse(r).ok())
            .filter(|u| matches!(u.scheme(), "https" | "http"))
            .is_some_and(|u| &u.origin() == own),
        _ => false,
    }
}

/// Whether a token in a header, not the session cookie, authenticated the
/// request: a programmatic-login or bearer token as `bearer::credential`
/// reads it (as `authorize::identify` does), and no session cookie at all.
///
/// `identify` uses a header token instead of the cookie and refuses a
/// request that carries a bad one, so a console request with a token and
/// no cookie was authenticated by the token. A request that also carries
/// the cookie is not exempt whatever its headers say: then the cookie may
/// be what authenticated it (junk `Authorization` next to a victim's
/// cookie is the attack), and the console cannot tell which one did.
pub(crate) fn header_authenticated(headers: &HeaderMap, carries_session_cookie: bool) -> bool {
    !carries_session_cookie && !matches!(bearer::credential(headers), Credential::None)
}

/// The rule: a write must be same-origin unless a header token (and no
/// cookie) authenticated it. `own` is `None` when the console's origin is
/// unknown; then only header-authenticated writes pass.
pub fn write_allowed(
    method: &Method,
    headers: &HeaderMap,
    own: Option<&Origin>,
    carries_session_cookie: bool,
) -> bool {
    !is_write(method)
        || header_authenticated(headers, carries_session_cookie)
        || own.is_some_and(|own| same_origin(headers, own))
}

/// The origin `text` serializes (`scheme://host[:port]`, nothing else), if
/// it is an http(s) origin.
fn origin_only(text: &str) -> Option<Origin> {
    let url = Url::parse(text).ok()?;
    let plain = matches!(url.scheme(), "https" | "http")
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && !text.ends_with('/')
        && url.query().is_none()
        && url.fragment().is_none()
        && url.host().is_some();
    plain.then(|| url.origin())
}

/// The request's host name as `forward` routes on it: lower case, without
/// port or trailing dot (for the session cookie's name).
pub fn host_name(authority: &str) -> String {
    let host = match authority.parse::<http::uri::Authority>() {
        Ok(a) => a.host().to_string(),
        Err(_) => authority.to_string(),
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const OWN: &str = "console.example.com:8443";

    fn own() -> Origin {
        own_origin(true, OWN).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn same(pairs: &[(&str, &str)]) -> bool {
        same_origin(&headers(pairs), &own())
    }

    #[test]
    fn origin_must_be_the_console() {
        assert!(same(&[("origin", "https://console.example.com:8443")]));
        // Host and scheme case do not matter; browsers send lower case anyway.
        assert!(same(&[("origin", "HTTPS://Console.Example.COM:8443")]));
        assert!(!same(&[("origin", "https://evil.example")]));
        assert!(!same(&[(
            "origin",
            "https://console.example.com.evil.example:8443"
        )]));
        assert!(!same(&[(
            "origin",
            "https://evil.console.example.com:8443"
        )]));
    }

    #[test]
    fn scheme_and_port_are_part_of_the_origin() {
        assert!(!same(&[("origin", "http://console.example.com:8443")]));
        assert!(!same(&[("origin", "https://console.example.com")]));
        assert!(!same(&[("origin", "https://console.example.com:9443")]));
        // A default port written out or left out is the same origin.
        let default = own_origin(true, "console.example.com").unwrap();
        let h = headers(&[("origin", "https://console.example.com:443")]);
        assert!(same_origin(&h, &default));
        let default = own_origin(true, "console.example.com:443").unwrap();
        let h = headers(&[("origin", "https://console.example.com")]);
        assert!(same_origin(&h, &default));
        let plain = own_origin(false, "console.example.com").unwrap();
        assert!(!same_origin(&h, &plain), "https is not http");
    }

    #[test]
    fn null_odd_or_several_origins_are_refused() {
        assert!(!same(&[("origin", "null")]));
        assert!(!same(&[("origin", "")]));
        assert!(!same(&[("origin", "https://console.example.com:8443/")]));
        assert!(!same(&[("origin", "https://console.example.com:8443/x")]));
        assert!(!same(&[("origin", "https://u@console.example.com:8443")]));
        assert!(!same(&[("origin", "file://console.example.com:8443")]));
        assert!(!same(&[
            ("origin", "https://console.example.com:8443"),
            ("origin", "https://evil.example"),
        ]));
        // A foreign or null Origin is not rescued by a same-origin Referer.
        let referer = ("referer", "https://console.example.com:8443/routes/new");
        assert!(!same(&[("origin", "null"), referer]));
        assert!(!same(&[("origin", "https://evil.example"), referer]));
    }

    #[test]
    fn referer_decides_only_without_origin() {
        assert!(same(&[(
            "referer",
            "https://console.example.com:8443/routes/new?x=1"
        )]));
        assert!(same(&[("referer", "https://console.example.com:8443")]));
        assert!(!same(&[("referer", "https://evil.example/")]));
        assert!(!same(&[(
            "referer",
            "https://console.example.com:8443.evil.example/"
        )]));
        assert!(!same(&[("referer", "http://console.example.com:8443/")]));
        assert!(!same(&[("referer", "not a url")]));
        assert!(!same(&[
            ("referer", "https://console.example.com:8443/"),
            ("referer", "https://evil.example/"),
        ]));
        assert!(!same(&[]), "neither Origin nor Referer: refused");
    }

    #[test]
    fn own_origin_is_a_plain_authority() {
        assert!(own_origin(true, "").is_none());
        assert!(own_origin(true, "evil.example/console.example.com").is_none());
        assert!(own_origin(true, "user@console.example.com").is_none());
        assert_eq!(
            own_origin(true, "Console.Example.com:8443"),
            own_origin(true, "console.example.com:8443")
        );
    }

    #[test]
    fn only_a_header_token_without_cookie_lifts_the_rule() {
        let post = Method::POST;
        let own = own();
        let allowed = |pairs: &[(&str, &str)], cookie: bool| {
            write_allowed(&post, &headers(pairs), Some(&own), cookie)
        };
        let evil = ("origin", "https://evil.example");
        // The reported attack and its variants: the cookie authenticates.
        for junk in [
            ("authorization", "Basic YWxpY2U6eA=="),
            ("authorization", "Bearer junk"),
            ("authorization", "Pomerium junk"),
            ("x-pomerium-authorization", "junk"),
            ("x-requested-with", "XMLHttpRequest"),
            ("content-type", "application/json"),
        ] {
            assert!(!allowed(&[junk, evil], true), "{junk:?}");
            assert!(!allowed(&[junk], true), "{junk:?} without Origin");
        }
        // Basic is no token of gatehouse's (and browsers resend it).
        assert!(!allowed(&[("authorization", "Basic YWxpY2U6eA==")], false));
        // A programmatic client: a token, no cookie, no Origin.
        assert!(allowed(&[("authorization", "Pomerium t")], false));
        assert!(allowed(&[("x-pomerium-authorization", "t")], false));
        assert!(allowed(&[("authorization", "Bearer Pomerium-t")], false));
        assert!(allowed(&[("authorization", "Bearer eyJ")], false));
        // The console's own pages.
        let same = ("origin", "https://console.example.com:8443");
        assert!(allowed(&[same], true));
        assert!(allowed(
            &[same, ("authorization", "Basic YWxpY2U6eA==")],
            true
        ));
        // An unknown own origin: only header tokens pass.
        assert!(!write_allowed(&post, &headers(&[same]), None, true));
    }

    #[test]
    fn reads_are_not_checked_and_every_other_method_is() {
        let evil = headers(&[("origin", "https://evil.example")]);
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(write_allowed(&m, &evil, Some(&own()), true), "{m}");
        }
        for m in ["POST", "PUT", "PATCH", "DELETE", "TRACE", "PROPFIND"] {
            let m = Method::from_bytes(m.as_bytes()).unwrap();
            assert!(!write_allowed(&m, &evil, Some(&own()), true), "{m}");
        }
    }

    #[test]
    fn host_name_is_routed_on_without_port() {
        assert_eq!(host_name("Console.Example.com:8443"), "console.example.com");
        assert_eq!(host_name("console.example.com."), "console.example.com");
        assert_eq!(host_name("[::1]:8443"), "[::1]");
    }
}

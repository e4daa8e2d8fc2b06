//! gatehouse's cookies: reading them, stripping them from what goes
//! upstream, and setting them (session, pending sign-in).

use gatehouse_config::SameSite;
use gatehouse_identity::cookie::Handle;
use gatehouse_identity::session::{Session, unix_now};
use http::header::{self, HeaderMap, HeaderValue};

use super::state::Auth;

pub(super) fn cookie_value<'a>(headers: &'a HeaderMap, name: &'a str) -> Option<&'a str> {
    cookie_values(headers, name).next()
}

/// Every value of the cookie `name` the request carries, in order.
pub(super) fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Whether the cookie `pair` (`key=value`, or a `Set-Cookie` value) is
/// one of gatehouse's: its key, however spaced, is `name` or `name_*`.
pub fn is_own_cookie(pair: &[u8], name: &[u8]) -> bool {
    let key = pair.split(|&b| b == b'=').next().unwrap_or(pair);
    // Every ASCII space, vertical tab included: wider than any browser's.
    let space = |b: &u8| b.is_ascii_whitespace() || *b == 0x0b;
    let start = key.iter().position(|b| !space(b)).unwrap_or(key.len());
    let end = key.iter().rposition(|b| !space(b)).map_or(start, |e| e + 1);
    key[start..end]
        .strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'_')
}

/// Removes gatehouse's own cookies (`name` and `name_*`, however spaced)
/// from what the upstream sees. Read as bytes: a value that is not valid
/// header text (a co-tenant's cookie may carry any byte) is cleaned like
/// any other, never passed on whole. Runs on every signed-in request: a
/// value with none of them is kept as it is, and nothing is allocated when
/// only gatehouse's cookies were sent.
pub fn strip_cookies(headers: &mut HeaderMap, name: &str) {
    let name = name.as_bytes();
    let own = |pair: &[u8]| is_own_cookie(pair, name);
    if !headers
        .get_all(header::COOKIE)
        .iter()
        .any(|v| pairs(v.as_bytes()).any(own))
    {
        return;
    }
    let mut kept: Vec<HeaderValue> = Vec::new();
    if let http::header::Entry::Occupied(entry) = headers.entry(header::COOKIE) {
        for v in entry.remove_entry_mult().1 {
            if !pairs(v.as_bytes()).any(own) {
                kept.push(v);
                continue;
            }
            let mut out: Vec<u8> = Vec::new();
            for pair in pairs(v.as_bytes()).map(<[u8]>::trim_ascii) {
                if pair.is_empty() || own(pair) {
                    continue;
                }
                if !out.is_empty() {
                    out.extend_from_slice(b"; ");
                }
                out.extend_from_slice(pair);
            }
            if !out.is_empty()
                && let Ok(v) = HeaderValue::from_bytes(&out)
            {
                kept.push(v);
            }
        }
    }
    for v in kept {
        headers.append(header::COOKIE, v);
    }
}

/// The `;`-separated pieces of a `Cookie` value, as `split` gives them
/// (empty ones included), the separators found with `memchr`: a session
/// cookie is hundreds of bytes, and a byte-at-a-time split of every
/// signed-in request's `Cookie` cost more than the rest of this module.
fn pairs(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b';', value).chain(std::iter::once(value.len()));
    std::iter::from_fn(move || {
        let end = ends.next()?;
        let pair = &value[start..end];
        start = end + 1;
        Some(pair)
    })
}

/// A session cookie (or its removal, `max_age: None`); `shared` gives it
/// `cookie_domain` when one is configured (else it is host-only).
pub(super) fn set_cookie(
    auth: &Auth,
    host: &str,
    name: &str,
    value: &str,
    max_age: Option<u64>,
    secure: bool,
    shared: bool,
) -> HeaderValue {
    let c = &auth.cookie;
    let mut s = format!("{name}={value}; Path=/");
    match max_age {
        Some(a) => s.push_str(&format!("; Max-Age={a}")),
        None => s.push_str("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
    }
    if let Some(d) = c.domain.as_ref().filter(|_| shared) {
        s.push_str(&format!("; Domain={d}"));
    }
    let same_site = auth.same_site(host);
    if secure || same_site == Some(SameSite::None) {
        s.push_str("; Secure");
    }
    if c.http_only {
        s.push_str("; HttpOnly");
    }
    match same_site {
        Some(SameSite::Lax) => s.push_str("; SameSite=Lax"),
        Some(SameSite::Strict) => s.push_str("; SameSite=Strict"),
        Some(SameSite::None) => s.push_str("; SameSite=None; Partitioned"),
        None => {}
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("_invalid=1"))
}

pub(super) fn session_cookie(
    auth: &Auth,
    host: &str,
    session: &Session,
    secure: bool,
) -> HeaderValue {
    let name = auth.cookie_name(host);
    let handle = Handle {
        session: session.id,
        expires_at: session.expires_at,
    };
    let value = handle.seal(&auth.cookie_sealer, name);
    let max_age = session.expires_at.saturating_sub(unix_now());
    // A token-made session is good on its own host only: its cookie never
    // takes `cookie_domain`.
    let shared = session.provenance.is_main_sign_in();
    set_cookie(auth, host, name, &value, Some(max_age), secure, shared)
}

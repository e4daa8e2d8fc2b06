//! Where a request came from (`ConnInfo`, `Caller`) and what it means,
//! decided once before routing: its canonical path
//! (the one route matching, the policy and the upstream all see), who the
//! client is, and the header rules that keep a request unambiguous. What
//! cannot be made unambiguous is refused here (400), never guessed: an
//! access proxy that decides on one reading of a request while the upstream
//! acts on another can be walked around.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use gatehouse_config::{EscapedSlashes, RequestRules, UnderscoreHeaders};
use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

/// Why a request cannot be given one meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ambiguous {
    NotOriginForm,
    Backslash,
    BadEscape,
    Nul,
    EscapedSlash,
    DotParameters,
    DotSegments,
    PathParameters,
    DuplicateHost,
    HostMismatch,
    BadHost,
    UnderscoreHeader,
    ForwardedFor,
}

impl Ambiguous {
    /// The reason shown to the client (it says what to change, nothing more).
    pub fn reason(self) -> &'static str {
        match self {
            Ambiguous::NotOriginForm => "The request path must start with /.",
            Ambiguous::Backslash => "The request path contains a backslash.",
            Ambiguous::BadEscape => {
                "The request path contains a % that does not start a %XX escape."
            }
            Ambiguous::Nul => "The request path contains an encoded NUL (%00).",
            Ambiguous::EscapedSlash => {
                "The request path contains an encoded slash or backslash (%2F, %5C)."
            }
            Ambiguous::DotParameters => {
                "The request path contains a dot or empty segment with ;parameters."
            }
            Ambiguous::DotSegments => {
                "The request path would reach the service with . or .. segments it reads another way."
            }
            Ambiguous::PathParameters => {
                "The request path's ;parameters make it match another route when they are cut, as some servers do."
            }
            Ambiguous::DuplicateHost => "The request has more than one Host header.",
            Ambiguous::HostMismatch => "The request's Host header differs from its :authority.",
            Ambiguous::BadHost => {
                "The request's host is not a host name or address with an optional port."
            }
            Ambiguous::ForwardedFor => {
                "X-Forwarded-For does not name the client that the trusted proxies saw."
            }
            Ambiguous::UnderscoreHeader => "A request header name contains an underscore.",
        }
    }

    /// A stable code for logs, metrics and JSON errors.
    pub fn code(self) -> &'static str {
        match self {
            Ambiguous::NotOriginForm
            | Ambiguous::Backslash
            | Ambiguous::BadEscape
            | Ambiguous::Nul
            | Ambiguous::EscapedSlash
            | Ambiguous::DotParameters
            | Ambiguous::DotSegments
            | Ambiguous::PathParameters => "bad_path",
            Ambiguous::DuplicateHost | Ambiguous::HostMismatch | Ambiguous::BadHost => "bad_host",
            Ambiguous::UnderscoreHeader | Ambiguous::ForwardedFor => "bad_header",
        }
    }
}

/// A path made canonical.
#[derive(Debug, PartialEq, Eq)]
pub struct CanonicalPath<'a> {
    pub path: Cow<'a, str>,
    /// `%2F`/`%5C` were decoded (`unescape_and_redirect` answers with a
    /// redirect to `path` then).
    pub unescaped_slashes: bool,
    /// A `.` or `..` segment was resolved: the raw path names the same
    /// resource only to a reader that resolves them too.
    pub dot_segments: bool,
}

/// The canonical form of a request path (no query):
///
/// 1. a raw `\` is refused: browsers never send one, and WHATWG-URL
///    upstreams (Node, Deno, Bun) read it as `/`;
/// 2. `%XX` escapes of unreserved characters are decoded (`%61` → `a`,
///    `%2e` → `.`), other escapes are kept with upper-case hex, `%00` and a
///    `%` that starts no escape are refused, `%2F`/`%5C` follow
///    `path_with_escaped_slashes_action` (refused by default);
/// 3. `.` and `..` segments are resolved (never above the root), and a
///    segment that is empty, `.` or `..` once its `;parameters` (or
///    `%3Bparameters`) are cut (`..;x`, which servlet containers read as
///    `..`) is refused;
/// 4. repeated slashes are merged (`merge_slashes`, default on).
///
/// The result is a fixed point, and (unless `keep_unchanged` was chosen)
/// decoding it once more, as an upstream does, cannot produce a new `/`,
/// `.` or `..` segment.
pub fn canonical_path<'a>(
    raw: &'a str,
    rules: &RequestRules,
) -> Result<CanonicalPath<'a>, Ambiguous> {
    if !raw.starts_with('/') {
        return Err(Ambiguous::NotOriginForm);
    }
    let bytes = raw.as_bytes();
    if !needs_work(bytes, rules.merge_slashes) {
        return Ok(CanonicalPath {
            path: Cow::Borrowed(raw),
            unescaped_slashes: false,
            dot_segments: false,
        });
    }
    // 1 and 2: escapes, on bytes (UTF-8 passes through untouched; decoding
    // only ever yields ASCII).
    let mut decoded: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut unescaped_slashes = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return Err(Ambiguous::Backslash),
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
                let (Some(h), Some(l)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                    return Err(Ambiguous::BadEscape);
                };
                let c = (h * 16 + l) as u8;
                match c {
                    0 => return Err(Ambiguous::Nul),
                    b'/' | b'\\' => match rules.escaped_slashes {
                        EscapedSlashes::Reject => return Err(Ambiguous::EscapedSlash),
                        EscapedSlashes::KeepUnchanged => {
                            decoded.extend_from_slice(if c == b'/' { b"%2F" } else { b"%5C" })
                        }
                        // `\` is `/` to every WHATWG-URL reader; decoded
                        // as anything else it would be refused above.
                        EscapedSlashes::UnescapeAndRedirect
                        | EscapedSlashes::UnescapeAndForward => {
                            decoded.push(b'/');
                            unescaped_slashes = true;
                        }
                    },
                    c if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') => {
                        decoded.push(c)
                    }
                    _ => decoded.extend_from_slice(&[
                        b'%',
                        bytes[i + 1].to_ascii_uppercase(),
                        bytes[i + 2].to_ascii_uppercase(),
                    ]),
                }
                i += 3;
            }
            b => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    // Only ASCII was decoded into place of escapes, and the rest are the
    // input's own bytes: still UTF-8.
    let decoded = String::from_utf8(decoded).map_err(|_| Ambiguous::BadEscape)?;

    // 3 and 4: segments.
    let mut out: Vec<&str> = Vec::new();
    let mut segments = decoded[1..].split('/').peekable();
    let mut trailing_slash = false;
    let mut dot_segments = false;
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        // `%3B` too: some frameworks decode before they cut parameters.
        let cut = [seg.find(';'), seg.find("%3B")].into_iter().flatten().min();
        if let Some(cut) = cut
            && matches!(&seg[..cut], "" | "." | "..")
        {
            return Err(Ambiguous::DotParameters);
        }
        match seg {
            "." | ".." => {
                dot_segments = true;
                if seg == ".." {
                    out.pop();
                }
                trailing_slash = last;
            }
            "" if last => trailing_slash = true,
            "" if rules.merge_slashes => {}
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if path.is_empty() || trailing_slash {
        path.push('/');
    }
    Ok(CanonicalPath {
        path: Cow::Owned(path),
        unescaped_slashes,
        dot_segments,
    })
}

/// The path as a servlet container (Jetty under Jenkins, Tomcat, and
/// frameworks that cut `;jsessionid=`) reads it: every segment's
/// `;parameters` (or `%3Bparameters`) cut. `None` when the path has none.
/// Route matching and the policy must agree on both readings (see
/// `authorize::authorize`), or `/secret;x` would pass a rule on `/secret`.
pub fn without_parameters(path: &str) -> Option<String> {
    // (A `%` is looked for with `memchr`, as `;` is: a substring search for
    // `%3B` costs more than the whole check of a short path.)
    if !path.contains(';')
        && !path
            .match_indices('%')
            .any(|(i, _)| path[i..].starts_with("%3B"))
    {
        return None;
    }
    let cut: Vec<&str> = path
        .split('/')
        .map(|seg| {
            let end = [seg.find(';'), seg.find("%3B")]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(seg.len());
            &seg[..end]
        })
        .collect();
    Some(cut.join("/"))
}

/// A request whose path is canonical, or where the client must go first.
pub enum Canonical<B> {
    Request(http::Request<B>),
    /// `unescape_and_redirect`: the canonical path and query to redirect to.
    Redirect(String),
}

/// Makes the request's own URI canonical, so every later phase (own
/// endpoints, route matching, policy, the upstream request) reads the one
/// path that was decided on; unchanged requests are not touched.
pub fn canonicalize<B>(
    mut req: http::Request<B>,
    rules: &RequestRules,
) -> Result<Canonical<B>, Ambiguous> {
    let c = canonical_path(req.uri().path(), rules)?;
    let Cow::Owned(path) = c.path else {
        return Ok(Canonical::Request(req));
    };
    let pq = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    if c.unescaped_slashes && rules.escaped_slashes == EscapedSlashes::UnescapeAndRedirect {
        // A Location starting `//` (kept with `merge_slashes: false`) is
        // another host to a browser: `/%2F%2Fevil.example` must not become
        // an open redirect.
        if pq.starts_with("//") {
            return Err(Ambiguous::EscapedSlash);
        }
        return Ok(Canonical::Redirect(pq));
    }
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query =
        Some(http::uri::PathAndQuery::try_from(pq).map_err(|_| Ambiguous::BadEscape)?);
    *req.uri_mut() = http::Uri::from_parts(parts).map_err(|_| Ambiguous::BadEscape)?;
    Ok(Canonical::Request(req))
}

/// True when `canonical_path` could change or refuse the path: the common
/// path (`/app/x.js`) is checked in one pass and borrowed.
fn needs_work(bytes: &[u8], merge_slashes: bool) -> bool {
    let mut prev = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'%' | b'\\' => return true,
            b'/' if prev == b'/' && merge_slashes => return true,
            // A segment starting with `.` or `;` may be a dot segment.
            b'.' | b';' if prev == b'/' => {
                let seg = &bytes[i..];
                let end = seg.iter().position(|&c| c == b'/').unwrap_or(seg.len());
                let name = seg[..end].split(|&c| c == b';').next().unwrap_or(&[]);
                if matches!(name, b"" | b"." | b"..") {
                    return true;
                }
            }
            _ => {}
        }
        prev = b;
    }
    false
}

/// Header rules applied to every request before anything reads it: one
/// `Host`, agreeing with `:authority`; header names with `_` refused,
/// dropped or allowed (`headers_with_underscores_action`).
pub fn check_headers(
    headers: &mut HeaderMap,
    authority: Option<&http::uri::Authority>,
    rules: &RequestRules,
) -> Result<(), Ambiguous> {
    if authority.is_some_and(|a| !valid_authority(a.as_str().as_bytes())) {
        return Err(Ambiguous::BadHost);
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    if let Some(host) = hosts.next() {
        if hosts.next().is_some() {
            return Err(Ambiguous::DuplicateHost);
        }
        if !valid_authority(host.as_bytes()) {
            return Err(Ambiguous::BadHost);
        }
        if let Some(a) = authority
            && !host.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes())
        {
            return Err(Ambiguous::HostMismatch);
        }
    }
    if rules.underscore_headers == UnderscoreHeaders::Allow
        || !headers.keys().any(|n| n.as_str().contains('_'))
    {
        return Ok(());
    }
    if rules.underscore_headers == UnderscoreHeaders::Reject {
        return Err(Ambiguous::UnderscoreHeader);
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().contains('_'))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
    Ok(())
}

/// `host[:port]` as RFC 3986 allows it in a request, without the
/// spellings readers disagree on: a reg-name of letters, digits, `-`, `.`
/// and `_` (no userinfo `@`, no `,` lists, no `\`, `%`, `#`, `?`), or an IP
/// literal in brackets; a port of digits. A wildcard route would otherwise
/// pick `x.example.com@admin.example.com` that an upstream reads as
/// `admin.example.com`.
pub fn valid_authority(a: &[u8]) -> bool {
    /// The bytes of a host name (one lookup a byte: every request's `Host`
    /// is checked).
    static HOST_BYTE: [bool; 256] = {
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            let b = i as u8;
            table[i] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
            i += 1;
        }
        table
    };
    let (host, port) = match a.first() {
        Some(b'[') => match a.iter().position(|&b| b == b']') {
            Some(end) => {
                let literal = &a[1..end];
                if literal.is_empty()
                    || !literal
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
                {
                    return false;
                }
                (&a[..=end], &a[end + 1..])
            }
            None => return false,
        },
        _ => match a.iter().position(|&b| b == b':') {
            Some(colon) => (&a[..colon], &a[colon..]),
            None => (a, &a[a.len()..]),
        },
    };
    let host_ok = host.first() == Some(&b'[')
        || (!host.is_empty() && host.iter().all(|&b| HOST_BYTE[usize::from(b)]));
    let port_ok = port.is_empty()
        || (port.len() <= 6
            && port[0] == b':'
            && port.len() > 1
            && port[1..].iter().all(u8::is_ascii_digit));
    host_ok && port_ok
}

/// Facts about the connection a request arrived on, built once per connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local_port: u16,
    pub tls: bool,
    /// The client's IP as a header value, for `X-Forwarded-For`.
    pub peer_ip: HeaderValue,
    /// The client certificate presented in the TLS handshake, if any (set
    /// once, after the handshake).
    pub client_cert: std::sync::OnceLock<std::sync::Arc<crate::client_cert::PeerCert>>,
}

impl ConnInfo {
    /// The scheme the client used. A plain-HTTP listener is
    /// `insecure_server`, which (as in Pomerium) sits behind a
    /// TLS-terminating load balancer: the client side is HTTPS either way.
    /// URLs gatehouse builds for the browser and cookie flags follow this;
    /// `X-Forwarded-Proto` reports the hop as it really is.
    pub fn external_https(&self) -> bool {
        true
    }

    pub fn new(peer: SocketAddr, local_port: u16, tls: bool) -> ConnInfo {
        // IPv4-mapped peers in one spelling, as the policy sees them.
        let peer_ip = HeaderValue::from_str(&peer.ip().to_canonical().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ConnInfo {
            peer,
            local_port,
            tls,
            peer_ip,
            client_cert: std::sync::OnceLock::new(),
        }
    }

    /// The client's address from a PROXY protocol header (the load
    /// balancer's own address is the TCP peer).
    pub fn set_peer(&mut self, peer: SocketAddr) {
        self.peer = peer;
        self.peer_ip = HeaderValue::from_str(&peer.ip().to_canonical().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    }

    /// The client certificate of this connection, if one was presented.
    pub fn client_cert(&self) -> Option<&crate::client_cert::PeerCert> {
        self.client_cert.get().map(|c| &**c)
    }
}

/// `host[:port]` or `[v6]:port` split into host and port.
pub fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.is_empty() {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let port = rest[end + 1..]
            .strip_prefix(':')
            .and_then(|p| p.parse().ok());
        return Some((&authority[..end + 2], port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((authority, None)),
    }
}

/// Who sent a request: the connection it came on and the client address
/// decided for it ([`client_address`]).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub conn: &'a ConnInfo,
    pub ip: IpAddr,
    /// The provider client of the route the request's URL matches (a
    /// route's own `idp_client_id`), for programmatic login.
    pub route_idp: Option<&'a str>,
}

/// The client's address, as Envoy (and so Pomerium) defines it: the peer,
/// unless `xff_num_trusted_hops` is N > 0, then the Nth address from the
/// right of `X-Forwarded-For` (each trusted proxy appended the one before
/// it). When that entry is missing or is not an address the request is
/// refused: falling back to the peer would give the client the trusted
/// proxy's own address. IPv4-mapped IPv6 is reported as IPv4, so a policy
/// on `10.0.0.0/8` sees one spelling.
pub fn client_address(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted_hops: u32,
) -> Result<IpAddr, Ambiguous> {
    if trusted_hops == 0 {
        return Ok(peer.to_canonical());
    }
    nth_forwarded_from_right(headers, trusted_hops as usize)
        .map(|ip| ip.to_canonical())
        .ok_or(Ambiguous::ForwardedFor)
}

/// The address a trusted proxy in front says its client had: for a
/// forward-auth question the peer is that proxy, so it is one more trusted
/// hop than `xff_num_trusted_hops` counts. Refused when the proxy sent no
/// usable `X-Forwarded-For` (nginx: `$proxy_add_x_forwarded_for`).
pub fn forwarded_client(headers: &HeaderMap, trusted_hops: u32) -> Result<IpAddr, Ambiguous> {
    nth_forwarded_from_right(headers, trusted_hops as usize + 1)
        .map(|ip| ip.to_canonical())
        .ok_or(Ambiguous::ForwardedFor)
}

/// Read on bytes: an entry a client wrote with bytes that are not UTF-8
/// must not hide the entries the trusted proxies appended after it.
fn nth_forwarded_from_right(headers: &HeaderMap, n: usize) -> Option<IpAddr> {
    if n == 0 {
        return None;
    }
    let mut seen = 0;
    // Later header lines were appended later: walk them from the end.
    let lines: Vec<&[u8]> = headers
        .get_all(HeaderName::from_static("x-forwarded-for"))
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    for line in lines.iter().rev() {
        for entry in line.rsplit(|&b| b == b',') {
            seen += 1;
            if seen == n {
                let entry = std::str::from_utf8(entry).ok()?;
                return parse_forwarded_ip(entry.trim());
            }
        }
    }
    None
}

/// `192.0.2.1`, `2001:db8::1`, and the spellings with a port some proxies
/// write (`192.0.2.1:1234`, `[2001:db8::1]:1234`).
fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse().ok())
}

#[cfg(test)]
mod tests;

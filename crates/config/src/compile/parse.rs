//! Free parsers with no diagnostics of their own: `to` entries, header
//! templates, regex substitutions, Redis URLs and Pomerium enum values.

use http::HeaderName;

use crate::compiled::{TemplatePart, UpstreamScheme, UpstreamTarget};

pub(super) fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[')
        && let Some(end) = authority.find(']')
    {
        let (host, rest) = authority.split_at(end + 1);
        return (host, rest.strip_prefix(':'));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    }
}

/// Parses one `to` entry: `scheme://host[:port][/path][,weight]`.
pub fn parse_upstream(entry: &str) -> Result<UpstreamTarget, String> {
    let entry = entry.trim();
    let (url_text, weight) = match entry.rsplit_once(',') {
        Some((u, w)) => {
            let w: u32 = w.trim().parse().map_err(|_| {
                format!("invalid weight `{w}` in `to` entry `{entry}`: expected a positive integer")
            })?;
            if w == 0 {
                return Err(format!(
                    "weight 0 in `to` entry `{entry}`: weights must be at least 1"
                ));
            }
            (u.trim(), w)
        }
        None => (entry, 1),
    };
    let url = url::Url::parse(url_text).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => {
            let like = if url_text.is_empty() || url_text.contains(char::is_whitespace) {
                "10.0.0.5:8080"
            } else {
                url_text
            };
            format!("invalid `to` URL `{url_text}`: it needs a scheme, like `http://{like}`")
        }
        e => format!("invalid `to` URL `{url_text}`: {e}"),
    })?;
    let (scheme, default_port) = match url.scheme() {
        "http" => (UpstreamScheme::Http, 80),
        "https" => (UpstreamScheme::Https, 443),
        "h2c" => (UpstreamScheme::H2c, 80),
        "tcp" => {
            if url.port().is_none() {
                return Err(format!(
                    "`to` URL `{url_text}` needs a port (`tcp://host:port`)"
                ));
            }
            if !matches!(url.path(), "" | "/") {
                return Err(format!("`to` URL `{url_text}` must not have a path"));
            }
            (UpstreamScheme::Tcp, 0)
        }
        s @ ("udp" | "unix") => {
            return Err(format!(
                "`to` scheme `{s}` is not supported yet (HTTP and TCP upstreams only)"
            ));
        }
        other => {
            return Err(format!(
                "unknown `to` scheme `{other}` in `{url_text}` (expected http, https, h2c or tcp)"
            ));
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("`to` URL `{url_text}` has no host"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`to` URL `{url_text}` must not have a query or fragment"
        ));
    }
    if !url.username().is_empty() {
        return Err(format!(
            "`to` URL `{url_text}` must not contain user information"
        ));
    }
    let port = url.port().unwrap_or(default_port);
    let authority = format!("{host}:{port}")
        .parse()
        .map_err(|_| format!("invalid host in `to` URL `{url_text}`"))?;
    Ok(UpstreamTarget {
        scheme,
        authority,
        url: url_text.to_string(),
        weight,
    })
}

/// Envoy/RE2 substitutions use `\1`; the regex crate uses `${1}`.
pub(super) fn go_substitution(sub: &str) -> String {
    let mut out = String::with_capacity(sub.len());
    let mut chars = sub.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|n| n.is_ascii_digit()) => {
                let mut n = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    n.push(d);
                    chars.next();
                }
                out.push_str(&format!("${{{n}}}"));
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// Parses a `set_request_headers` value: `${pomerium.…}` parts and `$$`.
pub fn parse_template(value: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$$") {
            lit.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            let end = r
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in header template `{value}`"))?;
            let expr = r[..end].trim();
            let part = match expr {
                "pomerium.access_token" => TemplatePart::AccessToken,
                "pomerium.id_token" => TemplatePart::IdToken,
                "pomerium.jwt" => TemplatePart::Jwt,
                "pomerium.client_cert_fingerprint" => TemplatePart::ClientCertFingerprint,
                "pomerium.client_cert_san_dns" => TemplatePart::ClientCertSanDns,
                "pomerium.client_cert_san_email" => TemplatePart::ClientCertSanEmail,
                e => {
                    let header = e
                        .strip_prefix("pomerium.request.headers[")
                        .and_then(|h| h.strip_suffix(']'))
                        .map(|h| h.trim().trim_matches(|c| c == '"' || c == '\''));
                    match header.map(|h| HeaderName::from_bytes(h.as_bytes())) {
                        Some(Ok(h)) => TemplatePart::RequestHeader(h),
                        _ => {
                            return Err(format!(
                                "unknown template variable `${{{e}}}` in `{value}`"
                            ));
                        }
                    }
                }
            };
            if !lit.is_empty() {
                parts.push(TemplatePart::Literal(std::mem::take(&mut lit)));
            }
            parts.push(part);
            rest = &r[end + 1..];
        } else {
            lit.push('$');
            rest = &rest[1..];
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(TemplatePart::Literal(lit));
    }
    Ok(parts)
}

/// A Redis connection string gatehouse can use: `redis://`, `rediss://`
/// (TLS), `redis+unix://` or `unix://` (socket), with a host for TCP.
pub(super) fn check_redis_url(s: &str) -> Result<(), String> {
    // Never echo the string: it may hold a password.
    let u =
        url::Url::parse(s).map_err(|e| format!("not a URL ({e}); write redis://host:6379/0"))?;
    match u.scheme() {
        "redis" | "rediss" => {
            if u.host_str().is_none_or(str::is_empty) {
                return Err("the Redis URL has no host (redis://host:6379/0)".into());
            }
            let db = u.path().trim_start_matches('/');
            if !db.is_empty() && db.parse::<u32>().is_err() {
                return Err(format!(
                    "`/{db}` is not a database number (redis://host:6379/0)"
                ));
            }
            Ok(())
        }
        "redis+unix" | "unix" => Ok(()),
        other => Err(format!(
            "scheme `{other}` is not supported: use redis://, rediss:// (TLS) or unix://"
        )),
    }
}

/// A protobuf enum value as Pomerium's config decoder accepts it: any case,
/// the full name or the name without the enum's common prefix, or a unique
/// suffix after `_`; empty means the enum's zero value (`None` in `names`).
/// `None` when nothing matches.
pub(super) fn pomerium_enum<T: Copy>(
    value: &str,
    prefix: &str,
    names: &[(&str, Option<T>)],
) -> Option<Option<T>> {
    let v = value.trim().to_ascii_lowercase();
    if v.is_empty() {
        return Some(None);
    }
    let short = v.strip_prefix(prefix).unwrap_or(&v);
    if let Some((_, choice)) = names.iter().find(|(n, _)| *n == short) {
        return Some(*choice);
    }
    let mut suffixed = names
        .iter()
        .filter(|(n, _)| n.ends_with(&format!("_{short}")));
    match (suffixed.next(), suffixed.next()) {
        (Some((_, choice)), None) => Some(*choice),
        _ => None,
    }
}

//! The access log: one `http-request` line per request (target
//! `gatehouse::access`, Pomerium's message and field names), written when
//! the response body has been sent — so `size` is the bytes that went out
//! and `duration` covers the whole exchange — or when the client went away.
//!
//! Nothing is captured when the line would not be written (`log_level`
//! above info, or `access_log_fields: []`): the hot path stays as it is.
//! Credentials never reach the log: `path` has no query, `query` and
//! `referer` have secret-looking parameters (`code`, `state`, tokens,
//! sealed hand-offs) replaced, and `headers.<Name>` never writes cookies,
//! authorization or assertions.

use std::borrow::Cow;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use gatehouse_config::AccessField;
use http::{HeaderMap, HeaderName, HeaderValue, Request, header};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::body::{Body, BoxError};

const TARGET: &str = "gatehouse::access";

/// The configured fields, as a bit set plus the header names.
pub struct AccessLog {
    mask: u32,
    headers: Vec<HeaderName>,
}

fn bit(f: &AccessField) -> u32 {
    use AccessField::*;
    1 << match f {
        Authority => 0,
        Duration => 1,
        ForwardedFor => 2,
        Ip => 3,
        Method => 4,
        Path => 5,
        Query => 6,
        Referer => 7,
        RequestId => 8,
        ResponseCode => 9,
        ResponseCodeDetails => 10,
        Size => 11,
        UpstreamCluster => 12,
        UserAgent => 13,
        Upstream => 14,
        User => 15,
        Email => 16,
        Header(_) => 17,
        ClientCertificate => 18,
    }
}

impl AccessLog {
    pub fn new(fields: &[AccessField]) -> AccessLog {
        AccessLog {
            mask: fields.iter().map(bit).fold(0, |a, b| a | b),
            headers: fields
                .iter()
                .filter_map(|f| match f {
                    AccessField::Header(h) => Some(h.clone()),
                    _ => None,
                })
                .collect(),
        }
    }

    fn has(&self, f: AccessField) -> bool {
        self.mask & bit(&f) != 0
    }

    /// Whether lines are written at all (checked once per request).
    pub fn enabled(&self) -> bool {
        self.mask != 0 && tracing::enabled!(target: TARGET, tracing::Level::INFO)
    }

    /// What the line needs from the request, taken before it moves on.
    pub fn begin<B>(
        self: &Arc<Self>,
        req: &Request<B>,
        peer: IpAddr,
        request_id: &HeaderValue,
        start: Instant,
        cert: Option<&crate::client_cert::PeerCert>,
    ) -> Box<Pending> {
        let h = req.headers();
        let get = |name: HeaderName| h.get(name).cloned();
        // Boxed: the request's future carries it through every phase, and
        // 440 bytes inline there are copied with it.
        Box::new(Pending {
            log: self.clone(),
            start,
            method: req.method().as_str().to_owned(),
            authority: req
                .uri()
                .authority()
                .map(|a| a.as_str().to_owned())
                .or_else(|| {
                    h.get(header::HOST)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                }),
            path: req.uri().path().to_owned(),
            query: req.uri().query().map(str::to_owned),
            user_agent: get(header::USER_AGENT),
            referer: get(header::REFERER),
            forwarded_for: get(HeaderName::from_static("x-forwarded-for")),
            peer,
            request_id: request_id.clone(),
            headers: self
                .headers
                .iter()
                .map(|n| (n.clone(), header_value(h, n)))
                .collect(),
            client_cert: cert
                .filter(|_| self.has(AccessField::ClientCertificate))
                .map(|c| {
                    let f = &c.facts;
                    let sans: Vec<String> = f
                        .san_dns
                        .iter()
                        .map(|n| format!("DNS:{n}"))
                        .chain(f.san_email.iter().map(|n| format!("email:{n}")))
                        .chain(f.san_uri.iter().map(|n| format!("URI:{n}")))
                        .collect();
                    serde_json::json!({
                        "issuer": c.issuer,
                        "subject": c.subject,
                        "subjectAltName": sans,
                        "fingerprint": f.fingerprint,
                    })
                    .to_string()
                }),
            outcome: Outcome::default(),
        })
    }
}

/// What only the handling knows, filled in on the way.
#[derive(Default)]
pub struct Outcome {
    pub route: Option<String>,
    pub upstream: Option<String>,
    pub user: Option<String>,
    pub email: Option<String>,
    /// Why the response is what it is (`via_upstream`, `denied`, ...).
    pub details: Option<&'static str>,
}

/// A request's line, waiting for its response to end.
pub struct Pending {
    log: Arc<AccessLog>,
    start: Instant,
    method: String,
    authority: Option<String>,
    path: String,
    query: Option<String>,
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    forwarded_for: Option<HeaderValue>,
    peer: IpAddr,
    request_id: HeaderValue,
    headers: Vec<(HeaderName, Option<String>)>,
    client_cert: Option<String>,
    pub outcome: Outcome,
}

impl Pending {
    /// Wraps the response body; the line is written when it ends.
    pub fn attach(self: Box<Self>, resp: http::Response<Body>) -> http::Response<Body> {
        let status = resp.status().as_u16();
        resp.map(|inner| {
            crate::body::boxed(Logged {
                inner,
                bytes: 0,
                status,
                line: Some(self),
            })
        })
    }

    fn write(&self, status: u16, size: u64) {
        let l = &*self.log;
        let text = |v: &Option<HeaderValue>| {
            v.as_ref()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let o = &self.outcome;
        tracing::info!(
            target: TARGET,
            {
            "upstream-cluster" = l.has(AccessField::UpstreamCluster).then_some(o.route.as_deref()).flatten(),
            method = l.has(AccessField::Method).then_some(self.method.as_str()),
            authority = l.has(AccessField::Authority).then_some(self.authority.as_deref()).flatten(),
            path = l.has(AccessField::Path).then_some(self.path.as_str()),
            query = l.has(AccessField::Query).then(|| self.query.as_deref().map(redact_query)).flatten().as_deref(),
            "user-agent" = l.has(AccessField::UserAgent).then(|| text(&self.user_agent)).flatten().as_deref(),
            referer = l.has(AccessField::Referer).then(|| text(&self.referer).map(|r| redact_url(&r).into_owned())).flatten().as_deref(),
            "forwarded-for" = l.has(AccessField::ForwardedFor).then(|| text(&self.forwarded_for)).flatten().as_deref(),
            ip = l.has(AccessField::Ip).then(|| self.peer.to_string()).as_deref(),
            "request-id" = l.has(AccessField::RequestId).then(|| self.request_id.to_str().unwrap_or_default()),
            duration = l.has(AccessField::Duration).then(|| self.start.elapsed().as_secs_f64() * 1000.0),
            size = l.has(AccessField::Size).then_some(size),
            "response-code" = l.has(AccessField::ResponseCode).then_some(status),
            "response-code-details" = l.has(AccessField::ResponseCodeDetails).then_some(o.details.unwrap_or("gatehouse")),
            upstream = l.has(AccessField::Upstream).then_some(o.upstream.as_deref()).flatten(),
            user = l.has(AccessField::User).then_some(o.user.as_deref()).flatten(),
            email = l.has(AccessField::Email).then_some(o.email.as_deref()).flatten(),
            headers = (!self.headers.is_empty()).then(|| headers_text(&self.headers)).as_deref(),
            "client-certificate" = self.client_cert.as_deref(),
            },
            "http-request"
        );
    }
}

/// The response body, counted; writes the line when dropped.
struct Logged {
    inner: Body,
    bytes: u64,
    status: u16,
    line: Option<Box<Pending>>,
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            line.write(self.status, self.bytes);
        }
    }
}

/// Headers whose values are (or may be) credentials: named, never
/// written. Beyond the known ones, any name that sounds like one
/// (`X-Api-Key`, `X-Amz-Security-Token`, `X-Session`...).
fn is_secret_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "set-cookie"
            | "x-pomerium-authorization"
            | "x-pomerium-jwt-assertion"
            | "x-pomerium-jwt-assertion-for"
    ) || [
        "auth",
        "token",
        "key",
        "secret",
        "session",
        "jwt",
        "signature",
        "password",
        "credential",
        "cookie",
    ]
    .iter()
    .any(|s| n.contains(s))
}

/// Headers that carry a URL (its query may hold a token): written with
/// secret-looking parameters redacted.
fn is_url_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "referer" | "x-original-url" | "x-original-uri" | "x-forwarded-uri" | "x-rewrite-url"
    )
}

fn header_value(h: &HeaderMap, name: &HeaderName) -> Option<String> {
    let v = h.get(name)?;
    if is_secret_header(name) {
        return Some("[redacted]".into());
    }
    let text = String::from_utf8_lossy(v.as_bytes());
    if is_url_header(name) {
        return Some(redact_url(&text).into_owned());
    }
    Some(text.into_owned())
}

/// Request headers as one JSON object string (credentials redacted):
/// every one, or those in `only`.
pub(crate) fn headers_json(h: &HeaderMap, only: Option<&[HeaderName]>) -> String {
    let pairs: Vec<(HeaderName, Option<String>)> = match only {
        Some(names) => names
            .iter()
            .map(|n| (n.clone(), header_value(h, n)))
            .collect(),
        None => h.keys().map(|n| (n.clone(), header_value(h, n))).collect(),
    };
    headers_text(&pairs)
}

fn headers_text(headers: &[(HeaderName, Option<String>)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.clone()?.into())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Query parameters whose values may be credentials or one-time secrets.
fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(n.as_str(), "code" | "state" | "password" | "sig")
        || n.contains("key")
        || n.contains("auth")
        || [
            "token",
            "secret",
            "session",
            "jwt",
            "signature",
            "password",
            "credential",
        ]
        .iter()
        .any(|s| n.contains(s))
}

/// A query string with secret-looking values replaced.
pub fn redact_query(q: &str) -> String {
    q.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_param(&url_decode(k)) => format!("{k}=REDACTED"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn url_decode(s: &str) -> Cow<'_, str> {
    url::form_urlencoded::parse(s.as_bytes())
        .next()
        .map(|(k, _)| Cow::Owned(k.into_owned()))
        .unwrap_or(Cow::Borrowed(s))
}

/// A URL (the `Referer`) with its query redacted and no user info.
pub fn redact_url(u: &str) -> Cow<'_, str> {
    match u.split_once('?') {
        Some((base, q)) => {
            let (q, frag) = match q.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (q, None),
            };
            let mut out = format!("{}?{}", strip_userinfo(base), redact_query(q));
            if let Some(f) = frag {
                out.push('#');
                out.push_str(&redact_query(f));
            }
            Cow::Owned(out)
        }
        None => strip_userinfo(u),
    }
}

fn strip_userinfo(u: &str) -> Cow<'_, str> {
    if let Some((scheme, rest)) = u.split_once("://") {
        let auth_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            return Cow::Owned(format!("{scheme}://{}", &rest[at + 1..]));
        }
    }
    Cow::Borrowed(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_queries_and_referers_are_replaced() {
        assert_eq!(
            redact_query("code=abc&state=xyz&x=1&pomerium_jwt=t&access%5Ftoken=z"),
            "code=REDACTED&state=REDACTED&x=1&pomerium_jwt=REDACTED&access%5Ftoken=REDACTED"
        );
        assert_eq!(
            redact_url("https://u:p@app.localhost/cb?code=1&iss=x#id_token=abc"),
            "https://app.localhost/cb?code=REDACTED&iss=x#id_token=REDACTED"
        );
        assert_eq!(
            redact_url("https://app.localhost/.pomerium/callback/?pomerium_session_encrypted=s"),
            "https://app.localhost/.pomerium/callback/?pomerium_session_encrypted=REDACTED"
        );
        assert_eq!(redact_url("https://a.localhost/x"), "https://a.localhost/x");
    }

    #[test]
    fn credential_headers_are_never_written() {
        let h = crate::test_headers(&[("cookie", "_pomerium=s"), ("x-team", "blue")]);
        assert_eq!(
            header_value(&h, &HeaderName::from_static("cookie")).as_deref(),
            Some("[redacted]")
        );
        assert_eq!(
            header_value(&h, &HeaderName::from_static("x-team")).as_deref(),
            Some("blue")
        );
    }

    #[test]
    fn fields_become_a_mask() {
        let log = AccessLog::new(&[AccessField::Method, AccessField::Size]);
        assert!(log.has(AccessField::Method) && log.has(AccessField::Size));
        assert!(!log.has(AccessField::Path));
        assert_eq!(AccessLog::new(&[]).mask, 0);
    }
}

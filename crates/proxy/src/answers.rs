//! Every answer gatehouse writes itself, in one place: the error and status
//! pages (HTML with the status, a one-line reason and the request id, or
//! JSON when the client prefers it), the one page shell and stylesheet that
//! the sign-in pages and the console use too, and the small HTML, JSON,
//! redirect and text responses. Refusals reach [`page`] through the one
//! mapper, [`crate::error::response`].

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::body::{Body, full};

/// An `Accept` header that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedAccept;

/// The media type a client's `Accept` header (every one it sent) prefers
/// among `candidates`, as Pomerium reads it (`rfc7231.MostAcceptable`): the
/// range with the highest weight (q, plus a little for specificity:
/// `type/sub` over `type/*` over `*/*`; ties go to the earlier range) picks
/// the first candidate it covers. `Ok(None)`: no range covers any
/// candidate. `Err`: a range is malformed. Unlike Pomerium, `q=0` means
/// "not acceptable" (RFC 9110), not "fully acceptable".
///
/// Besides exact types and wildcards, `application/xhtml+xml` covers
/// `text/html`, and any `…+json` type covers `application/json`.
/// Compared in place; nothing is allocated.
pub fn most_acceptable(
    headers: &HeaderMap,
    candidates: &[&str],
) -> Result<Option<usize>, MalformedAccept> {
    let mut best: Option<(f32, usize)> = None;
    let mut values = headers.get_all(header::ACCEPT).iter().peekable();
    if values.peek().is_none() {
        // No `Accept`: anything is acceptable.
        return Ok((!candidates.is_empty()).then_some(0));
    }
    for value in values {
        let text = value.to_str().map_err(|_| MalformedAccept)?;
        for range in text.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            if media.is_empty() {
                continue;
            }
            let (ty, sub) = match media.split_once('/') {
                Some((t, s)) if !t.is_empty() && !s.is_empty() => (t.trim(), s.trim()),
                _ if media == "*" => ("*", "*"),
                _ => return Err(MalformedAccept),
            };
            if ty == "*" && sub != "*" {
                return Err(MalformedAccept);
            }
            let mut q = 1.0f32;
            let mut params = 0u8;
            for p in parts {
                let p = p.trim();
                if let Some(v) = p.strip_prefix("q=") {
                    q = v.trim().parse::<f32>().map_err(|_| MalformedAccept)?;
                    if !q.is_finite() {
                        return Err(MalformedAccept);
                    }
                    q = q.clamp(0.0, 1.0);
                } else if !p.is_empty() {
                    params = params.saturating_add(1);
                }
            }
            if q == 0.0 {
                continue;
            }
            let specific = match (ty, sub) {
                ("*", _) => 0.0,
                (_, "*") => 0.00001,
                _ => 0.00002,
            };
            let weight = q + specific + 0.0001 * f32::from(params);
            let Some(found) = candidates.iter().position(|c| covers(ty, sub, c)) else {
                continue;
            };
            if best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, found));
            }
        }
    }
    Ok(best.map(|(_, i)| i))
}

/// Whether the range `ty/sub` covers the media type `candidate`.
fn covers(ty: &str, sub: &str, candidate: &str) -> bool {
    if ty == "*" {
        return true;
    }
    let (cty, csub) = candidate.split_once('/').unwrap_or((candidate, ""));
    if ty.eq_ignore_ascii_case(cty) && (sub == "*" || sub.eq_ignore_ascii_case(csub)) {
        return true;
    }
    match candidate {
        "text/html" => {
            ty.eq_ignore_ascii_case("application") && sub.eq_ignore_ascii_case("xhtml+xml")
        }
        "application/json" => {
            sub.len() > 5 && sub.as_bytes()[sub.len() - 5..].eq_ignore_ascii_case(b"+json")
        }
        _ => false,
    }
}

/// True when the client's `Accept` prefers JSON over HTML (API clients,
/// fetch/XHR with `Accept: application/json`): Pomerium's
/// `isJSONWebRequest`.
pub fn wants_json(headers: &HeaderMap) -> bool {
    // Read on every request: only an `Accept` that names JSON at all is
    // weighed (browsers' and curl's are not).
    let names_json = headers.get_all(header::ACCEPT).iter().any(|v| {
        v.as_bytes()
            .windows(4)
            .any(|w| w.eq_ignore_ascii_case(b"json"))
    });
    names_json && most_acceptable(headers, &["text/html", "application/json"]) == Ok(Some(1))
}

/// The candidates Pomerium's `ShouldRedirect` weighs; only `text/html`
/// winning (or nothing covered, or no `Accept` at all) means a redirect.
const SIGN_IN_CANDIDATES: &[&str] = &[
    "text/html",
    "application/json",
    "text/plain",
    "application/grpc-web-text",
    "application/grpc-web+proto",
    "application/grpc+proto",
];

/// Whether a request without a session is sent to sign in (302) rather
/// than refused with 401: Pomerium's `ShouldRedirect`. Never gRPC or
/// gRPC-Web, never a request that carries a Pomerium session or token of
/// its own (`X-Pomerium-Authorization`, `Authorization: Pomerium …`,
/// `Authorization: Bearer Pomerium-…`, `?pomerium_session=`: a program, whose
/// token did not do); otherwise when `text/html` is as acceptable as
/// anything the client lists (no `Accept`, `*/*`, a browser's), or the
/// header cannot be read.
pub fn should_redirect(headers: &HeaderMap, query: Option<&str>) -> bool {
    if grpc(headers).is_some() {
        return false;
    }
    if headers.contains_key("x-pomerium-authorization")
        || headers.get_all(header::AUTHORIZATION).iter().any(|v| {
            v.as_bytes().starts_with(b"Pomerium ") || v.as_bytes().starts_with(b"Bearer Pomerium-")
        })
    {
        return false;
    }
    if query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.split('=').next() == Some("pomerium_session"))
    }) {
        return false;
    }
    !matches!(most_acceptable(headers, SIGN_IN_CANDIDATES), Ok(Some(i)) if i != 0)
}

/// gRPC (`application/grpc`, `application/grpc+…`) or gRPC-Web
/// (`application/grpc-web-text`, `application/grpc-web+…`) by the request's
/// `Content-Type`: the content type of gatehouse's answer to it.
pub fn grpc(headers: &HeaderMap) -> Option<&'static str> {
    let ct = headers.get(header::CONTENT_TYPE)?.as_bytes();
    if ct == b"application/grpc-web-text" || ct.starts_with(b"application/grpc-web+") {
        Some("application/grpc-web+json")
    } else if ct == b"application/grpc" || ct.starts_with(b"application/grpc+") {
        Some("application/grpc+json")
    } else {
        None
    }
}

/// A Kubernetes client (`kubectl`, client-go: `User-Agent` has
/// `kubernetes/`), which reads refusals as a `Status` object.
pub fn is_kubernetes(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::USER_AGENT)
        .iter()
        .any(|v| v.as_bytes().windows(11).any(|w| w == b"kubernetes/"))
}

/// A Kubernetes `Status` object for a refusal (`reason` in Kubernetes'
/// words), as Pomerium sends it.
pub fn kubernetes_status(status: StatusCode, message: &str) -> Response<Body> {
    let reason = match status.as_u16() {
        401 | 450 | 495 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        _ => "",
    };
    let body = format!(
        "{{\"apiVersion\":\"v1\",\"code\":{},\"kind\":\"Status\",\"message\":\"{}\",\"reason\":\"{}\",\"status\":\"Failure\"}}\n",
        status.as_u16(),
        json_escape(message),
        reason
    );
    let mut resp = Response::new(full(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A refusal to a gRPC or gRPC-Web client (`content_type` from [`grpc`]):
/// no body, the status as `grpc-status` (Pomerium's mapping) and the reason
/// as `grpc-message`, in the headers (a trailers-only answer); the HTTP
/// status stays the refusal's.
pub fn grpc_refusal(
    status: StatusCode,
    message: &str,
    content_type: &'static str,
) -> Response<Body> {
    let code = match status.as_u16() {
        400 => "13",
        401 => "16",
        403 => "7",
        404 => "12",
        429 | 502 | 503 | 504 => "14",
        _ => "2",
    };
    let mut resp = Response::new(crate::body::empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert("grpc-status", HeaderValue::from_static(code));
    // Percent-encoded, as gRPC wants (`grpc-message` is ASCII).
    let encoded: String = message
        .bytes()
        .map(|b| {
            if (0x20..0x7f).contains(&b) && b != b'%' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&encoded) {
        h.insert("grpc-message", v);
    }
    resp
}

/// `/robots.txt` on a route the crawler may not enter: everything
/// disallowed, as Pomerium answers.
pub fn robots_disallow_all() -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from_static(b"User-agent: *\nDisallow: /\n")));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Renders an error or status page.
pub fn page(
    status: StatusCode,
    reason: &str,
    code: &str,
    request_id: &str,
    json: bool,
) -> Response<Body> {
    let (content_type, body) = if json {
        let body = format!(
            "{{\"status\":{},\"error\":\"{}\",\"message\":\"{}\",\"request_id\":\"{}\"}}\n",
            status.as_u16(),
            json_escape(code),
            json_escape(reason),
            json_escape(request_id)
        );
        ("application/json", body)
    } else {
        let title = format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        let content = format!(
            "<h1>{title}</h1><p>{reason}</p><p class=\"id\">Request ID: <code>{id}</code></p>",
            title = html_escape(&title),
            reason = html_escape(reason),
            id = html_escape(request_id),
        );
        (
            "text/html; charset=utf-8",
            shell(Layout::Card, &title, &content),
        )
    };
    let mut resp = Response::new(full(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-pomerium-intercepted-response",
        HeaderValue::from_static("true"),
    );
    resp
}

/// A plain-text `OK` (health checks).
pub fn ok_text() -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from_static(b"OK")));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// How a page is laid out in the one shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One narrow card in the middle (status pages, sign-in, sign-out, who
    /// am I), with gatehouse's footer.
    Card,
    /// A full-width application page (the console): the content brings its
    /// own header, `<main>` and footer.
    App,
}

/// The one HTML shell: doctype, viewport, title, the one stylesheet, and the
/// content (already escaped by the caller) in its layout. `title` is escaped
/// here.
pub fn shell(layout: Layout, title: &str, content: &str) -> String {
    let title = html_escape(title);
    match layout {
        Layout::Card => format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head><body class=\"card-page\"><main>\
{content}<footer>gatehouse</footer></main></body></html>\n"
        ),
        Layout::App => format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head><body class=\"app\">{content}</body></html>\n"
        ),
    }
}

/// An HTML page gatehouse made (never cached, no scripts, never framed).
pub fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(page)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    resp
}

/// A short card page: a heading and one sentence, both escaped.
pub fn notice(status: StatusCode, title: &str, heading: &str, text: &str) -> Response<Body> {
    let content = format!(
        "<h1>{}</h1><p>{}</p>",
        html_escape(heading),
        html_escape(text)
    );
    html(
        status,
        shell(Layout::Card, &format!("{title} · gatehouse"), &content),
    )
}

/// A JSON answer, never cached.
pub fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A 302 to `location`, never cached.
pub fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(crate::body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The one stylesheet: shared ground, then the card pages (`.card-page`),
/// then the console's application pages (`.app`); light and dark. Every
/// text colour is at least 4.5:1 on its background in both schemes, and
/// nothing is wider than a 320 px screen.
pub const STYLE: &str = "*{box-sizing:border-box}:root{color-scheme:light dark}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
background:#f5f6f8;color:#1f2430;overflow-wrap:break-word}code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}\
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}\
.card-page main{max-width:30rem;margin:10vh auto;padding:2rem 2.25rem;background:#fff;border-radius:12px;\
box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}.card-page h1{margin:0 0 1rem;font-size:1.4rem}\
.card-page p{margin:.5rem 0}.card-page .id,.card-page dt{color:#5b6170}.card-page .id{font-size:.875rem}.card-page a{color:#2457c5}\
.card-page label{display:block;margin:.75rem 0 .25rem;font-weight:600;font-size:.9rem}\
.card-page input{width:100%;padding:.55rem .7rem;border:1px solid #8a909c;border-radius:8px;font:inherit}\
.card-page input:focus{outline:2px solid #2457c5;outline-offset:1px}\
.card-page button,.card-page .button{display:inline-block;margin-top:1.25rem;padding:.6rem 1.2rem;border:0;border-radius:8px;background:#2457c5;\
color:#fff;font:inherit;font-weight:600;cursor:pointer;text-decoration:none}.card-page button:focus{outline:2px solid #1f2430}\
.card-page .error{padding:.6rem .8rem;border-radius:8px;background:#fdecec;color:#9b1c1c}.card-page dl{display:grid;grid-template-columns:auto 1fr;\
gap:.3rem 1rem}.card-page dd{margin:0;min-width:0}.card-page pre{overflow:auto;font-size:.8rem;background:#f5f6f8;padding:.75rem;border-radius:8px}\
.card-page pre:focus-visible{outline:2px solid #2457c5}\
.card-page footer{margin-top:1.5rem;color:#5b6170;font-size:.8rem}\
@media (max-width:32rem){.card-page main{margin:1rem;padding:1.5rem 1.25rem}}\
@media (prefers-color-scheme:dark){body{background:#15171c;color:#e6e8ee}.card-page main{background:#1f2229;box-shadow:none}\
.card-page input{background:#15171c;color:#e6e8ee;border-color:#8a909c}.card-page pre{background:#15171c}\
.card-page .id,.card-page dt,.card-page footer{color:#a3a9b6}.card-page a:not(.button){color:#8ab4ff}.card-page button:focus{outline-color:#e6e8ee}}\
.app{font-size:15px}.app a{color:#2457c5}.app header{background:#1f2430;color:#fff;padding:.6rem 1.25rem;display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:center}\
.app header strong{margin-right:1rem}.app header nav{display:flex;flex-wrap:wrap;gap:.25rem}.app header nav a{color:#dfe3ea;text-decoration:none;padding:.3rem .6rem;border-radius:6px}\
.app header nav a[aria-current]{background:#3a4150;color:#fff}.app header .who{margin-left:auto;font-size:.85rem;color:#c9ced8;min-width:0}.app header .who a{color:inherit}\
.app main{max-width:80rem;margin:1.5rem auto;padding:0 1.25rem}.app h1{font-size:1.4rem;margin:.25rem 0 1rem}\
.app .card{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:1.25rem;margin-bottom:1rem}\
.app .scroll{overflow-x:auto}.app .scroll:focus-visible{outline:3px solid #f5a524}\
.app table{width:100%;border-collapse:collapse;font-size:.9rem}.app th,.app td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid #e6e8ee;vertical-align:top}\
.app caption{text-align:left;color:#5b6170;font-size:.85rem;padding-bottom:.5rem}\
.app th{font-weight:600;color:#5b6170}.app th small{display:block;font-weight:400}.app .num{text-align:right;font-variant-numeric:tabular-nums}\
.app td code{overflow-wrap:anywhere}.app code{font-family:ui-monospace,Menlo,monospace;font-size:.85em}\
.app .derived{font-style:italic}.app .muted{color:#5b6170}\
.app .tag{display:inline-block;white-space:nowrap;font-size:.75rem;padding:0 .45rem;border-radius:9px;background:#e8ecf4;color:#3a4150}.app .tag.file{background:#f1ede4;color:#5e4f27}\
.app .bar{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center;margin-bottom:1rem}.app .bar form{display:flex;gap:.5rem;flex:1 1 16rem;min-width:0}\
.app input[type=text],.app input[type=search],.app textarea,.app select{width:100%;min-width:0;font:inherit;padding:.45rem .55rem;border:1px solid #8a909c;border-radius:6px;background:#fff;color:inherit}\
.app textarea{font-family:ui-monospace,Menlo,monospace;font-size:.85rem;min-height:5.5rem}\
.app button,.app .button{font:inherit;border:0;border-radius:6px;padding:.45rem .9rem;background:#2457c5;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}\
.app button.secondary,.app .button.secondary{background:#e8ecf4;color:#1f2430}.app button.danger{background:#b42318}\
.app :focus-visible{outline:3px solid #f5a524;outline-offset:2px}.app .problem:focus{outline:3px solid #f5a524;outline-offset:2px}\
.app .field{margin:0 0 1rem}.app .field label,.app .field legend{display:block;font-weight:600;margin-bottom:.2rem}.app .hint{color:#5b6170;font-size:.85rem;margin:.15rem 0 0}\
.app .check label{display:inline;font-weight:600}.app .error{color:#b42318;font-weight:600;margin:.25rem 0 0}.app [aria-invalid=true]{border-color:#b42318;box-shadow:0 0 0 1px #b42318}\
.app .notice{background:#e7f6ec;color:#14532d;padding:.6rem .9rem;border-radius:8px;margin-bottom:1rem}.app .problem{background:#fdecea;color:#7a1d14;padding:.6rem .9rem;border-radius:8px;margin-bottom:1rem}\
.app .problem a{color:inherit;font-weight:600}.app .problem h2{font-size:1rem;margin:0 0 .25rem}.app .problem ul{margin:.25rem 0 0;padding-left:1.25rem}\
.app fieldset{border:0;padding:0;margin:0 0 1rem}.app .presets{display:flex;flex-wrap:wrap;gap:.25rem 1rem}.app .presets label{font-weight:400;display:inline}\
@supports selector(:has(*)){.app .policy .for{display:none}\
.app .policy:has(#preset-domain:checked) .for-domain,.app .policy:has(#preset-users:checked) .for-users,\
.app .policy:has(#preset-groups:checked) .for-groups,.app .policy:has(#preset-ppl:checked) .for-ppl{display:block}}\
.app .tabs{display:flex;flex-wrap:wrap}.app .tabs>input{position:absolute;opacity:0;width:1px;height:1px}.app .tabs>label{padding:.5rem .9rem;border-bottom:2px solid transparent;cursor:pointer;color:#5b6170;font-weight:600}\
.app .tabs>input:checked+label{border-color:#2457c5;color:#1f2430}.app .tabs>input:focus-visible+label{outline:3px solid #f5a524}\
.app .panel{display:none;width:100%;padding-top:1rem;border-top:1px solid #e6e8ee}\
#tab-general:checked~#panel-general,#tab-headers:checked~#panel-headers,#tab-timeouts:checked~#panel-timeouts,#tab-tls:checked~#panel-tls,#tab-embedding:checked~#panel-embedding{display:block}\
.app .diff{font-family:ui-monospace,Menlo,monospace;font-size:.82rem;white-space:pre-wrap;overflow-wrap:anywhere;margin:0;background:#fafbfc;border-radius:6px;padding:.5rem}.app .diff .add{background:#e6f4ea;display:block}.app .diff .del{background:#fdecea;display:block}\
.app .actions{display:flex;gap:.5rem;flex-wrap:wrap;margin-top:1rem}.app footer{color:#5b6170;font-size:.8rem;margin:2rem 0}\
.app .grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(14rem,100%),1fr));gap:0 1rem}\
@media (max-width:40rem){.app header{padding:.6rem .75rem}.app main{padding:0 .75rem}.app .card{padding:1rem .75rem}}\
@media (max-width:60rem){.app table.cards thead{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%)}\
.app table.cards,.app table.cards tbody,.app table.cards tr,.app table.cards td{display:block}\
.app table.cards caption{display:block}.app table.cards tr{padding:.5rem 0;border-bottom:1px solid #e6e8ee}\
.app table.cards td{display:grid;grid-template-columns:7.5rem minmax(0,1fr);gap:.5rem;border:0;padding:.1rem 0;text-align:left}\
.app table.cards td::before{content:attr(data-label);font-weight:600;color:#5b6170}}\
@media (prefers-color-scheme:dark){.app .card{background:#1f2229;box-shadow:none}.app th,.app td,.app table.cards tr,.app .panel{border-color:#333846}\
.app input[type=text],.app input[type=search],.app textarea,.app select{background:#15171c;border-color:#8a909c}\
.app .hint,.app th,.app caption,.app .muted,.app .tabs>label,.app footer,.app table.cards td::before{color:#a3a9b6}.app a{color:#8ab4ff}.app .problem a{color:inherit}.app .diff{background:#15171c}\
.app .diff .add{background:#143d24}.app .diff .del{background:#4a1a16}.app .tag,.app .tag.file{background:#333846;color:#e6e8ee}.app .tabs>input:checked+label{color:#e6e8ee}\
.app .error{color:#ff9b8f}.app [aria-invalid=true]{border-color:#ff9b8f;box-shadow:0 0 0 1px #ff9b8f}.app button.secondary,.app .button.secondary{background:#333846;color:#e6e8ee}}";

pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn json_only_when_preferred() {
        assert!(wants_json(&accept("application/json")));
        assert!(wants_json(&accept("application/problem+json")));
        assert!(!wants_json(&accept(
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )));
        assert!(!wants_json(&accept("*/*")));
        assert!(!wants_json(&HeaderMap::new()));
        assert!(wants_json(&accept("text/html;q=0.5, application/json")));
    }

    fn redirects(accept_header: Option<&str>) -> bool {
        let mut h = HeaderMap::new();
        if let Some(v) = accept_header {
            h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        should_redirect(&h, None)
    }

    #[test]
    fn sign_in_redirects_follow_pomerium_s_rule() {
        // Redirected: no Accept, anything-goes, browsers, HTML first, types
        // no candidate covers, and headers that cannot be read.
        for a in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"),
            Some("text/html,application/json"),
            Some("text/*"),
            Some("image/png"),
            Some("text/html;q=0.9, application/json;q=0.9"),
            Some("application/json;q=x"),
            Some("text/plain;q=0.5,*/*"),
        ] {
            assert!(redirects(a), "{a:?} should be redirected");
        }
        // 401: clients that prefer JSON, plain text or gRPC.
        for a in [
            "application/json",
            "application/json,text/html",
            "application/json;q=0.9,*/*;q=0.8",
            "text/plain",
            "application/grpc+proto",
            "text/html;q=0, application/json;q=0.1",
            "application/problem+json",
        ] {
            assert!(!redirects(Some(a)), "{a} should get 401");
        }
        // Programs with a token of their own, and gRPC, never.
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Pomerium abc"),
        );
        assert!(!should_redirect(&h, None));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer Pomerium-abc"),
        );
        assert!(!should_redirect(&h, None));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert!(should_redirect(&h, None));
        assert!(!should_redirect(
            &HeaderMap::new(),
            Some("a=1&pomerium_session=x")
        ));
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        assert!(!should_redirect(&h, None));
        assert_eq!(grpc(&h), Some("application/grpc+json"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc-web+proto"),
        );
        assert_eq!(grpc(&h), Some("application/grpc-web+json"));
        // Several Accept headers are read as one list.
        let mut h = HeaderMap::new();
        h.append(header::ACCEPT, HeaderValue::from_static("application/json"));
        h.append(header::ACCEPT, HeaderValue::from_static("text/html;q=0.5"));
        assert!(!should_redirect(&h, None));
    }

    #[test]
    fn refusals_for_kubernetes_and_grpc_clients() {
        let mut h = HeaderMap::new();
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_static("kubectl/v1.30.0 (linux/amd64) kubernetes/7c48c2b"),
        );
        assert!(is_kubernetes(&h));
        let resp = kubernetes_status(StatusCode::FORBIDDEN, "Forbidden");
        assert_eq!(resp.status(), 403);
        let resp = grpc_refusal(
            StatusCode::UNAUTHORIZED,
            "sign-in required: 100%",
            "application/grpc+json",
        );
        assert_eq!(resp.headers()["grpc-status"], "16");
        assert_eq!(resp.headers()["grpc-message"], "sign-in required: 100%25");
    }

    #[test]
    fn pages_escape_their_input() {
        let resp = page(
            StatusCode::NOT_FOUND,
            "<script>",
            "no_route",
            "id\"1",
            false,
        );
        assert_eq!(resp.status(), 404);
        let resp = page(StatusCode::BAD_GATEWAY, "a \"b\"", "upstream", "x", true);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    }
}

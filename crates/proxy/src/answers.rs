//! Every answer gatehouse writes itself, in one place: the error and status
//! pages (HTML with the status, a one-line reason and the request id, or
//! JSON when the client prefers it), the one page shell and stylesheet that
//! the sign-in pages and the console use too, and the small HTML, JSON,
//! redirect and text responses. Refusals reach [`page`] through the one
//! mapper, [`crate::error::response`].

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::body::{Body, full};

/// True when the client's `Accept` prefers JSON over HTML (API clients,
/// fetch/XHR with `Accept: application/json`).
pub fn wants_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut best_html = -1.0f32;
    let mut best_json = -1.0f32;
    for part in accept.split(',') {
        let mut it = part.split(';');
        // Read on every request: compared in place, nothing allocated.
        let media = it.next().unwrap_or("").trim().as_bytes();
        let q = it
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        let is = |m: &[u8]| media.eq_ignore_ascii_case(m);
        if is(b"text/html") || is(b"application/xhtml+xml") {
            best_html = best_html.max(q);
        } else if is(b"application/json")
            || (media.len() >= 5 && media[media.len() - 5..].eq_ignore_ascii_case(b"+json"))
        {
            best_json = best_json.max(q);
        }
    }
    best_json > best_html
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
/// then the console's application pages (`.app`); light and dark.
pub const STYLE: &str = "*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
background:#f5f6f8;color:#1f2430}code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}\
.card-page main{max-width:30rem;margin:10vh auto;padding:2rem 2.25rem;background:#fff;border-radius:12px;\
box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}.card-page h1{margin:0 0 1rem;font-size:1.4rem}\
.card-page p{margin:.5rem 0}.card-page .id{color:#5b6170;font-size:.875rem}\
.card-page label{display:block;margin:.75rem 0 .25rem;font-weight:600;font-size:.9rem}\
.card-page input{width:100%;padding:.55rem .7rem;border:1px solid #c9ced8;border-radius:8px;font:inherit}\
.card-page input:focus{outline:2px solid #3b6ef5;outline-offset:1px}\
.card-page button,.card-page .button{display:inline-block;margin-top:1.25rem;padding:.6rem 1.2rem;border:0;border-radius:8px;background:#3b6ef5;\
color:#fff;font:inherit;font-weight:600;cursor:pointer;text-decoration:none}.card-page button:focus{outline:2px solid #1f2430}\
.card-page .error{padding:.6rem .8rem;border-radius:8px;background:#fdecec;color:#9b1c1c}.card-page dl{display:grid;grid-template-columns:auto 1fr;\
gap:.3rem 1rem}.card-page dt{color:#5b6170}.card-page dd{margin:0}.card-page pre{overflow:auto;font-size:.8rem;background:#f5f6f8;padding:.75rem;border-radius:8px}\
.card-page footer{margin-top:1.5rem;color:#9aa0ad;font-size:.8rem}\
@media (prefers-color-scheme:dark){body{background:#15171c;color:#e6e8ee}.card-page main{background:#1f2229;box-shadow:none}\
.card-page input{background:#15171c;color:#e6e8ee;border-color:#3a3f4b}.card-page pre{background:#15171c}.card-page .id{color:#a3a9b6}}\
.app{font-size:15px}.app a{color:#2457c5}.app header{background:#1f2430;color:#fff;padding:.6rem 1.25rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:center}\
.app header strong{margin-right:1rem}.app header nav{display:flex;flex-wrap:wrap;gap:.25rem}.app header nav a{color:#dfe3ea;text-decoration:none;padding:.3rem .6rem;border-radius:6px}\
.app header nav a[aria-current]{background:#3a4150;color:#fff}.app header .who{margin-left:auto;font-size:.85rem;color:#b9c0cc}\
.app main{max-width:64rem;margin:1.5rem auto;padding:0 1.25rem}.app h1{font-size:1.4rem;margin:.25rem 0 1rem}\
.app .card{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:1.25rem;margin-bottom:1rem}\
.app table{width:100%;border-collapse:collapse;font-size:.9rem}.app th,.app td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid #e6e8ee;vertical-align:top}\
.app th{font-weight:600;color:#5b6170}.app td.num{text-align:right;font-variant-numeric:tabular-nums}.app code{font-family:ui-monospace,Menlo,monospace;font-size:.85em}\
.app .tag{display:inline-block;font-size:.75rem;padding:0 .45rem;border-radius:9px;background:#e8ecf4;color:#3a4150}.app .tag.file{background:#f1ede4;color:#6b5a2e}\
.app .bar{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center;margin-bottom:1rem}.app .bar form{display:flex;gap:.5rem;flex:1}\
.app input[type=text],.app input[type=search],.app textarea,.app select{width:100%;font:inherit;padding:.45rem .55rem;border:1px solid #c9ced8;border-radius:6px;background:#fff;color:inherit}\
.app textarea{font-family:ui-monospace,Menlo,monospace;font-size:.85rem;min-height:5.5rem}\
.app button,.app .button{font:inherit;border:0;border-radius:6px;padding:.45rem .9rem;background:#2457c5;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}\
.app button.secondary,.app .button.secondary{background:#e8ecf4;color:#1f2430}.app button.danger{background:#b42318}\
.app :focus-visible{outline:3px solid #f5a524;outline-offset:2px}\
.app .field{margin:0 0 1rem}.app .field label,.app .field legend{display:block;font-weight:600;margin-bottom:.2rem}.app .hint{color:#5b6170;font-size:.85rem;margin:.15rem 0 0}\
.app .check label{display:inline;font-weight:600}.app .error{color:#b42318;font-weight:600;margin:.25rem 0 0}.app [aria-invalid=true]{border-color:#b42318;box-shadow:0 0 0 1px #b42318}\
.app .notice{background:#e7f6ec;color:#14532d;padding:.6rem .9rem;border-radius:8px;margin-bottom:1rem}.app .problem{background:#fdecea;color:#7a1d14;padding:.6rem .9rem;border-radius:8px;margin-bottom:1rem}\
.app fieldset{border:0;padding:0;margin:0 0 1rem}.app .presets{display:flex;flex-wrap:wrap;gap:.25rem 1rem}.app .presets label{font-weight:400;display:inline}\
.app .tabs{display:flex;flex-wrap:wrap}.app .tabs>input{position:absolute;opacity:0;width:1px;height:1px}.app .tabs>label{padding:.5rem .9rem;border-bottom:2px solid transparent;cursor:pointer;color:#5b6170;font-weight:600}\
.app .tabs>input:checked+label{border-color:#2457c5;color:#1f2430}.app .tabs>input:focus-visible+label{outline:3px solid #f5a524}\
.app .panel{display:none;width:100%;padding-top:1rem;border-top:1px solid #e6e8ee}\
#tab-general:checked~#panel-general,#tab-headers:checked~#panel-headers,#tab-timeouts:checked~#panel-timeouts,#tab-tls:checked~#panel-tls,#tab-embedding:checked~#panel-embedding{display:block}\
.app .diff{font-family:ui-monospace,Menlo,monospace;font-size:.82rem;white-space:pre-wrap;margin:0;background:#fafbfc;border-radius:6px;padding:.5rem}.app .diff .add{background:#e6f4ea;display:block}.app .diff .del{background:#fdecea;display:block}\
.app .actions{display:flex;gap:.5rem;flex-wrap:wrap;margin-top:1rem}.app footer{color:#8a909c;font-size:.8rem;margin:2rem 0}\
.app .grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(14rem,1fr));gap:0 1rem}\
@media (max-width:40rem){.app th.opt,.app td.opt{display:none}}\
@media (prefers-color-scheme:dark){.app .card{background:#1f2229;box-shadow:none}.app th,.app td{border-color:#333846}\
.app input[type=text],.app input[type=search],.app textarea,.app select{background:#15171c;border-color:#3a4150}.app .hint,.app th{color:#a3a9b6}.app a{color:#8ab4ff}.app .diff{background:#15171c}\
.app .diff .add{background:#143d24}.app .diff .del{background:#4a1a16}.app .tag{background:#333846;color:#e6e8ee}.app .tabs>input:checked+label{color:#e6e8ee}}";

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

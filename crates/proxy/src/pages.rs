//! The pages gatehouse answers with itself: small, styled HTML with the
//! status, a one-line reason and the request id, or JSON when the client
//! prefers it.

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
        let media = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => best_html = best_html.max(q),
            "application/json" => best_json = best_json.max(q),
            m if m.ends_with("+json") => best_json = best_json.max(q),
            _ => {}
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
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head><body><main>\
<h1>{title}</h1><p>{reason}</p><p class=\"id\">Request ID: <code>{id}</code></p>\
<footer>gatehouse</footer></main></body></html>\n",
            title = html_escape(&title),
            reason = html_escape(reason),
            id = html_escape(request_id),
        );
        ("text/html; charset=utf-8", body)
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

const STYLE: &str = "body{margin:0;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
background:#f5f6f8;color:#1f2430}main{max-width:34rem;margin:12vh auto;padding:2rem 2.25rem;\
background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}\
h1{margin:0 0 .5rem;font-size:1.5rem}p{margin:.5rem 0}.id{color:#5b6170;font-size:.875rem}\
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}footer{margin-top:1.5rem;\
color:#9aa0ad;font-size:.8rem}@media (prefers-color-scheme:dark){body{background:#15171c;\
color:#e6e8ee}main{background:#1f2229;box-shadow:none}.id{color:#a3a9b6}}";

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

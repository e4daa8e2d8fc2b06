//! Attack class: request smuggling and desync. Whatever framing a client
//! tries (Content-Length against Transfer-Encoding, odd spellings of
//! either, absolute-form targets naming another host, `h2c` upgrades,
//! HTTP/2 headers that only HTTP/1 gives meaning to), the upstream receives
//! exactly the requests gatehouse decided on, each with one unambiguous
//! framing, or the client gets a 400 and the connection ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// A raw upstream: records every byte it receives and answers each request
/// head it sees with a small 200 (the test reads the recording, not the
/// answer, to know what was forwarded).
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let record = record.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut pending = Vec::new();
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                        pending.extend_from_slice(&buf[..n]);
                        // One answer per complete head; bodies here are small.
                        while let Some(end) = find(&pending, b"\r\n\r\n") {
                            pending.drain(..end + 4);
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if s.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Recorder { port, seen, task }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Request lines the upstream received.
    fn request_lines(&self) -> Vec<String> {
        self.text()
            .split("\r\n")
            .filter(|l| {
                ["GET ", "POST ", "PUT ", "DELETE "]
                    .iter()
                    .any(|m| l.starts_with(m))
                    && l.ends_with(" HTTP/1.1")
            })
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn config(up: u16) -> String {
    format!(
        "address: 127.0.0.1:{{port}}
insecure_server: true
routes:
  - from: https://public.localhost
    to: http://127.0.0.1:{up}
    allow_public_unauthenticated_access: true
  - from: https://private.localhost
    to: http://127.0.0.1:{up}
    allow_any_authenticated_user: true
"
    )
}

/// HTTP/1.1 framing tricks: each is refused or reaches the upstream as one
/// request with one framing; a second request hidden in a body never runs.
#[tokio::test(flavor = "multi_thread")]
async fn framing_tricks_never_hide_a_second_request() {
    let up = Recorder::start().await;
    let gh = Gatehouse::start(&config(up.port));
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: private.localhost\r\n\r\n";
    let attacks: Vec<String> = vec![
        // CL.TE and TE.CL
        format!(
            "POST / HTTP/1.1\r\nHost: public.localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST / HTTP/1.1\r\nHost: public.localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        // Transfer-Encoding spellings a lenient parser reads as chunked
        format!(
            "POST / HTTP/1.1\r\nHost: public.localhost\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST / HTTP/1.1\r\nHost: public.localhost\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST / HTTP/1.1\r\nHost: public.localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST / HTTP/1.1\r\nHost: public.localhost\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST / HTTP/1.1\r\nHost: public.localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        // Content-Length spellings
        format!(
            "POST / HTTP/1.1\r\nHost: public.localhost\r\nContent-Length: 0\r\nContent-Length: 50\r\n\r\n{smuggled}"
        ),
        format!(
            "POST / HTTP/1.1\r\nHost: public.localhost\r\nContent-Length: +0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST / HTTP/1.1\r\nHost: public.localhost\r\nContent-Length: 0x0\r\n\r\n{smuggled}"
        ),
        // Bad chunk sizes
        format!(
            "POST / HTTP/1.1\r\nHost: public.localhost\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n\r\n{smuggled}"
        ),
        format!(
            "POST / HTTP/1.1\r\nHost: public.localhost\r\nTransfer-Encoding: chunked\r\n\r\n0x0\r\n\r\n{smuggled}"
        ),
        // Bare LF line ends
        format!("POST / HTTP/1.1\nHost: public.localhost\nContent-Length: 0\n\n{smuggled}"),
    ];
    for attack in &attacks {
        let before = up.request_lines().len();
        let answer = raw_exchange(gh.port, attack.as_bytes()).await;
        let lines = up.request_lines();
        let forwarded = &lines[before..];
        assert!(
            !up.text().contains("/smuggled"),
            "the hidden request reached the upstream: {attack:?}\n{}",
            up.text()
        );
        assert!(forwarded.len() <= 1, "{attack:?} -> {forwarded:?}");
        // Where the client's bytes did hold a second request (bare LF line
        // ends are read as line ends), gatehouse ran it through the
        // policy like any other: the private host answers 401.
        assert!(answer.starts_with("HTTP/1.1 "), "{attack:?} -> {answer}");
    }
}

/// An absolute-form target or a second Host naming another route host, and
/// an `h2c` upgrade, are refused or kept from the upstream.
#[tokio::test(flavor = "multi_thread")]
async fn hosts_and_upgrades_are_unambiguous() {
    let up = Recorder::start().await;
    let gh = Gatehouse::start(&config(up.port));
    for attack in [
        "GET http://private.localhost/ HTTP/1.1\r\nHost: public.localhost\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: public.localhost\r\nHost: private.localhost\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: private.localhost\r\nHost: public.localhost\r\nConnection: close\r\n\r\n",
    ] {
        let answer = raw_exchange(gh.port, attack.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{attack:?} -> {answer}");
    }
    assert!(up.request_lines().is_empty(), "{}", up.text());

    // `Upgrade: h2c` (and any Upgrade on a route without websockets) is
    // hop-by-hop: the upstream never sees it, so it cannot switch the
    // connection to a protocol gatehouse does not read.
    let answer = raw_exchange(
        gh.port,
        b"GET / HTTP/1.1\r\nHost: public.localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = up.text().to_ascii_lowercase();
    assert!(
        !seen.contains("upgrade:") && !seen.contains("http2-settings"),
        "{seen}"
    );
}

/// HTTP/2 requests carry no HTTP/1 framing: connection-specific headers are
/// refused by the HTTP/2 server, and what is forwarded over HTTP/1.1 has
/// gatehouse's own framing.
#[tokio::test(flavor = "multi_thread")]
async fn http2_requests_get_one_framing_upstream() {
    let up = Recorder::start().await;
    let gh = Gatehouse::start(&config(up.port));
    let mut send = h2c_sender(gh.port).await;
    let body = "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: private.localhost\r\n\r\n";
    let len = body.len();
    let req = http::Request::post("http://public.localhost/")
        .header("content-length", body.len())
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await;
    // hyper's HTTP/2 client refuses to send connection-specific headers;
    // the server side is covered by the h2 crate's own checks. What matters
    // here: the body went upstream as a body.
    let seen = up.text();
    assert!(seen.starts_with("POST / HTTP/1.1\r\n"), "{seen}");
    let head = &seen[..seen.find("\r\n\r\n").unwrap()].to_ascii_lowercase();
    assert!(
        head.contains(&format!("content-length: {len}")) && !head.contains("transfer-encoding"),
        "exactly one framing, the body's own length: {head}"
    );
}

/// Found by an attacker's review: hosts are `name[:port]` or an IP literal,
/// nothing a wildcard route and an upstream could read two ways (userinfo,
/// lists, `\\`, `#`, `?`), in `Host`, in `:authority` and in the original URL
/// of a forward-auth question; and a forward-auth path with dot segments
/// is refused (the proxy in front forwards it unresolved).
#[tokio::test(flavor = "multi_thread")]
async fn hosts_are_names_or_addresses() {
    let up = Recorder::start().await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
insecure_server: true
routes:
  - from: https://admin.example.com
    to: http://127.0.0.1:{up}
    policy: {{allow: {{or: [{{reject: true}}]}}}}
  - from: https://*.example.com
    to: http://127.0.0.1:{up}
    preserve_host_header: true
    allow_public_unauthenticated_access: true
  - from: https://paths.localhost
    to: http://127.0.0.1:{up}
    policy:
      - allow: {{or: [{{accept: true}}]}}
      - deny: {{or: [{{http_path: {{starts_with: /admin}}}}]}}
",
        up = up.port
    ));
    for host in [
        "x.example.com@admin.example.com",
        "admin.example.com,x.example.com",
        "x.example.com\\@admin.example.com",
        "x.example.com#@admin.example.com",
        "x.example.com?@admin.example.com",
        "x.example.com:@admin.example.com",
        "x.example.com:80@admin.example.com",
    ] {
        let answer = raw_exchange(
            gh.port,
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{host}: {answer}");
    }
    assert!(up.request_lines().is_empty(), "{}", up.text());
    let (status, _) = raw_get(gh.port, "x.example.com", "/", "").await;
    assert_eq!(status, 200);

    let ask = |url: &str| {
        format!(
            "GET /.pomerium/forward_auth HTTP/1.1\r\nHost: gatehouse\r\nX-Original-URL: {url}\r\nX-Forwarded-For: 192.0.2.1\r\nConnection: close\r\n\r\n"
        )
    };
    for url in [
        "https://admin.example.com:@x.example.com/",
        "https://admin.example.com@x.example.com/",
        "https://paths.localhost/admin/..\\x",
        "https://paths.localhost/admin/../x",
        "https://paths.localhost/admin/%2e%2e/x",
        "https://paths.localhost/x/..%2fadmin",
    ] {
        let answer = raw_exchange(gh.port, ask(url).as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{url}: {answer}");
    }
    let answer = raw_exchange(gh.port, ask("https://paths.localhost/x").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = raw_exchange(gh.port, ask("https://paths.localhost/admin").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

/// Idle HTTP/1 connections rest (hyper's state is put away, the bytes it
/// read ahead are kept for the next request). A request whose answer is
/// done while its body is still coming (the upstream answered early) looks
/// idle from outside hyper: its body's remaining bytes must never be read
/// as requests, however the body ends (its exchange given up by the route's
/// `idle_timeout`, a broken chunk, `Connection: close`). Found by an
/// attacker's review of the rests.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_still_coming_after_its_answer_is_never_read_as_requests() {
    let up = Recorder::start().await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
insecure_server: true
routes:
  - from: https://public.localhost
    to: http://127.0.0.1:{}
    allow_public_unauthenticated_access: true
    idle_timeout: 1s
",
        up.port
    ));
    let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: public.localhost\r\n\r\n";
    let cases: [(&str, &[u8], Duration, &[u8]); 3] = [
        (
            "content-length body given up by idle_timeout",
            b"POST /a HTTP/1.1\r\nHost: public.localhost\r\nContent-Length: 100000\r\n\r\nxxxx",
            Duration::from_millis(1600),
            b"",
        ),
        (
            "chunked body, then a broken chunk",
            b"POST /b HTTP/1.1\r\nHost: public.localhost\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nxxxx\r\n",
            Duration::from_millis(400),
            b"Z",
        ),
        (
            "Connection: close",
            b"POST /c HTTP/1.1\r\nHost: public.localhost\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n",
            Duration::from_millis(400),
            b"",
        ),
    ];
    for (case, request, wait, before) in cases {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gh.port))
            .await
            .unwrap();
        s.write_all(request).await.unwrap();
        tokio::time::sleep(wait).await;
        let mut next = before.to_vec();
        next.extend_from_slice(smuggled);
        let _ = s.write_all(&next).await;
        // Whatever comes back within a second: the first answer at most.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let until = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Ok(n)) = tokio::time::timeout_at(until, s.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        // A second answer is the smuggled request's (its bytes are the
        // body's: the upstream may well receive them, as body).
        let answers = String::from_utf8_lossy(&got).matches("HTTP/1.1 ").count();
        assert!(answers <= 1, "{case}: {}", String::from_utf8_lossy(&got));
    }
}

/// Trace context (`otel_*` on): whatever `traceparent` a client sends, in
/// any case, repeated, malformed, over HTTP/1.1 or HTTP/2, the upstream
/// gets exactly one, written by gatehouse (valid W3C, lower case); a
/// repeated or malformed one never reaches it, nor does its `tracestate`.
#[tokio::test(flavor = "multi_thread")]
async fn trace_context_reaches_the_upstream_only_as_gatehouse_wrote_it() {
    let up = Recorder::start().await;
    // No collector listens there: export fails, requests do not care.
    let dead = free_port();
    let yaml = format!(
        "{}otel_traces_exporter: otlp\notel_exporter_otlp_endpoint: http://127.0.0.1:{dead}\n",
        config(up.port)
    );
    let gh = Gatehouse::start(&yaml);
    let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let cases: &[&str] = &[
        // Repeated, in another case: two values, so neither is believed.
        &format!(
            "traceparent: {good}\r\nTraceParent: 00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01\r\ntracestate: evil=1\r\n"
        ),
        "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01\r\ntracestate: evil=1\r\n",
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra\r\ntracestate: evil=1\r\n",
        "traceparent: ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\ntracestate: evil=1\r\n",
        &format!(
            "traceparent: {}\r\ntracestate: evil=1\r\n",
            "0".repeat(4000)
        ),
    ];
    for extra in cases {
        let before = up.text().len();
        let (status, _) = raw_get(gh.port, "public.localhost", "/t", extra).await;
        assert_eq!(status, 200, "{extra}");
        let seen = up.text()[before..].to_ascii_lowercase();
        let values: Vec<&str> = seen
            .lines()
            .filter_map(|l| l.strip_prefix("traceparent: "))
            .collect();
        assert_eq!(values.len(), 1, "exactly one traceparent upstream: {seen}");
        let v = values[0].trim_end();
        assert_eq!(v.len(), 55, "{v}");
        assert!(
            v.starts_with("00-") && !v.contains("4bf92f3577b34da6") && !v.contains("aaaaaaaa"),
            "{extra} -> {v}"
        );
        assert!(
            !seen.contains("evil=1"),
            "a tracestate of a refused traceparent went on: {seen}"
        );
    }
    // HTTP/2: two values in one request.
    let mut send = h2c_sender(gh.port).await;
    let req = http::Request::get("http://public.localhost/h2")
        .header("traceparent", good)
        .header("traceparent", good)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let before = up.text().len();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.text()[before..].to_ascii_lowercase();
    let values: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("traceparent: "))
        .collect();
    assert_eq!(values.len(), 1, "{seen}");
    assert!(!values[0].contains("4bf92f3577b34da6"), "{seen}");
}

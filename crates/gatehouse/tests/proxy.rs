//! The data plane end to end: the real binary on loopback, real upstreams.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn json(resp: reqwest::Response) -> Value {
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"][name][0].as_str()
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_sni_and_http_versions() {
    install_crypto();
    let ca = TestCa::new();
    let up = echo_upstream("a").await;
    let dir = tempfile::tempdir().unwrap();
    let (a_cert, a_key, a_der) = ca.leaf(&["a.localhost"]);
    let (b_cert, b_key, b_der) = ca.leaf(&["*.wild.localhost"]);
    for (n, c) in [
        ("a.crt", &a_cert),
        ("a.key", &a_key),
        ("b.crt", &b_cert),
        ("b.key", &b_key),
    ] {
        std::fs::write(dir.path().join(n), c).unwrap();
    }
    let yaml = format!(
        "address: 127.0.0.1:{{port}}
certificates:
  - {{cert: a.crt, key: a.key}}
  - {{cert: b.crt, key: b.key}}
routes:
  - from: https://a.localhost
    to: http://{addr}
    allow_public_unauthenticated_access: true
  - from: https://*.wild.localhost
    to: http://{addr}
    allow_public_unauthenticated_access: true
",
        addr = up.addr
    );
    let gh = Gatehouse::start_in(dir, &yaml);
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .tls_info(true)
        .resolve("a.localhost", gh.addr())
        .resolve("x.wild.localhost", gh.addr())
        .no_proxy()
        .build()
        .unwrap();
    for (host, der) in [("a.localhost", &a_der), ("x.wild.localhost", &b_der)] {
        let resp = client.get(gh.url(host, "/")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{host}");
        assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN picks h2");
        let info = resp.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
        assert_eq!(
            info.peer_certificate().unwrap(),
            der.as_slice(),
            "SNI picks the certificate for {host}"
        );
        // HSTS is a default once real certificates are configured.
        assert!(resp.headers().get("strict-transport-security").is_some());
    }
    let h1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .http1_only()
        .resolve("a.localhost", gh.addr())
        .no_proxy()
        .build()
        .unwrap();
    let resp = h1.get(gh.url("a.localhost", "/")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(json(resp).await["version"], "HTTP/1.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn self_signed_certificate_when_none_is_configured() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\nroutes:\n  - from: https://app.localhost\n    to: http://{}\n    allow_public_unauthenticated_access: true\n",
        up.addr
    ));
    let resp = gh
        .client(&["app.localhost"])
        .get(gh.url("app.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("strict-transport-security").is_none(),
        "no HSTS on a self-signed certificate"
    );
    assert!(
        gh.log_text().contains("NO CERTIFICATE CONFIGURED"),
        "{}",
        gh.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_the_upstream_sees() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
routes:
  - from: https://plain.localhost
    to: http://{a}
    allow_public_unauthenticated_access: true
    set_request_headers:
      X-Static: hello
      X-Copied: 'from ${{pomerium.request.headers[\"X-Source\"]}} $$5'
    remove_request_headers: [X-Remove-Me]
    set_response_headers:
      X-Route: yes
  - from: https://preserve.localhost
    to: http://{a}
    preserve_host_header: true
    allow_public_unauthenticated_access: true
  - from: https://literal.localhost
    to: http://{a}
    host_rewrite: backend.internal
    allow_public_unauthenticated_access: true
  - from: https://fromheader.localhost
    to: http://{a}
    host_rewrite_header: X-Backend-Host
    allow_public_unauthenticated_access: true
  - from: https://noheaders.localhost
    to: http://{a}
    set_response_headers: {{disable: true}}
    allow_public_unauthenticated_access: true
",
        a = up.addr
    ));
    let hosts = [
        "plain.localhost",
        "preserve.localhost",
        "literal.localhost",
        "fromheader.localhost",
        "noheaders.localhost",
    ];
    let c = gh.client(&hosts);
    let resp = c
        .get(gh.url("plain.localhost", "/h"))
        .header("Connection", "X-Secret")
        .header("X-Secret", "must not pass")
        .header("X-Forwarded-For", "203.0.113.9")
        .header("X-Pomerium-Jwt-Assertion", "forged")
        .header("x-pomerium-claim-email", "ceo@example.com")
        .header("X-Remove-Me", "1")
        .header("X-Source", "src")
        .header("X-Request-Id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["x-frame-options"], "SAMEORIGIN");
    assert_eq!(h["x-xss-protection"], "1; mode=block");
    assert_eq!(h["x-route"], "yes");
    assert!(
        h.get("keep-alive").is_none(),
        "hop-by-hop response headers are dropped"
    );
    assert!(h.get("via").is_none());
    let echo = json(resp).await;
    assert_eq!(
        header(&echo, "host"),
        Some(up.addr.to_string().as_str()),
        "Host is the upstream's by default"
    );
    assert_eq!(
        header(&echo, "x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(header(&echo, "x-forwarded-proto"), Some("https"));
    assert_eq!(
        header(&echo, "x-forwarded-host"),
        Some(format!("plain.localhost:{}", gh.port).as_str())
    );
    assert_eq!(header(&echo, "x-request-id"), Some("req-123"));
    assert_eq!(header(&echo, "x-static"), Some("hello"));
    assert_eq!(header(&echo, "x-copied"), Some("from src $5"));
    for absent in [
        "x-secret",
        "connection",
        "x-pomerium-jwt-assertion",
        "x-pomerium-claim-email",
        "x-remove-me",
        "via",
    ] {
        assert!(
            echo["headers"].get(absent).is_none(),
            "{absent} must not reach the upstream: {echo}"
        );
    }

    let echo = json(
        c.get(gh.url("preserve.localhost", "/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        header(&echo, "host"),
        Some(format!("preserve.localhost:{}", gh.port).as_str())
    );
    let echo = json(
        c.get(gh.url("literal.localhost", "/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(header(&echo, "host"), Some("backend.internal"));
    let echo = json(
        c.get(gh.url("fromheader.localhost", "/"))
            .header("X-Backend-Host", "chosen.internal")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(header(&echo, "host"), Some("chosen.internal"));
    let resp = c
        .get(gh.url("noheaders.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers().get("x-frame-options").is_none(),
        "`disable: true` clears the defaults"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn routing_order_paths_and_rewrites() {
    let a = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
routes:
  - {{from: 'https://app.localhost', to: 'http://{a}/root', allow_public_unauthenticated_access: true}}
  - {{from: 'https://app.localhost', to: 'http://{a}', prefix: /api, prefix_rewrite: /v1, allow_public_unauthenticated_access: true, name: api}}
  - {{from: 'https://app.localhost', to: 'http://{a}', path: /api/exact, allow_public_unauthenticated_access: true, name: exact}}
  - {{from: 'https://app.localhost', to: 'http://{a}', regex: '/svc/[a-z]+/.*', regex_rewrite_pattern: '^/svc/([a-z]+)/(.*)$', regex_rewrite_substitution: '/\\2/on/\\1', allow_public_unauthenticated_access: true}}
  - {{from: 'https://*.apps.localhost', to: 'http://{a}', prefix_rewrite: /wild/, allow_public_unauthenticated_access: true}}
  - {{from: 'https://one.apps.localhost', to: 'http://{a}', prefix_rewrite: /exact-host/, allow_public_unauthenticated_access: true}}
",
    ));
    let c = gh.client(&[
        "app.localhost",
        "one.apps.localhost",
        "two.apps.localhost",
        "unknown.localhost",
    ]);
    let path = |v: Value| v["path"].as_str().unwrap().to_string();
    let get = |host: &'static str, p: &'static str| {
        let c = c.clone();
        let url = gh.url(host, p);
        async move { c.get(url).send().await.unwrap() }
    };
    assert_eq!(
        path(json(get("app.localhost", "/api/exact").await).await),
        "/api/exact"
    );
    assert_eq!(
        path(json(get("app.localhost", "/api/users?x=1").await).await),
        "/v1/users"
    );
    assert_eq!(
        path(json(get("app.localhost", "/svc/billing/invoices").await).await),
        "/invoices/on/billing"
    );
    assert_eq!(
        path(json(get("app.localhost", "/other").await).await),
        "/root/other",
        "a path in `to` prefixes"
    );
    // Normalized before matching: these all reach the /api route.
    for p in [
        "/%61pi/users",
        "/./api/users",
        "//api/users",
        "/x/../api/users",
    ] {
        assert_eq!(
            path(json(get("app.localhost", p).await).await),
            "/v1/users",
            "{p}"
        );
    }
    assert_eq!(
        path(json(get("one.apps.localhost", "/p").await).await),
        "/exact-host/p"
    );
    assert_eq!(
        path(json(get("two.apps.localhost", "/p").await).await),
        "/wild/p"
    );
    assert_eq!(get("unknown.localhost", "/").await.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_and_https_upstreams() {
    install_crypto();
    let ca = TestCa::new();
    let plain = echo_upstream("h2c").await;
    let tls = tls_upstream("tls", &ca, &["upstream.internal"]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let gh = Gatehouse::start_in(
        dir,
        &format!(
            "address: 127.0.0.1:{{port}}
routes:
  - {{from: 'https://h2c.localhost', to: 'h2c://{plain}', allow_public_unauthenticated_access: true}}
  - from: https://tls.localhost
    to: https://{tls}
    tls_custom_ca_file: ca.pem
    tls_server_name: upstream.internal
    allow_public_unauthenticated_access: true
  - from: https://tls-inline.localhost
    to: https://{tls}
    tls_custom_ca: {ca_b64}
    tls_server_name: upstream.internal
    allow_public_unauthenticated_access: true
  - from: https://untrusted.localhost
    to: https://{tls}
    allow_public_unauthenticated_access: true
  - from: https://skip.localhost
    to: https://{tls}
    tls_skip_verify: true
    allow_public_unauthenticated_access: true
",
            tls = tls.addr,
            ca_b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca.pem().as_bytes()),
        ),
    );
    let c = gh.client(&[
        "h2c.localhost",
        "tls.localhost",
        "tls-inline.localhost",
        "untrusted.localhost",
        "skip.localhost",
    ]);
    let echo = json(c.get(gh.url("h2c.localhost", "/")).send().await.unwrap()).await;
    assert_eq!(echo["version"], "HTTP/2.0");
    for host in ["tls.localhost", "tls-inline.localhost"] {
        let echo = json(c.get(gh.url(host, "/")).send().await.unwrap()).await;
        assert_eq!(echo["upstream"], "tls");
        assert_eq!(echo["version"], "HTTP/2.0", "ALPN h2 to the upstream");
    }
    let resp = c
        .get(gh.url("untrusted.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        502,
        "an unverifiable upstream certificate is a 502"
    );
    let echo = json(c.get(gh.url("skip.localhost", "/")).send().await.unwrap()).await;
    assert_eq!(echo["upstream"], "tls");
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_round_robin() {
    let a = echo_upstream("a").await;
    let b = echo_upstream("b").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\nroutes:\n  - from: https://lb.localhost\n    to: ['http://{},3', 'http://{},1']\n    allow_public_unauthenticated_access: true\n",
        a.addr, b.addr
    ));
    let c = gh.client(&["lb.localhost"]);
    let mut counts = std::collections::HashMap::new();
    for _ in 0..40 {
        let resp = c.get(gh.url("lb.localhost", "/")).send().await.unwrap();
        let who = resp.headers()["x-upstream"].to_str().unwrap().to_string();
        *counts.entry(who).or_insert(0) += 1;
    }
    assert_eq!(counts["a"], 30, "{counts:?}");
    assert_eq!(counts["b"], 10, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn websockets_when_allowed() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let ws = ws_upstream().await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\ninsecure_server: true\nroutes:\n  - {{from: 'https://ws.localhost', to: 'http://{a}', allow_websockets: true, allow_public_unauthenticated_access: true}}\n  - {{from: 'https://nows.localhost', to: 'http://{a}', allow_public_unauthenticated_access: true}}\n",
        a = ws.addr
    ));
    let connect = |host: &str| tokio_tungstenite::connect_async(ws_request(gh.port, host));
    let (mut socket, resp) = connect("ws.localhost")
        .await
        .expect("websocket through gatehouse");
    assert_eq!(resp.status(), 101);
    for i in 0..3 {
        socket
            .send(Message::text(format!("hello {i}")))
            .await
            .unwrap();
        let msg = socket.next().await.unwrap().unwrap();
        assert_eq!(msg.into_text().unwrap().as_str(), format!("hello {i}"));
    }
    socket.close(None).await.unwrap();
    assert!(
        connect("nows.localhost").await.is_err(),
        "no upgrade without allow_websockets"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failure_pages_and_statuses() {
    let up = echo_upstream("a").await;
    let dead = free_port();
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
routes:
  - {{from: 'https://down.localhost', to: 'http://127.0.0.1:{dead}', allow_public_unauthenticated_access: true}}
  - {{from: 'https://slow.localhost', to: 'http://{a}', timeout: 300ms, allow_public_unauthenticated_access: true}}
  - {{from: 'https://ok.localhost', to: 'http://{a}', allow_public_unauthenticated_access: true}}
  - {{from: 'https://private.localhost', to: 'http://{a}'}}
",
        a = up.addr
    ));
    let c = gh.client(&[
        "down.localhost",
        "slow.localhost",
        "ok.localhost",
        "nowhere.localhost",
        "private.localhost",
    ]);

    let resp = c
        .get(gh.url("nowhere.localhost", "/x"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("404 Not Found") && page.contains(&rid),
        "{page}"
    );

    let resp = c
        .get(gh.url("nowhere.localhost", "/x"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body = json(resp).await;
    assert_eq!(body["error"], "no_route");
    assert!(body["request_id"].as_str().is_some_and(|s| s.len() == 32));

    let resp = c.get(gh.url("down.localhost", "/")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.text().await.unwrap().contains("not reachable"));

    let resp = c
        .get(gh.url("ok.localhost", "/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502, "a reset upstream is a 502");

    let resp = c
        .get(gh.url("slow.localhost", "/slow?ms=5000"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    let resp = c
        .get(gh.url("slow.localhost", "/slow?ms=10"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "answers within the timeout pass");

    let resp = c
        .get(gh.url("private.localhost", "/"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        403,
        "a route without any policy denies everyone"
    );
    assert!(
        gh.log_text()
            .contains("has no policy and no allow_* option")
    );

    for p in ["/ping", "/healthz"] {
        let resp = c.get(gh.url("nowhere.localhost", p)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "OK");
    }
}

/// Raw-socket attacks on a plain-HTTP listener (the same HTTP stack serves TLS).
#[tokio::test(flavor = "multi_thread")]
async fn hostile_clients() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\ninsecure_server: true\ntimeout_read: 1s\nroutes:\n  - {{from: 'https://ok.localhost', to: 'http://{}', allow_public_unauthenticated_access: true}}\n",
        up.addr
    ));
    // Sanity: a well-formed request works on this listener.
    let ok = raw_exchange(
        gh.port,
        b"GET / HTTP/1.1\r\nHost: ok.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");

    // Oversized request headers: 431.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: ok.localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let resp = raw_exchange(gh.port, big.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");

    // Request smuggling: Content-Length with Transfer-Encoding. As RFC 9112
    // §6.1 allows, Transfer-Encoding wins, Content-Length is dropped and the
    // connection is closed after the one response: the smuggled second
    // request never runs and the upstream sees an unambiguous request.
    let smuggle = b"POST /upload HTTP/1.1\r\nHost: ok.localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo-smuggled HTTP/1.1\r\nHost: ok.localhost\r\n\r\n";
    let resp = raw_exchange(gh.port, smuggle).await;
    assert_eq!(
        resp.matches("HTTP/1.1 ").count(),
        1,
        "exactly one response: {resp}"
    );
    assert!(resp.contains("connection: close"), "{resp}");
    assert!(
        resp.ends_with("{\"received\":0}"),
        "the body was read as chunked (empty): {resp}"
    );
    assert!(
        !resp.contains("echo-smuggled"),
        "the smuggled request never ran: {resp}"
    );

    // Two different Content-Length values.
    let resp = raw_exchange(gh.port, b"POST /upload HTTP/1.1\r\nHost: ok.localhost\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde").await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");

    // Invalid bytes in a header name.
    let resp = raw_exchange(
        gh.port,
        b"GET / HTTP/1.1\r\nHost: ok.localhost\r\nBad Header: x\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");

    // Slowloris: headers that never finish; the connection is closed after
    // timeout_read (1s) and nothing is answered but the close.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gh.port))
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: ok.localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "a client that never finishes its headers is disconnected"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_response_and_redirect_routes() {
    let gh = Gatehouse::start(
        "address: 127.0.0.1:{port}
routes:
  - from: https://resp.localhost
    response: {status: 418, body: teapot}
    allow_public_unauthenticated_access: true
  - from: https://redir.localhost
    redirect: {host_redirect: elsewhere.localhost, response_code: 302}
    allow_public_unauthenticated_access: true
",
    );
    let c = gh.client(&["resp.localhost", "redir.localhost"]);
    let resp = c.get(gh.url("resp.localhost", "/")).send().await.unwrap();
    assert_eq!(resp.status(), 418);
    assert_eq!(resp.text().await.unwrap(), "teapot");
    let resp = c
        .get(gh.url("redir.localhost", "/p?q=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        format!("https://elsewhere.localhost:{}/p?q=1", gh.port)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_redirect_listener() {
    let redirect_port = free_port();
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\nhttp_redirect_addr: 127.0.0.1:{redirect_port}\nroutes:\n  - {{from: 'https://app.localhost', response: {{status: 200, body: ok}}, allow_public_unauthenticated_access: true}}\n"
    ));
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let resp = c
        .get(format!("http://127.0.0.1:{redirect_port}/path?x=1"))
        .header("Host", "app.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(
        resp.headers()["location"],
        format!("https://app.localhost:{}/path?x=1", gh.port)
    );
}

/// 1 GiB up and 1 GiB down through the proxy without buffering.
#[tokio::test(flavor = "multi_thread")]
async fn large_bodies_stream_in_bounded_memory() {
    use futures_util::StreamExt;
    const GIB: u64 = 1 << 30;
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\ninsecure_server: true\nroutes:\n  - {{from: 'https://big.localhost', to: 'http://{}', allow_public_unauthenticated_access: true, timeout: 0s}}\n",
        up.addr
    ));
    let c = reqwest::Client::builder()
        .resolve("big.localhost", gh.addr())
        .no_proxy()
        .build()
        .unwrap();

    let resp = c
        .get(gh.http_url("big.localhost", &format!("/download?bytes={GIB}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        received += chunk.unwrap().len() as u64;
    }
    assert_eq!(received, GIB);

    let chunk = bytes::Bytes::from(vec![b'u'; 256 * 1024]);
    let n = GIB / chunk.len() as u64;
    let body =
        futures_util::stream::iter((0..n).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let resp = c
        .post(gh.http_url("big.localhost", "/upload"))
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(json(resp).await["received"], GIB);

    let peak_mib = gh.peak_rss_kib() / 1024;
    eprintln!("gatehouse peak RSS after 1 GiB each way: {peak_mib} MiB");
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_timeout_cuts_stalled_streams() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\nroutes:\n  - {{from: 'https://idle.localhost', to: 'http://{}', idle_timeout: 300ms, allow_public_unauthenticated_access: true}}\n",
        up.addr
    ));
    let c = gh.client(&["idle.localhost"]);
    // Short pauses pass...
    let resp = c
        .get(gh.url("idle.localhost", "/stall?ms=20"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "startend");
    // ...a stream silent for longer than idle_timeout is cut (the route has
    // no overall timeout: as in Pomerium, idle_timeout alone removes it).
    let resp = c
        .get(gh.url("idle.localhost", "/stall?ms=5000"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text().await.is_err(),
        "the stalled body ends with an error, not `startend`"
    );
}

/// `timeout_read` bounds a request head; `timeout_idle` bounds a connection
/// with nothing in flight. A keep-alive connection may rest longer than
/// `timeout_read`, and is closed once it rests longer than `timeout_idle`.
#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_lives_for_timeout_idle_not_timeout_read() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\ninsecure_server: true\ntimeout_read: 400ms\ntimeout_idle: 2s\nroutes:\n  - {{from: 'https://ok.localhost', to: 'http://{}', allow_public_unauthenticated_access: true}}\n",
        up.addr
    ));
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gh.port))
        .await
        .unwrap();
    async fn request(s: &mut tokio::net::TcpStream, path: &str, ends_with: &[u8]) -> String {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: ok.localhost\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(ends_with) {
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(
                n > 0,
                "connection closed early: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }
    assert!(
        request(&mut s, "/slow?ms=0", b"slow done")
            .await
            .starts_with("HTTP/1.1 200")
    );
    // An instant answer (health check) must not leave a stale head timer.
    assert!(
        request(&mut s, "/ping", b"OK")
            .await
            .starts_with("HTTP/1.1 200")
    );
    // Resting longer than timeout_read (but not timeout_idle) is fine.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        request(&mut s, "/slow?ms=0", b"slow done")
            .await
            .starts_with("HTTP/1.1 200")
    );
    // Resting longer than timeout_idle: the server closes the connection.
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "expected the idle connection to be closed, got {n:?}"
    );
}

/// An HTTP/1 connection idle for a moment is put to rest (hyper's buffers
/// and state freed, the socket kept): its next request, and the bytes of a
/// pipelined request that had arrived before the rest, are served as if
/// nothing happened. Over plain HTTP and over TLS.
#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_rest_and_serve_on() {
    install_crypto();
    let ca = TestCa::new();
    let up = echo_upstream("a").await;
    let route = format!(
        "routes:\n  - {{from: 'https://ok.localhost', to: 'http://{}', allow_public_unauthenticated_access: true}}\n",
        up.addr
    );
    let plain = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\ninsecure_server: true\n{route}"
    ));
    let s = tokio::net::TcpStream::connect(("127.0.0.1", plain.port))
        .await
        .unwrap();
    rest_and_serve_on(s).await;

    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = ca.leaf(&["ok.localhost"]);
    std::fs::write(dir.path().join("ok.crt"), cert).unwrap();
    std::fs::write(dir.path().join("ok.key"), key).unwrap();
    let tls = Gatehouse::start_in(
        dir,
        &format!(
            "address: 127.0.0.1:{{port}}\ncertificate_file: ok.crt\ncertificate_key_file: ok.key\n{route}"
        ),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", tls.port))
        .await
        .unwrap();
    let s = connector
        .connect("ok.localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    rest_and_serve_on(s).await;
}

async fn rest_and_serve_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) {
    // Longer than the rest time (100 ms), shorter than any timeout.
    let rest = Duration::from_millis(400);
    // A request, and the first bytes of the next one in the same write.
    s.write_all(b"GET /first HTTP/1.1\r\nHost: ok.localhost\r\n\r\nGET /second HTTP/1.1\r\nHo")
        .await
        .unwrap();
    assert!(response(&mut s).await.contains("\"/first\""));
    tokio::time::sleep(rest).await;
    s.write_all(b"st: ok.localhost\r\n\r\n").await.unwrap();
    assert!(response(&mut s).await.contains("\"/second\""));
    // A rest between two whole requests.
    tokio::time::sleep(rest).await;
    s.write_all(b"GET /third HTTP/1.1\r\nHost: ok.localhost\r\n\r\n")
        .await
        .unwrap();
    assert!(response(&mut s).await.contains("\"/third\""));
}

/// One HTTP/1.1 response with a `content-length` body: its status line and
/// body.
async fn response<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or_else(|| panic!("no content-length: {head}"));
            if got.len() >= end + 4 + len {
                assert!(head.starts_with("http/1.1 200"), "{head}");
                return String::from_utf8_lossy(&got[end + 4..end + 4 + len]).into_owned();
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("a response within 10 s")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

/// A request asking for an upgrade that is answered without one (a
/// websocket to a route without `allow_websockets`, curl's h2c upgrade)
/// leaves the connection kept alive, past the rest time: hyper keeps such
/// an upgrade pending, so that connection never rests.
#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_asked_for_and_not_given_keeps_the_connection() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\ninsecure_server: true\nroutes:\n  - {{from: 'https://ok.localhost', to: 'http://{}', allow_public_unauthenticated_access: true}}\n",
        up.addr
    ));
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gh.port))
        .await
        .unwrap();
    s.write_all(
        b"GET /u HTTP/1.1\r\nHost: ok.localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(response(&mut s).await.contains("\"/u\""));
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.write_all(b"GET /again HTTP/1.1\r\nHost: ok.localhost\r\n\r\n")
        .await
        .unwrap();
    assert!(response(&mut s).await.contains("\"/again\""));
}

/// `rewrite_response_headers`: the upstream's own address in `Location`
/// becomes the route's, every value of a repeated header is rewritten,
/// rules apply in order, and gatehouse's own answers and cookies are never
/// touched.
#[tokio::test(flavor = "multi_thread")]
async fn rewrite_response_headers_fix_what_the_upstream_says_about_itself() {
    let up = echo_upstream("a").await;
    let port = free_port();
    let yaml = format!(
        "address: 127.0.0.1:{port}
cookie_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
routes:
  - from: https://app.localhost
    to: http://{up}
    allow_public_unauthenticated_access: true
    rewrite_response_headers:
      - header: Location
        prefix: http://{up}/
        value: https://app.localhost:{port}/
      - header: link
        prefix: </
        value: </static/
      - header: link
        prefix: </static/b
        value: </static/bundle-b
      - header: X-Upstream
        prefix: nomatch
        value: x
      - header: Set-Cookie
        prefix: app=
        value: _pomerium=
  - from: https://closed.localhost
    to: http://{up}
    rewrite_response_headers:
      - header: Content-Type
        prefix: text/html
        value: text/plain
"
    );
    let gh = Gatehouse::start_on(port, tempfile::tempdir().unwrap(), &yaml);
    let c = gh.client(&["app.localhost", "closed.localhost"]);
    let resp = c
        .get(gh.url("app.localhost", "/redirect"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        format!("https://app.localhost:{port}/login").as_str()
    );
    let links: Vec<_> = resp
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        links,
        [
            "</static/a.css>; rel=preload",
            "</static/bundle-b.js>; rel=preload"
        ]
    );
    assert_eq!(resp.headers()["x-upstream"], "a", "no match, no change");
    // A rule cannot make the upstream set gatehouse's own cookie.
    assert!(
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .all(|v| !v.to_str().unwrap().starts_with("_pomerium=")),
        "{:?}",
        resp.headers()
    );
    // gatehouse's own answers are its own.
    let resp = c.get(gh.url("closed.localhost", "/")).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

/// `timeout_write` (Envoy's `max_stream_duration`): a response not started
/// in time is 408; one still streaming is cut; others are untouched. Over
/// HTTP/1.1 and HTTP/2.
#[tokio::test(flavor = "multi_thread")]
async fn timeout_write_bounds_the_whole_exchange() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
timeout_write: 1s
routes:
  - from: https://app.localhost
    to: http://{up}
    allow_public_unauthenticated_access: true
"
    ));
    for h1 in [true, false] {
        let mut b = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .resolve("app.localhost", gh.addr())
            .no_proxy();
        if h1 {
            b = b.http1_only();
        }
        let c = b.build().unwrap();
        let resp = c.get(gh.url("app.localhost", "/")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let resp = c
            .get(gh.url("app.localhost", "/slow?ms=4000"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 408, "h1: {h1}");
        let resp = c
            .get(gh.url("app.localhost", "/stall?ms=4000"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.bytes().await;
        assert!(
            body.as_ref().is_err() || body.as_ref().unwrap().as_ref() == b"start",
            "h1: {h1}: {body:?}"
        );
    }
    assert!(
        gh.log_text().contains("stream_timeout"),
        "{}",
        gh.log_text()
    );
}

/// `timeout_write` bounds a websocket tunnel as the stream it is (Envoy's
/// `max_stream_duration`, which Pomerium sets from it): messages flow
/// until then, and the tunnel is closed at the limit.
#[tokio::test(flavor = "multi_thread")]
async fn timeout_write_closes_websocket_tunnels() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let ws = ws_upstream().await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\ninsecure_server: true\ntimeout_write: 2s\nroutes:\n  - {{from: 'https://ws.localhost', to: 'http://{a}', allow_websockets: true, allow_public_unauthenticated_access: true}}\n",
        a = ws.addr
    ));
    let opened = std::time::Instant::now();
    let mut socket = ws_connect(gh.port, "ws.localhost").await;
    socket.send(Message::text("before")).await.unwrap();
    let msg = socket.next().await.unwrap().unwrap();
    assert_eq!(msg.into_text().unwrap().as_str(), "before");
    // Past the limit the tunnel is gone: the next read ends (no echo).
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let _ = socket.send(Message::text("after")).await;
            match socket.next().await {
                Some(Ok(Message::Text(_))) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ => break,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the tunnel outlived timeout_write");
    assert!(opened.elapsed() >= Duration::from_millis(1500));
}

/// A websocket upgrade request for `host`, sent to gatehouse on `port`.
fn ws_request(port: u16, host: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    tokio_tungstenite::tungstenite::handshake::client::Request::builder()
        .uri(format!("ws://127.0.0.1:{port}/socket"))
        .header("Host", host)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap()
}

/// A websocket through gatehouse to `host` on `port`.
async fn ws_connect(
    port: u16,
    host: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::connect_async(ws_request(port, host))
        .await
        .unwrap()
        .0
}

/// A route's `idle_timeout` closes a websocket that stays silent that long
/// either way (Envoy's stream idle timeout, which Pomerium applies), while
/// one that keeps talking stays open past it.
#[tokio::test(flavor = "multi_thread")]
async fn idle_timeout_closes_silent_websockets_only() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let ws = ws_upstream().await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\ninsecure_server: true\nroutes:\n  - {{from: 'https://ws.localhost', to: 'http://{a}', allow_websockets: true, idle_timeout: 1s, allow_public_unauthenticated_access: true}}\n",
        a = ws.addr
    ));
    let open = || ws_connect(gh.port, "ws.localhost");
    // Talking every 300 ms for 2.5 s: open throughout.
    let mut busy = open().await;
    for i in 0..8 {
        busy.send(Message::text(format!("ping {i}"))).await.unwrap();
        let echo = busy.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), format!("ping {i}"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Silent: closed after the idle timeout (the next read ends).
    let mut silent = open().await;
    silent.send(Message::text("hello")).await.unwrap();
    assert!(silent.next().await.unwrap().is_ok());
    let quiet = std::time::Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(10), silent.next()).await;
    assert!(end.is_ok(), "a silent websocket outlived idle_timeout");
    assert!(!matches!(end.unwrap(), Some(Ok(Message::Text(_)))));
    assert!(quiet.elapsed() >= Duration::from_millis(800));
}

/// `use_proxy_protocol`: behind a real load balancer (nginx `stream` with
/// `proxy_protocol on`, v1) and a v2 sender, the client address comes from
/// the PROXY header (for `X-Forwarded-For` and `source_ip`); a connection
/// without a header is closed, never served.
#[tokio::test(flavor = "multi_thread")]
async fn proxy_protocol_gives_the_client_address() {
    let up = echo_upstream("a").await;
    let port = free_port();
    let gh = Gatehouse::start_on(
        port,
        tempfile::tempdir().unwrap(),
        &format!(
            "address: 127.0.0.1:{port}
insecure_server: true
use_proxy_protocol: true
routes:
  - {{from: 'http://app.localhost', to: 'http://{up}', allow_public_unauthenticated_access: true}}
  - from: http://v6.localhost
    to: http://{up}
    policy:
      allow:
        and:
          - source_ip: ::1/128
"
        ),
    );
    let front = free_port();
    let _lb = FrontProxy::nginx_stream(
        front,
        &format!(
            "  server {{\n    listen 127.0.0.1:{front};\n    listen [::1]:{front};\n    proxy_pass 127.0.0.1:{port};\n    proxy_protocol on;\n  }}"
        ),
    );
    // Through the balancer over IPv6: the header says ::1, the TCP peer
    // gatehouse sees is nginx on 127.0.0.1.
    let c = reqwest::Client::builder()
        .resolve("app.localhost", ([0, 0, 0, 0, 0, 0, 0, 1], front).into())
        .resolve("v6.localhost", ([0, 0, 0, 0, 0, 0, 0, 1], front).into())
        .no_proxy()
        .build()
        .unwrap();
    let echo = json(
        c.get(format!("http://app.localhost:{front}/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(header(&echo, "x-forwarded-for"), Some("::1"), "{echo}");
    let resp = c
        .get(format!("http://v6.localhost:{front}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "source_ip sees the header's address");
    // Through the balancer over IPv4: not ::1, refused by the policy.
    let c4 = reqwest::Client::builder()
        .resolve("v6.localhost", ([127, 0, 0, 1], front).into())
        .no_proxy()
        .build()
        .unwrap();
    let resp = c4
        .get(format!("http://v6.localhost:{front}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // A v2 header, by hand: any address the balancer vouches for.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[
        0x21, 0x11, 0, 12, 203, 0, 113, 7, 127, 0, 0, 1, 0xc3, 0x50, 0, 80,
    ]);
    v2.extend_from_slice(b"GET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n");
    s.write_all(&v2).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("\"x-forwarded-for\":[\"203.0.113.7\"]"),
        "{text}"
    );

    // No header: closed without an answer.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    drop(gh);
}

/// A dead upstream leaves the rotation: passively (`outlier_detection`,
/// after consecutive failures) and actively (`health_checks`); and
/// `load_balancing_policy: ring_hash` keeps a client on one upstream.
#[tokio::test(flavor = "multi_thread")]
async fn dead_upstreams_leave_the_rotation() {
    let live = echo_upstream("live").await;
    let (a, b, c3) = (
        echo_upstream("a").await,
        echo_upstream("b").await,
        echo_upstream("c").await,
    );
    let dead = free_port();
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
routes:
  - from: https://od.localhost
    to: [http://{live}, http://127.0.0.1:{dead}]
    allow_public_unauthenticated_access: true
    outlier_detection: {{consecutive_gateway_failure: 2, base_ejection_time: 60s}}
  - from: https://hc.localhost
    to: [http://{live}, http://127.0.0.1:{dead}]
    allow_public_unauthenticated_access: true
    health_checks:
      - {{timeout: 1s, interval: 1s, unhealthy_threshold: 1, tcp_health_check: {{}}}}
  - from: https://ring.localhost
    to: [http://{a}, http://{b}, http://{c3}]
    allow_public_unauthenticated_access: true
    load_balancing_policy: RING_HASH
  - from: https://least.localhost
    to: [http://{a}, http://{b}]
    allow_public_unauthenticated_access: true
    load_balancing_policy: least_request
"
    ));
    let c = gh.client(&[
        "od.localhost",
        "hc.localhost",
        "ring.localhost",
        "least.localhost",
    ]);
    let status = |host: &'static str| {
        let c = c.clone();
        let url = gh.url(host, "/");
        async move { c.get(url).send().await.unwrap().status().as_u16() }
    };
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(status("od.localhost").await);
    }
    assert!(
        statuses.iter().filter(|s| **s == 502).count() <= 2,
        "{statuses:?}"
    );
    assert!(statuses[6..].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(gh.wait_log("taken out of rotation", 0), "{}", gh.log_text());

    assert!(gh.wait_log("upstream unhealthy", 0), "{}", gh.log_text());
    for _ in 0..8 {
        assert_eq!(status("hc.localhost").await, 200);
    }

    let mut seen = std::collections::HashSet::new();
    for _ in 0..12 {
        let resp = c.get(gh.url("ring.localhost", "/")).send().await.unwrap();
        seen.insert(resp.headers()["x-upstream"].to_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 1, "one client, one upstream: {seen:?}");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let resp = c.get(gh.url("least.localhost", "/")).send().await.unwrap();
        seen.insert(resp.headers()["x-upstream"].to_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 2, "idle upstreams share: {seen:?}");
}

//! Hot reload, signals and graceful drain, against the running binary.

mod common;

use std::time::Duration;

use common::*;

fn route(host: &str, to: &str) -> String {
    format!(
        "  - {{from: 'https://{host}', to: 'http://{to}', allow_public_unauthenticated_access: true}}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_change_applies_without_dropping_requests() {
    let up = echo_upstream("a").await;
    let base = format!(
        "address: 127.0.0.1:{{port}}\nroutes:\n{}",
        route("one.localhost", &up.addr.to_string())
    );
    let gh = Gatehouse::start(&base);
    let c = gh.client(&["one.localhost", "two.localhost"]);
    assert_eq!(
        c.get(gh.url("two.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // A slow request in flight on the old configuration...
    let slow = tokio::spawn({
        let c = c.clone();
        let url = gh.url("one.localhost", "/slow?ms=1500");
        async move { c.get(url).send().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...while a route is added.
    gh.write_config(&format!(
        "{base}{}",
        route("two.localhost", &up.addr.to_string())
    ));
    assert!(
        gh.wait_log("configuration reloaded", 0),
        "{}",
        gh.log_text()
    );
    assert_eq!(
        c.get(gh.url("two.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = slow.await.unwrap();
    assert_eq!(resp.status(), 200, "the in-flight request finished");
    assert_eq!(resp.text().await.unwrap(), "slow done");
    // The client's pooled HTTP/2 connection kept working across the reload.
    assert_eq!(
        c.get(gh.url("one.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_change_keeps_the_last_good_config() {
    let up = echo_upstream("a").await;
    let base = format!(
        "address: 127.0.0.1:{{port}}\nroutes:\n{}",
        route("one.localhost", &up.addr.to_string())
    );
    let gh = Gatehouse::start(&base);
    let c = gh.client(&["one.localhost", "two.localhost"]);
    gh.write_config(&format!(
        "{base}  - {{from: 'https://two.localhost/bad', to: 'http://x'}}\nlog_levle: info\n"
    ));
    assert!(gh.wait_log("reload rejected", 0), "{}", gh.log_text());
    let log = gh.log_text();
    assert!(
        log.contains("config.yaml:4:12: `from` must not have a path"),
        "{log}"
    );
    // Each problem at its own level: the misspelt key beside the error is
    // a warning, not an error.
    let level_of = |needle: &str| {
        log.lines()
            .filter(|l| l.contains(needle))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["level"].as_str().unwrap_or_default().to_string())
            .next()
    };
    assert_eq!(
        level_of("must not have a path").as_deref(),
        Some("ERROR"),
        "{log}"
    );
    assert_eq!(level_of("`log_levle`").as_deref(), Some("WARN"), "{log}");
    assert_eq!(
        c.get(gh.url("one.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "old config still serves"
    );

    // Fixing the file applies it.
    gh.write_config(&format!(
        "{base}{}",
        route("two.localhost", &up.addr.to_string())
    ));
    assert!(
        gh.wait_log("configuration reloaded", 0),
        "{}",
        gh.log_text()
    );
    assert_eq!(
        c.get(gh.url("two.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\nroutes:\n{}",
        route("one.localhost", &up.addr.to_string())
    ));
    gh.signal("HUP");
    assert!(gh.wait_log("SIGHUP received", 0), "{}", gh.log_text());
    assert!(
        gh.wait_log("configuration reloaded", 0),
        "{}",
        gh.log_text()
    );
    let c = gh.client(&["one.localhost"]);
    assert_eq!(
        c.get(gh.url("one.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_files_are_watched() {
    install_crypto();
    let ca = TestCa::new();
    let up = echo_upstream("a").await;
    let dir = tempfile::tempdir().unwrap();
    let (cert1, key1, der1) = ca.leaf(&["app.localhost"]);
    std::fs::write(dir.path().join("tls.crt"), cert1).unwrap();
    std::fs::write(dir.path().join("tls.key"), key1).unwrap();
    let gh = Gatehouse::start_in(
        dir,
        &format!(
            "address: 127.0.0.1:{{port}}\ncertificate_file: tls.crt\ncertificate_key_file: tls.key\nroutes:\n{}",
            route("app.localhost", &up.addr.to_string())
        ),
    );
    let peer_cert = || async {
        // A fresh client each time: a new TLS handshake.
        let c = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
            .tls_info(true)
            .resolve("app.localhost", gh.addr())
            .no_proxy()
            .build()
            .unwrap();
        let resp = c.get(gh.url("app.localhost", "/")).send().await.unwrap();
        resp.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .unwrap()
            .peer_certificate()
            .unwrap()
            .to_vec()
    };
    assert_eq!(peer_cert().await, der1);
    let (cert2, key2, der2) = ca.leaf(&["app.localhost"]);
    // Key first, then certificate: the intermediate state (new key, old
    // certificate) is rejected and the old pair keeps serving.
    let reloads = gh.log_count("configuration reloaded");
    std::fs::write(gh.dir.path().join("tls.key"), key2).unwrap();
    std::fs::write(gh.dir.path().join("tls.crt"), cert2).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if peer_cert().await == der2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "new certificate not served; log:\n{}",
            gh.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gh.log_count("configuration reloaded") > reloads);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests() {
    let up = echo_upstream("a").await;
    let mut gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\nroutes:\n{}",
        route("one.localhost", &up.addr.to_string())
    ));
    let c = gh.client(&["one.localhost"]);
    let slow = tokio::spawn({
        let c = c.clone();
        let url = gh.url("one.localhost", "/slow?ms=1500");
        async move { c.get(url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gh.signal("TERM");
    assert!(gh.wait_log("draining", 0), "{}", gh.log_text());
    // New connections are refused once draining starts.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        std::net::TcpStream::connect(gh.addr()).is_err(),
        "listener closed"
    );
    let resp = slow.await.unwrap().expect("in-flight request completed");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "slow done");
    let status = tokio::task::spawn_blocking(move || {
        let s = gh.child.wait().unwrap();
        (s, gh)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "exit status {:?}", status.0);
    assert!(status.1.log_text().contains("gatehouse stopped"));
}

/// Draining closes idle keep-alive connections at once (clients reconnect
/// elsewhere) while a request in flight on another connection finishes.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_idle_keep_alives_and_finishes_the_rest() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = echo_upstream("a").await;
    let mut gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\ninsecure_server: true\nroutes:\n{}",
        route("one.localhost", &up.addr.to_string())
    ));
    // An HTTP/1.1 keep-alive connection, used once, then idle.
    let mut idle = tokio::net::TcpStream::connect(gh.addr()).await.unwrap();
    idle.write_all(b"GET /slow?ms=1 HTTP/1.1\r\nHost: one.localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.ends_with("slow done"), "one whole answer: {head}");

    let slow = tokio::spawn({
        let c = gh.client(&["one.localhost"]);
        let url = gh.http_url("one.localhost", "/slow?ms=2000");
        async move { c.get(url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gh.signal("TERM");
    // The idle connection is closed by gatehouse (EOF), not left to time out...
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "idle keep-alive closed: {closed:?}"
    );
    // ...while the request in flight was still running, and it completes.
    assert!(!slow.is_finished(), "closed before the slow request ended");
    let resp = slow.await.unwrap().expect("in-flight request completed");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "slow done");
    let status = tokio::task::spawn_blocking(move || gh.child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
}

/// `health_check_addr`: Pomerium's probes on their own listener; a session
/// store that does not answer makes `/readyz` and `/healthz` 503 (with the
/// reason, never the store's password) while `/startupz` stays 200.
#[tokio::test(flavor = "multi_thread")]
async fn health_endpoints_report_each_check() {
    let health = free_port();
    let closed = free_port();
    let route = "routes:\n  - {from: 'https://a.localhost', to: 'http://127.0.0.1:1', allow_public_unauthenticated_access: true}\n";
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let get = |path: &'static str| {
        let c = c.clone();
        async move {
            let r = c
                .get(format!("http://127.0.0.1:{health}{path}"))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            (status, body)
        }
    };
    {
        let _gh = Gatehouse::start(&format!(
            "address: 127.0.0.1:{{port}}\nhealth_check_addr: 127.0.0.1:{health}\n{route}"
        ));
        for path in ["/startupz", "/readyz", "/healthz"] {
            let (status, body) = get(path).await;
            assert_eq!(status, 200, "{path}: {body}");
            for check in ["config.loaded", "proxy.service", "storage.backend"] {
                assert_eq!(body[check]["status"], "RUNNING", "{path}: {body}");
            }
        }
        let (status, body) = get("/status").await;
        assert_eq!(status, 200);
        assert_eq!(
            body["checks"],
            serde_json::json!(["config.loaded", "proxy.service", "storage.backend"])
        );
        let r = c
            .post(format!("http://127.0.0.1:{health}/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
        let r = c
            .get(format!("http://127.0.0.1:{health}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    let _gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\nhealth_check_addr: 127.0.0.1:{health}\ndatabroker_storage_type: redis\ndatabroker_storage_connection_string: redis://:hunter2@127.0.0.1:{closed}/\n{route}"
    ));
    let (status, body) = get("/startupz").await;
    assert_eq!(status, 200, "{body}");
    for path in ["/readyz", "/healthz"] {
        let (status, body) = get(path).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["storage.backend"]["status"], "UNAVAILABLE");
        assert!(body["storage.backend"]["error"].is_string());
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }
}

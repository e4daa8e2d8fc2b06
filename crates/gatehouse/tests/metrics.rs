//! `metrics_address`: Prometheus text with what an operator needs, behind
//! `metrics_basic_auth`, counted from real traffic (sign-ins, decisions,
//! upstream failures, reloads, connections).

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_real_traffic() {
    let up = echo_upstream("app").await;
    let dead = free_port();
    let mport = free_port();
    // base64("prom:scrape")
    let auth = "cHJvbTpzY3JhcGU=";
    let yaml = format!(
        "address: 127.0.0.1:{{port}}
metrics_address: 127.0.0.1:{mport}
metrics_basic_auth: {auth}
idp_provider: local
cookie_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
local_users:
  - username: alice
    email: alice@example.com
    password_hash: '{hash}'
routes:
  - from: https://app.localhost
    to: http://{up}
    name: app
    allowed_domains: [example.com]
    pass_identity_headers: true
  - from: https://admin.localhost
    to: http://{up}
    name: admin
    allowed_domains: [nowhere.example]
  - from: https://down.localhost
    to: http://127.0.0.1:{dead}
    name: down
    allow_public_unauthenticated_access: true
",
        hash = hash("wonderland"),
        up = up.addr
    );
    let gh = Gatehouse::start(&yaml);
    let hosts = [
        "app.localhost",
        "admin.localhost",
        "down.localhost",
        "nowhere.localhost",
    ];
    let c = gh.browser(&hosts, true);
    // A wrong password, then a sign-in.
    let resp = submit_login(&c, &login_url(&gh, "app.localhost"), "alice", "wrong").await;
    assert_eq!(resp.status(), 401);
    let resp = submit_login(&c, &login_url(&gh, "app.localhost"), "alice", "wonderland").await;
    assert_eq!(resp.status(), 200);
    for _ in 0..3 {
        assert_eq!(
            c.get(gh.url("app.localhost", "/x"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let resp = submit_login(
        &c,
        &login_url(&gh, "admin.localhost"),
        "alice",
        "wonderland",
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        c.get(gh.url("down.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        502
    );
    assert_eq!(
        c.get(gh.url("nowhere.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // A broken reload, then a good one.
    let text = std::fs::read_to_string(&gh.config).unwrap();
    let failures = gh.log_count("configuration reload rejected");
    gh.write_config("routes: [broken\n");
    assert!(gh.wait_log("configuration reload rejected", failures));
    let reloads = gh.log_count("configuration reloaded");
    gh.write_config(&text);
    assert!(gh.wait_log("configuration reloaded", reloads));

    // Forward-auth questions are decisions of their route too.
    let fa = gh.client(&["fa.localhost"]);
    for _ in 0..2 {
        let resp = fa
            .get(gh.url("fa.localhost", "/.pomerium/forward_auth"))
            .header("x-original-url", "https://down.localhost/")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    let scrape = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://127.0.0.1:{mport}/metrics");
    let resp = scrape.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401, "basic auth is required");
    let resp = scrape
        .get(&url)
        .basic_auth("prom", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = scrape
        .get(&url)
        .basic_auth("prom", Some("scrape"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    };
    assert!(value("gatehouse_http_server_requests_total{route=\"app\",code=\"2xx\"}") >= 3.0);
    assert_eq!(
        value("gatehouse_http_server_requests_total{route=\"admin\",code=\"4xx\"}"),
        1.0
    );
    assert_eq!(
        value("gatehouse_http_server_requests_total{route=\"down\",code=\"5xx\"}"),
        1.0
    );
    assert_eq!(
        value("gatehouse_upstream_errors_total{route=\"down\",kind=\"connect\"}"),
        1.0
    );
    assert!(value("gatehouse_http_server_requests_total{route=\"\",code=\"4xx\"}") >= 1.0);
    assert!(value("gatehouse_http_server_request_duration_seconds_count{route=\"app\"}") >= 3.0);
    assert!(
        value("gatehouse_http_server_request_duration_seconds_bucket{route=\"app\",le=\"+Inf\"}")
            >= 3.0
    );
    assert_eq!(
        value("gatehouse_sign_ins_total{idp=\"local\",result=\"success\"}"),
        2.0
    );
    assert_eq!(
        value("gatehouse_sign_ins_total{idp=\"local\",result=\"failure\"}"),
        1.0
    );
    assert!(
        value("gatehouse_authorize_decisions_total{result=\"allow\"}") >= 3.0,
        "{text}"
    );
    assert!(value("gatehouse_authorize_decisions_total{result=\"deny\"}") >= 1.0);
    assert!(
        value("gatehouse_route_authorize_decisions_total{route=\"app\",result=\"allow\"}") >= 3.0
    );
    assert_eq!(
        value("gatehouse_route_authorize_decisions_total{route=\"admin\",result=\"deny\"}"),
        value("gatehouse_http_server_requests_total{route=\"admin\",code=\"4xx\"}"),
        "every denial on `admin` is counted for it"
    );
    assert_eq!(
        value("gatehouse_route_authorize_decisions_total{route=\"down\",result=\"allow\"}"),
        3.0,
        "one proxied request and two forward-auth questions"
    );
    assert!(value("gatehouse_authorize_reasons_total{reason=\"domain-unauthorized\"}") >= 1.0);
    // Every refusal through the one mapper, counted by who is at fault.
    assert_eq!(
        value("gatehouse_refusals_total{source=\"downstream\",code=\"no_route\"}"),
        1.0
    );
    assert_eq!(
        value("gatehouse_refusals_total{source=\"upstream\",code=\"upstream_connect\"}"),
        1.0
    );
    assert!(value("gatehouse_refusals_total{source=\"policy\",code=\"access_denied\"}") >= 1.0);
    assert!(value("gatehouse_assertion_cache_hits_total") >= 2.0);
    // Two sign-ins stored, every signed-in request looked up.
    assert_eq!(
        value("gatehouse_session_store_operations_total{op=\"put\"}"),
        2.0
    );
    assert!(value("gatehouse_session_store_operations_total{op=\"get\"}") >= 3.0);
    assert_eq!(
        value("gatehouse_session_cache_hits_total"),
        0.0,
        "memory store"
    );
    assert!(value("gatehouse_assertion_cache_misses_total") >= 1.0);
    assert_eq!(
        value("gatehouse_config_reloads_total{result=\"failure\"}"),
        1.0
    );
    assert_eq!(
        value("gatehouse_config_reloads_total{result=\"success\"}"),
        1.0
    );
    assert!(value("gatehouse_config_last_reload_success_timestamp_seconds") > 1.7e9);
    assert!(value("gatehouse_open_connections") >= 1.0);
    assert!(value("gatehouse_process_resident_memory_bytes") > 1e6);
    assert!(text.contains("gatehouse_build_info{version=\""));
    // Nothing secret is exposed.
    assert!(!text.contains("alice"));
}

/// `metrics_certificate*` and `metrics_client_ca*`: metrics over TLS, and
/// only to scrapers with a certificate from the CA.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_over_tls_with_client_certificates() {
    install_crypto();
    let server_ca = TestCa::new();
    let pki = common::mtls::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = server_ca.leaf(&["metrics.localhost"]);
    std::fs::write(dir.path().join("m.crt"), &cert).unwrap();
    std::fs::write(dir.path().join("m.key"), &key).unwrap();
    let mport = free_port();
    let gh = Gatehouse::start_in(
        dir,
        &format!(
            "address: 127.0.0.1:{{port}}
metrics_address: 127.0.0.1:{mport}
metrics_certificate_file: m.crt
metrics_certificate_key_file: m.key
metrics_client_ca_file: {ca}
routes:
  - {{from: 'https://app.localhost', to: 'http://127.0.0.1:1', allow_public_unauthenticated_access: true}}
",
            ca = pki.ca_file().display()
        ),
    );
    let url = format!("https://metrics.localhost:{mport}/metrics");
    let client = |kind: Option<common::mtls::ClientKind>| {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(server_ca.pem().as_bytes()).unwrap(),
            )
            .resolve("metrics.localhost", ([127, 0, 0, 1], mport).into())
            .no_proxy();
        if let Some(k) = kind {
            b = b.identity(pki.identity(k));
        }
        b.build().unwrap()
    };
    let resp = client(Some(common::mtls::ClientKind::Valid))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("gatehouse_"));
    for kind in [None, Some(common::mtls::ClientKind::WrongCa)] {
        let got = client(kind).get(&url).send().await;
        assert!(got.is_err(), "{kind:?}: {got:?}");
    }
    // Plain HTTP gets nothing.
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let got = plain
        .get(format!("http://127.0.0.1:{mport}/metrics"))
        .send()
        .await;
    assert!(got.is_err() || got.unwrap().status() != 200);
    drop(gh);
}

//! Several instances sharing sessions through a real `redis-server`: a
//! sign-in on one is a sign-in on all, a sign-out on one is a sign-out on
//! all (through the invalidation channel, long before a cached copy would
//! expire), the one-time hand-off works once across instances, a token
//! refresh happens once across instances, and a Redis outage keeps known
//! users working for the configured grace while new sign-ins get a 503.

mod common;

use std::time::{Duration, Instant};

use common::*;

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const HOSTS: &[&str] = &["app.localhost", "auth.localhost"];

fn local_config(upstream: &str, redis: &Redis, extra: &str) -> String {
    format!(
        "address: 127.0.0.1:{{port}}
idp_provider: local
cookie_secret: {SECRET}
shared_secret: {SECRET}
databroker_storage_type: redis
databroker_storage_connection_string: {url}
local_users:
  - username: alice
    email: alice@example.com
    password_hash: '{hash}'
{extra}routes:
  - {{from: 'https://app.localhost', to: 'http://{upstream}', allow_any_authenticated_user: true}}
",
        url = redis.url(),
        hash = hash("wonderland")
    )
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn status(c: &reqwest::Client, url: &str) -> u16 {
    c.get(url)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls `url` until it answers `want` (at most 10 s); the time it took.
async fn until_status(c: &reqwest::Client, url: &str, want: u16) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if status(c, url).await == want {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Signs alice in on `gh` (built-in directory); the client keeps the cookie.
async fn sign_in(c: &reqwest::Client, gh: &Gatehouse) {
    let resp = submit_login(c, &login_url(gh, "app.localhost"), "alice", "wonderland").await;
    assert_eq!(resp.status(), 302, "{}", gh.log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_on_one_instance_holds_on_the_other_and_a_sign_out_ends_it_on_both() {
    let redis = Redis::start();
    let up = echo_upstream("app").await;
    let yaml = local_config(&up.addr.to_string(), &redis, "");
    let metrics_port = free_port();
    let a = Gatehouse::start(&yaml);
    let b = Gatehouse::start(&format!(
        "metrics_address: 127.0.0.1:{metrics_port}\n{yaml}"
    ));
    // One browser; its cookies go to both instances (cookies ignore ports).
    let c = a.browser(HOSTS, false);
    sign_in(&c, &a).await;
    assert_eq!(status(&c, &a.url("app.localhost", "/")).await, 200);
    assert_eq!(
        status(&c, &b.url("app.localhost", "/")).await,
        200,
        "{}",
        b.log_text()
    );
    // Both instances now hold the session in their hot cache.
    let me_b = get_json(&c, &b.url("app.localhost", "/.pomerium/user")).await;
    assert_eq!(me_b["email"], "alice@example.com");
    // The second lookup on B came from its cache, not from Redis.
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
    };
    assert!(
        value("gatehouse_session_cache_hits_total ") >= 1.0,
        "{metrics}"
    );
    assert!(
        value("gatehouse_session_cache_misses_total ") >= 1.0,
        "{metrics}"
    );

    let (resp, _) = sign_out(&c, &a.url("app.localhost", "")).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(status(&c, &a.url("app.localhost", "/")).await, 401);
    // B drops its cached copy when A publishes the sign-out, long before the
    // copy's 30 s trust would run out.
    let took = until_status(&c, &b.url("app.localhost", "/"), 401).await;
    let took = took.expect("signed out on the other instance");
    assert!(
        took < Duration::from_secs(10),
        "invalidation, not cache expiry"
    );
    println!("sign-out reached the other instance after {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sign_in_hand_off_works_once_across_instances() {
    let redis = Redis::start();
    let up = echo_upstream("app").await;
    let (a_port, b_port) = (free_port(), free_port());
    // Two instances on one machine listen on different ports, so the route
    // names the port B serves it on (a hand-off goes only to an origin a
    // route serves: host and port).
    let yaml = local_config(
        &up.addr.to_string(),
        &redis,
        &format!("authenticate_service_url: https://auth.localhost:{a_port}\n"),
    )
    .replace(
        "from: 'https://app.localhost'",
        &format!("from: 'https://app.localhost:{b_port}'"),
    );
    let a = Gatehouse::start_on(a_port, tempfile::tempdir().unwrap(), &yaml);
    let b = Gatehouse::start_on(b_port, tempfile::tempdir().unwrap(), &yaml);
    let c = b.browser(HOSTS, false);
    // The app is served by B; sign-in happens on A's authenticate host.
    let resp = c
        .get(b.url("app.localhost", "/x"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    let pending = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("_pomerium_pending_"))
        .map(|v| v.split(';').next().unwrap().to_string())
        .expect("B binds the browser before sending it to sign in");
    let login = location(&resp);
    assert!(
        login.starts_with(&a.url("auth.localhost", "/.pomerium/sign_in?")),
        "{login}"
    );
    let resp = submit_login(&c, &login, "alice", "wonderland").await;
    let callback = location(&resp);
    assert!(
        callback.starts_with(&b.url("app.localhost", "/.pomerium/callback/")),
        "{callback}"
    );
    // A stored the one-time token, B takes it: through Redis.
    let resp = c.get(&callback).send().await.unwrap();
    assert_eq!(resp.status(), 302, "{}", b.log_text());
    assert_eq!(status(&c, &b.url("app.localhost", "/x")).await, 200);
    // Replayed, even with the browser's pending cookie: used up.
    let replay = b.client(HOSTS).get(&callback).header("Cookie", &pending);
    assert_eq!(replay.send().await.unwrap().status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_outage_keeps_known_users_for_the_grace_and_refuses_new_sign_ins() {
    let mut redis = Redis::start();
    let up = echo_upstream("app").await;
    let yaml = local_config(
        &up.addr.to_string(),
        &redis,
        "databroker_storage_outage_grace: 4s\n",
    );
    let a = Gatehouse::start(&yaml);
    let b = Gatehouse::start(&yaml);
    let c = a.browser(HOSTS, false);
    sign_in(&c, &a).await;
    assert_eq!(status(&c, &b.url("app.localhost", "/")).await, 200);

    redis.stop();
    // Known on both instances: still served, from each one's cache.
    for gh in [&a, &b] {
        assert_eq!(
            status(&c, &gh.url("app.localhost", "/")).await,
            200,
            "{}",
            gh.log_text()
        );
    }
    // A new sign-in is refused with a clear 503, before any password is asked.
    let d = a.browser(HOSTS, false);
    let login = login_url(&a, "app.localhost");
    let took = until_status(&d, &login, 503).await;
    assert!(took.is_some(), "{}", a.log_text());
    let page = d
        .get(&login)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["retry-after"], "5");
    let text = page.text().await.unwrap();
    assert!(text.contains("session store"), "{text}");
    assert!(a.wait_log("session store unreachable", 0));
    assert_eq!(a.log_count("panicked"), 0);

    // Past the grace, a cached copy is no longer enough.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(status(&c, &b.url("app.localhost", "/")).await, 401);

    // Redis back (with its data): everything resumes by itself.
    redis.restart();
    assert!(
        until_status(&d, &login, 200).await.is_some(),
        "{}",
        a.log_text()
    );
    assert!(a.wait_log("session store reachable again", 0));
    assert_eq!(status(&c, &b.url("app.localhost", "/")).await, 200);
    sign_in(&d, &a).await;
    assert_eq!(status(&d, &b.url("app.localhost", "/")).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_refresh_happens_once_across_instances() {
    let redis = Redis::start();
    let up = echo_upstream("app").await;
    let a_port = free_port();
    let b_port = free_port();
    let callbacks: Vec<String> = [a_port, b_port]
        .iter()
        .map(|p| format!("https://app.localhost:{p}/oauth2/callback"))
        .collect();
    let idp = Idp::start_with(0, &callbacks, &[], &["--access-token-ttl", "2"]);
    let yaml = format!(
        "address: 127.0.0.1:{{port}}
idp_provider: oidc
idp_provider_url: {issuer}
idp_client_id: gatehouse
idp_client_secret: gatehouse-secret
cookie_secret: {SECRET}
shared_secret: {SECRET}
databroker_storage_type: redis
databroker_storage_connection_string: {url}
routes:
  - {{from: 'https://app.localhost', to: 'http://{up}', allow_any_authenticated_user: true}}
",
        issuer = idp.issuer,
        url = redis.url(),
        up = up.addr,
    );
    let a = Gatehouse::start_on(a_port, tempfile::tempdir().unwrap(), &yaml);
    let b = Gatehouse::start_on(b_port, tempfile::tempdir().unwrap(), &yaml);
    let c = a.browser(HOSTS, true);
    let resp = c
        .get(a.url("app.localhost", "/"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", a.log_text());
    // Past the token's lifetime and the 10 s between refreshes.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let requests = (0..8).map(|i| {
        let c = c.clone();
        let url = if i % 2 == 0 {
            a.url("app.localhost", &format!("/r{i}"))
        } else {
            b.url("app.localhost", &format!("/r{i}"))
        };
        async move { c.get(url).send().await.unwrap().status() }
    });
    for s in futures_util::future::join_all(requests).await {
        assert_eq!(s, 200, "{}\n{}", a.log_text(), b.log_text());
    }
    let refreshes =
        a.log_count("refreshed session tokens") + b.log_count("refreshed session tokens");
    assert_eq!(refreshes, 1, "{}\n{}", a.log_text(), b.log_text());
    assert_eq!(
        a.log_count("token refresh refused") + b.log_count("token refresh refused"),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rediss_with_a_private_ca() {
    let ca = TestCa::new();
    let redis = Redis::start_tls(&ca);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("redis-ca.pem"), ca.pem()).unwrap();
    let up = echo_upstream("app").await;
    let yaml = local_config(
        &up.addr.to_string(),
        &redis,
        "databroker_storage_ca_file: redis-ca.pem\n",
    );
    assert!(redis.url().starts_with("rediss://"));
    let a = Gatehouse::start_in(dir, &yaml);
    let b = Gatehouse::start(&yaml.replace(
        "redis-ca.pem",
        &a.dir.path().join("redis-ca.pem").display().to_string(),
    ));
    let c = a.browser(HOSTS, false);
    sign_in(&c, &a).await;
    assert_eq!(
        status(&c, &b.url("app.localhost", "/")).await,
        200,
        "{}",
        b.log_text()
    );
}

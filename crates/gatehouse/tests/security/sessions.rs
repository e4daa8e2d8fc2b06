//! Sessions and hand-offs: a session is only as wide as where it came from
//! (provider, routes, host, expiry, checked on every lookup), and a sign-in
//! hand-off goes only to an https origin a route serves and only to the
//! browser that started the sign-in.
//!
//! Findings covered: a token trusted on one route, handed over at
//! `/.pomerium/sign_in_with_token`, became a session valid on every host
//! (`cookie_domain`), on the console and for `cookie_expire` (finding 1);
//! hand-offs went to plain http and any port and were not bound to the
//! browser (replay, login CSRF; finding 6).

use crate::common::*;
use serde_json::json;

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const PARTNER: &str = "https://partner.test";

const SCOPED_HOSTS: &[&str] = &[
    "grafana.localhost",
    "grafana2.localhost",
    "app.localhost",
    "console.localhost",
];

/// A route trusting the partner issuer's tokens, a second one on another
/// host trusting them too, an ordinary route and the console, all under one
/// `cookie_domain`.
fn scoped_config(up: &str, jwks_url: &str) -> String {
    format!(
        "address: 127.0.0.1:{{port}}
idp_provider: local
cookie_secret: {SECRET}
shared_secret: {SECRET}
cookie_domain: localhost
local_users:
  - username: alice
    email: alice@example.com
    groups: [admins]
    password_hash: '{hash}'
identity_providers:
  partner:
    issuer: {PARTNER}
    jwks_url: {jwks_url}
    audiences: [grafana]
    supported_algs: [ES256]
console:
  from: https://console.localhost
  policy:
    allow:
      and:
        - groups: {{has: admins}}
routes:
  - from: https://grafana.localhost
    to: http://{up}
    bearer_token_format: jwt
    identity_providers: [partner]
    allow_any_authenticated_user: true
  - from: https://grafana2.localhost
    to: http://{up}
    bearer_token_format: jwt
    identity_providers: [partner]
    allow_any_authenticated_user: true
  - from: https://app.localhost
    to: http://{up}
    allow_any_authenticated_user: true
",
        hash = hash("wonderland"),
    )
}

/// Posts `token` to grafana's token hand-off, as the embedding page would.
async fn hand_over(gh: &Gatehouse, token: &str) -> reqwest::Response {
    let origin = gh.url("grafana.localhost", "");
    gh.client(SCOPED_HOSTS)
        .post(gh.url("grafana.localhost", "/.pomerium/sign_in_with_token"))
        .header("Origin", &origin)
        .form(&[
            ("token", token),
            ("pomerium_redirect_uri", &format!("{origin}/d/abc")),
        ])
        .send()
        .await
        .unwrap()
}

async fn get_with(gh: &Gatehouse, host: &str, path: &str, cookie: &str) -> reqwest::Response {
    gh.client(SCOPED_HOSTS)
        .get(gh.url(host, path))
        .header("Cookie", cookie)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
}

fn partner_token(issuer: &TestIssuer, exp: u64) -> String {
    issuer.token(&json!({
        "iss": PARTNER, "aud": "grafana", "sub": "mallory", "email": "mallory@partner.test",
        "groups": ["admins"], "iat": unix_now(), "exp": exp,
    }))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_made_session_stays_on_its_route_and_host() {
    let up = echo_upstream("up").await;
    let issuer = TestIssuer::start().await;
    let gh = Gatehouse::start(&scoped_config(&up.addr.to_string(), &issuer.jwks_url));
    let resp = hand_over(&gh, &partner_token(&issuer, unix_now() + 600)).await;
    assert_eq!(resp.status(), 303, "{}", gh.log_text());
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        !set.contains("Domain="),
        "a token-made session's cookie is host-only: {set}"
    );
    let max_age: u64 = set
        .split("Max-Age=")
        .nth(1)
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(max_age <= 600, "the cookie ends with the token: {set}");
    let cookie = set_cookie_pair(&resp, "_pomerium").unwrap();

    // Where the token is accepted, the session works.
    let resp = get_with(&gh, "grafana.localhost", "/d/abc", &cookie).await;
    assert_eq!(resp.status(), 200);
    let me = get_with(&gh, "grafana.localhost", "/.pomerium/user", &cookie).await;
    assert_eq!(me.status(), 200);

    // The same cookie value carried anywhere else is no session at all
    // (the sign-in answer, never an error that says why).
    for (host, path) in [
        ("app.localhost", "/"),
        ("grafana2.localhost", "/"),
        ("console.localhost", "/api/v1/routes"),
        ("console.localhost", "/api/v1/settings"),
        ("app.localhost", "/.pomerium/user"),
    ] {
        let resp = get_with(&gh, host, path, &cookie).await;
        assert_eq!(resp.status(), 401, "{host}{path}");
        let body = resp.text().await.unwrap();
        assert!(!body.contains("partner"), "{body}");
    }
    // As a page load, the same: off to sign in.
    let resp = gh
        .client(SCOPED_HOSTS)
        .get(gh.url("app.localhost", "/"))
        .header("Cookie", &cookie)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .contains("/.pomerium/sign_in")
    );

    // The token itself as a bearer token on the console: not an identity there.
    let token = partner_token(&issuer, unix_now() + 600);
    let resp = gh
        .client(SCOPED_HOSTS)
        .get(gh.url("console.localhost", "/api/v1/routes"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // A main sign-in's session, by contrast, opens every host and the console.
    let c = gh.browser(SCOPED_HOSTS, false);
    let resp = submit_login(&c, &login_url(&gh, "app.localhost"), "alice", "wonderland").await;
    let main = set_cookie_pair(&resp, "_pomerium").unwrap();
    for (host, path) in [
        ("app.localhost", "/"),
        ("grafana.localhost", "/"),
        ("console.localhost", "/api/v1/routes"),
    ] {
        let resp = get_with(&gh, host, path, &main).await;
        assert_eq!(resp.status(), 200, "{host}{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_made_session_ends_when_its_token_does() {
    let up = echo_upstream("up").await;
    let issuer = TestIssuer::start().await;
    let gh = Gatehouse::start(&scoped_config(&up.addr.to_string(), &issuer.jwks_url));
    let exp = unix_now() + 3;
    let resp = hand_over(&gh, &partner_token(&issuer, exp)).await;
    assert_eq!(resp.status(), 303, "{}", gh.log_text());
    let cookie = set_cookie_pair(&resp, "_pomerium").unwrap();
    let resp = get_with(&gh, "grafana.localhost", "/", &cookie).await;
    assert_eq!(resp.status(), 200);
    while unix_now() <= exp {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Past the token's `exp` (and although bearer checks allow 60 s of
    // leeway), the session is over: not `cookie_expire` (14 h) later.
    let resp = get_with(&gh, "grafana.localhost", "/", &cookie).await;
    assert_eq!(resp.status(), 401);
    // A token already past its `exp` (inside the bearer leeway) makes no
    // usable session at all.
    let resp = hand_over(&gh, &partner_token(&issuer, unix_now() - 5)).await;
    if let Some(cookie) = set_cookie_pair(&resp, "_pomerium") {
        let resp = get_with(&gh, "grafana.localhost", "/", &cookie).await;
        assert_eq!(resp.status(), 401);
    }
}

// ------------------------------------------------------------ hand-offs

const HANDOFF_HOSTS: &[&str] = &["authenticate.localhost", "app.localhost", "app2.localhost"];

fn handoff_config(up: &str) -> String {
    format!(
        "address: 127.0.0.1:{{port}}
authenticate_service_url: https://authenticate.localhost:{{port}}
idp_provider: local
cookie_secret: {SECRET}
shared_secret: {SECRET}
local_users:
  - username: alice
    email: alice@example.com
    password_hash: '{hash}'
  - username: mallory
    email: mallory@example.com
    password_hash: '{hash}'
routes:
  - from: https://app.localhost
    to: http://{up}
    allow_any_authenticated_user: true
  - from: https://app2.localhost
    to: http://{up}
    allow_any_authenticated_user: true
",
        hash = hash("wonderland"),
    )
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", resp.status()))
        .to_str()
        .unwrap()
        .to_string()
}

async fn get_page(c: &reqwest::Client, url: &str) -> reqwest::Response {
    c.get(url)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
}

/// A browser signs in as `user` starting from app.localhost, up to the
/// hand-off URL on app.localhost (not visited yet).
async fn hand_off_url(gh: &Gatehouse, c: &reqwest::Client, user: &str) -> String {
    let resp = get_page(c, &gh.url("app.localhost", "/private")).await;
    assert_eq!(resp.status(), 302);
    let login = location(&resp);
    assert!(login.contains("pomerium_binding="), "{login}");
    let resp = submit_login(c, &login, user, "wonderland").await;
    assert_eq!(resp.status(), 302, "{}", gh.log_text());
    let handoff = location(&resp);
    assert!(
        handoff.starts_with(&gh.url(
            "app.localhost",
            "/.pomerium/callback/?pomerium_session_encrypted="
        )),
        "{handoff}"
    );
    handoff
}

/// Who the browser is on app.localhost (`None`: signed out).
async fn who(gh: &Gatehouse, c: &reqwest::Client) -> Option<String> {
    let resp = c
        .get(gh.url("app.localhost", "/.pomerium/user"))
        .send()
        .await
        .unwrap();
    if resp.status() != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    v["sub"].as_str().map(String::from)
}

#[tokio::test(flavor = "multi_thread")]
async fn hand_offs_go_only_to_https_origins_a_route_serves() {
    let up = echo_upstream("up").await;
    let gh = Gatehouse::start(&handoff_config(&up.addr.to_string()));
    let c = gh.browser(HANDOFF_HOSTS, false);
    let other_port = free_port();
    for target in [
        gh.http_url("app2.localhost", "/"),
        format!("http://app2.localhost:{other_port}/"),
        format!("https://app2.localhost:{other_port}/"),
        "http://app2.localhost/".to_string(),
        "https://evil.example/".to_string(),
    ] {
        let url = gh.url(
            "authenticate.localhost",
            &format!(
                "/.pomerium/sign_in?pomerium_redirect_uri={}",
                url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
            ),
        );
        let resp = get_page(&c, &url).await;
        assert_eq!(resp.status(), 400, "{target}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hand_off_works_only_in_the_browser_that_started_it() {
    let up = echo_upstream("up").await;
    let gh = Gatehouse::start(&handoff_config(&up.addr.to_string()));

    // The legitimate flow: the browser that started it lands signed in.
    let victim = gh.browser(HANDOFF_HOSTS, false);
    let handoff = hand_off_url(&gh, &victim, "alice").await;
    let resp = get_page(&victim, &handoff).await;
    assert_eq!(resp.status(), 302, "{}", gh.log_text());
    assert_eq!(location(&resp), gh.url("app.localhost", "/private"));
    assert_eq!(who(&gh, &victim).await.as_deref(), Some("alice"));

    // A captured hand-off replayed in another browser is refused (and used
    // up: the victim's own browser cannot use it after either).
    let victim = gh.browser(HANDOFF_HOSTS, false);
    let handoff = hand_off_url(&gh, &victim, "alice").await;
    let thief = gh.browser(HANDOFF_HOSTS, false);
    let resp = get_page(&thief, &handoff).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(who(&gh, &thief).await, None);
    assert_eq!(get_page(&victim, &handoff).await.status(), 400);

    // Login CSRF: the attacker's own hand-off link, opened in the victim's
    // browser (which has a sign-in of its own pending), does not sign the
    // victim in as the attacker.
    let attacker = gh.browser(HANDOFF_HOSTS, false);
    let link = hand_off_url(&gh, &attacker, "mallory").await;
    let victim = gh.browser(HANDOFF_HOSTS, false);
    let pending = get_page(&victim, &gh.url("app.localhost", "/")).await;
    assert_eq!(pending.status(), 302);
    let resp = get_page(&victim, &link).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(who(&gh, &victim).await, None);

    // The attacker chooses the binding (their own pending sign-in) and sends
    // the victim, signed in on the authenticate host, through sign-in: the
    // hand-off made for the victim fails in the victim's browser and is used
    // up there, so the attacker cannot replay it.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let victim = gh.browser_with_jar(HANDOFF_HOSTS, jar.clone(), true);
    let resp = submit_login(
        &victim,
        &login_url(&gh, "authenticate.localhost"),
        "alice",
        "wonderland",
    )
    .await;
    assert_eq!(resp.status(), 200, "signed in on the authenticate host");
    let attacker = gh.browser(HANDOFF_HOSTS, false);
    let start = location(&get_page(&attacker, &gh.url("app.localhost", "/")).await);
    // The victim's browser, one step at a time (same cookies).
    let victim_step = gh.browser_with_jar(HANDOFF_HOSTS, jar, false);
    let resp = get_page(&victim_step, &start).await;
    assert_eq!(resp.status(), 302);
    let captured = location(&resp);
    assert!(
        captured.contains("pomerium_session_encrypted="),
        "{captured}"
    );
    assert_eq!(get_page(&victim_step, &captured).await.status(), 400);
    assert_eq!(get_page(&attacker, &captured).await.status(), 400);
    assert_eq!(who(&gh, &attacker).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_started_elsewhere_is_bound_before_its_hand_off() {
    let up = echo_upstream("up").await;
    let gh = Gatehouse::start(&handoff_config(&up.addr.to_string()));
    // A bookmark of the sign-in page, straight to the authenticate host: the
    // route host binds the browser on the way, and the user lands signed in.
    let c = gh.browser(HANDOFF_HOSTS, true);
    let target = gh.url("app2.localhost", "/page?x=1");
    let bookmark = gh.url(
        "authenticate.localhost",
        &format!(
            "/.pomerium/sign_in?pomerium_redirect_uri={}",
            url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        ),
    );
    let resp = submit_login(&c, &bookmark, "alice", "wonderland").await;
    assert_eq!(resp.status(), 200, "{}", gh.log_text());
    assert_eq!(resp.url().as_str(), target);
}

/// An upstream that answers every request with these `Set-Cookie` lines.
async fn cookie_setter(cookies: &'static [&'static str]) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let mut head =
                    String::from("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n");
                for c in cookies {
                    head.push_str(&format!("set-cookie: {c}\r\n"));
                }
                head.push_str("\r\nok");
                let _ = s.write_all(head.as_bytes()).await;
            });
        }
    });
    (port, task)
}

/// Found by an attacker's review: a co-tenant upstream (a public route on
/// the same cookie domain) must not plant, replace or delete gatehouse's
/// cookies in a browser (a planted session or pending-sign-in cookie would
/// sign the victim in as the attacker), and a request that carries two
/// good sessions is signed out rather than taking the first.
#[tokio::test(flavor = "multi_thread")]
async fn gatehouse_cookies_are_gatehouses_alone() {
    let up = echo_upstream("up").await;
    let (planter, task) = cookie_setter(&[
        "_pomerium=planted; Domain=localhost; Path=/private; Secure; HttpOnly",
        "_pomerium_pending_0123456789=nonce; Domain=localhost; Path=/.pomerium/callback",
        "_pomerium_csrf_x=1",
        "_pomerium_authenticate=x; Max-Age=0",
        " _pomerium =spaced",
        "app=kept; Path=/",
        "_pomeriumish=kept",
    ])
    .await;
    let gh = Gatehouse::start(&format!(
        "{}  - from: https://pub.localhost
    to: http://127.0.0.1:{planter}
    allow_public_unauthenticated_access: true
",
        handoff_config(&up.addr.to_string())
    ));
    let mut hosts = HANDOFF_HOSTS.to_vec();
    hosts.push("pub.localhost");
    let c = gh.client(&hosts);
    let resp = c.get(gh.url("pub.localhost", "/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let set: Vec<&str> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(set, ["app=kept; Path=/", "_pomeriumish=kept"]);
    task.abort();

    // Two browsers signed in as two users; one request with both cookies.
    let mut pairs = Vec::new();
    for user in ["alice", "mallory"] {
        let b = gh.browser(&hosts, false);
        let handoff = hand_off_url(&gh, &b, user).await;
        let resp = get_page(&b, &handoff).await;
        assert_eq!(resp.status(), 302, "{}", gh.log_text());
        pairs.push(set_cookie_pair(&resp, "_pomerium").expect("session cookie"));
    }
    let user_with = |cookie: String| {
        let c = gh.client(&hosts);
        let url = gh.url("app.localhost", "/.pomerium/user");
        async move {
            let resp = c.get(url).header("cookie", cookie).send().await.unwrap();
            let text = resp.text().await.unwrap();
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["sub"].as_str().map(String::from))
        }
    };
    assert_eq!(user_with(pairs[0].clone()).await.as_deref(), Some("alice"));
    assert_eq!(
        user_with(format!("{}; {}", pairs[1], pairs[0])).await,
        None,
        "two sessions: signed out"
    );
    assert_eq!(
        user_with(format!("{}; {}", pairs[0], pairs[0]))
            .await
            .as_deref(),
        Some("alice"),
        "the same session twice is one session"
    );
}

/// Found by an attacker's review: a session of the built-in directory is
/// only as good as the directory is now. Changing a user's groups applies
/// to the next request; removing the user signs every session out (it used
/// to last until `cookie_expire`).
#[tokio::test(flavor = "multi_thread")]
async fn removing_a_user_ends_their_sessions() {
    let up = echo_upstream("up").await;
    let config = handoff_config(&up.addr.to_string());
    let gh = Gatehouse::start(&config);
    let b = gh.browser(HANDOFF_HOSTS, false);
    let handoff = hand_off_url(&gh, &b, "mallory").await;
    assert_eq!(get_page(&b, &handoff).await.status(), 302);
    assert_eq!(who(&gh, &b).await.as_deref(), Some("mallory"));

    let groups = |c: &reqwest::Client| {
        let url = gh.url("app.localhost", "/.pomerium/user");
        let c = c.clone();
        async move {
            let v: serde_json::Value =
                serde_json::from_str(&c.get(url).send().await.unwrap().text().await.unwrap())
                    .unwrap();
            v["groups"].clone()
        }
    };
    assert_eq!(groups(&b).await, serde_json::json!([]));
    let promoted = config.replace(
        "email: mallory@example.com",
        "email: mallory@example.com\n    groups: [admins]",
    );
    let before = gh.log_count("configuration reloaded");
    gh.write_config(&promoted);
    assert!(
        gh.wait_log("configuration reloaded", before),
        "{}",
        gh.log_text()
    );
    assert_eq!(groups(&b).await, serde_json::json!(["admins"]));

    let removed = promoted.replace("  - username: mallory", "  - username: nobody-else");
    let before = gh.log_count("configuration reloaded");
    gh.write_config(&removed);
    assert!(
        gh.wait_log("configuration reloaded", before),
        "{}",
        gh.log_text()
    );
    assert_eq!(who(&gh, &b).await, None, "the removed user is signed out");
}

/// Found by an attacker's review: after a hand-off, the browser goes back
/// only to the callback's own origin (not another port or plain http of
/// the same host).
#[tokio::test(flavor = "multi_thread")]
async fn a_hand_off_returns_only_to_its_own_origin() {
    let up = echo_upstream("up").await;
    let gh = Gatehouse::start(&handoff_config(&up.addr.to_string()));
    let b = gh.browser(HANDOFF_HOSTS, false);
    let handoff = hand_off_url(&gh, &b, "alice").await;
    let (base, _) = handoff.split_once("&pomerium_redirect_uri=").unwrap();
    for elsewhere in [
        "http://app.localhost:1/anything?x".to_string(),
        format!("http://app.localhost:{}/private", gh.port),
        "https://app.localhost:1/private".to_string(),
        "https://app2.localhost/private".to_string(),
    ] {
        let enc: String = url::form_urlencoded::byte_serialize(elsewhere.as_bytes()).collect();
        let resp = get_page(&b, &format!("{base}&pomerium_redirect_uri={enc}")).await;
        assert_eq!(resp.status(), 400, "{elsewhere}");
    }
    // The hand-off itself was not used up by the refusals.
    let resp = get_page(&b, &handoff).await;
    assert_eq!(resp.status(), 302, "{}", gh.log_text());
    assert_eq!(location(&resp), gh.url("app.localhost", "/private"));
}

/// Found by an attacker's review: a cookie header with a byte over 0x7f (a
/// co-tenant on the cookie domain can set such a cookie, and the browser
/// sends it in the same `Cookie` header as gatehouse's) was passed on whole,
/// gatehouse's session handle included, because only valid header text was
/// looked at. Now every value is read as bytes.
#[tokio::test(flavor = "multi_thread")]
async fn the_session_cookie_never_reaches_an_upstream_whatever_else_the_header_holds() {
    let up = echo_upstream("up").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
insecure_server: true
routes:
  - from: https://pub.localhost
    to: http://{}
    allow_public_unauthenticated_access: true
",
        up.addr
    ));
    let (status, body) = raw_get(
        gh.port,
        "pub.localhost",
        "/",
        "Cookie: _pomerium=sealed-handle; x=\u{e9}\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("sealed-handle"), "{body}");
    assert!(body.contains("x="), "the other cookie stays: {body}");
}

/// What instances share in the store is sealed: whoever can write to
/// Redis cannot make an instance answer an ACME CA's HTTP-01 check with a
/// key authorization of their own (and so obtain a certificate for a host
/// gatehouse serves). Only an answer sealed with the shared secret for its
/// own token is served; a plain one, or one sealed for another token, is
/// not.
#[tokio::test(flavor = "multi_thread")]
async fn shared_acme_answers_are_served_only_when_sealed_for_their_token() {
    const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let redis = Redis::start();
    let http = free_port();
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
shared_secret: {SECRET}
cookie_secret: {SECRET}
databroker_storage_type: redis
databroker_storage_connection_string: {redis}
http_redirect_addr: 127.0.0.1:{http}
autocert: true
autocert_ca: https://127.0.0.1:1/dir
routes:
  - from: https://app.localhost
    response: {{status: 200, body: app}}
    allow_public_unauthenticated_access: true
",
        redis = redis.url()
    ));
    let sealer = gatehouse_identity::cookie::Sealer::from_base64(SECRET).unwrap();
    let seal = |token: &str, answer: &str| {
        sealer.seal(
            &format!("gatehouse autocert http-01 {token}"),
            answer.as_bytes(),
        )
    };
    let put = |token: &str, value: &str| {
        let reply = redis.command(&[
            "SET",
            &format!("gatehouse:shared:acme-http01:{token}"),
            value,
            "PX",
            "600000",
        ]);
        assert_eq!(reply, "+OK\r\n");
    };
    let get = |token: &str| {
        let path = format!("/.well-known/acme-challenge/{token}");
        async move { raw_get(http, "app.localhost", &path, "").await }
    };
    // The genuine article, as another instance shares it: served.
    put("good", &seal("good", "good.thumbprint"));
    assert_eq!(get("good").await, (200, "good.thumbprint".to_string()));
    // Planted in plain text: not an answer.
    put("plain", "plain.attacker");
    let (status, body) = get("plain").await;
    assert_ne!(status, 200, "{body}");
    assert!(!body.contains("attacker"), "{body}");
    // A sealed answer moved to another token's key, or sealed for a token
    // but holding another's authorization: not answers either.
    put("moved", &seal("good", "good.thumbprint"));
    put("mixed", &seal("mixed", "other.thumbprint"));
    for token in ["moved", "mixed"] {
        let (status, body) = get(token).await;
        assert_ne!(status, 200, "{token}: {body}");
        assert!(!body.contains("thumbprint"), "{token}: {body}");
    }
    drop(gh);
}

//! Forward-auth with the real front proxies from Debian: nginx
//! (`auth_request`, `auth_request_set`, `error_page 401`) and Caddy
//! (`forward_auth`) in front of an app, gatehouse deciding. Sign-in runs
//! through the real oidc-provider; the app receives the assertion and the
//! `X-Auth-Request-*` headers the proxy copied from gatehouse's answer.
//! The configurations are the ones in examples/ (nginx-forward-auth.conf,
//! Caddyfile.forward-auth), with test ports and paths filled in.

mod common;

use common::*;
use serde_json::Value;

const CA_FILE: &str = "ca.pem";

struct Setup {
    gh: Gatehouse,
    front: FrontProxy,
    _idp: Idp,
    _up: Upstream,
    certs: tempfile::TempDir,
}

/// Writes a CA and an `app.localhost` certificate for the front proxy.
fn certs() -> tempfile::TempDir {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = ca.leaf(&["app.localhost"]);
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    std::fs::write(dir.path().join(CA_FILE), ca.pem()).unwrap();
    dir
}

/// The example file with the test's ports and paths.
fn example(name: &str, vars: &[(&str, String)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    substitute(&std::fs::read_to_string(&path).unwrap(), vars)
}

/// Replaces every key in one pass over the original text (at each position
/// the first key in `vars` that matches wins), so a value written in never
/// matches a later key: an upstream on port 44331 must not become `:443…`.
fn substitute(text: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while let Some(c) = rest.chars().next() {
        for (k, v) in vars {
            if let Some(after) = rest.strip_prefix(k) {
                out.push_str(v);
                rest = after;
                continue 'scan;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[test]
fn substitution_never_rewrites_what_it_wrote() {
    let vars = [
        ("127.0.0.1:3000", "127.0.0.1:44331".to_string()),
        (":443", ":35835".to_string()),
    ];
    assert_eq!(
        substitute("a:443 { to 127.0.0.1:3000 }", &vars),
        "a:35835 { to 127.0.0.1:44331 }"
    );
}

async fn setup(kind: &str, idp_args: &[&str]) -> Setup {
    let up = echo_upstream("app").await;
    let front_port = free_port();
    let gh_port = free_port();
    let callback = format!("https://app.localhost:{front_port}/oauth2/callback");
    let logout = format!("https://app.localhost:{front_port}/.pomerium/signed_out");
    let idp = Idp::start_with(0, &[callback], &[logout], idp_args);
    let yaml = format!(
        "address: 127.0.0.1:{{port}}
insecure_server: true
idp_provider: oidc
idp_provider_url: {issuer}
idp_client_id: gatehouse
idp_client_secret: gatehouse-secret
idp_scopes: openid profile email groups offline_access
cookie_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
shared_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
jwt_claims_headers: {{X-Pomerium-Claim-Email: email}}
routes:
  - from: https://app.localhost:{front_port}
    prefix: /admin
    to: http://{up}
    policy: {{allow: {{and: [{{groups: {{has: nobody}}}}]}}}}
  - from: https://app.localhost:{front_port}
    prefix: /office
    to: http://{up}
    policy: {{allow: {{and: [{{source_ip: 192.0.2.0/24}}]}}}}
  - from: https://app.localhost:{front_port}
    to: http://{up}
    allowed_domains: [example.com]
",
        issuer = idp.issuer,
        up = up.addr
    );
    let gh = Gatehouse::start_on(gh_port, tempfile::tempdir().unwrap(), &yaml);
    let certs = certs();
    // One pass over the example: certificate paths are taken whole before
    // the host name inside them could match.
    let vars = [
        (
            "/etc/ssl/app.example.com.pem",
            certs.path().join("cert.pem").display().to_string(),
        ),
        (
            "/etc/ssl/app.example.com.key",
            certs.path().join("key.pem").display().to_string(),
        ),
        ("app.example.com", "app.localhost".to_string()),
        ("127.0.0.1:8080", format!("127.0.0.1:{gh_port}")),
        ("127.0.0.1:3000", up.addr.to_string()),
        ("listen 443", format!("listen 127.0.0.1:{front_port}")),
        (":443", format!(":{front_port}")),
    ];
    let front = match kind {
        "nginx" => FrontProxy::nginx(front_port, &example("nginx-forward-auth.conf", &vars)),
        _ => {
            let global = format!(
                "{{\n  admin off\n  auto_https disable_redirects\n  skip_install_trust\n  http_port {}\n  https_port {front_port}\n}}\n",
                free_port()
            );
            FrontProxy::caddy(
                front_port,
                &format!("{global}{}", example("Caddyfile.forward-auth", &vars)),
            )
        }
    };
    Setup {
        gh,
        front,
        _idp: idp,
        _up: up,
        certs,
    }
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("https://app.localhost:{}{path}", self.front.port)
    }

    /// A browser-like client for the front proxy (trusting its CA).
    fn browser(&self, follow: bool) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(
            &std::fs::read(self.certs.path().join(CA_FILE)).unwrap(),
        )
        .unwrap();
        reqwest::Client::builder()
            .add_root_certificate(ca)
            .resolve(
                "app.localhost",
                std::net::SocketAddr::from(([127, 0, 0, 1], self.front.port)),
            )
            .cookie_store(true)
            .redirect(if follow {
                reqwest::redirect::Policy::limited(20)
            } else {
                reqwest::redirect::Policy::none()
            })
            .no_proxy()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap()
    }

    fn front_log(&self) -> String {
        let mut out = String::new();
        for f in ["error.log", "caddy.log"] {
            out.push_str(
                &std::fs::read_to_string(self.front.dir.path().join(f)).unwrap_or_default(),
            );
        }
        format!("front proxy:\n{out}\ngatehouse:\n{}", self.gh.log_text())
    }
}

async fn page(c: &reqwest::Client, url: &str) -> reqwest::Response {
    c.get(url)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
}

/// Signs in through the front proxy and the IdP; returns the client and
/// the app's echo of the first page.
async fn sign_in(s: &Setup) -> (reqwest::Client, Value) {
    let c = s.browser(true);
    let resp = page(&c, &s.url("/hello?x=1")).await;
    assert_eq!(resp.status(), 200, "{}", s.front_log());
    assert_eq!(resp.url().as_str(), s.url("/hello?x=1"));
    let echo: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    (c, echo)
}

async fn verify_assertion(s: &Setup, token: &str) -> gatehouse_verify::Identity {
    let verifier = gatehouse_verify::Verifier::builder(gatehouse_verify::Keys::jwks_url(
        s.url("/.well-known/pomerium/jwks.json"),
    ))
    .ca_pem(std::fs::read(s.certs.path().join(CA_FILE)).unwrap())
    .issuer("app.localhost")
    .audience("app.localhost")
    .build()
    .unwrap();
    verifier.verify(token).await.unwrap()
}

async fn full_flow(kind: &str) {
    let s = setup(kind, &[]).await;

    // Not signed in: a page navigation is sent to sign in, back to the
    // original URL; an API call gets 401 with the sign-in URL.
    let c = s.browser(false);
    let resp = page(&c, &s.url("/hello?x=1")).await;
    assert_eq!(resp.status(), 302, "{}", s.front_log());
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let expected = format!(
        "{}/.pomerium/sign_in?pomerium_redirect_uri={}",
        s.url(""),
        url::form_urlencoded::byte_serialize(s.url("/hello?x=1").as_bytes()).collect::<String>()
    );
    assert_eq!(location, expected);
    let api = c
        .get(s.url("/api"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);

    // Sign in through the IdP: the app gets the request with the identity.
    let (c, echo) = sign_in(&s).await;
    assert_eq!(echo["path"], "/hello");
    let h = |name: &str| echo["headers"][name][0].as_str().unwrap_or("").to_string();
    assert_eq!(h("x-auth-request-email"), "alice@example.com", "{echo}");
    assert_eq!(h("x-auth-request-user"), "alice");
    assert_eq!(h("x-auth-request-groups"), "staff,admins");
    assert_eq!(h("x-pomerium-claim-email"), "alice@example.com");
    let who = verify_assertion(&s, &h("x-pomerium-jwt-assertion")).await;
    assert_eq!(who.email, "alice@example.com");
    assert_eq!(who.groups, ["staff", "admins"]);
    // gatehouse's cookie never reaches the app (the examples strip it).
    let leaked = h("cookie").split(';').any(|c| {
        c.trim()
            .strip_prefix("_pomerium=")
            .is_some_and(|v| !v.is_empty())
    });
    assert!(!leaked, "{echo}");

    // A forged assertion from the client is replaced, never passed on.
    let resp = c
        .get(s.url("/again"))
        .header("X-Pomerium-Jwt-Assertion", "forged")
        .send()
        .await
        .unwrap();
    let echo: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_ne!(echo["headers"]["x-pomerium-jwt-assertion"][0], "forged");
    assert_eq!(
        echo["headers"]["x-pomerium-jwt-assertion"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // The policy of the matching route decides: denied by group, and by
    // source address (the client's, from the proxy's X-Forwarded-For).
    let resp = page(&c, &s.url("/admin/users")).await;
    assert_eq!(resp.status(), 403, "{}", s.front_log());
    let resp = page(&c, &s.url("/office")).await;
    assert_eq!(resp.status(), 403);
    // The decision's log line may reach the file a moment after the answer.
    let logged = s.gh.wait_log("\"path\":\"/admin/users\"", 0);
    assert!(logged, "{}", s.gh.log_text());

    // A tampered cookie is "signed out", never an error.
    let plain = s.browser(false);
    let resp = plain
        .get(s.url("/hello"))
        .header("Cookie", "_pomerium=tampered")
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Signing out through the proxy ends the session.
    let (resp, _) = sign_out(&c, &s.url("")).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let resp = c
        .get(s.url("/hello"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "{}", s.front_log());
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_auth_request_signs_in_authorizes_and_passes_identity() {
    full_flow("nginx").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn caddy_forward_auth_signs_in_authorizes_and_passes_identity() {
    full_flow("caddy").await;
}

/// oauth2-proxy's pain: behind `auth_request`, a token refresh must not
/// depend on a new cookie reaching the browser. gatehouse's cookie is a
/// handle to the server-side session, so a refresh changes nothing the
/// browser holds: requests keep working, the provider sees one refresh.
#[tokio::test(flavor = "multi_thread")]
async fn token_refresh_behind_nginx_needs_no_new_cookie() {
    let s = setup("nginx", &["--access-token-ttl", "2"]).await;
    let (c, _) = sign_in(&s).await;
    // Past the 10 s between refreshes and the token's lifetime.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let requests = (0..6).map(|i| {
        let c = c.clone();
        let url = s.url(&format!("/r{i}"));
        async move { c.get(url).send().await.unwrap() }
    });
    for resp in futures_util::future::join_all(requests).await {
        assert_eq!(resp.status(), 200, "{}", s.front_log());
        assert!(resp.headers().get("set-cookie").is_none());
    }
    assert_eq!(
        s.gh.log_count("refreshed session tokens"),
        1,
        "{}",
        s.gh.log_text()
    );
}

/// Only the proxies in `forward_auth_trusted_sources` may ask; a direct
/// question needs the original request described.
#[tokio::test(flavor = "multi_thread")]
async fn forward_auth_questions_are_trusted_only_from_configured_peers() {
    let s = setup("nginx", &[]).await;
    let direct = reqwest::Client::builder().no_proxy().build().unwrap();
    let ask = |path: &'static str| {
        direct
            .get(format!("http://127.0.0.1:{}{path}", s.gh.port))
            .header("Accept", "application/json")
    };
    // Loopback is trusted by default: a described request gets an answer.
    let resp = ask("/oauth2/auth")
        .header("X-Original-URL", s.url("/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .contains("/.pomerium/sign_in?pomerium_redirect_uri=")
    );
    // A question about `/robots.txt` is answered as any other: a proxy in
    // front reads a 200 as "let it through" (proxied requests get a
    // robots.txt answer of gatehouse's own instead).
    for (path, header, accept) in [
        ("/oauth2/auth", "X-Original-URL", "*/*"),
        (
            "/.pomerium/forward_auth",
            "X-Forwarded-Uri",
            "application/json",
        ),
    ] {
        let value = if header == "X-Original-URL" {
            s.url("/robots.txt")
        } else {
            "/robots.txt".into()
        };
        let resp = direct
            .get(format!("http://127.0.0.1:{}{path}", s.gh.port))
            .header("Accept", accept)
            .header(
                "X-Forwarded-Host",
                s.url("/").split('/').nth(2).unwrap().to_string(),
            )
            .header("X-Forwarded-Proto", "https")
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path}");
    }
    // Traefik style, for a host no route serves: 403.
    let resp = ask("/.pomerium/forward_auth")
        .header("X-Forwarded-Host", "nowhere.localhost")
        .header("X-Forwarded-Uri", "/")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // Nothing described: 400 that says what to send.
    let resp = ask("/.pomerium/forward_auth").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("X-Original-URL"));

    // Trust only another network: loopback questions are refused.
    let text = std::fs::read_to_string(&s.gh.config).unwrap();
    let after = s.gh.log_count("configuration reloaded");
    s.gh.write_config(&text.replace(
        "insecure_server: true\n",
        "insecure_server: true\nforward_auth_trusted_sources: [192.0.2.0/24]\n",
    ));
    assert!(
        s.gh.wait_log("configuration reloaded", after),
        "{}",
        s.gh.log_text()
    );
    let resp = ask("/.pomerium/forward_auth")
        .header("X-Original-URL", s.url("/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("forward_auth_trusted_sources")
    );
}

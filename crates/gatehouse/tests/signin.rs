//! Sign-in with the built-in user directory, end to end over HTTPS: the
//! redirect, the login form, sessions, the hand-off between hosts, sign-out,
//! and the attacks on each step.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn config(upstream: &str, extra: &str) -> String {
    format!(
        "address: 127.0.0.1:{{port}}
idp_provider: local
cookie_secret: {SECRET}
shared_secret: {SECRET}
login_throttle_failures: 3
local_users:
  - username: alice
    email: alice@example.com
    name: Alice Liddell
    groups: [staff, admins]
    password_hash: '{hash}'
{extra}routes:
  - {{from: 'https://app.localhost', to: 'http://{upstream}', allow_any_authenticated_user: true}}
  - {{from: 'https://other.localhost', to: 'http://{upstream}', allow_any_authenticated_user: true}}
  - {{from: 'https://policy.localhost', to: 'http://{upstream}', allowed_domains: [example.com]}}
  - {{from: 'https://public.localhost', to: 'http://{upstream}', allow_public_unauthenticated_access: true}}
",
        hash = hash("wonderland")
    )
}

fn browser(gh: &Gatehouse) -> reqwest::Client {
    gh.browser(
        &[
            "app.localhost",
            "other.localhost",
            "policy.localhost",
            "public.localhost",
            "auth.localhost",
        ],
        false,
    )
}

async fn get_html(c: &reqwest::Client, url: &str) -> reqwest::Response {
    c.get(url)
        .header("Accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_redirect_to_sign_in_and_apis_get_401() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string(), ""));
    let c = browser(&gh);
    let resp = get_html(&c, &gh.url("app.localhost", "/dash?x=1&y=2")).await;
    assert_eq!(resp.status(), 302);
    let expected = format!(
        "https://app.localhost:{p}/.pomerium/sign_in?pomerium_redirect_uri=https%3A%2F%2Fapp.localhost%3A{p}%2Fdash%3Fx%3D1%26y%3D2",
        p = gh.port
    );
    assert_eq!(location(&resp), expected);
    for accept in ["application/json", "text/plain"] {
        let resp = c
            .get(gh.url("app.localhost", "/api"))
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            401,
            "clients that prefer {accept} never get a redirect"
        );
        assert!(resp.headers().get("x-pomerium-sign-in-url").is_some());
    }
    // Public routes stay public.
    assert_eq!(
        get_html(&c, &gh.url("public.localhost", "/"))
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_lands_on_the_original_url() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string(), ""));
    let c = browser(&gh);
    let resp = get_html(&c, &gh.url("app.localhost", "/dash?x=1")).await;
    let resp = submit_login(&c, &location(&resp), "alice", "wonderland").await;
    assert_eq!(resp.status(), 302, "{:?}", resp.text().await);
    assert_eq!(location(&resp), gh.url("app.localhost", "/dash?x=1"));
    let cookie = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("_pomerium="), "{cookie}");
    for attr in ["Path=/", "Secure", "HttpOnly", "Max-Age="] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(cookie.len() < 200, "the cookie is a small handle: {cookie}");

    let session = cookie.split(';').next().unwrap().to_string();
    let resp = c
        .get(gh.url("app.localhost", "/dash?x=1"))
        .header("Cookie", format!("theme=dark; {session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(echo["path"], "/dash");
    assert_eq!(
        echo["headers"]["cookie"],
        serde_json::json!(["theme=dark"]),
        "only the app's own cookies reach it"
    );

    let me: Value = get_json(&c, &gh.url("app.localhost", "/.pomerium/user")).await;
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["name"], "Alice Liddell");
    assert_eq!(me["groups"], serde_json::json!(["staff", "admins"]));
    let page = get_html(&c, &gh.url("app.localhost", "/.pomerium/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Alice Liddell") && page.contains("Sign out"),
        "{page}"
    );

    // A route with a policy (allowed_domains) lets her in by her domain.
    let resp = get_html(&c, &gh.url("policy.localhost", "/")).await;
    assert_eq!(resp.status(), 302, "each host has its own cookie");
    let resp = submit_login(&c, &location(&resp), "alice", "wonderland").await;
    assert_eq!(location(&resp), gh.url("policy.localhost", "/"));
    let resp = get_html(&c, &gh.url("policy.localhost", "/")).await;
    assert_eq!(resp.status(), 200, "allowed by domain");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_passwords_get_one_message_and_are_throttled() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string(), ""));
    let c = browser(&gh);
    let login = format!(
        "{}/.pomerium/sign_in?pomerium_redirect_uri={}",
        gh.url("app.localhost", ""),
        gh.url("app.localhost", "/")
    );
    let wrong = submit_login(&c, &login, "alice", "nope").await;
    assert_eq!(wrong.status(), 401);
    let wrong = wrong.text().await.unwrap();
    let unknown = submit_login(&c, &login, "mallory", "nope")
        .await
        .text()
        .await
        .unwrap();
    let msg = "Wrong username or password.";
    assert!(
        wrong.contains(msg) && unknown.contains(msg),
        "the same generic message"
    );
    submit_login(&c, &login, "alice", "still wrong").await;
    // Three failures from this address: locked, even with the right password.
    let locked = submit_login(&c, &login, "alice", "wonderland").await;
    assert_eq!(locked.status(), 429);
    // 300 s from the failure, counted in whole seconds.
    let retry: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((299..=300).contains(&retry), "{retry}");
    assert!(
        locked
            .text()
            .await
            .unwrap()
            .contains("Too many failed sign-in attempts. Try again in 5 minutes.")
    );
    assert!(gh.log_text().contains("sign-in failed"));
    assert!(
        !gh.log_text().contains("nope"),
        "passwords never reach the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_and_foreign_cookies_mean_signed_out() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string(), ""));
    let c = gh.client(&["app.localhost"]);
    for cookie in [
        "_pomerium=garbage",
        "_pomerium=",
        "_pomerium=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &format!("_pomerium={}", "A".repeat(8000)),
    ] {
        let resp = c
            .get(gh.url("app.localhost", "/"))
            .header("Accept", "text/html")
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            302,
            "{cookie:.40}: signed out, never an error"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_out_ends_the_session_everywhere() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string(), ""));
    let c = browser(&gh);
    let login = location(&get_html(&c, &gh.url("app.localhost", "/")).await);
    let resp = submit_login(&c, &login, "alice", "wonderland").await;
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        c.get(gh.url("app.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let page = get_html(&c, &gh.url("app.localhost", "/.pomerium/sign_out"))
        .await
        .text()
        .await
        .unwrap();
    let token = form_token(&page);
    // A forged cross-site POST does nothing.
    let forged = c
        .post(gh.url("app.localhost", "/.pomerium/sign_out"))
        .header("Origin", "https://evil.example")
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let resp = c
        .post(gh.url(
            "app.localhost",
            "/.pomerium/sign_out?pomerium_redirect_uri=https%3A%2F%2Fevil.example%2F",
        ))
        .header("Origin", gh.url("app.localhost", ""))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        location(&resp),
        gh.url("app.localhost", "/.pomerium/signed_out"),
        "no open redirect at sign-out"
    );
    assert!(
        resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        get_html(&c, &gh.url("app.localhost", "/")).await.status(),
        302
    );
    // Replaying the old cookie: the session record is gone.
    let replay = gh
        .client(&["app.localhost"])
        .get(gh.url("app.localhost", "/"))
        .header("Accept", "text/html")
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 302);
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_targets_must_be_served_hosts() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string(), ""));
    let c = browser(&gh);
    for target in [
        "https://evil.example/",
        "//evil.example/",
        "javascript:alert(1)",
        "https://app.localhost@evil.example/",
        "/relative",
    ] {
        let url = format!(
            "{}/.pomerium/sign_in?pomerium_redirect_uri={}",
            gh.url("app.localhost", ""),
            url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        );
        assert_eq!(get_html(&c, &url).await.status(), 400, "{target}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_authenticate_host_hands_sessions_to_other_domains() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&config(
        &up.addr.to_string(),
        "authenticate_service_url: https://auth.localhost:{port}\n",
    ));
    let c = browser(&gh);
    // The authenticate host publishes the signing keys too (as Pomerium's
    // control plane): apps may be told either URL.
    let jwks = "/.well-known/pomerium/jwks.json";
    let on_auth = c.get(gh.url("auth.localhost", jwks)).send().await.unwrap();
    assert_eq!(on_auth.status(), 200);
    let on_auth = on_auth.text().await.unwrap();
    let on_app = c.get(gh.url("app.localhost", jwks)).send().await.unwrap();
    assert_eq!(on_auth, on_app.text().await.unwrap());
    assert!(on_auth.contains("\"kty\":\"EC\""), "{on_auth}");
    let resp = get_html(&c, &gh.url("app.localhost", "/a?b=c")).await;
    let login = location(&resp);
    assert!(
        login.starts_with(&gh.url("auth.localhost", "/.pomerium/sign_in?")),
        "{login}"
    );
    let resp = submit_login(&c, &login, "alice", "wonderland").await;
    assert_eq!(resp.status(), 302);
    assert!(
        resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("_pomerium_authenticate=")
    );
    let callback = location(&resp);
    assert!(
        callback.starts_with(&gh.url(
            "app.localhost",
            "/.pomerium/callback/?pomerium_session_encrypted="
        )),
        "{callback}"
    );
    // The return address inside the hand-off cannot be swapped for another site.
    let (base, _) = callback.split_once("&pomerium_redirect_uri=").unwrap();
    for evil in [
        "https%3A%2F%2Fevil.example%2F",
        "https%3A%2F%2Fother.localhost%2F",
    ] {
        let tampered = format!("{base}&pomerium_redirect_uri={evil}");
        assert_eq!(
            c.get(&tampered).send().await.unwrap().status(),
            400,
            "{evil}"
        );
    }
    let resp = c.get(&callback).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(location(&resp), gh.url("app.localhost", "/a?b=c"));
    assert_eq!(
        c.get(gh.url("app.localhost", "/a?b=c"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let me: Value = get_json(&c, &gh.url("app.localhost", "/.pomerium/user")).await;
    let sid = me["sid"].as_str().unwrap();
    assert!(!callback.contains(sid), "no bare session id in a URL");

    // The hand-off works once.
    let replay = gh
        .client(&["app.localhost"])
        .get(&callback)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400, "a used hand-off is refused");
    // ...and only on the host it was made for.
    let moved = callback.replace("app.localhost", "other.localhost");
    assert_eq!(
        gh.client(&["other.localhost"])
            .get(&moved)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    // A second domain: the authenticate host remembers the user, no password again.
    let resp = get_html(&c, &gh.url("other.localhost", "/")).await;
    let resp = get_html(&c, &location(&resp)).await;
    assert_eq!(resp.status(), 302);
    let callback = location(&resp);
    assert!(
        callback.starts_with(&gh.url("other.localhost", "/.pomerium/callback/")),
        "{callback}"
    );
    let resp = c.get(&callback).send().await.unwrap();
    assert_eq!(location(&resp), gh.url("other.localhost", "/"));
    assert_eq!(
        c.get(gh.url("other.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn file_store_sessions_survive_a_restart() {
    let up = echo_upstream("a").await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.redb");
    let yaml = config(
        &up.addr.to_string(),
        &format!(
            "databroker_storage_type: file\ndatabroker_storage_connection_string: file://{}\n",
            db.display()
        ),
    );
    let gh = Gatehouse::start(&yaml);
    let c = browser(&gh);
    let login = location(&get_html(&c, &gh.url("app.localhost", "/")).await);
    let resp = submit_login(&c, &login, "alice", "wonderland").await;
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    drop(gh);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Host-only cookies do not care about the port the new process gets.
    let gh = Gatehouse::start(&yaml);
    let resp = gh
        .client(&["app.localhost"])
        .get(gh.url("app.localhost", "/"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "signed in after the restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_domain_shares_the_session_across_subdomains() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string(), "cookie_domain: localhost\n"));
    let c = browser(&gh);
    let login = location(&get_html(&c, &gh.url("app.localhost", "/")).await);
    let resp = submit_login(&c, &login, "alice", "wonderland").await;
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("Domain=localhost"), "{cookie}");
    assert_eq!(location(&resp), gh.url("app.localhost", "/"));
    // The same cookie works on another host under the domain.
    let pair = cookie.split(';').next().unwrap();
    let resp = gh
        .client(&["other.localhost"])
        .get(gh.url("other.localhost", "/"))
        .header("Cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_user_file_is_re_read_on_change() {
    let up = echo_upstream("a").await;
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(&users, "[]\n").unwrap();
    let yaml = config(
        &up.addr.to_string(),
        &format!("local_users_file: {}\n", users.display()),
    );
    let gh = Gatehouse::start_in(dir, &yaml);
    let c = browser(&gh);
    let login = location(&get_html(&c, &gh.url("app.localhost", "/")).await);
    assert_eq!(
        submit_login(&c, &login, "bob", "builder").await.status(),
        401
    );
    let reloads = gh.log_count("configuration reloaded");
    std::fs::write(
        &users,
        format!(
            "- {{username: bob, email: bob@example.com, password_hash: '{}'}}\n",
            hash("builder")
        ),
    )
    .unwrap();
    assert!(
        gh.wait_log("configuration reloaded", reloads),
        "{}",
        gh.log_text()
    );
    let resp = submit_login(&c, &login, "bob", "builder").await;
    assert_eq!(resp.status(), 302, "bob signs in without a restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_sign_out_link_works_only_for_its_session() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string(), ""));
    let (c1, c2) = (browser(&gh), browser(&gh));
    for c in [&c1, &c2] {
        let login = location(&get_html(c, &gh.url("app.localhost", "/")).await);
        assert_eq!(
            submit_login(c, &login, "alice", "wonderland")
                .await
                .status(),
            302
        );
    }
    let page = get_html(&c1, &gh.url("app.localhost", "/.pomerium/sign_out"))
        .await
        .text()
        .await
        .unwrap();
    let token = form_token(&page);
    let link = gh.url(
        "app.localhost",
        &format!("/.pomerium/sign_out?token={token}"),
    );
    // Someone else's session cannot be ended with it (nor with junk).
    assert_eq!(c2.get(&link).send().await.unwrap().status(), 400);
    assert_eq!(
        c2.get(gh.url("app.localhost", "/.pomerium/sign_out?token=junk"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        c2.get(gh.url("app.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "c2 still signed in"
    );
    // Its own session ends with a plain GET.
    let resp = c1.get(&link).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        location(&resp),
        gh.url("app.localhost", "/.pomerium/signed_out")
    );
    assert_eq!(
        get_html(&c1, &gh.url("app.localhost", "/")).await.status(),
        302
    );
}

/// Behind a TLS-terminating load balancer (`insecure_server`), the browser
/// side is HTTPS: sign-in URLs and cookies say so.
#[tokio::test(flavor = "multi_thread")]
async fn behind_a_tls_load_balancer_urls_and_cookies_are_https() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string(), "insecure_server: true\n"));
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("app.localhost", gh.addr())
        .no_proxy()
        .build()
        .unwrap();
    let resp = c
        .get(gh.http_url("app.localhost", "/x"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let expected = format!(
        "https://app.localhost:{p}/.pomerium/sign_in?pomerium_redirect_uri=https%3A%2F%2Fapp.localhost%3A{p}%2Fx",
        p = gh.port
    );
    assert_eq!(location(&resp), expected);
    // The login form posted through the load balancer sets a Secure cookie.
    let page = c
        .get(gh.http_url(
            "app.localhost",
            &format!(
                    "/.pomerium/sign_in?pomerium_redirect_uri={}",
                    url::form_urlencoded::byte_serialize(gh.url("app.localhost", "/x").as_bytes())
                        .collect::<String>()
                ),
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = form_token(&page);
    let resp = c
        .post(gh.http_url("app.localhost", "/.pomerium/sign_in"))
        .header("Origin", format!("https://app.localhost:{}", gh.port))
        .form(&[
            ("username", "alice"),
            ("password", "wonderland"),
            ("token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert!(
        resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}

/// Pomerium's rule for who is sent to sign in, and its answers shaped for
/// each kind of client, for sign-in required (401) and denied (403).
#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_shaped_for_the_client_as_pomerium_s() {
    let up = echo_upstream("a").await;
    let cfg = config(&up.addr.to_string(), "").replace(
        "routes:\n",
        &format!(
            "routes:\n  - {{from: 'https://closed.localhost', to: 'http://{}'}}\n",
            up.addr
        ),
    );
    let gh = Gatehouse::start(&cfg);
    let c = gh.browser(
        &["app.localhost", "closed.localhost", "public.localhost"],
        false,
    );
    let get = |host: &'static str, path: &'static str, headers: &[(&'static str, &'static str)]| {
        let mut req = c.get(gh.url(host, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        async move { req.send().await.unwrap() }
    };
    let sign_in = format!("https://app.localhost:{}/.pomerium/sign_in?", gh.port);
    // Redirected: no Accept, curl's and fetch's `*/*`, a type gatehouse
    // does not answer in, HTML tied with JSON.
    for accept in [
        None,
        Some("*/*"),
        Some("image/png"),
        Some("text/html;q=0.9, application/json;q=0.9"),
    ] {
        let headers: Vec<_> = accept.map(|a| ("accept", a)).into_iter().collect();
        let resp = get("app.localhost", "/x", &headers).await;
        assert_eq!(resp.status(), 302, "{accept:?}");
        assert!(location(&resp).starts_with(&sign_in), "{accept:?}");
    }
    // 401: JSON, plain text, gRPC, and programs with a token of their own.
    for headers in [
        vec![("accept", "application/json, */*;q=0.8")],
        vec![("accept", "text/plain")],
        vec![("authorization", "Bearer Pomerium-not-a-token")],
    ] {
        let resp = get("app.localhost", "/x", &headers).await;
        assert_eq!(resp.status(), 401, "{headers:?}");
    }
    let resp = get("app.localhost", "/x", &[("accept", "application/json")]).await;
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "user-unauthenticated");
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    // Kubernetes clients get a Status object, 401 and 403.
    let kubectl = [
        (
            "user-agent",
            "kubectl/v1.30.0 (linux/amd64) kubernetes/7c48c2b",
        ),
        ("accept", "application/json, */*"),
    ];
    for (host, code, reason) in [
        ("app.localhost", 401, "Unauthorized"),
        ("closed.localhost", 403, "Forbidden"),
    ] {
        let resp = get(host, "/api/v1/pods", &kubectl).await;
        assert_eq!(resp.status(), code);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["apiVersion"], "v1");
        assert_eq!(body["status"], "Failure");
        assert_eq!(body["code"], code);
        assert_eq!(body["reason"], reason);
    }

    // gRPC and gRPC-Web: the status in grpc-status, no body.
    for (ct, answer) in [
        ("application/grpc", "application/grpc+json"),
        ("application/grpc-web+proto", "application/grpc-web+json"),
    ] {
        for (host, code, grpc) in [("app.localhost", 401, "16"), ("closed.localhost", 403, "7")] {
            let resp = c
                .post(gh.url(host, "/pkg.Service/Method"))
                .header("content-type", ct)
                .body(vec![0u8, 0, 0, 0, 0])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), code, "{ct} {host}");
            assert_eq!(resp.headers()["content-type"], answer);
            assert_eq!(resp.headers()["grpc-status"], grpc);
            assert!(resp.headers().contains_key("grpc-message"));
            assert!(resp.bytes().await.unwrap().is_empty());
        }
    }

    // Denied: JSON for JSON clients, the page for the rest.
    let resp = get("closed.localhost", "/", &[("accept", "application/json")]).await;
    assert_eq!(resp.status(), 403);
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "access_denied");
    let resp = get("closed.localhost", "/", &[]).await;
    assert_eq!(resp.status(), 403);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    // robots.txt behind a route: everything disallowed, whoever asks; a
    // public route's comes from its upstream.
    for host in ["app.localhost", "closed.localhost"] {
        for accept in [None, Some("application/json"), Some("text/plain")] {
            let headers: Vec<_> = accept.map(|a| ("accept", a)).into_iter().collect();
            let resp = get(host, "/robots.txt", &headers).await;
            assert_eq!(resp.status(), 200, "{host} {accept:?}");
            assert!(resp.headers().get("location").is_none());
            assert_eq!(resp.text().await.unwrap(), "User-agent: *\nDisallow: /\n");
        }
    }
    let resp = get("public.localhost", "/robots.txt", &[]).await;
    assert_eq!(resp.status(), 200);
    assert!(!resp.text().await.unwrap().contains("Disallow"));
}

/// The routes portal (`/.pomerium/routes`, `/.pomerium/api/v1/routes`):
/// sign-in first, then the routes whose policy lets this user in.
#[tokio::test(flavor = "multi_thread")]
async fn the_routes_portal_lists_what_the_user_may_open() {
    let up = echo_upstream("a").await;
    let cfg = config(&up.addr.to_string(), "").replace(
        "routes:\n",
        &format!(
            "routes:\n  - {{from: 'https://bobs.localhost', to: 'http://{}', allowed_users: [bob], name: Bob's, description: not for alice}}\n  - {{from: 'https://app.localhost', prefix: /wiki/, to: 'http://{}', allowed_domains: [example.com], name: Wiki, description: 'Team <wiki>', logo_url: 'https://example.com/wiki.png'}}\n",
            up.addr, up.addr
        ),
    );
    let gh = Gatehouse::start(&cfg);
    let c = browser(&gh);
    let api = gh.url("app.localhost", "/.pomerium/api/v1/routes");
    let resp = c
        .get(&api)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = get_html(&c, &gh.url("app.localhost", "/.pomerium/routes")).await;
    assert_eq!(resp.status(), 302);
    let resp = submit_login(&c, &location(&resp), "alice", "wonderland").await;
    assert_eq!(resp.status(), 302);
    let resp = c.get(&api).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    let routes = body["routes"].as_array().unwrap();
    let names: Vec<&str> = routes.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["Wiki", "app", "other", "policy", "public"],
        "{body}"
    );
    let wiki = &routes[0];
    assert_eq!(wiki["type"], "http");
    assert_eq!(wiki["from"], "https://app.localhost");
    assert_eq!(wiki["description"], "Team <wiki>");
    assert_eq!(wiki["logo_url"], "https://example.com/wiki.png");
    let id = wiki["id"].as_str().unwrap();
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    // The same ids after a reload of the same file.
    let again: Value =
        serde_json::from_str(&c.get(&api).send().await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(again["routes"][0]["id"], wiki["id"]);
    // The page: links, escaped descriptions.
    let page = get_html(&c, &gh.url("app.localhost", "/.pomerium/routes"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("href=\"https://app.localhost/wiki/\""),
        "{page}"
    );
    assert!(page.contains("Team &lt;wiki&gt;"), "{page}");
    assert!(!page.contains("Bob"), "{page}");
    let resp = c.post(&api).send().await.unwrap();
    assert_eq!(resp.status(), 405);
}

//! Cross-site requests: a write to the console (API or HTML form) that the
//! session cookie authenticates must come from the console's own origin,
//! whatever else the request carries (`Authorization: Basic`, junk bearer
//! or Pomerium tokens, a JSON content type), over HTTP/1.1 and HTTP/2.
//! Only a programmatic token without a cookie lifts the rule. Each attack
//! is checked by its answer and by the console's state afterwards.

use crate::common::*;
use serde_json::{Value, json};

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const CONSOLE: &str = "console.localhost";
const HOSTS: &[&str] = &[
    "console.localhost",
    "file.localhost",
    "new.localhost",
    "pwned.localhost",
];
const EVIL: &str = "https://evil.example";

fn config(up: &str) -> String {
    format!(
        "address: 127.0.0.1:{{port}}
idp_provider: local
cookie_secret: {SECRET}
shared_secret: {SECRET}
local_users:
  - username: alice
    email: alice@example.com
    groups: [admins]
    password_hash: '{hash}'
console:
  from: https://console.localhost
  policy:
    allow:
      and:
        - groups: {{has: admins}}
routes:
  - from: https://file.localhost
    to: http://{up}
    allow_any_authenticated_user: true
",
        hash = hash("wonderland"),
    )
}

/// A cookie-keeping client, HTTP/1.1 only or offering h2 by ALPN.
fn browser_client(gh: &Gatehouse, http1: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(std::time::Duration::from_secs(30))
        .no_proxy();
    for h in HOSTS {
        b = b.resolve(h, gh.addr());
    }
    if http1 {
        b = b.http1_only();
    }
    b.build().unwrap()
}

/// Alice's browser, signed in on the console host (its cookie set there).
async fn admin_browser(gh: &Gatehouse, http1: bool) -> reqwest::Client {
    let c = browser_client(gh, http1);
    let resp = submit_login(&c, &login_url(gh, CONSOLE), "alice", "wonderland").await;
    assert!(resp.status().is_redirection(), "{}", resp.status());
    let mut next = resp.headers()["location"].to_str().unwrap().to_string();
    for _ in 0..5 {
        let r = c.get(&next).send().await.unwrap();
        match r.headers().get("location") {
            Some(l) if r.status().is_redirection() => next = l.to_str().unwrap().to_string(),
            _ => break,
        }
    }
    let r = c
        .get(gh.url(CONSOLE, "/api/v1/routes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the cookie opens the console");
    c
}

/// A programmatic-login token for alice on the console host.
async fn token(gh: &Gatehouse) -> String {
    let login = ("alice", "wonderland");
    let t = programmatic_login(gh, CONSOLE, HOSTS, login, "http://localhost:45999/cb").await;
    format!("Pomerium {}", t.0)
}

/// The console's state as the token sees it: version, route ids, settings.
async fn state(gh: &Gatehouse, auth: &str) -> (u64, Vec<String>, Value) {
    let c = gh.client(HOSTS);
    let get = |path: &str| {
        c.get(gh.url(CONSOLE, path))
            .header("Authorization", auth)
            .send()
    };
    let routes = get("/api/v1/routes").await.unwrap().text().await.unwrap();
    let routes: Value = serde_json::from_str(&routes).unwrap();
    let settings = get("/api/v1/settings").await.unwrap().text().await.unwrap();
    let settings: Value = serde_json::from_str(&settings).unwrap();
    let ids = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "console")
        .map(|r| r["route"]["id"].as_str().unwrap().to_string())
        .collect();
    (
        routes["version"].as_u64().unwrap(),
        ids,
        settings["settings"].clone(),
    )
}

/// A route body an attacker would send (its upstream is theirs).
fn evil_route() -> String {
    json!({"from": "https://pwned.localhost", "to": ["http://127.0.0.1:1"], "allow_public_unauthenticated_access": true}).to_string()
}

const EVIL_IMPORT: &str = "routes:\n  - from: https://pwned.localhost\n    to: http://127.0.0.1:1\n    allow_public_unauthenticated_access: true\n";

/// Sends a write with `headers`; the status and the body.
async fn send(
    c: &reqwest::Client,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (u16, reqwest::Version, String) {
    let mut req = c.request(method.parse().unwrap(), url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let version = r.version();
    (status, version, r.text().await.unwrap())
}

/// The refusal the API gives: 403, JSON, no secret in it.
fn assert_refused(case: &str, status: u16, body: &str) {
    assert_eq!(status, 403, "{case}: {body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{case}: {body}"));
    assert_eq!(v["error"], "cross_origin", "{case}: {body}");
    assert!(
        !body.contains(SECRET) && !body.contains("Pomerium ey"),
        "{case}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_writes_from_another_origin_are_refused_whatever_else_they_carry() {
    let up = echo_upstream("app").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string()));
    let auth = token(&gh).await;
    let own = gh.url(CONSOLE, "");
    let api = |p: &str| gh.url(CONSOLE, &format!("/api/v1{p}"));

    // A console route an import would wipe, made by the token.
    let c = gh.client(HOSTS);
    let (status, _, body) = send(
        &c,
        "POST",
        &api("/routes"),
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        json!({"from": "https://new.localhost", "to": [format!("http://{}", up.addr)], "allow_any_authenticated_user": true}).to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let before = state(&gh, &auth).await;
    assert_eq!(before.1.len(), 1);
    let id = before.1[0].clone();

    for http1 in [true, false] {
        let admin = admin_browser(&gh, http1).await;
        let proto = if http1 { "HTTP/1.1" } else { "HTTP/2" };

        // The reported attack: Basic + cookie + foreign Origin + text/plain.
        let attack = [
            ("Authorization", "Basic YWxpY2U6d29uZGVybGFuZA=="),
            ("Origin", EVIL),
            ("Content-Type", "text/plain"),
        ];
        let (status, version, body) =
            send(&admin, "POST", &api("/routes"), &attack, evil_route()).await;
        assert_refused(&format!("{proto} create"), status, &body);
        let want = if http1 {
            reqwest::Version::HTTP_11
        } else {
            reqwest::Version::HTTP_2
        };
        assert_eq!(version, want, "{proto}");
        let (status, _, body) =
            send(&admin, "POST", &api("/import"), &attack, EVIL_IMPORT.into()).await;
        assert_refused(&format!("{proto} import"), status, &body);

        // Variants of what rides along with the cookie: none lifts the rule.
        let variants: &[(&str, &[(&str, &str)])] = &[
            (
                "Bearer junk",
                &[("Authorization", "Bearer junk"), ("Origin", EVIL)],
            ),
            (
                "JSON from another origin",
                &[("Origin", EVIL), ("Content-Type", "application/json")],
            ),
            (
                "X-Requested-With",
                &[
                    ("Origin", EVIL),
                    ("X-Requested-With", "XMLHttpRequest"),
                    ("Content-Type", "application/json"),
                ],
            ),
            ("Origin: null", &[("Origin", "null")]),
            (
                "no Origin, foreign Referer",
                &[("Referer", "https://evil.example/page")],
            ),
            ("neither Origin nor Referer", &[]),
            (
                "foreign Origin, own Referer",
                &[("Origin", EVIL), ("Referer", &format!("{own}/"))],
            ),
            (
                "own host, other scheme",
                &[("Origin", &own.replace("https://", "http://"))],
            ),
            (
                "own host, other port",
                &[("Origin", "https://console.localhost:1")],
            ),
            (
                "own host as a suffix",
                &[("Origin", &format!("{own}.evil.example"))],
            ),
            (
                "Basic, no Origin",
                &[("Authorization", "Basic YWxpY2U6d29uZGVybGFuZA==")],
            ),
        ];
        for (case, headers) in variants {
            for (method, path, body) in [
                ("POST", "/routes".to_string(), evil_route()),
                ("POST", "/import".to_string(), EVIL_IMPORT.to_string()),
                ("PUT", format!("/routes/{id}"), evil_route()),
                ("DELETE", format!("/routes/{id}"), String::new()),
                ("PATCH", format!("/routes/{id}"), evil_route()),
                (
                    "PUT",
                    "/settings".into(),
                    json!({"cookie_expire": "999h"}).to_string(),
                ),
                ("POST", "/history/1/revert".into(), String::new()),
            ] {
                let (status, _, text) = send(&admin, method, &api(&path), headers, body).await;
                assert_refused(&format!("{proto} {case}: {method} {path}"), status, &text);
            }
        }

        // Junk programmatic tokens beside the cookie: the token is what
        // identifies, it is bad, so the request is signed out (never a write).
        for junk in [
            ("X-Pomerium-Authorization", "junk"),
            ("Authorization", "Pomerium junk"),
        ] {
            let headers = [junk, ("Origin", EVIL), ("Content-Type", "text/plain")];
            let (status, _, body) =
                send(&admin, "POST", &api("/routes"), &headers, evil_route()).await;
            assert!(
                status == 401 || status == 403,
                "{proto} {junk:?}: {status} {body}"
            );
            let (status, _, body) = send(
                &admin,
                "POST",
                &api("/import"),
                &headers,
                EVIL_IMPORT.into(),
            )
            .await;
            assert!(
                status == 401 || status == 403,
                "{proto} {junk:?}: {status} {body}"
            );
        }

        // The HTML forms, posted from another site.
        let import_form = format!(
            "config={}",
            url::form_urlencoded::byte_serialize(EVIL_IMPORT.as_bytes()).collect::<String>()
        );
        let evil_form = "from=https%3A%2F%2Fpwned.localhost&to=http%3A%2F%2F127.0.0.1%3A1";
        let forms = [
            (
                "/routes/new".to_string(),
                format!("{evil_form}&policy=public"),
            ),
            (format!("/routes/{id}"), evil_form.to_string()),
            (format!("/routes/{id}/delete"), String::new()),
            ("/settings".to_string(), "cookie_expire=999h".to_string()),
            ("/import".to_string(), import_form),
            ("/history/1/revert".to_string(), String::new()),
        ];
        for (path, form) in &forms {
            for headers in [
                &[("Origin", EVIL)][..],
                &[("Origin", "null")][..],
                &[("Referer", "https://evil.example/")][..],
                &[
                    ("Origin", EVIL),
                    ("Authorization", "Basic YWxpY2U6d29uZGVybGFuZA=="),
                ][..],
            ] {
                let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
                h.extend_from_slice(headers);
                let (status, _, page) =
                    send(&admin, "POST", &gh.url(CONSOLE, path), &h, form.clone()).await;
                assert_eq!(status, 403, "{proto} form {path} {headers:?}: {page}");
                assert!(page.contains("Nothing was changed"), "{page}");
            }
        }

        // A token next to the cookie does not lift the rule either (the
        // console cannot tell which one authenticated the request).
        let (status, _, body) = send(
            &admin,
            "POST",
            &api("/import"),
            &[("Authorization", &auth), ("Origin", EVIL)],
            EVIL_IMPORT.into(),
        )
        .await;
        assert_refused(&format!("{proto} token + cookie"), status, &body);

        assert_eq!(state(&gh, &auth).await, before, "{proto}: nothing changed");
        let r = gh.client(HOSTS).get(gh.url("pwned.localhost", "/")).send();
        assert_eq!(r.await.unwrap().status(), 404, "{proto}: no route was made");
    }
    assert!(
        gh.log_text().contains("was refused"),
        "refusals are logged: {}",
        gh.log_text()
    );
    assert!(
        !gh.log_text().contains("d29uZGVybGFuZA"),
        "no credential in the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn same_origin_browsers_and_programmatic_tokens_still_write() {
    let up = echo_upstream("app").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string()));
    let auth = token(&gh).await;
    let own = gh.url(CONSOLE, "");
    let api = |p: &str| gh.url(CONSOLE, &format!("/api/v1{p}"));
    let to = format!("http://{}", up.addr);
    let route =
        json!({"from": "https://new.localhost", "to": [&to], "allow_any_authenticated_user": true})
            .to_string();

    // A programmatic client: its token, no cookie, no Origin.
    let c = gh.client(HOSTS);
    let token_only = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (status, _, body) = send(&c, "POST", &api("/routes"), &token_only, route.clone()).await;
    assert_eq!(status, 201, "token: {body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["route"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, body) = send(
        &c,
        "DELETE",
        &api(&format!("/routes/{id}")),
        &[(
            "X-Pomerium-Authorization",
            auth.trim_start_matches("Pomerium "),
        )],
        String::new(),
    )
    .await;
    assert_eq!(status, 200, "X-Pomerium-Authorization: {body}");

    for http1 in [true, false] {
        let admin = admin_browser(&gh, http1).await;
        // The console's own origin, as a browser's fetch would send it
        // (host case and an explicit default port do not matter).
        let (status, _, body) = send(
            &admin,
            "POST",
            &api("/routes"),
            &[("Origin", &own), ("Content-Type", "application/json")],
            route.clone(),
        )
        .await;
        assert_eq!(status, 201, "same origin: {body}");
        let id = serde_json::from_str::<Value>(&body).unwrap()["route"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        // No Origin but a Referer on the console: same origin too.
        let (status, _, body) = send(
            &admin,
            "PUT",
            &api(&format!("/routes/{id}")),
            &[
                ("Referer", &format!("{own}/routes/{id}")),
                ("Content-Type", "application/json"),
            ],
            route.clone(),
        )
        .await;
        assert_eq!(status, 200, "same-origin Referer: {body}");
        // The HTML form, posted from the console's page.
        let (status, _, page) = send(
            &admin,
            "POST",
            &gh.url(CONSOLE, &format!("/routes/{id}/delete")),
            &[
                ("Origin", &own.to_uppercase()),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            String::new(),
        )
        .await;
        assert_eq!(status, 303, "same-origin form: {page}");
        let (_, ids, _) = state(&gh, &auth).await;
        assert!(ids.is_empty(), "{ids:?}");
    }
}

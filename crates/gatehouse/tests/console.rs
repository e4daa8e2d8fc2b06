//! The console's JSON API against the real binary: who may use it, every
//! endpoint with good and bad input, changes in force at once (a request
//! through a route made a moment ago reaches its upstream with a valid
//! assertion), history and revert, export and import, restart, and two
//! instances sharing Redis.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn config(up: &str, extra: &str) -> String {
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
  - username: bob
    email: bob@example.org
    groups: [staff]
    password_hash: '{hash}'
console:
  from: https://console.localhost
  policy:
    allow:
      and:
        - groups: {{has: admins}}
{extra}routes:
  - from: https://file.localhost
    to: http://{up}
    allow_any_authenticated_user: true
",
        hash = hash("wonderland"),
    )
}

const HOSTS: &[&str] = &[
    "console.localhost",
    "file.localhost",
    "new.localhost",
    "other.localhost",
];

/// A token from a programmatic login on the console host.
async fn token(gh: &Gatehouse, user: &str) -> String {
    let redirect = "http://localhost:45999/cb";
    let login = (user, "wonderland");
    programmatic_login(gh, "console.localhost", HOSTS, login, redirect)
        .await
        .0
}

struct Api<'a> {
    gh: &'a Gatehouse,
    c: reqwest::Client,
    auth: String,
}

impl<'a> Api<'a> {
    /// The API as `user`, with a token from a programmatic login.
    async fn as_user(gh: &'a Gatehouse, user: &str) -> Api<'a> {
        Api {
            gh,
            c: gh.client(HOSTS),
            auth: format!("Pomerium {}", token(gh, user).await),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = self.gh.url("console.localhost", &format!("/api/v1{path}"));
        let mut req = self
            .c
            .request(method.parse().unwrap(), url)
            .header("Authorization", &self.auth);
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

fn error_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {body}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

/// Signs `user` in on `host` with a cookie-keeping client.
async fn signed_in(gh: &Gatehouse, host: &str, user: &str) -> reqwest::Client {
    let c = gh.browser(HOSTS, false);
    let resp = submit_login(&c, &login_url(gh, host), user, "wonderland").await;
    assert!(resp.status().is_redirection(), "{}", resp.status());
    // Follow the hand-off to the route host so its cookie is set.
    let mut next = resp.headers()["location"].to_str().unwrap().to_string();
    for _ in 0..5 {
        let r = c.get(&next).send().await.unwrap();
        match r.headers().get("location") {
            Some(l) if r.status().is_redirection() => next = l.to_str().unwrap().to_string(),
            _ => break,
        }
    }
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn only_admins_reach_the_console() {
    let up = echo_upstream("app").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string(), ""));
    let anonymous = gh.client(HOSTS);
    let r = anonymous
        .get(gh.url("console.localhost", "/api/v1/routes"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no session, no API");
    let r = anonymous
        .get(gh.url("console.localhost", "/"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "a browser is sent to sign in");

    let bob = Api::as_user(&gh, "bob").await;
    let (status, _) = bob.call("GET", "/routes", None).await;
    assert_eq!(status, 403, "bob is not in admins");
    let (status, _) = bob
        .call("POST", "/routes", Some(json!({"from": "https://new.localhost", "to": ["http://127.0.0.1:1"], "allow_public_unauthenticated_access": true})))
        .await;
    assert_eq!(status, 403);
    let bob_browser = signed_in(&gh, "console.localhost", "bob").await;
    let r = bob_browser
        .get(gh.url("console.localhost", "/"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    let status = r.status();
    let page = r.text().await.unwrap();
    assert!(!page.contains("New route"), "{page}");
    assert_eq!(status, 403, "bob gets 403 on the console pages");
    // nothing was created
    let alice = Api::as_user(&gh, "alice").await;
    let (status, body) = alice.call("GET", "/routes", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_with_good_and_bad_input() {
    let up = echo_upstream("app").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string(), ""));
    let api = Api::as_user(&gh, "alice").await;

    // The list: the file's route, read-only, with metrics.
    let (status, body) = api.call("GET", "/routes", None).await;
    assert_eq!(status, 200, "{body}");
    let routes = body["routes"].as_array().unwrap();
    assert_eq!(
        routes.len(),
        1,
        "the console's own route is not listed: {body}"
    );
    assert_eq!(routes[0]["source"], "file");
    assert_eq!(routes[0]["read_only"], true);
    assert!(
        routes[0]["location"]
            .as_str()
            .unwrap()
            .contains("config.yaml:")
    );
    assert!(routes[0]["metrics"]["requests"].is_u64());

    // Bad input: nothing is saved, each error names its field.
    let bad = [
        (
            json!({"from": "https://new.localhost", "to": ["not a url"], "allow_any_authenticated_user": true}),
            "to",
        ),
        (
            json!({"from": "ftp://new.localhost", "to": ["http://127.0.0.1:1"]}),
            "from",
        ),
        (
            json!({"from": "https://new.localhost", "to": ["http://127.0.0.1:1"], "timeout": "soon"}),
            "timeout",
        ),
        (
            json!({"from": "https://new.localhost", "to": ["http://127.0.0.1:1"], "tto": 1}),
            "tto",
        ),
        (
            json!({"from": "https://new.localhost", "to": ["http://127.0.0.1:1"], "policy": {"allow": {"and": [{"nonsense": 1}]}}}),
            "policy",
        ),
        // The file already serves this host.
        (
            json!({"from": "https://file.localhost", "to": ["http://127.0.0.1:1"]}),
            "from",
        ),
    ];
    for (route, field) in bad {
        let (status, body) = api.call("POST", "/routes", Some(route.clone())).await;
        assert_eq!(status, 422, "{route} -> {body}");
        assert_eq!(body["error"], "invalid");
        assert!(
            error_fields(&body).contains(&field.to_string()),
            "{route}: expected an error on `{field}`: {body}"
        );
    }
    let r = api
        .c
        .post(gh.url("console.localhost", "/api/v1/routes"))
        .header("Authorization", &api.auth)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let (status, body) = api.call("POST", "/routes", Some(json!(["a list"]))).await;
    assert_eq!(status, 422, "{body}");
    let (_, body) = api.call("GET", "/history", None).await;
    assert_eq!(body["changes"], json!([]), "no change was recorded");
    let r = anonymous_get(&gh, "new.localhost").await;
    assert_eq!(r, 404, "and nothing was applied");

    // Create: in force at once, with a valid assertion upstream.
    let (status, body) = api
        .call(
            "POST",
            "/routes",
            Some(json!({
                "name": "New app",
                "from": "https://new.localhost",
                "to": [format!("http://{}", up.addr)],
                "allow_any_authenticated_user": true,
                "pass_identity_headers": true,
                "set_request_headers": {"X-Team": "blue"},
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 1);
    let id = body["route"]["id"].as_str().unwrap().to_string();
    let alice = signed_in(&gh, "new.localhost", "alice").await;
    let r = alice
        .get(gh.url("new.localhost", "/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", gh.log_text());
    let echoed: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let headers = &echoed["headers"];
    assert_eq!(headers["x-team"][0], "blue", "{echoed}");
    let jwt = headers["x-pomerium-jwt-assertion"][0]
        .as_str()
        .expect("assertion");
    let who = verify_assertion(&gh, "new.localhost", jwt).await;
    assert_eq!(who.email, "alice@example.com");

    // Read one, unknown ones.
    let (status, body) = api.call("GET", &format!("/routes/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["route"]["name"], "New app");
    let (status, _) = api.call("GET", "/routes/nope", None).await;
    assert_eq!(status, 404);
    let (status, _) = api
        .call(
            "PUT",
            "/routes/nope",
            Some(json!({"from": "https://x.localhost"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api.call("DELETE", "/routes/nope", None).await;
    assert_eq!(status, 404);

    // Update: only admins now; alice is one.
    let (status, body) = api
        .call(
            "PUT",
            &format!("/routes/{id}"),
            Some(json!({
                "name": "New app",
                "from": "https://new.localhost",
                "to": [format!("http://{}", up.addr)],
                "policy": {"allow": {"and": [{"groups": {"has": "nobody"}}]}},
                "pass_identity_headers": true,
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 2);
    let r = alice
        .get(gh.url("new.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the new policy is in force");
    let (status, body) = api
        .call(
            "PUT",
            &format!("/routes/{id}"),
            Some(json!({"from": "https://new.localhost", "to": ["http://[::1"]})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_fields(&body), ["to"]);

    // Settings.
    let (status, body) = api.call("GET", "/settings", None).await;
    assert_eq!(status, 200);
    assert!(
        body["live_settings"]
            .as_array()
            .unwrap()
            .contains(&json!("cookie_expire"))
    );
    let (status, body) = api
        .call("PUT", "/settings", Some(json!({"address": ":1"})))
        .await;
    assert_eq!(status, 422);
    assert_eq!(error_fields(&body), ["address"]);
    let (status, body) = api
        .call(
            "PUT",
            "/settings",
            Some(json!({"cookie_expire": "forever"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_fields(&body), ["cookie_expire"]);
    let (status, body) = api.call("PUT", "/settings", Some(json!("x"))).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = api
        .call(
            "PUT",
            "/settings",
            Some(json!({"jwt_claims_headers": ["email"], "cookie_expire": "2h"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 3);

    // History and revert: undo the policy change.
    let (status, body) = api.call("GET", "/history?limit=2", None).await;
    assert_eq!(status, 200);
    let changes = body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["version"], 3);
    assert_eq!(changes[0]["who"], "alice@example.com");
    assert_eq!(changes[1]["action"], "update");
    let (status, body) = api.call("GET", "/history/2", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["change"]["before"]["allow_any_authenticated_user"],
        true
    );
    let (status, _) = api.call("GET", "/history/99", None).await;
    assert_eq!(status, 404);
    let (status, _) = api.call("POST", "/history/99/revert", None).await;
    assert_eq!(status, 404);
    let (status, body) = api.call("POST", "/history/2/revert", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["change"]["action"], "revert");
    let r = alice
        .get(gh.url("new.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the previous policy is back");
    let echoed: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(
        echoed["headers"]["x-pomerium-claim-email"][0], "alice@example.com",
        "the claim-header setting is in force: {echoed}"
    );

    // Export: the file plus the console's routes, secrets left out; the
    // result is a configuration gatehouse accepts.
    let r = api
        .c
        .get(gh.url("console.localhost", "/api/v1/export"))
        .header("Authorization", &api.auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let yaml = r.text().await.unwrap();
    assert!(yaml.contains("https://new.localhost"), "{yaml}");
    assert!(yaml.contains("https://file.localhost"), "{yaml}");
    assert!(yaml.contains("cookie_expire: 2h"), "{yaml}");
    assert!(!yaml.contains(SECRET), "{yaml}");
    let with_secrets = format!("cookie_secret: {SECRET}\nshared_secret: {SECRET}\n{yaml}");
    let (code, out) = check(&with_secrets);
    assert_eq!(code, 0, "{out}\n{yaml}");

    // Import: a Pomerium config's routes replace the console's.
    let import = format!(
        "routes:\n  - from: https://file.localhost\n    to: http://{up}\n  - from: https://other.localhost\n    to: http://{up}\n    allow_any_authenticated_user: true\ncookie_expire: 3h\n",
        up = up.addr
    );
    let r = api
        .c
        .post(gh.url("console.localhost", "/api/v1/import"))
        .header("Authorization", &api.auth)
        .header("Content-Type", "application/yaml")
        .body(import)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["routes"], 1, "the file's own route is skipped");
    assert_eq!(anonymous_get(&gh, "new.localhost").await, 404, "replaced");
    assert_eq!(anonymous_get(&gh, "other.localhost").await, 401, "imported");
    let r = api
        .c
        .post(gh.url("console.localhost", "/api/v1/import"))
        .header("Authorization", &api.auth)
        .body("routes: [{from: 'https://x.localhost', to: 'gopher://x'}]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // Delete.
    let (_, body) = api.call("GET", "/routes", None).await;
    let other = body["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == "console")
        .unwrap()["route"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = api.call("DELETE", &format!("/routes/{other}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(anonymous_get(&gh, "other.localhost").await, 404);

    // Wrong methods and paths; the OpenAPI document.
    let (status, _) = api.call("DELETE", "/settings", None).await;
    assert_eq!(status, 405);
    let (status, _) = api.call("GET", "/nothing", None).await;
    assert_eq!(status, 404);
    let (status, body) = api.call("GET", "/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["openapi"], "3.1.0");
    assert!(body["paths"]["/routes/{id}"]["put"].is_object());

    // A cookie-authenticated write from another site is refused.
    let admin = signed_in(&gh, "console.localhost", "alice").await;
    let r = admin
        .post(gh.url("console.localhost", "/api/v1/routes"))
        .header("Origin", "https://evil.localhost")
        .header("Content-Type", "text/plain")
        .body(r#"{"from":"https://new.localhost","to":["http://127.0.0.1:1"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // JSON or an `Authorization` header beside the cookie changes nothing
    // (every variant: tests/security/csrf.rs).
    let r = admin
        .post(gh.url("console.localhost", "/api/v1/routes"))
        .header("Origin", "https://evil.localhost")
        .header("Authorization", "Basic YWxpY2U6d29uZGVybGFuZA==")
        .header("Content-Type", "application/json")
        .body(r#"{"from":"https://new.localhost","to":["http://127.0.0.1:1"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "cross_origin");
    let r = admin
        .post(gh.url("console.localhost", "/routes/new"))
        .header("Origin", "https://evil.localhost")
        .form(&[
            ("from", "https://new.localhost"),
            ("to", "http://127.0.0.1:1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, body) = api.call("GET", "/history?limit=1", None).await;
    assert_eq!(
        body["changes"][0]["action"], "delete",
        "nothing after the delete"
    );
}

async fn page_text(c: &reqwest::Client, url: &str) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

async fn anonymous_get(gh: &Gatehouse, host: &str) -> u16 {
    gh.client(HOSTS)
        .get(gh.url(host, "/"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Verifies an assertion against the JWKS gatehouse publishes on `host`.
async fn verify_assertion(gh: &Gatehouse, host: &str, jwt: &str) -> gatehouse_verify::Identity {
    let jwks = gh
        .client(HOSTS)
        .get(gh.url(host, "/.well-known/pomerium/jwks.json"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    gatehouse_verify::Verifier::builder(gatehouse_verify::Keys::jwks_json(jwks.to_vec()))
        .audience(host)
        .issuer(host)
        .build()
        .unwrap()
        .verify(jwt)
        .await
        .expect("a valid assertion")
}

#[tokio::test(flavor = "multi_thread")]
async fn console_routes_survive_a_restart() {
    let up = echo_upstream("app").await;
    let state = tempfile::tempdir().unwrap();
    let extra = format!(
        "databroker_storage_type: file\ndatabroker_storage_connection_string: {}\n",
        state.path().join("store.redb").display()
    );
    let yaml = config(&up.addr.to_string(), &extra);
    let gh = Gatehouse::start(&yaml);
    let api = Api::as_user(&gh, "alice").await;
    let (status, body) = api
        .call("POST", "/routes", Some(json!({"from": "https://new.localhost", "to": [format!("http://{}", up.addr)], "allow_public_unauthenticated_access": true})))
        .await;
    assert_eq!(status, 201, "{body}");
    drop(api);
    drop(gh);
    let gh = Gatehouse::start(&yaml);
    assert_eq!(
        anonymous_get(&gh, "new.localhost").await,
        200,
        "{}",
        gh.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_sharing_redis_apply_a_change_within_a_second() {
    let up = echo_upstream("app").await;
    let redis = Redis::start();
    let extra = format!(
        "databroker_storage_type: redis\ndatabroker_storage_connection_string: {}\n",
        redis.url()
    );
    let yaml = config(&up.addr.to_string(), &extra);
    let a = Gatehouse::start(&yaml);
    let b = Gatehouse::start(&yaml);
    assert!(a.wait_log("console state storage", 0));
    let api = Api::as_user(&a, "alice").await;
    assert_eq!(anonymous_get(&b, "new.localhost").await, 404);
    let (status, body) = api
        .call("POST", "/routes", Some(json!({"from": "https://new.localhost", "to": [format!("http://{}", up.addr)], "allow_public_unauthenticated_access": true})))
        .await;
    assert_eq!(status, 201, "{body}");
    let saved = Instant::now();
    loop {
        if anonymous_get(&b, "new.localhost").await == 200 {
            break;
        }
        assert!(
            saved.elapsed() < Duration::from_secs(5),
            "instance B never applied the change:\n{}",
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Reported, not asserted (tests never assert on time).
    eprintln!(
        "instance B applied the change {:?} after A saved it",
        saved.elapsed()
    );
    // B's history is A's.
    let api_b = Api::as_user(&b, "alice").await;
    let (_, body) = api_b.call("GET", "/history", None).await;
    assert_eq!(body["changes"][0]["action"], "create");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_change_that_clashes_with_the_console_wins_and_is_reported() {
    let up = echo_upstream("app").await;
    let yaml = config(&up.addr.to_string(), "");
    let gh = Gatehouse::start(&yaml);
    let api = Api::as_user(&gh, "alice").await;
    let (status, body) = api
        .call("POST", "/routes", Some(json!({"from": "https://new.localhost", "to": [format!("http://{}", up.addr)], "allow_public_unauthenticated_access": true})))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(anonymous_get(&gh, "new.localhost").await, 200);

    // The file now claims the console route's host.
    let mark = gh.log_count("configuration reloaded");
    let clash = yaml.replace("{port}", &gh.port.to_string()).replace(
        "routes:\n",
        "routes:\n  - from: https://new.localhost\n    response: {status: 418, body: file}\n    allow_public_unauthenticated_access: true\n",
    );
    gh.write_config(&clash);
    assert!(
        gh.wait_log("configuration reloaded", mark),
        "{}",
        gh.log_text()
    );
    assert!(gh.log_text().contains("do not fit the configuration file"));
    assert_eq!(
        anonymous_get(&gh, "new.localhost").await,
        418,
        "the file wins"
    );
    let admin = signed_in(&gh, "console.localhost", "alice").await;
    let page = page_text(&admin, &gh.url("console.localhost", "/")).await;
    assert!(page.contains("Console changes are not in force"), "{page}");
    assert!(page.contains("duplicate route"), "{page}");

    // Listed as not in force, and fixed in the console (the route moves to
    // another host): back in force.
    let (_, body) = api.call("GET", "/routes", None).await;
    let listed = body["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == "console")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(listed["in_force"], false, "{body}");
    let created = listed["route"]["id"].as_str().unwrap().to_string();
    let (status, body) = api
        .call("PUT", &format!("/routes/{created}"), Some(json!({"from": "https://other.localhost", "to": [format!("http://{}", up.addr)], "allow_public_unauthenticated_access": true})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(anonymous_get(&gh, "other.localhost").await, 200);
    let page = page_text(&admin, &gh.url("console.localhost", "/")).await;
    assert!(!page.contains("Console changes are not in force"));
}

/// The export leaves out the file routes' own secrets too (here the key
/// gatehouse shows the upstream), and names what it left out.
#[tokio::test(flavor = "multi_thread")]
async fn the_export_leaves_out_route_secrets() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let up = echo_upstream("app").await;
    let (cert, key, _) = TestCa::new().leaf(&["client.localhost"]);
    let line = "    allow_any_authenticated_user: true\n";
    let yaml = config(&up.addr.to_string(), "").replace(
        line,
        &format!(
            "{line}    tls_client_cert: {}\n    tls_client_key: {}\n",
            b64(&cert),
            b64(&key)
        ),
    );
    let gh = Gatehouse::start(&yaml);
    let api = Api::as_user(&gh, "alice").await;
    let r = api
        .c
        .get(gh.url("console.localhost", "/api/v1/export"))
        .header("Authorization", &api.auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let exported = r.text().await.unwrap();
    assert!(exported.contains(&b64(&cert)), "{exported}");
    assert!(!exported.contains(&b64(&key)), "{exported}");
    assert!(!exported.contains("tls_client_key:"), "{exported}");
    assert!(
        exported.contains("Left out (secrets; copy them from the running configuration): cookie_secret, shared_secret, routes[].tls_client_key"),
        "{exported}"
    );
}

//! Logs an operator can use: one `http-request` line per request with
//! Pomerium's field names, one `authorize check` line per decision, the
//! same request id upstream, in the response and in every line — and no
//! credential anywhere in the log, whatever the request carried.

mod common;

use common::*;
use serde_json::Value;

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn config(upstream: &str, extra: &str) -> String {
    format!(
        "address: 127.0.0.1:{{port}}
idp_provider: local
cookie_secret: {SECRET}
shared_secret: {SECRET}
local_users:
  - username: alice
    email: alice@example.com
    password_hash: '{hash}'
{extra}routes:
  - {{from: 'https://app.localhost', to: 'http://{upstream}', allow_any_authenticated_user: true, pass_identity_headers: true}}
  - {{from: 'https://down.localhost', to: 'http://127.0.0.1:{closed}', allow_public_unauthenticated_access: true}}
",
        hash = hash("wonderland"),
        closed = free_port(),
    )
}

/// The JSON lines with this message.
fn lines(gh: &Gatehouse, message: &str) -> Vec<Value> {
    gh.log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == message)
        .collect()
}

/// The `message` line of this request, waiting for it (an access line is
/// written when the response ends, after the authorize line).
fn line_for(gh: &Gatehouse, message: &str, request_id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = lines(gh, message)
            .into_iter()
            .find(|v| v["request-id"] == request_id);
        match found {
            Some(line) => return line,
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            None => panic!("no {message} line for {request_id}:\n{}", gh.log_text()),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn access_and_authorize_lines_share_the_request_id_and_hold_no_secret() {
    let up = echo_upstream("app").await;
    let gh = Gatehouse::start(&config(&up.addr.to_string(), ""));
    let hosts = ["app.localhost", "down.localhost"];
    let c = gh.browser(&hosts, false);
    let resp = submit_login(&c, &login_url(&gh, "app.localhost"), "alice", "wonderland").await;
    assert_eq!(resp.status(), 302);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie_value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;

    // A request id from the client is kept, sent upstream and logged.
    let resp = c
        .get(gh.url("app.localhost", "/hello?token=abc&x=1"))
        .header("X-Request-Id", "test-req-1")
        .header(
            "Referer",
            "https://app.localhost/cb?code=s3cr3t-code&state=st4te",
        )
        .header("User-Agent", "logs-test/1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "test-req-1");
    let body = resp.text().await.unwrap();
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["headers"]["x-request-id"][0], "test-req-1");
    let assertion = echo["headers"]["x-pomerium-jwt-assertion"][0]
        .as_str()
        .unwrap()
        .to_string();

    let access = line_for(&gh, "http-request", "test-req-1");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["authority"], format!("app.localhost:{}", gh.port));
    assert_eq!(access["path"], "/hello", "no query in path: {access}");
    assert_eq!(access["response-code"], 200);
    assert_eq!(access["response-code-details"], "via_upstream");
    assert_eq!(access["size"], body.len() as u64, "{access}");
    assert!(access["duration"].as_f64().is_some_and(|d| d > 0.0));
    assert_eq!(access["user"], "alice");
    assert_eq!(access["user-agent"], "logs-test/1");
    assert_eq!(access["upstream-cluster"], "https://app.localhost");
    assert_eq!(
        access["referer"],
        "https://app.localhost/cb?code=REDACTED&state=REDACTED"
    );
    assert_eq!(access["target"], "gatehouse::access");
    let authorize = line_for(&gh, "authorize check", "test-req-1");
    assert_eq!(authorize["result"], "allow");
    assert_eq!(authorize["email"], "alice@example.com");

    // Without one, gatehouse makes one: response, upstream and lines agree.
    let resp = c
        .get(gh.url("app.localhost", "/again"))
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let echo: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(echo["headers"]["x-request-id"][0], id.as_str());
    line_for(&gh, "http-request", &id);
    line_for(&gh, "authorize check", &id);

    // An upstream that is down: a 502 line that says why.
    let resp = c
        .get(gh.url("down.localhost", "/"))
        .header("X-Request-Id", "test-req-down")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let down = line_for(&gh, "http-request", "test-req-down");
    assert_eq!(down["response-code"], 502);
    assert_eq!(down["response-code-details"], "upstream_connect");
    assert!(down["upstream"].is_null(), "not a default field: {down}");

    // Health checks are not logged.
    c.get(gh.url("app.localhost", "/ping"))
        .header("X-Request-Id", "test-req-ping")
        .send()
        .await
        .unwrap();
    c.get(gh.url("app.localhost", "/after-ping"))
        .header("X-Request-Id", "test-req-after")
        .send()
        .await
        .unwrap();
    line_for(&gh, "http-request", "test-req-after");
    assert_eq!(gh.log_count("test-req-ping"), 0);

    // Sign out, then look for every secret this session involved.
    let (_, form) = sign_out(&c, &gh.url("app.localhost", "")).await;
    let log = gh.log_text();
    for secret in [
        cookie_value,
        "wonderland",
        "s3cr3t-code",
        "st4te",
        "token=abc",
        assertion.as_str(),
        form.as_str(),
        SECRET,
    ] {
        assert!(!log.contains(secret), "`{secret}` in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_fields_choose_the_fields() {
    let up = echo_upstream("app").await;
    let gh = Gatehouse::start(&config(
        &up.addr.to_string(),
        "access_log_fields: [method, path, query, ip, upstream, request-id, headers.x-team, headers.cookie, headers.x-api-key, headers.referer]\n",
    ));
    let c = gh.browser(&["app.localhost"], false);
    submit_login(&c, &login_url(&gh, "app.localhost"), "alice", "wonderland").await;
    c.get(gh.url("app.localhost", "/q?pomerium_jwt=abc&page=2"))
        .header("X-Request-Id", "test-fields")
        .header("X-Team", "blue")
        .header("X-Api-Key", "k3y-s3cr3t")
        .header("Referer", "https://app.localhost/cb?access_token=t0k3n&x=1")
        .send()
        .await
        .unwrap();
    let line = line_for(&gh, "http-request", "test-fields");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["query"], "pomerium_jwt=REDACTED&page=2");
    assert_eq!(line["ip"], "127.0.0.1");
    assert_eq!(line["upstream"], up.addr.to_string());
    let headers: Value = serde_json::from_str(line["headers"].as_str().unwrap()).unwrap();
    assert_eq!(headers["x-team"], "blue");
    assert_eq!(headers["cookie"], "[redacted]");
    assert_eq!(headers["x-api-key"], "[redacted]");
    assert_eq!(
        headers["referer"],
        "https://app.localhost/cb?access_token=REDACTED&x=1"
    );
    for absent in ["user", "user-agent", "size", "authority", "response-code"] {
        assert!(line[absent].is_null(), "{absent} not asked for: {line}");
    }

    // No fields: no access lines at all.
    let quiet = Gatehouse::start(&config(&up.addr.to_string(), "access_log_fields: []\n"));
    let c = quiet.browser(&["app.localhost"], false);
    c.get(quiet.url("app.localhost", "/"))
        .header("X-Request-Id", "test-quiet")
        .send()
        .await
        .unwrap();
    assert!(
        quiet.wait_log("test-quiet", 0),
        "authorize line still written"
    );
    assert!(lines(&quiet, "http-request").is_empty());
}

/// `authorize_log_fields`: Pomerium's names, the fields asked for and no
/// other, credentials redacted in headers, secrets in the query too.
#[tokio::test(flavor = "multi_thread")]
async fn authorize_log_fields_choose_the_line() {
    let up = echo_upstream("app").await;
    let gh = Gatehouse::start(&config(
        &up.addr.to_string(),
        "authorize_log_fields: [request-id, host, ip, query, session-id, headers.x-team, headers.cookie, headers.x-api-key, headers.referer, envoy-route-id]\n",
    ));
    assert!(
        gh.log_text()
            .contains("authorize_log_fields: `envoy-route-id` has no value in gatehouse"),
        "{}",
        gh.log_text()
    );
    let c = gh.browser(&["app.localhost"], false);
    let resp = submit_login(&c, &login_url(&gh, "app.localhost"), "alice", "wonderland").await;
    assert_eq!(resp.status(), 302);
    let resp = c
        .get(gh.url("app.localhost", "/x?token=s3cr3t&y=1"))
        .header("X-Request-Id", "test-authz-1")
        .header("X-Team", "blue")
        .header("X-Api-Key", "k3y-s3cr3t")
        .header("Referer", "https://app.localhost/cb?access_token=t0k3n&x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let line = line_for(&gh, "authorize check", "test-authz-1");
    assert_eq!(line["result"], "allow");
    assert_eq!(line["host"], "app.localhost");
    assert_eq!(line["ip"], "127.0.0.1");
    assert_eq!(line["query"], "token=REDACTED&y=1");
    assert_eq!(line["session-id"].as_str().unwrap().len(), 32);
    let headers: Value = serde_json::from_str(line["headers"].as_str().unwrap()).unwrap();
    assert_eq!(headers["x-team"], "blue");
    assert_eq!(headers["cookie"], "[redacted]");
    assert_eq!(headers["x-api-key"], "[redacted]");
    assert_eq!(
        headers["referer"],
        "https://app.localhost/cb?access_token=REDACTED&x=1"
    );
    for absent in ["method", "path", "user", "email", "route-id"] {
        assert!(line.get(absent).is_none(), "{absent} in {line}");
    }
    for secret in ["s3cr3t", "t0k3n"] {
        assert!(!gh.log_text().contains(secret), "{secret}");
    }
}

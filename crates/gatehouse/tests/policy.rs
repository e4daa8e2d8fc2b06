//! Route policies end to end: a user signed in through the real OpenID
//! provider is allowed by domain, denied by group and by a deny rule on a
//! path (403 page with reasons, one log line per decision); deny rules on
//! paths cannot be walked around with encodings; broken policies never load.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn a_real_sign_in_is_allowed_by_domain_and_denied_by_group_and_path() {
    let up = echo_upstream("a").await;
    let port = free_port();
    let hosts = ["app", "finance", "org"];
    let callbacks: Vec<String> = hosts
        .iter()
        .map(|h| format!("https://{h}.localhost:{port}/oauth2/callback"))
        .collect();
    let idp = Idp::start_with(0, &callbacks, &[], &[]);
    let gh = Gatehouse::start_on(
        port,
        tempfile::tempdir().unwrap(),
        &format!(
            "address: 127.0.0.1:{{port}}
idp_provider: oidc
idp_provider_url: {issuer}
idp_client_id: gatehouse
idp_client_secret: gatehouse-secret
idp_scopes: openid profile email groups
routes:
  - from: https://app.localhost
    to: http://{up}
    show_error_details: true
    policy:
      - allow:
          or:
            - domain: {{is: example.com}}
      - deny:
          or:
            - http_path: {{starts_with: /admin}}
  - from: https://finance.localhost
    to: http://{up}
    show_error_details: true
    policy:
      allow:
        and:
          - groups: {{has: finance}}
  - from: https://org.localhost
    to: http://{up}
    allowed_domains: [example.org]
",
            issuer = idp.issuer,
            up = up.addr
        ),
    );
    let c = gh.browser(
        &["app.localhost", "finance.localhost", "org.localhost"],
        true,
    );
    let get = |url: String| {
        let c = c.clone();
        async move {
            let resp = c
                .get(url)
                .header("Accept", "text/html")
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        }
    };

    // Signed in through the provider (alice@example.com, groups staff and
    // admins): the domain rule allows her.
    let (status, body) = get(gh.url("app.localhost", "/reports")).await;
    assert_eq!(status, 200, "{body}\n{}", gh.log_text());
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["path"], "/reports");

    // The deny rule on a path wins over the allow.
    let (status, body) = get(gh.url("app.localhost", "/admin/users")).await;
    assert_eq!(status, 403);
    assert!(body.contains("Access denied"), "{body}");
    assert!(body.contains("Reasons: http-path-ok"), "{body}");

    // Not in the group: 403 with the reason.
    let (status, body) = get(gh.url("finance.localhost", "/")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("groups-unauthorized"), "{body}");

    // Another domain only; this route does not show details.
    let (status, body) = get(gh.url("org.localhost", "/")).await;
    assert_eq!(status, 403);
    assert!(!body.contains("domain-unauthorized"), "{body}");

    // Every decision is one structured log line.
    let decisions: Vec<Value> = gh
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "authorize check")
        .collect();
    let find = |path: &str, result: &str| {
        decisions
            .iter()
            .find(|d| d["path"] == path && d["result"] == result)
            .unwrap_or_else(|| panic!("no {result} decision for {path} in {decisions:#?}"))
            .clone()
    };
    let allowed = find("/reports", "allow");
    assert_eq!(allowed["reasons"], "domain-ok");
    assert_eq!(allowed["email"], "alice@example.com");
    assert_eq!(allowed["user"], "alice");
    assert_eq!(allowed["route"], "https://app.localhost");
    let denied = find("/admin/users", "deny");
    assert_eq!(denied["reasons"], "http-path-ok");
    assert!(
        denied["request-id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert!(
        decisions.iter().any(|d| d["result"] == "sign-in"),
        "the first visit asked for sign-in"
    );
    drop(idp);
}

/// Raw HTTP/1.1 so the client sends the path bytes exactly as written.
async fn raw_get(port: u16, path: &str) -> u16 {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n");
    let text = raw_exchange(port, request.as_bytes()).await;
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status for {path}: {text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_rules_on_paths_cannot_be_walked_around() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
insecure_server: true
routes:
  - from: https://app.localhost
    to: http://{up}
    policy:
      - allow: {{or: [{{accept: true}}]}}
      - deny: {{or: [{{http_path: {{starts_with: /admin}}}}, {{http_path: /secret}}]}}
",
        up = up.addr
    ));
    assert_eq!(raw_get(gh.port, "/public/page").await, 200);
    for path in [
        "/admin",
        "/admin/x",
        "/%61dmin",
        "/%61%64%6d%69%6e/x",
        "/./admin",
        "//admin",
        "///admin/x",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/.%2E/admin",
        "/a/b/../../admin",
        "/secret",
        "/%73ecret",
        "/x/../secret",
    ] {
        assert_eq!(raw_get(gh.port, path).await, 403, "{path}");
    }
    // What is not the denied path still passes (prefix on segments as written).
    assert_eq!(raw_get(gh.port, "/secretary").await, 200);
    assert_eq!(raw_get(gh.port, "/public/admin").await, 200);
}

#[test]
fn broken_policies_never_load_and_name_their_position() {
    let (code, out) = check(
        "routes:
  - from: https://app.example.com
    to: http://127.0.0.1:8080
    policy:
      allow:
        or:
          - emial: alice@example.com
          - time_of_day: {after: '9:00'}
",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(":7:13: route `https://app.example.com`: policy: unknown criterion `emial`"),
        "{out}"
    );
    assert!(
        out.contains(":8:26: ") && out.contains("needs a `timezone`"),
        "{out}"
    );
    let (code, out) =
        check("routes:\n  - from: https://app.example.com\n    to: http://127.0.0.1:8080\n");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("denies everyone") && out.contains("1 warning)"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_policy_in_a_reload_keeps_the_last_good_one() {
    let up = echo_upstream("a").await;
    let config = |policy: &str| {
        format!(
            "address: 127.0.0.1:{{port}}\ninsecure_server: true\nroutes:\n  - from: https://app.localhost\n    to: http://{}\n    policy: {policy}\n",
            up.addr
        )
    };
    let gh = Gatehouse::start(&config(
        "{allow: {or: [{accept: true}]}, deny: {or: [{http_path: /admin}]}}",
    ));
    assert_eq!(raw_get(gh.port, "/admin").await, 403);
    // A typo that would drop the deny rule: rejected, the deny stays.
    gh.write_config(&config(
        "{allow: {or: [{accept: true}]}, deny: {or: [{http_pth: /admin}]}}",
    ));
    assert!(
        gh.wait_log("configuration reload rejected", 0),
        "{}",
        gh.log_text()
    );
    assert!(gh.log_text().contains("unknown criterion `http_pth`"));
    assert_eq!(raw_get(gh.port, "/admin").await, 403);
    assert_eq!(raw_get(gh.port, "/ok").await, 200);
}

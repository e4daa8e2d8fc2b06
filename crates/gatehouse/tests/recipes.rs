//! The app-side recipes, checked against the contract each app relies on.
//! Settings are read from the comments of the examples themselves
//! (examples/grafana.yaml, grafana-auth-proxy.yaml, jenkins.yaml), so a
//! recipe that drifts from what gatehouse does fails here:
//!
//! - Grafana `[auth.jwt]`: a verifier configured with exactly the recipe's
//!   header, `jwk_set_url` (through the route host, private CA),
//!   `expect_claims`, `username_claim`, `email_claim` accepts the assertion
//!   and finds the user; the role expression's claim is a list; the sign-out
//!   redirect lands on gatehouse's sign-out page.
//! - Grafana `[auth.proxy]`: the header it reads carries the user, and a
//!   client cannot forge it.
//! - Jenkins `jwt-auth`: the same with its CasC fields (issuer, audience,
//!   leeway, JWKS URL, user/groups/email/full-name claims).

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::Value;

fn example(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(name),
    )
    .unwrap()
}

/// `#   key = value` lines of one `[section]` in an example's comments.
fn ini_section(text: &str, section: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let Some(l) = line.strip_prefix('#') else {
            continue;
        };
        let l = l.trim();
        if l.starts_with('[') {
            inside = l == section;
            continue;
        }
        if inside && let Some((k, v)) = l.split_once(" = ") {
            let v = v.split(" ;").next().unwrap().trim();
            out.insert(k.trim().to_string(), v.to_string());
        }
    }
    out
}

/// The `jwtAuth:` fields of the Jenkins CasC block in the comments.
fn casc_jwt_auth(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let Some(l) = line.strip_prefix('#') else {
            continue;
        };
        if l.trim() == "jwtAuth:" {
            inside = true;
            continue;
        }
        if inside {
            match l.trim().split_once(": ") {
                Some((k, v)) => {
                    out.insert(k.to_string(), v.trim().trim_matches('"').to_string());
                }
                None => break,
            }
        }
    }
    out
}

struct Setup {
    gh: Gatehouse,
    ca: String,
    _up: Upstream,
    _certs: tempfile::TempDir,
}

const HOSTS: &[&str] = &["grafana.localhost", "proxy.localhost", "jenkins.localhost"];

async fn setup() -> Setup {
    let up = echo_upstream("app").await;
    let ca = TestCa::new();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, _) = ca.leaf(HOSTS);
    std::fs::write(certs.path().join("cert.pem"), cert).unwrap();
    std::fs::write(certs.path().join("key.pem"), key).unwrap();
    let yaml = format!(
        "address: 127.0.0.1:{{port}}
certificate_file: {dir}/cert.pem
certificate_key_file: {dir}/key.pem
idp_provider: local
cookie_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
local_users:
  - username: alice
    email: alice@example.com
    name: Alice Liddell
    groups: [staff, grafana-admins]
    password_hash: '{hash}'
routes:
  - from: https://grafana.localhost
    to: http://{up}
    allow_any_authenticated_user: true
    pass_identity_headers: true
    preserve_host_header: true
  - from: https://proxy.localhost
    to: http://{up}
    allow_any_authenticated_user: true
    pass_identity_headers: true
    jwt_claims_headers:
      X-Pomerium-Claim-Email: email
      X-Pomerium-Claim-Name: name
  - from: https://jenkins.localhost
    to: http://{up}
    allow_any_authenticated_user: true
    pass_identity_headers: true
    preserve_host_header: true
",
        dir = certs.path().display(),
        hash = hash("wonderland"),
        up = up.addr
    );
    Setup {
        gh: Gatehouse::start(&yaml),
        ca: ca.pem(),
        _up: up,
        _certs: certs,
    }
}

impl Setup {
    /// The recipe's value with the example host replaced by the test's.
    fn local(&self, value: &str, example_host: &str, host: &str) -> String {
        value
            .replace(&format!("https://{example_host}"), &self.gh.url(host, ""))
            .replace(example_host, host)
    }

    /// Signs alice in on `host` and returns the app's echo of one request.
    async fn signed_in_echo(&self, host: &str, extra: &[(&str, &str)]) -> (reqwest::Client, Value) {
        let c = self.gh.browser(HOSTS, true);
        let resp = submit_login(&c, &login_url(&self.gh, host), "alice", "wonderland").await;
        assert_eq!(resp.status(), 200, "{}", self.gh.log_text());
        let mut req = c.get(self.gh.url(host, "/dashboard"));
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let echo = serde_json::from_str(&req.send().await.unwrap().text().await.unwrap()).unwrap();
        (c, echo)
    }
}

fn header(echo: &Value, name: &str) -> String {
    let values = &echo["headers"][name.to_ascii_lowercase()];
    assert_eq!(
        values.as_array().map(Vec::len),
        Some(1),
        "one {name}: {echo}"
    );
    values[0].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn grafana_auth_jwt_recipe() {
    let s = setup().await;
    let text = example("grafana.yaml");
    let jwt = ini_section(&text, "[auth.jwt]");
    let host = |v: &str| s.local(v, "grafana.example.com", "grafana.localhost");
    assert_eq!(jwt["enabled"], "true");

    let (c, echo) = s.signed_in_echo("grafana.localhost", &[]).await;
    let token = header(&echo, &jwt["header_name"]);
    let expect: Value = serde_json::from_str(&host(&jwt["expect_claims"])).unwrap();
    let verifier = gatehouse_verify::Verifier::builder(gatehouse_verify::Keys::jwks_url(host(
        &jwt["jwk_set_url"],
    )))
    .ca_pem(s.ca.as_bytes().to_vec())
    .issuer(expect["iss"].as_str().unwrap())
    .audience(expect["aud"].as_str().unwrap())
    .build()
    .unwrap();
    let who = verifier.verify(&token).await.unwrap();
    assert_eq!(who.claims[&jwt["username_claim"]], "alice@example.com");
    assert_eq!(who.claims[&jwt["email_claim"]], "alice@example.com");
    assert_eq!(who.name, "Alice Liddell");
    // role_attribute_path reads `groups` as a list.
    assert_eq!(
        jwt["role_attribute_path"],
        "contains(groups[*], 'grafana-admins') && 'Admin' || 'Viewer'"
    );
    assert!(
        who.claims["groups"]
            .as_array()
            .unwrap()
            .contains(&Value::from("grafana-admins"))
    );
    // The key set Grafana fetches allows caching (cache_ttl) and says for how long.
    let jwks = c.get(host(&jwt["jwk_set_url"])).send().await.unwrap();
    assert!(
        jwks.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=60")
    );

    // Grafana's sign-out redirect shows gatehouse's sign-out page.
    let auth = ini_section(&text, "[auth]");
    let page = c
        .get(host(&auth["signout_redirect_url"]))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("name=\"token\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn grafana_auth_proxy_recipe() {
    let s = setup().await;
    let proxy = ini_section(&example("grafana-auth-proxy.yaml"), "[auth.proxy]");
    assert_eq!(proxy["header_property"], "email");
    let header_name = proxy["header_name"].as_str();
    let name_header = proxy["headers"].strip_prefix("Name:").unwrap();
    // A client's own copies are dropped, gatehouse's values are set.
    let (_, echo) = s
        .signed_in_echo(
            "proxy.localhost",
            &[
                (header_name, "mallory@example.com"),
                (name_header, "Mallory"),
            ],
        )
        .await;
    assert_eq!(header(&echo, header_name), "alice@example.com");
    assert_eq!(header(&echo, name_header), "Alice Liddell");
}

#[tokio::test(flavor = "multi_thread")]
async fn jenkins_jwt_auth_recipe() {
    let s = setup().await;
    let f = casc_jwt_auth(&example("jenkins.yaml"));
    let host = |v: &str| s.local(v, "jenkins.example.com", "jenkins.localhost");
    assert_eq!(f["allowVerificationFailures"], "false");
    assert!(
        !f["jwksUrl"].is_empty(),
        "an empty jwksUrl skips verification"
    );

    let (_, echo) = s.signed_in_echo("jenkins.localhost", &[]).await;
    let token = header(&echo, &f["headerName"]);
    let verifier =
        gatehouse_verify::Verifier::builder(gatehouse_verify::Keys::jwks_url(host(&f["jwksUrl"])))
            .ca_pem(s.ca.as_bytes().to_vec())
            .issuer(host(&f["acceptedIssuer"]))
            .audience(host(&f["acceptedAudience"]))
            .leeway(std::time::Duration::from_secs(
                f["leewaySeconds"].parse().unwrap(),
            ))
            .build()
            .unwrap();
    let who = verifier.verify(&token).await.unwrap();
    assert_eq!(who.claims[&f["userClaimName"]], "alice@example.com");
    assert_eq!(who.claims[&f["emailClaimName"]], "alice@example.com");
    assert_eq!(who.claims[&f["fullNameClaim"]], "Alice Liddell");
    // Groups: always a JSON list (the separator only matters for strings).
    assert_eq!(
        who.claims[&f["groupsClaimName"]],
        serde_json::json!(["staff", "grafana-admins"])
    );
    // Jenkins builds absolute URLs from Host: the route preserves it.
    assert_eq!(
        header(&echo, "host"),
        format!("jenkins.localhost:{}", s.gh.port)
    );
}

//! The identity assertion upstreams receive, verified by an independent JWT
//! library (npm `jose`) against gatehouse's published JWKS.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

const PASSWORD: &str = "wonderland";

/// `jose` verifies `token`; Ok(claims and header) or Err(jose's message).
fn jose_verify(jwks: &str, token: &str, issuer: &str, audience: &str) -> Result<Value, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/verify-jwt.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(&file)
        .args([token, issuer, audience])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upstreams_get_an_assertion_that_jose_verifies() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
idp_provider: local
jwt_claims_headers: email,groups
runtime_flags: {{pomerium_jwt_endpoint: true}}
local_users:
  - {{username: alice, email: alice@example.com, name: Alice Liddell, groups: [staff], password_hash: '{hash}'}}
routes:
  - {{from: 'https://app.localhost', to: 'http://{up}', allow_any_authenticated_user: true, pass_identity_headers: true}}
  - {{from: 'https://uri.localhost', to: 'http://{up}', allow_any_authenticated_user: true, pass_identity_headers: true, jwt_issuer_format: uri}}
  - {{from: 'https://public.localhost', to: 'http://{up}', allow_public_unauthenticated_access: true, pass_identity_headers: true}}
  - {{from: 'https://plain.localhost', to: 'http://{up}', allow_public_unauthenticated_access: true, jwt_claims_headers: {{X-WEBAUTH-USER: email}}}}
  - from: https://grafana.localhost
    to: http://{up}
    allow_any_authenticated_user: true
    pass_identity_headers: true
    jwt_claims_headers: {{X-WEBAUTH-USER: email, X-WEBAUTH-NAME: name}}
    set_request_headers: {{X-Jwt-Copy: '${{pomerium.jwt}}'}}
",
        hash = hash(PASSWORD),
        up = up.addr
    ));
    let c = gh.browser(
        &[
            "app.localhost",
            "uri.localhost",
            "public.localhost",
            "plain.localhost",
            "grafana.localhost",
        ],
        false,
    );

    // JWKS: on every route host, before sign-in, cacheable, CORS open.
    let resp = c
        .get(gh.url("app.localhost", "/.well-known/pomerium/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "max-age=60");
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let jwks = resp.text().await.unwrap();
    let keys: Value = serde_json::from_str(&jwks).unwrap();
    let kid = keys["keys"][0]["kid"].as_str().unwrap().to_string();
    assert_eq!(keys["keys"][0]["alg"], "ES256");
    assert_eq!(keys["keys"][0]["use"], "sig");
    let again = c
        .get(gh.url("app.localhost", "/.well-known/pomerium/jwks.json"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let disco: Value = get_json(&c, &gh.url("app.localhost", "/.well-known/pomerium")).await;
    assert_eq!(
        disco["jwks_uri"],
        gh.url("app.localhost", "/.well-known/pomerium/jwks.json")
    );
    assert!(gh.log_text().contains("derived from shared_secret"));

    // Sign in.
    for host in ["app.localhost", "uri.localhost", "grafana.localhost"] {
        let resp = submit_login(&c, &login_url(&gh, host), "alice", PASSWORD).await;
        assert_eq!(resp.status(), 302);
    }

    let echo: Value = get_json_with(
        &c,
        &gh.url("app.localhost", "/data"),
        &[("X-Pomerium-Jwt-Assertion", "forged")],
    )
    .await;
    let tokens = echo["headers"]["x-pomerium-jwt-assertion"]
        .as_array()
        .unwrap();
    assert_eq!(tokens.len(), 1, "only gatehouse's own assertion: {echo}");
    let token = tokens[0].as_str().unwrap();
    let verified =
        jose_verify(&jwks, token, "app.localhost", "app.localhost").expect("jose verifies it");
    let p = &verified["payload"];
    assert_eq!(
        verified["protectedHeader"],
        serde_json::json!({"alg": "ES256", "kid": kid, "typ": "JWT"})
    );
    assert_eq!(p["sub"], "alice");
    assert_eq!(p["user"], "alice");
    assert_eq!(p["email"], "alice@example.com");
    assert_eq!(p["name"], "Alice Liddell");
    assert_eq!(p["groups"], serde_json::json!(["staff"]));
    assert_eq!(p["exp"].as_u64().unwrap() - p["iat"].as_u64().unwrap(), 300);
    assert_eq!(p["sid"].as_str().unwrap().len(), 32);
    assert_eq!(p["jti"].as_str().unwrap().len(), 36);
    // Global jwt_claims_headers: X-Pomerium-Claim-<claim>, lists comma-joined.
    assert_eq!(
        echo["headers"]["x-pomerium-claim-email"][0],
        "alice@example.com"
    );
    assert_eq!(echo["headers"]["x-pomerium-claim-groups"][0], "staff");

    // Grafana's auth-proxy recipe: a custom header from a claim, and the JWT
    // copied by a template.
    let echo: Value = get_json_with(
        &c,
        &gh.url("grafana.localhost", "/"),
        &[("X-WEBAUTH-USER", "admin@evil.example")],
    )
    .await;
    assert_eq!(
        echo["headers"]["x-webauth-user"],
        serde_json::json!(["alice@example.com"]),
        "the client's copy is gone"
    );
    assert_eq!(echo["headers"]["x-webauth-name"][0], "Alice Liddell");
    assert_eq!(
        echo["headers"]["x-jwt-copy"],
        echo["headers"]["x-pomerium-jwt-assertion"]
    );

    // /.pomerium/jwt (enabled by the runtime flag): the same kind of token.
    let resp = c
        .get(gh.url("app.localhost", "/.pomerium/jwt"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/jwt");
    let raw = resp.text().await.unwrap();
    assert_eq!(
        jose_verify(&jwks, &raw, "app.localhost", "app.localhost").unwrap()["payload"]["sub"],
        "alice"
    );
    assert_eq!(
        c.get(gh.url("plain.localhost", "/.pomerium/jwt"))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "signed out there"
    );

    // The signed token is reused (cached) rather than signed per request.
    let again: Value = get_json(&c, &gh.url("app.localhost", "/data")).await;
    assert_eq!(
        again["headers"]["x-pomerium-jwt-assertion"][0].as_str(),
        Some(token),
        "cached assertion"
    );

    // What a verifier must refuse.
    assert!(
        jose_verify(&jwks, token, "app.localhost", "other.localhost")
            .unwrap_err()
            .contains("aud")
    );
    let mut tampered = token.to_string();
    let mid = tampered.find('.').unwrap() + 5;
    let flipped = if &tampered[mid..mid + 1] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(mid..mid + 1, flipped);
    assert!(jose_verify(&jwks, &tampered, "app.localhost", "app.localhost").is_err());

    // jwt_issuer_format: uri.
    let echo: Value = get_json(&c, &gh.url("uri.localhost", "/")).await;
    let token = echo["headers"]["x-pomerium-jwt-assertion"][0]
        .as_str()
        .unwrap();
    jose_verify(&jwks, token, "https://uri.localhost/", "uri.localhost").expect("iss is a URI");

    // Public routes: an assertion with an empty identity; groups still a list.
    let echo: Value = get_json(&c, &gh.url("public.localhost", "/")).await;
    let token = echo["headers"]["x-pomerium-jwt-assertion"][0]
        .as_str()
        .unwrap();
    let p = jose_verify(&jwks, token, "public.localhost", "public.localhost").unwrap()["payload"]
        .clone();
    assert_eq!(
        (p["sub"].as_str(), p["groups"].clone()),
        (Some(""), serde_json::json!([]))
    );

    // Routes without pass_identity_headers: no assertion, and never a forged
    // one or a forged claim header.
    let echo: Value = get_json_with(
        &c,
        &gh.url("plain.localhost", "/"),
        &[
            ("X-Pomerium-Jwt-Assertion", "forged"),
            ("x-webauth-user", "admin@evil.example"),
        ],
    )
    .await;
    assert!(echo["headers"].get("x-pomerium-jwt-assertion").is_none());
    assert!(echo["headers"].get("x-webauth-user").is_none(), "{echo}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_raw_jwt_endpoint_is_off_by_default() {
    let gh = Gatehouse::start(
        "address: 127.0.0.1:{port}\nroutes:\n  - {from: 'https://app.localhost', response: {status: 200, body: ok}, allow_public_unauthenticated_access: true}\n",
    );
    let resp = gh
        .client(&["app.localhost"])
        .get(gh.url("app.localhost", "/.pomerium/jwt"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// The kid in a JWT's header.
fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_gatehouse_in_front_chains_its_assertion_and_nobody_else_can() {
    let up = echo_upstream("a").await;
    // Behind: plain HTTP (behind a TLS-terminating front), trusting loopback.
    let behind_config = |trusted: &str| {
        format!(
            "address: 127.0.0.1:{{port}}
insecure_server: true
shared_secret: {secret}
trusted_assertion_sources: [{trusted}]
routes:
  - {{from: 'https://app.localhost', to: 'http://{up}', allow_public_unauthenticated_access: true, pass_identity_headers: true}}
  - {{from: 'https://quiet.localhost', to: 'http://{up}', allow_public_unauthenticated_access: true}}
",
            secret = "Yh0dMVSyX8WpOomAIu9hEi7GNXNWBeXHHzPWbcfNcGo=",
            up = up.addr
        )
    };
    let behind = Gatehouse::start(&behind_config("127.0.0.0/8, '::1'"));
    let front = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
shared_secret: 9ZL1rN0cHUVmhMpWjVb7nGcWyJ9zXBG6rZwkbXcWmLk=
routes:
  - {{from: 'https://app.localhost', to: 'http://127.0.0.1:{b}', preserve_host_header: true, allow_public_unauthenticated_access: true, pass_identity_headers: true}}
",
        b = behind.port
    ));
    let c = front.client(&["app.localhost"]);
    let front_kid = get_json(
        &c,
        &front.url("app.localhost", "/.well-known/pomerium/jwks.json"),
    )
    .await["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_string();

    // Through the front: the front's assertion arrives as -For, the one
    // behind signs its own.
    let echo = get_json_with(
        &c,
        &front.url("app.localhost", "/"),
        &[("X-Pomerium-Jwt-Assertion-For", "forged-by-the-client")],
    )
    .await;
    let own = echo["headers"]["x-pomerium-jwt-assertion"][0]
        .as_str()
        .unwrap();
    let chained = echo["headers"]["x-pomerium-jwt-assertion-for"]
        .as_array()
        .unwrap();
    assert_eq!(chained.len(), 1, "{echo}");
    assert_eq!(kid_of(chained[0].as_str().unwrap()), front_kid);
    assert_ne!(kid_of(own), front_kid);

    // A route that does not pass identity headers never forwards either.
    let direct = behind.client(&["app.localhost", "quiet.localhost"]);
    let quiet = get_json_with(
        &direct,
        &behind.http_url("quiet.localhost", "/"),
        &[
            ("X-Pomerium-Jwt-Assertion", "forged"),
            ("x-pomerium-jwt-assertion-FOR", "forged"),
        ],
    )
    .await;
    assert!(quiet["headers"].get("x-pomerium-jwt-assertion").is_none());
    assert!(
        quiet["headers"]
            .get("x-pomerium-jwt-assertion-for")
            .is_none()
    );

    // Trust is by address: with loopback no longer trusted, a client's
    // copies are dropped.
    behind.write_config(&behind_config("192.0.2.0/24"));
    assert!(behind.wait_log("configuration reloaded", 0));
    let echo = get_json_with(
        &direct,
        &behind.http_url("app.localhost", "/"),
        &[
            ("X-Pomerium-Jwt-Assertion", "forged"),
            ("X-Pomerium-Jwt-Assertion-For", "forged"),
        ],
    )
    .await;
    assert!(
        echo["headers"]
            .get("x-pomerium-jwt-assertion-for")
            .is_none()
    );
    assert_ne!(echo["headers"]["x-pomerium-jwt-assertion"][0], "forged");

    // A bad entry is a config error with its position.
    let (code, out) = check("trusted_assertion_sources: [10.0.0.0/33]\nroutes: []\n");
    assert_eq!(code, 1);
    assert!(out.contains(":1:") && out.contains("10.0.0.0/33"), "{out}");
}

/// `jwt_groups_filter`: the assertion, the claim headers and /.pomerium/jwt
/// carry only the listed groups (global list widened per route, or the
/// groups the route's policy names), from the IdP's groups too.
#[tokio::test(flavor = "multi_thread")]
async fn groups_filter_keeps_the_assertion_small() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
idp_provider: local
jwt_claims_headers: groups
jwt_groups_filter: [staff]
local_users:
  - {{username: alice, email: alice@example.com, name: Alice, groups: [staff, admins, g1, g2, g3], password_hash: '{hash}'}}
routes:
  - {{from: 'https://global.localhost', to: 'http://{up}', allow_any_authenticated_user: true, pass_identity_headers: true}}
  - {{from: 'https://wider.localhost', to: 'http://{up}', allow_any_authenticated_user: true, pass_identity_headers: true, jwt_groups_filter: 'g2, g3'}}
  - from: https://inferred.localhost
    to: http://{up}
    pass_identity_headers: true
    jwt_groups_filter: {{infer_from_ppl: true}}
    policy:
      allow:
        or:
          - groups: {{has: admins}}
          - groups: {{has: nobody}}
",
        hash = hash(PASSWORD),
        up = up.addr
    ));
    let hosts = ["global.localhost", "wider.localhost", "inferred.localhost"];
    let c = gh.browser(&hosts, false);
    for (host, want) in [
        ("global.localhost", vec!["staff"]),
        ("wider.localhost", vec!["staff", "g2", "g3"]),
        ("inferred.localhost", vec!["staff", "admins"]),
    ] {
        let resp = submit_login(&c, &login_url(&gh, host), "alice", PASSWORD).await;
        assert_eq!(resp.status(), 302);
        let echo: Value = get_json(&c, &gh.url(host, "/")).await;
        let token = echo["headers"]["x-pomerium-jwt-assertion"][0]
            .as_str()
            .unwrap();
        let payload: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                token.split('.').nth(1).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(payload["groups"], serde_json::json!(want), "{host}");
        assert_eq!(
            echo["headers"]["x-pomerium-claim-groups"][0],
            want.join(","),
            "{host}"
        );
    }
}

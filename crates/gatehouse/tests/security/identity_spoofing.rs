//! Attack class: identity spoofing. A client must not be able to tell an
//! upstream who it is: the headers gatehouse writes (assertion, claim
//! headers of any route or the global list, identity-templated
//! `set_request_headers`, `X-Auth-Request-*`) are removed from every
//! request on every route, in every spelling; the request names one host;
//! and the client address that policies, logs and forward-auth answers use
//! is the peer, or what trusted proxies appended to `X-Forwarded-For`
//! (`xff_num_trusted_hops`), never what the client wrote.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::Value;

use crate::common::*;

async fn h1(port: u16, host: &str, path: &str, extra: &str) -> (u16, String) {
    raw_get(port, host, path, extra).await
}

fn headers_seen(body: &str) -> serde_json::Map<String, Value> {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["headers"].as_object().cloned().unwrap_or_default()
}

/// Finding 5 and the `_` spellings of finding 10: a public route on the
/// same host as a route with claim headers passes no forged identity.
#[tokio::test(flavor = "multi_thread")]
async fn owned_headers_are_removed_on_every_route_in_every_spelling() {
    let up = echo_upstream("a").await;
    let config = |underscores: &str| {
        format!(
            "address: 127.0.0.1:{{port}}
insecure_server: true
headers_with_underscores_action: {underscores}
jwt_claims_headers: {{X-Global-Email: email}}
routes:
  - from: https://app.localhost
    prefix: /private
    to: http://{up}
    allow_any_authenticated_user: true
    jwt_claims_headers: {{X-WEBAUTH-USER: email}}
    set_request_headers: {{X-Cert: '${{pomerium.client_cert_fingerprint}}'}}
  - from: https://app.localhost
    prefix: /public
    to: http://{up}
    allow_public_unauthenticated_access: true
  - from: https://other.localhost
    to: http://{up}
    allow_public_unauthenticated_access: true
",
            up = up.addr
        )
    };
    let forged = "X-WEBAUTH-USER: ceo@example.com\r\nX-Global-Email: ceo@example.com\r\nX-Cert: 00ff\r\nX-Pomerium-Jwt-Assertion: e30.e30.x\r\nX-Pomerium-Claim-Email: ceo@example.com\r\nX-Auth-Request-Email: ceo@example.com\r\nX-Auth-Request-User: ceo\r\nX-Kept: 1\r\nX-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nForwarded: for=10.0.0.1;host=admin.localhost\r\nX-Real-IP: 10.0.0.1\r\nX-Forwarded-Host: admin.localhost\r\nX-Forwarded-Prefix: /admin\r\n";
    let gh = Gatehouse::start(&config("allow"));
    for (host, path) in [("app.localhost", "/public/x"), ("other.localhost", "/")] {
        let (status, body) = h1(gh.port, host, path, forged).await;
        assert_eq!(status, 200, "{body}");
        let seen = headers_seen(&body);
        let names: Vec<&String> = seen.keys().filter(|k| k.starts_with("x-")).collect();
        let mut names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-kept",
                "x-request-id"
            ],
            "{host}{path}"
        );
        // What describes the request is gatehouse's: the client's
        // `X-Original-URL`, `Forwarded` and `X-Real-IP` are gone.
        assert!(!seen.contains_key("forwarded"), "{body}");
        assert_eq!(seen["x-forwarded-host"][0], host, "{body}");
        // With underscores allowed, the CGI spellings are removed too.
        let underscored = "X_WEBAUTH_USER: ceo@example.com\r\nX_Pomerium_Jwt_Assertion: e30.e30.x\r\nX-Pomerium_Claim_Email: ceo@example.com\r\nx_auth_request_email: ceo@example.com\r\nX_Global_Email: ceo@example.com\r\nX_Other: kept\r\nX_Original_URL: /admin\r\nX_Forwarded_For: 10.0.0.1\r\nX_Forwarded_Host: admin.localhost\r\n";
        let (status, body) = h1(gh.port, host, path, underscored).await;
        assert_eq!(status, 200, "{body}");
        let seen = headers_seen(&body);
        let names: Vec<&String> = seen.keys().filter(|k| k.contains('_')).collect();
        assert_eq!(names, ["x_other"], "{host}{path}");
    }
    drop(gh);

    // Pomerium's default refuses any header name with `_`.
    let gh = Gatehouse::start(&config("''"));
    let (status, _) = h1(
        gh.port,
        "app.localhost",
        "/public/x",
        "X_WEBAUTH_USER: ceo\r\n",
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = h1(gh.port, "other.localhost", "/", "x_anything: 1\r\n").await;
    assert_eq!(status, 400);
    drop(gh);
    let gh = Gatehouse::start(&config("DROP_HEADER"));
    let (status, body) = h1(
        gh.port,
        "other.localhost",
        "/",
        "X_WEBAUTH_USER: ceo\r\nx_other: 1\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        headers_seen(&body).keys().all(|k| !k.contains('_')),
        "{body}"
    );
}

/// Finding 10: one request names one host.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_names_one_host() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
insecure_server: true
routes:
  - from: https://public.localhost
    to: http://{up}
    allow_public_unauthenticated_access: true
  - from: https://private.localhost
    to: http://{up}
    allow_any_authenticated_user: true
",
        up = up.addr
    ));
    let (status, _) = h1(
        gh.port,
        "public.localhost",
        "/",
        "Host: private.localhost\r\n",
    )
    .await;
    assert_eq!(status, 400, "two Host headers");
    let (status, _) = h1(
        gh.port,
        "public.localhost",
        "/",
        "host: public.localhost\r\n",
    )
    .await;
    assert_eq!(status, 400, "two Host headers, even equal");

    // HTTP/2: `:authority` and a different `Host`.
    let mut send = h2c_sender(gh.port).await;
    for (host, want) in [("private.localhost", 400), ("public.localhost", 200)] {
        let req = http::Request::get("http://public.localhost/")
            .header("host", host)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "Host {host}");
        let _ = resp.into_body().collect().await;
    }
}

/// Finding 10: `source_ip` sees the peer unless `xff_num_trusted_hops`
/// says which `X-Forwarded-For` entry a trusted proxy wrote; forward-auth
/// never believes `X-Real-IP`.
#[tokio::test(flavor = "multi_thread")]
async fn the_client_address_is_not_what_the_client_says() {
    let up = echo_upstream("a").await;
    let config = |hops: u32| {
        format!(
            "address: 127.0.0.1:{{port}}
insecure_server: true
xff_num_trusted_hops: {hops}
routes:
  - from: https://app.localhost
    to: http://{up}
    policy: {{allow: {{or: [{{source_ip: 10.0.0.0/8}}]}}}}
",
            up = up.addr
        )
    };
    let gh = Gatehouse::start(&config(0));
    for extra in [
        "X-Forwarded-For: 10.1.2.3\r\n",
        "X-Real-IP: 10.1.2.3\r\n",
        "Forwarded: for=10.1.2.3\r\n",
    ] {
        let (status, _) = h1(gh.port, "app.localhost", "/", extra).await;
        assert_eq!(status, 403, "{extra}");
    }
    // forward-auth: the trusted proxy (the loopback peer) appended the
    // client last; X-Real-IP is never read.
    let ask = |extra: &str| format!("X-Original-URL: http://app.localhost/\r\n{extra}");
    let (status, _) = h1(
        gh.port,
        "gatehouse",
        "/.pomerium/forward_auth",
        &ask("X-Real-IP: 10.1.2.3\r\n"),
    )
    .await;
    assert_eq!(
        status, 400,
        "X-Real-IP is not an address: with no X-Forwarded-For the client is unknown"
    );
    let (status, _) = h1(
        gh.port,
        "gatehouse",
        "/.pomerium/forward_auth",
        &ask("X-Forwarded-For: 10.1.2.3, 192.0.2.1\r\n"),
    )
    .await;
    assert_eq!(status, 403, "the proxy's own entry is the last one");
    let (status, _) = h1(
        gh.port,
        "gatehouse",
        "/.pomerium/forward_auth",
        &ask("X-Forwarded-For: 192.0.2.1, 10.1.2.3\r\n"),
    )
    .await;
    assert_eq!(status, 200);
    drop(gh);

    let gh = Gatehouse::start(&config(1));
    let (status, body) = h1(
        gh.port,
        "app.localhost",
        "/",
        "X-Forwarded-For: 10.1.2.3\r\n",
    )
    .await;
    assert_eq!(status, 200, "one trusted hop wrote 10.1.2.3");
    assert_eq!(
        headers_seen(&body)["x-forwarded-for"][0],
        "10.1.2.3, 127.0.0.1"
    );
    let (status, _) = h1(
        gh.port,
        "app.localhost",
        "/",
        "X-Forwarded-For: 10.1.2.3, 192.0.2.1\r\n",
    )
    .await;
    assert_eq!(
        status, 403,
        "the client wrote 10.1.2.3, the trusted hop 192.0.2.1"
    );
    let (status, _) = h1(gh.port, "app.localhost", "/", "").await;
    assert_eq!(status, 400, "no entry: unknown, never the peer");
}

/// Finding 5 through a proxy in front: a forward-auth answer carries every
/// header gatehouse owns, blank when it has no value, so a front proxy that
/// copies them overwrites the client's forged copies.
#[tokio::test(flavor = "multi_thread")]
async fn forward_auth_answers_blank_what_they_do_not_set() {
    let gh = Gatehouse::start(
        "address: 127.0.0.1:{port}
insecure_server: true
routes:
  - from: https://app.localhost
    prefix: /private
    to: http://127.0.0.1:1
    allow_any_authenticated_user: true
    jwt_claims_headers: {X-WEBAUTH-USER: email}
  - from: https://app.localhost
    to: http://127.0.0.1:1
    allow_public_unauthenticated_access: true
",
    );
    let c = reqwest::Client::new();
    let resp = c
        .get(format!(
            "http://127.0.0.1:{}/.pomerium/forward_auth",
            gh.port
        ))
        .header("x-original-url", "http://app.localhost/public")
        .header("x-forwarded-for", "192.0.2.1")
        .header("x-webauth-user", "ceo@example.com")
        .header("x-pomerium-jwt-assertion", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A public route's assertion is gatehouse's own (with no user).
    let assertion = resp.headers()["x-pomerium-jwt-assertion"].to_str().unwrap();
    assert_eq!(assertion.split('.').count(), 3, "{assertion}");
    for name in [
        "x-webauth-user",
        "x-auth-request-email",
        "x-auth-request-user",
        "x-auth-request-groups",
    ] {
        assert_eq!(
            resp.headers().get(name).map(|v| v.as_bytes()),
            Some(&b""[..]),
            "{name}"
        );
    }
}

/// Found by an attacker's review: a claim header configured with `_`
/// (`X_WEBAUTH_USER`) owns its `-` spelling too, and a client's non-UTF-8
/// `X-Forwarded-For` entry cannot hide the entry a trusted proxy appended
/// (nor make gatehouse fall back to the proxy's own address).
#[tokio::test(flavor = "multi_thread")]
async fn configured_spellings_and_forwarded_bytes() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
insecure_server: true
xff_num_trusted_hops: 1
routes:
  - from: https://app.localhost
    prefix: /private
    to: http://{up}
    allow_any_authenticated_user: true
    jwt_claims_headers: {{X_WEBAUTH_USER: email}}
  - from: https://app.localhost
    to: http://{up}
    policy: {{allow: {{or: [{{source_ip: 10.0.0.0/8}}]}}}}
  - from: https://lb.localhost
    to: http://{up}
    policy: {{allow: {{or: [{{source_ip: 127.0.0.1/32}}]}}}}
",
        up = up.addr
    ));
    let (status, body) = h1(
        gh.port,
        "app.localhost",
        "/",
        "X-Forwarded-For: 10.1.2.3\r\nX-Webauth-User: ceo@example.com\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !headers_seen(&body).contains_key("x-webauth-user"),
        "{body}"
    );

    let ask = |xff: &[u8], host: &str| {
        let mut r =
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nX-Forwarded-For: ")
                .into_bytes();
        r.extend_from_slice(xff);
        r.extend_from_slice(b"\r\n\r\n");
        r
    };
    let status = |text: String| text.split(' ').nth(1).unwrap_or("").to_string();
    // The trusted proxy appended 10.1.2.3 after the client's junk.
    let answer = raw_exchange(gh.port, &ask(b"\xff, 10.1.2.3", "app.localhost")).await;
    assert_eq!(status(answer), "200");
    // Only junk: no client address; never the proxy's own (127.0.0.1).
    let answer = raw_exchange(gh.port, &ask(b"\xff", "lb.localhost")).await;
    assert_eq!(status(answer), "400");
    let answer = raw_exchange(gh.port, &ask(b"127.0.0.1\xff", "lb.localhost")).await;
    assert_eq!(status(answer), "400");
}

/// A claim header may be named like a header gatehouse also handles for
/// other reasons (`Authorization`, `Cookie`, `X-Forwarded-For`): the
/// client's copies still never reach the upstream. And gatehouse's own
/// token is removed whichever `Authorization` value carries it; a `TE`
/// other than `trailers` goes in every value.
#[tokio::test(flavor = "multi_thread")]
async fn owned_names_shared_with_other_headers_and_repeated_values() {
    let up = echo_upstream("a").await;
    // A public route to the echo upstream, with `global` options.
    let start = |global: &str| {
        Gatehouse::start(&format!(
            "address: 127.0.0.1:{{port}}
insecure_server: true
{global}
routes:
  - from: https://app.localhost
    to: http://{up}
    allow_public_unauthenticated_access: true
",
            up = up.addr
        ))
    };
    let gh =
        start("jwt_claims_headers: {Authorization: email, Cookie: email, X-Forwarded-For: email}");
    let forged = "Authorization: Basic Zm9vOmJhcg==\r\nCookie: other=1\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n";
    let (status, body) = h1(gh.port, "app.localhost", "/", forged).await;
    assert_eq!(status, 200, "{body}");
    let seen = headers_seen(&body);
    assert!(!seen.contains_key("authorization"), "{body}");
    assert!(!seen.contains_key("cookie"), "{body}");
    let xff = seen
        .get("x-forwarded-for")
        .map(|v| v.to_string())
        .unwrap_or_default();
    assert!(
        !xff.contains("1.2.3.4") && !xff.contains("5.6.7.8"),
        "{body}"
    );

    let gh = start("");
    let repeated = "Authorization: Basic Zm9vOmJhcg==\r\nAuthorization: Pomerium secret-token\r\nTE: trailers\r\nTE: gzip\r\n";
    let (status, body) = h1(gh.port, "app.localhost", "/", repeated).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("secret-token"), "{body}");
    assert!(
        body.contains("Zm9vOmJhcg=="),
        "the client's own credential stays: {body}"
    );
    assert!(!body.to_ascii_lowercase().contains("gzip"), "{body}");
    // Any spelling gatehouse reads as its token is kept from the upstream
    // (one reading for both: a tab after the scheme used to pass).
    for token in ["Pomerium\tsecret-token", "bearer pomerium-secret-token"] {
        let (status, body) = h1(
            gh.port,
            "app.localhost",
            "/",
            &format!("Authorization: {token}\r\n"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains("secret-token"), "{token}: {body}");
    }
}

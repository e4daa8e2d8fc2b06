//! Client certificates (downstream mTLS) end to end: an openssl-made CA,
//! clients with valid, expired, revoked, wrong-CA, chained, server-only and
//! missing certificates, over HTTP/1.1 and HTTP/2, against every
//! enforcement mode, the `client_certificate` criteria, a route's own CA,
//! the header templates and the access log.

mod common;

use common::mtls::{ClientKind, Pki};
use common::*;
use serde_json::Value;

const HOSTS: &[&str] = &[
    "app.localhost",
    "bob.localhost",
    "san.localhost",
    "other.localhost",
    "hdr.localhost",
    "open.localhost",
];

/// A client for `hosts`, presenting `kind`'s certificate (or none), over
/// HTTP/1.1 only or HTTP/2 (ALPN).
fn client(gh: &Gatehouse, pki: &Pki, kind: Option<ClientKind>, h2: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    for h in HOSTS {
        b = b.resolve(h, gh.addr());
    }
    if let Some(k) = kind {
        b = b.identity(pki.identity(k));
    }
    if !h2 {
        b = b.http1_only();
    }
    b.build().unwrap()
}

async fn status(c: &reqwest::Client, gh: &Gatehouse, host: &str) -> u16 {
    c.get(gh.url(host, "/"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{host}: {e:?}"))
        .status()
        .as_u16()
}

async fn json(req: reqwest::RequestBuilder) -> Value {
    let text = req.send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn config(pki: &Pki, up: &Upstream, mtls: &str) -> String {
    let other = pki.dir().join("other-ca-for-route.pem");
    std::fs::write(&other, pki.other_ca_pem()).unwrap();
    // Both CAs' revocation lists (a leaf whose issuer has none is not
    // checked for revocation).
    let crls = pki.dir().join("crls.pem");
    std::fs::write(&crls, pki.crl_pem() + &pki.intermediate_crl_pem()).unwrap();
    format!(
        "address: 127.0.0.1:{{port}}
cookie_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
access_log_fields: [method, authority, path, response-code, client-certificate]
downstream_mtls:
  ca_file: {ca}
  crl_file: {crl}
{mtls}routes:
  - from: https://app.localhost
    to: http://{up}
    allow_public_unauthenticated_access: true
  - from: https://bob.localhost
    to: http://{up}
    policy:
      allow:
        and:
          - client_certificate: {{fingerprint: '{bob}'}}
  - from: https://san.localhost
    to: http://{up}
    policy:
      allow:
        and:
          - client_certificate:
              san_email: {{ends_with: '@example.com'}}
              san_uri: {{starts_with: 'spiffe://example.com/'}}
              spki_hash: '{alice_spki}'
  - from: https://other.localhost
    to: http://{up}
    allow_public_unauthenticated_access: true
    tls_downstream_client_ca_file: {other}
  - from: https://hdr.localhost
    to: http://{up}
    allow_public_unauthenticated_access: true
    set_request_headers:
      X-Cert-Fingerprint: '${{pomerium.client_cert_fingerprint}}'
      X-Cert-Dns: '${{pomerium.client_cert_san_dns}}'
      X-Cert-Email: '${{pomerium.client_cert_san_email}}'
  - from: https://open.localhost
    to: http://{up}
    policy:
      allow:
        and:
          - accept: true
      deny:
        or:
          - invalid_client_certificate: true
",
        ca = pki.ca_file().display(),
        crl = crls.display(),
        up = up.addr,
        other = other.display(),
        bob = pki.fingerprint(ClientKind::Bob),
        alice_spki = pki.spki_hash(ClientKind::Valid),
    )
}

/// `policy_with_default_deny` (the default): every route refuses a missing
/// or invalid certificate with 495 before anything else, over HTTP/1.1 and
/// HTTP/2; the criteria and a route's own CA decide the rest.
#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_are_judged_per_route_by_default() {
    let pki = Pki::new();
    let up = echo_upstream("up").await;
    let gh = Gatehouse::start(&config(&pki, &up, ""));
    for h2 in [false, true] {
        let version = if h2 { "HTTP/2" } else { "HTTP/1.1" };
        let none = client(&gh, &pki, None, h2);
        let valid = client(&gh, &pki, Some(ClientKind::Valid), h2);
        let bob = client(&gh, &pki, Some(ClientKind::Bob), h2);
        let resp = valid
            .get(gh.url("app.localhost", "/"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{version}");
        let expected = if h2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(resp.version(), expected);
        assert_eq!(
            status(&none, &gh, "app.localhost").await,
            495,
            "{version}: no certificate"
        );
        for kind in [
            ClientKind::Expired,
            ClientKind::Revoked,
            ClientKind::WrongCa,
            ClientKind::ViaIntermediate,
            ClientKind::ServerOnly,
        ] {
            let c = client(&gh, &pki, Some(kind), h2);
            assert_eq!(
                status(&c, &gh, "app.localhost").await,
                495,
                "{version}: {kind:?}"
            );
        }
        // A route's own CA replaces the global one.
        let wrong_ca = client(&gh, &pki, Some(ClientKind::WrongCa), h2);
        assert_eq!(
            status(&wrong_ca, &gh, "other.localhost").await,
            200,
            "{version}"
        );
        assert_eq!(
            status(&valid, &gh, "other.localhost").await,
            495,
            "{version}"
        );
        // client_certificate criteria.
        assert_eq!(status(&bob, &gh, "bob.localhost").await, 200, "{version}");
        assert_eq!(status(&valid, &gh, "bob.localhost").await, 403, "{version}");
        assert_eq!(status(&valid, &gh, "san.localhost").await, 200, "{version}");
        assert_eq!(
            status(&bob, &gh, "san.localhost").await,
            403,
            "{version}: spki"
        );
        assert_eq!(status(&none, &gh, "bob.localhost").await, 495, "{version}");
    }
    // The answers name the problem, in the client's format.
    let none = client(&gh, &pki, None, true);
    let resp = none
        .get(gh.url("app.localhost", "/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 495);
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "invalid_client_certificate");
    let resp = none.get(gh.url("app.localhost", "/")).send().await.unwrap();
    assert_eq!(resp.status(), 495);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("A valid client certificate is required")
    );
    // The certificate's facts reach the upstream through templates...
    let valid = client(&gh, &pki, Some(ClientKind::Valid), false);
    let echo = json(valid.get(gh.url("hdr.localhost", "/"))).await;
    let header = |n: &str| echo["headers"][n][0].as_str().unwrap_or("").to_string();
    assert_eq!(
        header("x-cert-fingerprint"),
        pki.fingerprint(ClientKind::Valid)
    );
    assert_eq!(header("x-cert-dns"), "alice.example.com");
    assert_eq!(header("x-cert-email"), "alice@example.com");
    // ...and a client cannot send them itself.
    let echo = json(
        valid
            .get(gh.url("app.localhost", "/"))
            .header("x-cert-fingerprint", "forged"),
    )
    .await;
    assert!(echo["headers"]["x-cert-fingerprint"].is_null(), "{echo}");
    // ...and into the access log.
    assert!(
        gh.wait_log(&pki.fingerprint(ClientKind::Valid), 0),
        "{}",
        gh.log_text()
    );
    assert!(gh.log_text().contains("alice@example.com"));
}

/// `enforcement: policy`: only policies that ask look at certificates;
/// `max_verify_depth: 2` lets a chain through one intermediate.
#[tokio::test(flavor = "multi_thread")]
async fn policy_enforcement_leaves_it_to_the_policies() {
    let pki = Pki::new();
    let up = echo_upstream("up").await;
    let gh = Gatehouse::start(&config(
        &pki,
        &up,
        "  enforcement: policy\n  max_verify_depth: 2\n",
    ));
    for h2 in [false, true] {
        let none = client(&gh, &pki, None, h2);
        assert_eq!(status(&none, &gh, "app.localhost").await, 200);
        assert_eq!(status(&none, &gh, "open.localhost").await, 495);
        for (kind, want) in [
            (ClientKind::Valid, 200),
            (ClientKind::ViaIntermediate, 200),
            (ClientKind::Expired, 495),
            (ClientKind::Revoked, 495),
            (ClientKind::WrongCa, 495),
        ] {
            let c = client(&gh, &pki, Some(kind), h2);
            assert_eq!(status(&c, &gh, "open.localhost").await, want, "{kind:?}");
        }
    }
}

/// `enforcement: reject_connection`: without a valid certificate there is
/// no connection at all.
#[tokio::test(flavor = "multi_thread")]
async fn reject_connection_fails_the_handshake() {
    let pki = Pki::new();
    let up = echo_upstream("up").await;
    let gh = Gatehouse::start(&config(&pki, &up, "  enforcement: reject_connection\n"));
    for h2 in [false, true] {
        let valid = client(&gh, &pki, Some(ClientKind::Valid), h2);
        assert_eq!(status(&valid, &gh, "app.localhost").await, 200);
        for kind in [None, Some(ClientKind::Expired), Some(ClientKind::Revoked)] {
            let c = client(&gh, &pki, kind, h2);
            let result = c.get(gh.url("app.localhost", "/")).send().await;
            assert!(result.is_err(), "{kind:?}: {result:?}");
        }
    }
}

/// A reload that adds, changes or removes client-certificate settings
/// applies to new connections.
#[tokio::test(flavor = "multi_thread")]
async fn client_certificate_settings_follow_reloads() {
    let pki = Pki::new();
    let up = echo_upstream("up").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
routes:
  - from: https://app.localhost
    to: http://{}
    allow_public_unauthenticated_access: true
",
        up.addr
    ));
    let none = || client(&gh, &pki, None, true);
    assert_eq!(status(&none(), &gh, "app.localhost").await, 200);
    gh.write_config(&config(&pki, &up, ""));
    assert!(
        gh.wait_log("configuration reloaded", 0),
        "{}",
        gh.log_text()
    );
    assert_eq!(status(&none(), &gh, "app.localhost").await, 495);
    let valid = client(&gh, &pki, Some(ClientKind::Valid), true);
    assert_eq!(status(&valid, &gh, "app.localhost").await, 200);
}

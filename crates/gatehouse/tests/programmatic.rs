//! Programmatic login, as Pomerium's: `/.pomerium/api/v1/login` returns a
//! sign-in URL; after sign-in the client's redirect URI receives
//! `pomerium_jwt`, which then authenticates API calls in every spelling
//! (`Authorization: Pomerium`, `Bearer Pomerium-`, `X-Pomerium-Authorization`)
//! and dies with the session.

mod common;

use common::*;
use serde_json::Value;

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

async fn setup(extra: &str) -> (Gatehouse, Upstream) {
    let up = echo_upstream("api").await;
    let yaml = format!(
        "address: 127.0.0.1:{{port}}
idp_provider: local
cookie_secret: {SECRET}
shared_secret: {SECRET}
local_users:
  - username: alice
    email: alice@example.com
    groups: [staff]
    password_hash: '{hash}'
{extra}routes:
  - {{from: 'https://app.localhost', to: 'http://{up}', allow_any_authenticated_user: true, pass_identity_headers: true}}
",
        hash = hash("wonderland"),
        up = up.addr
    );
    (Gatehouse::start(&yaml), up)
}

/// The whole login as a CLI drives it, as alice on app.localhost.
async fn programmatic_login(gh: &Gatehouse, client_redirect: &str) -> (String, reqwest::Client) {
    common::programmatic_login(
        gh,
        "app.localhost",
        &["app.localhost"],
        ("alice", "wonderland"),
        client_redirect,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_authenticates_api_calls_until_the_session_ends() {
    let (gh, _up) = setup("").await;
    let (token, browser) = programmatic_login(&gh, "http://localhost:45123/callback?x=1").await;
    // The token never appears in the log.
    assert!(!gh.log_text().contains(&token));

    let api = gh.client(&["app.localhost"]);
    for (name, value) in [
        ("Authorization", format!("Pomerium {token}")),
        ("Authorization", format!("Bearer Pomerium-{token}")),
        ("X-Pomerium-Authorization", token.clone()),
    ] {
        let resp = api
            .get(gh.url("app.localhost", "/api/things"))
            .header(name, &value)
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}: {value}");
        let echo: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        let h = &echo["headers"];
        assert!(h["x-pomerium-jwt-assertion"][0].is_string());
        // gatehouse's token never reaches the upstream.
        assert!(h.get("authorization").is_none(), "{echo}");
        assert!(h.get("x-pomerium-authorization").is_none(), "{echo}");
    }
    // A tampered token is "signed out": 401 with the sign-in URL.
    let mut bad = token.clone();
    bad.replace_range(10..11, if &bad[10..11] == "A" { "B" } else { "A" });
    let resp = api
        .get(gh.url("app.localhost", "/api/things"))
        .header("Authorization", format!("Pomerium {bad}"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Signing the browser's session out kills the token.
    let (resp, _) = sign_out(&browser, &gh.url("app.localhost", "")).await;
    assert!(resp.status().is_success() || resp.status().is_redirection());
    let resp = api
        .get(gh.url("app.localhost", "/api/things"))
        .header("Authorization", format!("Pomerium {token}"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_dies_with_its_session() {
    let (gh, _up) = setup("cookie_expire: 3s\n").await;
    let (token, _) = programmatic_login(&gh, "http://127.0.0.1:1/cb").await;
    let api = gh.client(&["app.localhost"]);
    let call = || {
        api.get(gh.url("app.localhost", "/api"))
            .header("Authorization", format!("Pomerium {token}"))
            .header("Accept", "application/json")
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(call().await.unwrap().status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_login_endpoint_checks_its_redirect() {
    let (gh, _up) =
        setup("programmatic_redirect_domain_whitelist: [localhost, cli.example.com]\n").await;
    let api = gh.client(&["app.localhost"]);
    let get = |q: &str| {
        api.get(gh.url("app.localhost", &format!("/.pomerium/api/v1/login{q}")))
            .send()
    };
    assert_eq!(get("").await.unwrap().status(), 404);
    assert_eq!(
        get("?pomerium_redirect_uri=https%3A%2F%2Fevil.example%2F")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        get("?pomerium_redirect_uri=https%3A%2F%2Fuser%40localhost%2F")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        get("?pomerium_redirect_uri=https%3A%2F%2Fcli.example.com%2Fcb")
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = api
        .post(gh.url(
            "app.localhost",
            "/.pomerium/api/v1/login?pomerium_redirect_uri=http%3A%2F%2Flocalhost%2F",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    // A forged or expired state never yields a token.
    let resp = api
        .get(gh.url("app.localhost", "/.pomerium/programmatic?state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

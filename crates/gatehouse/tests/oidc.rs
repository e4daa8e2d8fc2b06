//! Sign-in through a real OpenID Provider (the certified npm `oidc-provider`,
//! started by the test): discovery, code flow with PKCE and nonce, ID-token
//! validation, userinfo, the authenticate-host hand-off, sign-out through the
//! provider, and attacks on the callback.

mod common;

use common::*;
use serde_json::Value;

struct Setup {
    gh: Gatehouse,
    idp: Idp,
    _up: Upstream,
}

async fn setup(extra: &str) -> Setup {
    setup_with(extra, &[]).await
}

async fn setup_with(extra: &str, idp_args: &[&str]) -> Setup {
    let up = echo_upstream("a").await;
    let port = free_port();
    let callbacks: Vec<String> = ["app", "other", "auth"]
        .iter()
        .map(|h| format!("https://{h}.localhost:{port}/oauth2/callback"))
        .collect();
    let logouts = vec![format!("https://app.localhost:{port}/.pomerium/signed_out")];
    let idp = Idp::start_with(0, &callbacks, &logouts, idp_args);
    let yaml = format!(
        "address: 127.0.0.1:{{port}}
idp_provider: oidc
idp_provider_url: {issuer}
idp_client_id: gatehouse
idp_client_secret: gatehouse-secret
idp_scopes: openid profile email groups offline_access
cookie_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
shared_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
{extra}routes:
  - from: https://app.localhost
    to: http://{up}
    allow_any_authenticated_user: true
    pass_identity_headers: true
    jwt_claims_headers: {{X-Verified: email_verified}}
    set_request_headers: {{X-Access-Token: '${{pomerium.access_token}}', X-Id-Token: '${{pomerium.id_token}}'}}
  - {{from: 'https://other.localhost', to: 'http://{up}', allow_any_authenticated_user: true}}
",
        issuer = idp.issuer,
        up = up.addr
    );
    let gh = Gatehouse::start_on(port, tempfile::tempdir().unwrap(), &yaml);
    Setup { gh, idp, _up: up }
}

/// A browser-like client: cookies, redirects followed.
fn browser(gh: &Gatehouse, follow: bool) -> reqwest::Client {
    gh.browser(
        &["app.localhost", "other.localhost", "auth.localhost"],
        follow,
    )
}

async fn page(c: &reqwest::Client, url: &str) -> reqwest::Response {
    c.get(url)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_code_flow_signs_in_and_lands_on_the_original_url() {
    let s = setup("").await;
    let gh = &s.gh;
    let c = browser(gh, true);
    let resp = page(&c, &gh.url("app.localhost", "/dash?x=1")).await;
    assert_eq!(resp.status(), 200, "{}", gh.log_text());
    assert_eq!(resp.url().as_str(), gh.url("app.localhost", "/dash?x=1"));
    let echo: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(echo["path"], "/dash");
    // The provider's tokens by template, a provider claim as a header and in the JWT.
    let header = |n: &str| {
        echo["headers"][n][0]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(header("x-access-token").len() > 20, "{echo}");
    assert_eq!(header("x-id-token").split('.').count(), 3);
    assert_eq!(header("x-verified"), "true");
    let jwt = header("x-pomerium-jwt-assertion");
    let payload = jwt.split('.').nth(1).unwrap();
    let payload =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap();
    let claims: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        claims["email_verified"], "true",
        "claims named in jwt_claims_headers join the JWT"
    );

    let me: Value = get_json(&c, &gh.url("app.localhost", "/.pomerium/user")).await;
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["name"], "Alice Liddell");
    assert_eq!(me["groups"], serde_json::json!(["staff", "admins"]));
    assert_eq!(me["idp"], "oidc");
    assert!(gh.log_text().contains("signed in"));
    assert!(
        !gh.log_text().contains("gatehouse-secret"),
        "secrets never reach the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_out_goes_through_the_provider() {
    let s = setup("").await;
    let gh = &s.gh;
    let c = browser(gh, true);
    assert_eq!(page(&c, &gh.url("app.localhost", "/")).await.status(), 200);
    let html = page(&c, &gh.url("app.localhost", "/.pomerium/sign_out"))
        .await
        .text()
        .await
        .unwrap();
    let token = form_token(&html);
    let no_follow = browser(gh, false);
    // Carry the session cookie over by hand (separate jar).
    let me: Value = get_json(&c, &gh.url("app.localhost", "/.pomerium/user")).await;
    assert_eq!(me["sub"], "alice");
    let resp = c
        .post(gh.url("app.localhost", "/.pomerium/sign_out"))
        .header("Origin", gh.url("app.localhost", ""))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    // The provider accepted our id_token_hint and return address: it answers
    // with its logout confirmation (submitted by JavaScript in a browser).
    assert_eq!(
        resp.status(),
        200,
        "the provider accepted the logout request"
    );
    let final_url = resp.url().to_string();
    assert!(
        final_url.starts_with(&format!("{}/session/end", s.idp.issuer)),
        "{final_url}"
    );
    let q: Vec<(String, String)> = url::Url::parse(&final_url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert!(get("id_token_hint").is_some_and(|t| t.split('.').count() == 3));
    assert_eq!(
        get("post_logout_redirect_uri"),
        Some(gh.url("app.localhost", "/.pomerium/signed_out"))
    );
    assert_eq!(get("client_id").as_deref(), Some("gatehouse"));
    // Signed out at gatehouse.
    let resp = no_follow
        .get(gh.url("app.localhost", "/"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_authenticate_host_runs_the_provider_flow_for_every_domain() {
    let s = setup("authenticate_service_url: https://auth.localhost:{port}\n").await;
    let gh = &s.gh;
    let c = browser(gh, true);
    let resp = page(&c, &gh.url("app.localhost", "/a")).await;
    assert_eq!(resp.status(), 200, "{}", gh.log_text());
    assert_eq!(resp.url().as_str(), gh.url("app.localhost", "/a"));
    // The second domain signs in through the authenticate host's session.
    let resp = page(&c, &gh.url("other.localhost", "/b")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.url().as_str(), gh.url("other.localhost", "/b"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_callback_refuses_forged_and_foreign_answers() {
    let s = setup("").await;
    let gh = &s.gh;
    // Start a flow without following: the IdP URL carries our sealed state.
    let starter = browser(gh, false);
    let resp = page(&starter, &gh.url("app.localhost", "/")).await;
    let sign_in = resp.headers()["location"].to_str().unwrap().to_string();
    let resp = page(&starter, &sign_in).await;
    let idp_url = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(idp_url.as_str().starts_with(&s.idp.issuer));
    let params: Vec<(String, String)> = idp_url.query_pairs().into_owned().collect();
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(get("code_challenge_method"), "S256");
    assert!(!get("nonce").is_empty());
    let state = get("state");

    // Another browser (no flow cookie) presenting this state: login CSRF.
    let other = browser(gh, false);
    let cb = format!(
        "{}/oauth2/callback?code=abc&state={}",
        gh.url("app.localhost", ""),
        url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()
    );
    let resp = page(&other, &cb).await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("not started in this browser")
    );
    // A tampered state.
    let resp = page(
        &starter,
        &format!(
            "{}/oauth2/callback?code=abc&state=AAAA{}",
            gh.url("app.localhost", ""),
            &state[4..]
        ),
    )
    .await;
    assert_eq!(resp.status(), 400);
    // The right browser with a forged code: the provider refuses the exchange.
    let resp = page(&starter, &cb).await;
    assert_eq!(resp.status(), 401);
    // The provider reporting an error.
    let resp = page(
        &starter,
        &format!(
            "{}/oauth2/callback?error=access_denied&error_description=nope",
            gh.url("app.localhost", "")
        ),
    )
    .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_provider_is_a_clear_503() {
    let port = free_port();
    let dead = free_port();
    let gh = Gatehouse::start_on(
        port,
        tempfile::tempdir().unwrap(),
        &format!(
            "address: 127.0.0.1:{{port}}\nidp_provider: oidc\nidp_provider_url: http://127.0.0.1:{dead}\nidp_client_id: x\nidp_client_secret: y\nroutes:\n  - {{from: 'https://app.localhost', response: {{status: 200, body: ok}}, allow_any_authenticated_user: true}}\n"
        ),
    );
    let c = browser(&gh, true);
    let resp = page(&c, &gh.url("app.localhost", "/")).await;
    assert_eq!(resp.status(), 503);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("identity provider cannot be reached")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_refresh_once_survive_outages_and_end_on_revocation() {
    // Access tokens live 2 s: every request after the 10 s cool-off refreshes.
    let mut s = setup_with("", &["--access-token-ttl", "2"]).await;
    let gh = &s.gh;
    let c = browser(gh, true);
    assert_eq!(page(&c, &gh.url("app.localhost", "/")).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;

    // Eight requests at once: one refresh at the provider.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = c.clone();
        let url = gh.url("app.localhost", &format!("/r{i}"));
        tasks.push(tokio::spawn(async move {
            c.get(url).send().await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(
        gh.log_count("refreshed session tokens"),
        1,
        "{}",
        gh.log_text()
    );

    // The provider goes down: the session keeps working.
    let port = s.idp.port();
    let callbacks = vec![gh.url("app.localhost", "/oauth2/callback")];
    // Stopped, not replaced: a replacement could be given the same port.
    s.idp.stop();
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    assert_eq!(
        c.get(gh.url("app.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        gh.log_count("token refresh failed for now") >= 1,
        "{}",
        gh.log_text()
    );

    // It comes back without the grant (in-memory state lost): invalid_grant ends the session.
    s.idp.stop();
    s.idp = Idp::start_with(port, &callbacks, &[], &["--access-token-ttl", "2"]);
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let resp = c
        .get(gh.url("app.localhost", "/"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "{}", gh.log_text());
    assert!(
        gh.log_text()
            .contains("token refresh refused: ending the session"),
        "{}",
        gh.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_params_reach_the_provider_and_empty_groups_stay_a_list() {
    let s = setup("idp_request_params: {login_hint: bob}\n").await;
    let gh = &s.gh;
    let c = browser(gh, true);
    assert_eq!(page(&c, &gh.url("app.localhost", "/")).await.status(), 200);
    let me: Value = get_json(&c, &gh.url("app.localhost", "/.pomerium/user")).await;
    assert_eq!(me["sub"], "bob");
    assert_eq!(me["groups"], serde_json::json!([]), "never null");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_providers_key_rotation_is_followed() {
    let mut s = setup_with("", &["--fresh-keys"]).await;
    let gh = &s.gh;
    assert_eq!(
        page(&browser(gh, true), &gh.url("app.localhost", "/"))
            .await
            .status(),
        200
    );
    // The provider restarts with a new signing key (same issuer).
    let port = s.idp.port();
    let callbacks = vec![gh.url("app.localhost", "/oauth2/callback")];
    s.idp.stop();
    s.idp = Idp::start_with(port, &callbacks, &[], &["--fresh-keys"]);
    // A new browser signs in: its ID token is signed by a key gatehouse has not seen.
    let resp = page(&browser(gh, true), &gh.url("app.localhost", "/")).await;
    assert_eq!(resp.status(), 200, "{}", gh.log_text());
    assert!(
        gh.log_text()
            .contains("refetched the provider's signing keys")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn github_sign_in_uses_the_user_email_and_org_apis() {
    let github = Idp::github();
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
idp_provider: github
idp_provider_url: {base}
idp_client_id: gh-client
idp_client_secret: gh-secret
routes:
  - {{from: 'https://app.localhost', to: 'http://{up}', allow_any_authenticated_user: true}}
",
        base = github.issuer,
        up = up.addr
    ));
    let c = browser(&gh, true);
    let resp = page(&c, &gh.url("app.localhost", "/repo?tab=1")).await;
    assert_eq!(resp.status(), 200, "{}", gh.log_text());
    assert_eq!(resp.url().as_str(), gh.url("app.localhost", "/repo?tab=1"));
    let me: Value = get_json(&c, &gh.url("app.localhost", "/.pomerium/user")).await;
    assert_eq!(me["sub"], "4242");
    assert_eq!(me["name"], "The Octocat");
    assert_eq!(
        me["email"], "octocat@example.com",
        "the verified primary email"
    );
    assert_eq!(
        me["groups"],
        serde_json::json!(["gatehouse-org", "octo-org"])
    );
    assert_eq!(me["preferred_username"], "octocat");
    assert_eq!(me["idp"], "github");
}

/// Follows redirects by hand with one cookie jar (two flows interleaved).
async fn follow(c: &reqwest::Client, mut url: String) -> reqwest::Response {
    for _ in 0..20 {
        let resp = page(c, &url).await;
        if !resp.status().is_redirection() {
            return resp;
        }
        let next = resp.headers()["location"].to_str().unwrap().to_string();
        url = reqwest::Url::parse(&url)
            .unwrap()
            .join(&next)
            .unwrap()
            .to_string();
    }
    panic!("too many redirects");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tabs_signing_in_at_once_both_land() {
    let s = setup("").await;
    let gh = &s.gh;
    let c = browser(gh, false);
    // Both tabs reach the provider before either comes back.
    let mut at_idp = Vec::new();
    for tab in ["1", "2"] {
        let resp = page(&c, &gh.url("app.localhost", &format!("/?tab={tab}"))).await;
        let resp = page(&c, resp.headers()["location"].to_str().unwrap()).await;
        at_idp.push(resp.headers()["location"].to_str().unwrap().to_string());
    }
    // The second tab finishes first, then the first.
    let second = follow(&c, at_idp[1].clone()).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.url().as_str(), gh.url("app.localhost", "/?tab=2"));
    let first = follow(&c, at_idp[0].clone()).await;
    assert_eq!(
        first.status(),
        200,
        "no single state cookie for the second tab to overwrite"
    );
    assert_eq!(first.url().as_str(), gh.url("app.localhost", "/?tab=1"));
}

/// A route's own client of the provider (`idp_client_id` and
/// `idp_client_secret` on the route): its sign-in uses that client, its
/// sessions say so, and a session made with one client is not taken by a
/// route of the other, as Pomerium (the other client may admit users this
/// one does not).
#[tokio::test(flavor = "multi_thread")]
async fn a_route_with_its_own_client_signs_in_with_it() {
    let s = setup_with("", &["--second-client", "second:second-secret"]).await;
    let gh = &s.gh;
    // The same host: its root with the route's own client, /default/ with
    // the global one.
    let up = echo_upstream("b").await;
    let current: String = std::fs::read_to_string(&gh.config)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("https://other.localhost"))
        .map(|l| format!("{l}\n"))
        .collect();
    gh.write_config(
        &current
            .replace(
                "routes:\n",
                &format!(
                    "routes:\n  - {{from: 'https://other.localhost', prefix: /default/, to: 'http://{}', allow_any_authenticated_user: true}}\n  - {{from: 'https://other.localhost', to: 'http://{}', allow_any_authenticated_user: true, idp_client_id: second, idp_client_secret: second-secret}}\n",
                    up.addr, up.addr
                ),
            ),
    );
    gh.signal("HUP");
    assert!(
        gh.wait_log("configuration reloaded", 0),
        "{}",
        gh.log_text()
    );

    let manual = browser(gh, false);
    let resp = page(&manual, &gh.url("other.localhost", "/x")).await;
    assert_eq!(resp.status(), 302);
    let sign_in = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        sign_in.contains("pomerium_idp_id=oidc%3Asecond"),
        "{sign_in}"
    );
    let resp = page(&manual, &sign_in).await;
    let authorize = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(authorize.contains("client_id=second"), "{authorize}");
    // An id this gatehouse does not have: refused.
    let forged = sign_in.replace("oidc%3Asecond", "oidc%3Aother");
    assert_eq!(page(&manual, &forged).await.status(), 400);

    let c = browser(gh, true);
    let resp = page(&c, &gh.url("other.localhost", "/x")).await;
    assert_eq!(resp.status(), 200, "{}", gh.log_text());
    let me: Value = get_json(&c, &gh.url("other.localhost", "/.pomerium/user")).await;
    assert_eq!(me["idp"], "oidc:second");
    // The global client's route on the same host does not take it.
    let resp = c
        .get(gh.url("other.localhost", "/default/x"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "a session of another client");
    // Signing in there uses the global client, and lands.
    let resp = page(&c, &gh.url("other.localhost", "/default/x")).await;
    assert_eq!(resp.status(), 200);
    let me: Value = get_json(&c, &gh.url("other.localhost", "/.pomerium/user")).await;
    assert_eq!(me["idp"], "oidc");
}

/// With an authenticate host, a sign-in for a route's own client that does
/// not start at the route host (a bookmark, forward-auth, a CLI's URL)
/// keeps its client through the route host's binding hop, and lands; and a
/// session of the global client on the authenticate host is not handed to
/// that route.
#[tokio::test(flavor = "multi_thread")]
async fn a_route_client_sign_in_through_the_authenticate_host_lands() {
    let s = setup_with(
        "authenticate_service_url: https://auth.localhost:{port}\n",
        &["--second-client", "second:second-secret"],
    )
    .await;
    let gh = &s.gh;
    give_other_its_own_client(gh);
    let c = browser(gh, true);
    // The global client first (app), so the authenticate host holds a
    // session of the global client.
    assert_eq!(page(&c, &gh.url("app.localhost", "/a")).await.status(), 200);
    // A bookmarked sign-in for the route's own client, started at the
    // authenticate host: no loop, lands signed in with that client.
    let target = gh.url("other.localhost", "/b");
    let bookmark = format!(
        "{}?pomerium_redirect_uri={}&pomerium_idp_id=oidc%3Asecond",
        gh.url("auth.localhost", "/.pomerium/sign_in"),
        url_encode(&target)
    );
    let resp = page(&c, &bookmark).await;
    assert_eq!(resp.status(), 200, "{}", gh.log_text());
    assert_eq!(resp.url().as_str(), target);
    let me: Value = get_json(&c, &gh.url("other.localhost", "/.pomerium/user")).await;
    assert_eq!(me["idp"], "oidc:second");
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Programmatic login on a host whose route has its own client signs in
/// with that client (the route its URL matches, as Pomerium's
/// `GetIdentityProviderForRequestURL`), so the token works on that route;
/// it does not on a route of the global client. A browser already signed
/// in with the global client signs in again, with the route's.
#[tokio::test(flavor = "multi_thread")]
async fn programmatic_login_uses_the_routes_own_client() {
    let s = setup_with("", &["--second-client", "second:second-secret"]).await;
    let gh = &s.gh;
    give_other_its_own_client(gh);

    let cli_redirect = "http://localhost:9/cb";
    let api = gh.client(&["app.localhost", "other.localhost"]);
    let mut builder = follow_until(cli_redirect).danger_accept_invalid_certs(true);
    for h in ["app.localhost", "other.localhost", "auth.localhost"] {
        builder = builder.resolve(h, gh.addr());
    }
    let user_browser = builder.build().unwrap();
    // The user's browser is signed in with the global client first.
    assert_eq!(
        page(&user_browser, &gh.url("app.localhost", "/"))
            .await
            .status(),
        200
    );
    let login = |host: &'static str| {
        let api = api.clone();
        let url = gh.url(
            host,
            &format!(
                "/.pomerium/api/v1/login?pomerium_redirect_uri={}",
                url_encode(cli_redirect)
            ),
        );
        async move { api.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let token_from = |resp: reqwest::Response| {
        let location = resp
            .headers()
            .get("location")
            .unwrap_or_else(|| panic!("{}", resp.status()))
            .to_str()
            .unwrap()
            .to_string();
        assert!(location.starts_with(cli_redirect), "{location}");
        url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "pomerium_jwt")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let login_url = login("other.localhost").await;
    assert!(
        login_url.contains("pomerium_idp_id=oidc%3Asecond"),
        "{login_url}"
    );
    let resp = page(&user_browser, &login_url).await;
    let token = token_from(resp);
    let with_token = |host: &'static str, token: String| {
        let api = api.clone();
        let url = gh.url(host, "/x");
        async move {
            api.get(url)
                .header("authorization", format!("Bearer Pomerium-{token}"))
                .header("accept", "application/json")
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(with_token("other.localhost", token.clone()).await, 200);
    assert_eq!(
        with_token("app.localhost", token).await,
        401,
        "a route client's token on a global-client route"
    );
    // On the global client's host: the global client, as before.
    let login_url = login("app.localhost").await;
    assert!(!login_url.contains("pomerium_idp_id"), "{login_url}");
    let token = token_from(page(&user_browser, &login_url).await);
    assert_eq!(with_token("app.localhost", token.clone()).await, 200);
    assert_eq!(with_token("other.localhost", token).await, 401);
}

/// Reloads the setup with `other.localhost`'s route on its own client of
/// the provider (`second`).
fn give_other_its_own_client(gh: &Gatehouse) {
    let current: String = std::fs::read_to_string(&gh.config)
        .unwrap()
        .lines()
        .map(|l| {
            if l.contains("https://other.localhost") {
                l.replace(
                    "allow_any_authenticated_user: true}",
                    "allow_any_authenticated_user: true, idp_client_id: second, idp_client_secret: second-secret}",
                )
            } else {
                l.to_string()
            }
        })
        .map(|l| format!("{l}\n"))
        .collect();
    gh.write_config(&current);
    gh.signal("HUP");
    assert!(
        gh.wait_log("configuration reloaded", 0),
        "{}",
        gh.log_text()
    );
}

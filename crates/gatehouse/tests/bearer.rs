//! Bearer JWTs from trusted issuers (`identity_providers`,
//! `bearer_token_format: jwt`) and the sign-in provider's own tokens
//! (`idp_access_token`, `idp_identity_token`), with tokens issued by two
//! real oidc-provider instances: accepted tokens become the identity for the
//! policy and the upstream assertion; every refusal is a 401 with a generic
//! `WWW-Authenticate` (nothing about trusted issuers or audiences reaches the
//! client) and the problem named in the log.

mod common;

use common::*;
use serde_json::Value;

struct Setup {
    gh: Gatehouse,
    keycloak: Idp,
    partner: Idp,
    redirect: String,
    _up: Upstream,
}

const HOSTS: &[&str] = &[
    "api.localhost",
    "partner.localhost",
    "idtoken.localhost",
    "access.localhost",
];

async fn setup() -> Setup {
    let up = echo_upstream("api").await;
    let port = free_port();
    let redirect = format!("https://api.localhost:{port}/oauth2/callback");
    let keycloak = Idp::start(std::slice::from_ref(&redirect), &[]);
    let partner = Idp::start(std::slice::from_ref(&redirect), &[]);
    let yaml = format!(
        "address: 127.0.0.1:{{port}}
idp_provider: oidc
idp_provider_url: {kc}
idp_client_id: gatehouse
idp_client_secret: gatehouse-secret
cookie_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
shared_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
identity_providers:
  keycloak:
    issuer: {kc}
    audiences: [grafana]
  partner:
    issuer: {partner}
    jwks_url: {partner}/jwks
    audiences: [grafana]
    supported_algs: [RS256]
routes:
  - from: https://api.localhost
    to: http://{up}
    bearer_token_format: jwt
    pass_identity_headers: true
    jwt_claims_headers: {{X-Roles: realm_access}}
    policy:
      allow:
        and:
          - claim/realm_access.roles: grafana-editor
  - from: https://partner.localhost
    to: http://{up}
    bearer_token_format: jwt
    identity_providers: [partner]
    allow_any_authenticated_user: true
  - from: https://idtoken.localhost
    to: http://{up}
    bearer_token_format: idp_identity_token
    allow_any_authenticated_user: true
  - from: https://access.localhost
    to: http://{up}
    bearer_token_format: idp_access_token
    idp_access_token_allowed_audiences: [grafana]
    allow_any_authenticated_user: true
    pass_identity_headers: true
",
        kc = keycloak.issuer,
        partner = partner.issuer,
        up = up.addr
    );
    let gh = Gatehouse::start_on(port, tempfile::tempdir().unwrap(), &yaml);
    Setup {
        gh,
        keycloak,
        partner,
        redirect,
        _up: up,
    }
}

impl Setup {
    async fn token(&self, idp: &Idp, user: &str, aud: &str) -> Value {
        idp_tokens(
            &idp.issuer,
            &self.redirect,
            user,
            Some(&format!("urn:aud:{aud}")),
        )
        .await
    }

    async fn call(&self, host: &str, token: &str) -> reqwest::Response {
        self.gh
            .client(HOSTS)
            .get(self.gh.url(host, "/data"))
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap()
    }
}

/// Checks a refusal: 401, a generic `WWW-Authenticate` and body that name
/// no issuer, audience or provider, and `why` in the log.
async fn refused(gh: &Gatehouse, resp: reqwest::Response, why: &str) {
    assert_eq!(resp.status(), 401);
    let h = resp
        .headers()
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate on {}", resp.status()))
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        h,
        "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"The bearer token is not valid for this route.\""
    );
    let body = resp.text().await.unwrap();
    for secret in ["localhost:", "grafana", "keycloak", "partner", "gatehouse'"] {
        assert!(!body.contains(secret), "{secret} in {body}");
    }
    assert!(
        gh.wait_log(why, 0),
        "{why} not in the log:\n{}",
        gh.log_text()
    );
}

fn forge(header: &str, claims: &str, sig: &str) -> String {
    use base64::Engine;
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.{sig}", e(header), e(claims))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_issuers_token_is_the_identity_for_policy_and_assertion() {
    let s = setup().await;
    let alice = s.token(&s.keycloak, "alice", "grafana").await;
    let at = alice["access_token"].as_str().unwrap();
    assert_eq!(at.split('.').count(), 3, "a JWT access token: {alice}");

    let resp = s.call("api.localhost", at).await;
    assert_eq!(resp.status(), 200, "{}", s.gh.log_text());
    let echo: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    let assertion = echo["headers"]["x-pomerium-jwt-assertion"][0]
        .as_str()
        .unwrap();
    let jwks =
        s.gh.client(HOSTS)
            .get(s.gh.url("api.localhost", "/.well-known/pomerium/jwks.json"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    let who = gatehouse_verify::Verifier::builder(gatehouse_verify::Keys::jwks_json(jwks.to_vec()))
        .audience("api.localhost")
        .build()
        .unwrap()
        .verify(assertion)
        .await
        .unwrap();
    assert_eq!(who.sub, "alice");
    assert_eq!(who.email, "alice@example.com");
    assert_eq!(who.groups, ["staff", "admins"]);
    // The app's own token passes on untouched (it is the app's).
    assert_eq!(echo["headers"]["authorization"][0], format!("Bearer {at}"));
    // Cached: the same token again is allowed without another key fetch.
    assert_eq!(s.call("api.localhost", at).await.status(), 200);

    // The policy reads the token's claims: bob lacks the realm role.
    let bob = s.token(&s.keycloak, "bob", "grafana").await;
    let resp = s
        .call("api.localhost", bob["access_token"].as_str().unwrap())
        .await;
    assert_eq!(resp.status(), 403);

    // A second issuer is accepted where every provider is, and is the only
    // one accepted where the route names it.
    let partner = s.token(&s.partner, "alice", "grafana").await;
    let pt = partner["access_token"].as_str().unwrap();
    assert_eq!(s.call("api.localhost", pt).await.status(), 200);
    assert_eq!(s.call("partner.localhost", pt).await.status(), 200);
    let resp = s.call("partner.localhost", at).await;
    refused(
        &s.gh,
        resp,
        "identity provider 'keycloak' is not accepted on this route",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_name_the_problem() {
    let s = setup().await;
    // Keycloak's default `aud: account`: the classic mismatch.
    let account = s.token(&s.keycloak, "alice", "account").await;
    let resp = s
        .call("api.localhost", account["access_token"].as_str().unwrap())
        .await;
    refused(
        &s.gh,
        resp,
        r#"audience [\"account\"] does not include any of [\"grafana\"]"#,
    )
    .await;

    let good = s.token(&s.keycloak, "alice", "grafana").await;
    let at = good["access_token"].as_str().unwrap().to_string();
    // Altered signature.
    // (A character inside the signature: the last one may carry only
    // padding bits.)
    let mut tampered = at.clone();
    let i = tampered.len() - 10;
    let flip = if &tampered[i..=i] == "A" { "B" } else { "A" };
    tampered.replace_range(i..=i, flip);
    let resp = s.call("api.localhost", &tampered).await;
    refused(&s.gh, resp, "signature").await;
    // Altered claims under the real signature.
    let parts: Vec<&str> = at.split('.').collect();
    let forged_claims = {
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut c: Value = serde_json::from_slice(&e.decode(parts[1]).unwrap()).unwrap();
        c["realm_access"]["roles"] = serde_json::json!(["grafana-editor", "admin"]);
        e.encode(c.to_string())
    };
    let resp = s
        .call(
            "api.localhost",
            &format!("{}.{forged_claims}.{}", parts[0], parts[2]),
        )
        .await;
    assert_eq!(resp.status(), 401);
    // Unsigned and symmetric tokens naming the trusted issuer.
    let claims = format!(
        r#"{{"iss":"{}","aud":"grafana","sub":"mallory","exp":9999999999,"realm_access":{{"roles":["grafana-editor"]}}}}"#,
        s.keycloak.issuer
    );
    let resp = s
        .call("api.localhost", &forge(r#"{"alg":"none"}"#, &claims, ""))
        .await;
    refused(&s.gh, resp, "unsigned").await;
    let resp = s
        .call(
            "api.localhost",
            &forge(r#"{"alg":"HS256","typ":"JWT"}"#, &claims, "c2ln"),
        )
        .await;
    refused(&s.gh, resp, "HS256 is not allowed").await;
    // An issuer nobody configured.
    let resp = s
        .call(
            "api.localhost",
            &forge(
                r#"{"alg":"RS256"}"#,
                r#"{"iss":"https://evil.example"}"#,
                "x",
            ),
        )
        .await;
    refused(
        &s.gh,
        resp,
        r#"issuer \"https://evil.example\" is not one of the identity_providers"#,
    )
    .await;
    // Not a JWT at all.
    let resp = s.call("api.localhost", "opaque-token").await;
    refused(&s.gh, resp, "not a JWT").await;

    // A session cookie and a bearer token together: 400, as Pomerium.
    let resp =
        s.gh.client(HOSTS)
            .get(s.gh.url("api.localhost", "/data"))
            .header("Authorization", format!("Bearer {at}"))
            .header("Cookie", "_pomerium=anything")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
    // Tokens never appear in the log.
    assert!(!s.gh.log_text().contains(&at[at.len() - 20..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sign_in_providers_own_tokens() {
    let s = setup().await;
    let t = s.token(&s.keycloak, "alice", "grafana").await;
    let id_token = t["id_token"].as_str().unwrap();
    let access = t["access_token"].as_str().unwrap();
    // idp_identity_token: the ID token (aud = our client id) is accepted,
    // the access token (aud = grafana) is not an ID token for us.
    assert_eq!(s.call("idtoken.localhost", id_token).await.status(), 200);
    let resp = s.call("idtoken.localhost", access).await;
    refused(
        &s.gh,
        resp,
        r#"does not include the client id \"gatehouse\""#,
    )
    .await;
    // idp_access_token with allowed audiences.
    let resp = s.call("access.localhost", access).await;
    assert_eq!(resp.status(), 200);
    let account = s.token(&s.keycloak, "alice", "account").await;
    let resp = s
        .call(
            "access.localhost",
            account["access_token"].as_str().unwrap(),
        )
        .await;
    refused(&s.gh, resp, "idp_access_token_allowed_audiences").await;
    // The partner's tokens are not the sign-in provider's.
    let p = s.token(&s.partner, "alice", "grafana").await;
    let resp = s
        .call("access.localhost", p["access_token"].as_str().unwrap())
        .await;
    refused(&s.gh, resp, "is not the sign-in provider's").await;
}

/// A route with its own client of the sign-in provider takes that client's
/// identity tokens (their audience is its client id) and the global
/// client's routes take the global client's; a token verified on one is
/// never taken as verified on the other (the verification cache is per
/// client). Both clients are real clients of one oidc-provider.
#[tokio::test(flavor = "multi_thread")]
async fn provider_tokens_are_verified_for_the_routes_own_client() {
    let up = echo_upstream("api").await;
    let port = free_port();
    let redirect = format!("https://api.localhost:{port}/oauth2/callback");
    let idp = Idp::start_with(
        0,
        std::slice::from_ref(&redirect),
        &[],
        &["--second-client", "second:second-secret"],
    );
    let yaml = format!(
        "address: 127.0.0.1:{{port}}
idp_provider: oidc
idp_provider_url: {issuer}
idp_client_id: gatehouse
idp_client_secret: gatehouse-secret
cookie_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
routes:
  - from: https://global.localhost
    to: http://{up}
    bearer_token_format: idp_identity_token
    allow_any_authenticated_user: true
  - from: https://own.localhost
    to: http://{up}
    bearer_token_format: idp_identity_token
    idp_client_id: second
    idp_client_secret: second-secret
    allow_any_authenticated_user: true
  - from: https://own-access.localhost
    to: http://{up}
    bearer_token_format: idp_access_token
    idp_client_id: second
    idp_client_secret: second-secret
    idp_access_token_allowed_audiences: [grafana]
    allow_any_authenticated_user: true
",
        issuer = idp.issuer,
        up = up.addr
    );
    let gh = Gatehouse::start_on(port, tempfile::tempdir().unwrap(), &yaml);
    let hosts = ["global.localhost", "own.localhost", "own-access.localhost"];
    let call = |host: &'static str, token: String| {
        let c = gh.client(&hosts);
        let url = gh.url(host, "/data");
        async move {
            c.get(url)
                .header("Authorization", format!("Bearer {token}"))
                .header("Accept", "application/json")
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let second = idp_tokens_as(
        &idp.issuer,
        ("second", "second-secret"),
        &redirect,
        "alice",
        Some("urn:aud:grafana"),
    )
    .await;
    let global = idp_tokens(&idp.issuer, &redirect, "alice", None).await;
    let id = |t: &serde_json::Value| t["id_token"].as_str().unwrap().to_string();
    // Verified (and cached) on the route of its client first, then refused
    // on the other client's route: the cache does not carry it over.
    assert_eq!(call("own.localhost", id(&second)).await, 200);
    assert_eq!(call("global.localhost", id(&second)).await, 401);
    assert_eq!(call("global.localhost", id(&global)).await, 200);
    assert_eq!(call("own.localhost", id(&global)).await, 401);
    assert!(gh.log_text().contains("does not include the client id"));
    // An access token (a JWT for `grafana`) on a route of the second client.
    let access = second["access_token"].as_str().unwrap().to_string();
    assert_eq!(call("own-access.localhost", access).await, 200);
}

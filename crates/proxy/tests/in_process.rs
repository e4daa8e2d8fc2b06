//! The dispatcher driven in process: built requests in, answers out, no
//! socket and no binary. Routing, the canonical request, identify and
//! decide, the own endpoints, a whole sign-in and the refusal counters are
//! checked here in milliseconds; what needs real sockets, TLS, browsers or
//! upstreams stays in `crates/gatehouse/tests` and `tests/e2e`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gatehouse_proxy::Proxy;
use gatehouse_proxy::body::{Body, RequestBody};
use gatehouse_proxy::request::ConnInfo;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn proxy(extra: &str) -> Arc<Proxy> {
    let hash = gatehouse_identity::local::hash_password("wonderland");
    let yaml = format!(
        "address: 127.0.0.1:8443
idp_provider: local
cookie_secret: {SECRET}
shared_secret: {SECRET}
local_users:
  - username: alice
    email: alice@example.com
    groups: [staff]
    password_hash: '{hash}'
{extra}routes:
  - from: https://public.localhost
    response: {{status: 200, body: hello}}
    allow_public_unauthenticated_access: true
  - from: https://app.localhost
    response: {{status: 200, body: app}}
    allow_any_authenticated_user: true
  - from: https://admins.localhost
    response: {{status: 200, body: admins}}
    policy: {{allow: {{and: [{{groups: {{has: admins}}}}]}}}}
    show_error_details: true
"
    );
    let loaded =
        gatehouse_config::load_str(&yaml, "test.yaml", std::path::Path::new("."), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
    Proxy::new(loaded.config, None).unwrap()
}

fn conn() -> ConnInfo {
    ConnInfo::new("127.0.0.1:40000".parse::<SocketAddr>().unwrap(), 8443, true)
}

fn get(url: &str) -> http::request::Builder {
    Request::get(url)
}

/// One request through the dispatcher, its answer read whole.
async fn send(proxy: &Proxy, req: Request<RequestBody>) -> (Response<()>, String) {
    let rt = proxy.runtime();
    let resp: Response<Body> =
        gatehouse_proxy::dispatch::handle(proxy, &rt, req, &conn(), None).await;
    let (parts, body) = resp.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (
        Response::from_parts(parts, ()),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

async fn send_empty(proxy: &Proxy, b: http::request::Builder) -> (Response<()>, String) {
    send(proxy, b.body(RequestBody::empty()).unwrap()).await
}

#[tokio::test]
async fn routing_and_the_canonical_request() {
    let p = proxy("");
    let (r, body) = send_empty(&p, get("https://public.localhost/")).await;
    assert_eq!((r.status(), body.as_str()), (StatusCode::OK, "hello"));
    assert!(r.headers().contains_key("x-request-id"));

    let (r, _) = send_empty(&p, get("https://nowhere.localhost/")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Health checks answer on any host, before routing.
    let (r, body) = send_empty(&p, get("https://nowhere.localhost/healthz")).await;
    assert_eq!((r.status(), body.as_str()), (StatusCode::OK, "OK"));

    // Ambiguous paths are refused before any route sees them.
    for path in ["/a%2Fb", "/a/..;x/b", "/a\\b", "/%00"] {
        let (r, _) = send_empty(&p, get(&format!("https://public.localhost{path}"))).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    // Two hosts that disagree.
    let req = get("https://public.localhost/")
        .header(header::HOST, "app.localhost")
        .body(RequestBody::empty())
        .unwrap();
    let (r, _) = send(&p, req).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // CONNECT opens only tcp+https routes' tunnels.
    let (r, _) = send_empty(&p, Request::connect("public.localhost:443")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn identify_and_decide_without_a_session() {
    let p = proxy("");
    // A page load is sent to sign in; an API call gets 401 with the URL.
    let (r, _) = send_empty(
        &p,
        get("https://app.localhost/x?y=1").header(header::ACCEPT, "text/html"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = r.headers()[header::LOCATION].to_str().unwrap();
    assert!(
        location.starts_with("https://app.localhost/.pomerium/sign_in?"),
        "{location}"
    );
    let (r, body) = send_empty(
        &p,
        get("https://app.localhost/x").header(header::ACCEPT, "application/json"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        body.contains("\"error\":\"user-unauthenticated\""),
        "{body}"
    );
    assert!(r.headers().contains_key("x-pomerium-sign-in-url"));

    // Own endpoints and published keys, on route hosts.
    let (r, body) = send_empty(&p, get("https://app.localhost/.pomerium/user")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(body.contains("Not signed in."), "{body}");
    let (r, body) = send_empty(
        &p,
        get("https://app.localhost/.well-known/pomerium/jwks.json"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(body.contains("\"ES256\""), "{body}");

    // A forward-auth question from a peer that is not trusted.
    let p = proxy("forward_auth_trusted_sources: [10.0.0.0/8]\n");
    let (r, _) = send_empty(
        &p,
        get("https://public.localhost/.pomerium/forward_auth")
            .header("x-forwarded-host", "app.localhost")
            .header("x-forwarded-uri", "/"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

/// The whole built-in sign-in through the dispatcher: the form, the post,
/// the cookie, then the policy with the session.
#[tokio::test]
async fn a_sign_in_then_the_policy_with_the_session() {
    let p = proxy("");
    let (r, page) = send_empty(
        &p,
        get("https://app.localhost/.pomerium/sign_in?pomerium_redirect_uri=https%3A%2F%2Fapp.localhost%2Fhome")
            .header(header::ACCEPT, "text/html"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = page
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form carries its token")
        .to_string();
    let form = format!("token={token}&username=alice&password=wonderland");
    let req = Request::post("https://app.localhost/.pomerium/sign_in")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ORIGIN, "https://app.localhost")
        .body(RequestBody::from(Bytes::from(form)))
        .unwrap();
    let (r, _) = send(&p, req).await;
    assert_eq!(r.status(), StatusCode::FOUND, "{:?}", r.headers());
    assert_eq!(r.headers()[header::LOCATION], "https://app.localhost/home");
    let cookie = r
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("_pomerium="))
        .expect("a session cookie");

    let (r, body) = send_empty(
        &p,
        get("https://app.localhost/home").header(header::COOKIE, &cookie),
    )
    .await;
    assert_eq!((r.status(), body.as_str()), (StatusCode::OK, "app"));
    // Not in the group: 403, with the reasons the route shows.
    let (r, body) = send_empty(
        &p,
        get("https://admins.localhost/")
            .header(header::COOKIE, &cookie)
            .header(header::ACCEPT, "application/json"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(body.contains("Reasons:"), "{body}");

    // A tampered cookie is "signed out", never an error.
    let (r, _) = send_empty(
        &p,
        get("https://app.localhost/home")
            .header(header::COOKIE, "_pomerium=tampered")
            .header(header::ACCEPT, "application/json"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Every decision and refusal counted once, by route and by fault.
    let text = p.metrics().render();
    for line in [
        "gatehouse_route_authorize_decisions_total{route=\"https://app.localhost\",result=\"allow\"} 1",
        "gatehouse_route_authorize_decisions_total{route=\"https://admins.localhost\",result=\"deny\"} 1",
        "gatehouse_refusals_total{source=\"policy\",code=\"access_denied\"} 1",
        "gatehouse_refusals_total{source=\"policy\",code=\"user-unauthenticated\"} 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

/// hyper moves every request's future into its own box: rare, large
/// branches (the authenticate endpoints, a token refresh through the
/// provider) are boxed where they are awaited so that they do not make
/// every request's future as big as themselves. It was 12 KiB (24 KiB
/// with the server's wrapper) before they were, 7 KiB before the session
/// became shared (`Arc<Session>`), 5.4 KiB since.
#[test]
fn the_per_request_future_stays_small() {
    let p = proxy("");
    let rt = p.runtime();
    let req = get("https://public.localhost/")
        .body(RequestBody::empty())
        .unwrap();
    let conn = conn();
    let fut = gatehouse_proxy::dispatch::handle(&p, &rt, req, &conn, None);
    let size = std::mem::size_of_val(&fut);
    assert!(size <= 6 * 1024, "the per-request future is {size} bytes");
}

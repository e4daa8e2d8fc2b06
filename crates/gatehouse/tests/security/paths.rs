//! Attack class: paths. What the route and the policy decided on must be
//! what the upstream acts on. Each spelling trick (encoded slashes and
//! backslashes, encoded dots, `;` parameters, raw backslashes, NUL, double
//! slashes) is sent raw over HTTP/1.1 and over HTTP/2 to gatehouse in front
//! of real upstreams that decode and resolve paths their own way: nginx
//! from Debian, and a Node server reading `new URL(req.url)` (WHATWG, as
//! Node, Deno and Bun apps do). No spelling may reach their `/admin`.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use gatehouse_proxy::request::canonical_path;
use http_body_util::{BodyExt, Empty};
use rand::{Rng, SeedableRng};

use crate::common::*;

/// nginx as an upstream: `/admin` (as nginx reads the path: decoded,
/// dots resolved, slashes merged) answers `ADMIN`; every page says what
/// nginx received (`$request_uri`) and understood (`$uri`).
fn nginx_upstream() -> FrontProxy {
    let port = free_port();
    FrontProxy::nginx(
        port,
        &format!(
            "  default_type text/plain;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 \"page uri=$uri raw=$request_uri\\n\"; }}
    location /admin {{ return 200 \"ADMIN uri=$uri raw=$request_uri\\n\"; }}
  }}"
        ),
    )
}

/// The Node upstream (tests/e2e/whatwg-upstream.mjs); killed on drop.
struct NodeUpstream {
    child: Child,
    port: u16,
}

impl NodeUpstream {
    fn start() -> NodeUpstream {
        use std::io::BufRead;
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/whatwg-upstream.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node must be installed");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("whatwg-upstream did not start: {line}"));
        NodeUpstream { child, port }
    }
}

impl Drop for NodeUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `app.localhost` in front of nginx and `node.localhost` in front of the
/// Node upstream, both open to all but `http_path starts_with /admin`.
fn deny_admin(nginx: &FrontProxy, node: &NodeUpstream) -> String {
    let route = |host: &str, port: u16| {
        format!(
            "  - from: https://{host}
    to: http://127.0.0.1:{port}
    policy:
      - allow: {{or: [{{accept: true}}]}}
      - deny: {{or: [{{http_path: {{starts_with: /admin}}}}]}}
"
        )
    };
    format!(
        "address: 127.0.0.1:{{port}}\ninsecure_server: true\nroutes:\n{}{}",
        route("app.localhost", nginx.port),
        route("node.localhost", node.port)
    )
}

async fn h1(port: u16, host: &str, path: &str) -> (u16, String) {
    raw_get(port, host, path, "").await
}

/// The answers over HTTP/1.1 and HTTP/2 (where an HTTP/2 client can send
/// the path at all), named by protocol.
async fn both(port: u16, host: &str, path: &str) -> Vec<(&'static str, u16, String)> {
    let (status, body) = h1(port, host, path).await;
    let mut out = vec![("HTTP/1.1", status, body)];
    if let Some((status, body)) = h2(port, host, path).await {
        out.push(("HTTP/2", status, body));
    }
    out
}

/// The same over HTTP/2 (prior knowledge on the plain listener); `None`
/// when the path is not one an HTTP/2 client can put in `:path`.
async fn h2(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    let uri: http::Uri = format!("http://{host}{path}").parse().ok()?;
    let mut send = h2c_sender(port).await;
    let req = http::Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Finding 2 (and its variants): `/public/` is public, the rest of the
/// host needs a signed-in user. No spelling of a path through `/public/`
/// reaches nginx's `/admin` without a session.
#[tokio::test(flavor = "multi_thread")]
async fn prefix_routes_cannot_be_walked_out_of() {
    let nginx = nginx_upstream();
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
insecure_server: true
routes:
  - from: https://app.localhost
    prefix: /public/
    to: http://127.0.0.1:{up}
    allow_public_unauthenticated_access: true
  - from: https://app.localhost
    to: http://127.0.0.1:{up}
    allow_any_authenticated_user: true
",
        up = nginx.port
    ));
    let (status, body) = h1(gh.port, "app.localhost", "/public/page").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "page uri=/public/page raw=/public/page\n")
    );
    let (status, _) = h1(gh.port, "app.localhost", "/admin").await;
    assert_eq!(status, 401, "the protected part needs a session");
    for path in [
        "/public/..%2fadmin",
        "/public/..%2Fadmin",
        "/public/%2e%2e%2fadmin",
        "/public/%2E%2E%2Fadmin",
        "/public/.%2e%2fadmin",
        "/public/..%5cadmin",
        "/public/..%5Cadmin",
        "/public/..\\admin",
        "/public\\..\\admin",
        "/public/..;/admin",
        "/public/..;x=1/admin",
        "/public/%2e%2e;/admin",
        "/public/..%3b/admin",
        "/public/.;/../admin",
        "/public/../admin",
        "/public//../admin",
        "/public/%2e%2e/admin",
        "/public/x/../../admin",
        "/public/%252e%252e%252fadmin",
        "/public/..%252fadmin",
        "/public/..%00/admin",
        "/public/%2fadmin",
    ] {
        for (proto, status, body) in both(gh.port, "app.localhost", path).await {
            assert!(
                !body.contains("ADMIN"),
                "{proto} {path} reached /admin: {body}"
            );
            assert!(
                matches!(status, 400 | 401) || body.starts_with("page uri=/public/"),
                "{proto} {path}: {status} {body}"
            );
        }
    }
}

/// Finding 2, deny rules: `http_path starts_with /admin` holds against
/// every spelling, over both HTTP versions.
#[tokio::test(flavor = "multi_thread")]
async fn deny_rules_hold_for_every_spelling() {
    let (nginx, node) = (nginx_upstream(), NodeUpstream::start());
    let gh = Gatehouse::start(&deny_admin(&nginx, &node));
    let (status, body) = h1(gh.port, "node.localhost", "/x/page").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"admin\":false"), "{body}");
    for path in [
        "/admin",
        "/x/..%2fadmin",
        "/x/..%2Fadmin",
        "/%2fadmin",
        "/%2Fadmin",
        "//admin",
        "/%2f%2fadmin",
        "/x\\..\\admin",
        "/x/..\\admin",
        "\\admin",
        "/\\admin",
        "/x/%5c..%5cadmin",
        "/%61dmin",
        "/.;/admin",
        "/x/..;/admin",
        "/;/admin",
        "/;x/admin",
        "/x/%2e%2e/admin",
        "/x/%2E./admin",
        "/admin%00",
        "/x/..%00/admin",
        "/./admin",
        "/x/../../admin",
    ] {
        for host in ["app.localhost", "node.localhost"] {
            for (proto, status, body) in both(gh.port, host, path).await {
                assert!(
                    !body.contains("ADMIN") && !body.contains("\"admin\":true"),
                    "{proto} {host}{path} reached /admin: {body}"
                );
                assert!(
                    matches!(status, 400 | 403),
                    "{proto} {host}{path}: {status} {body}"
                );
            }
        }
    }
}

/// `path_with_escaped_slashes_action`, as Pomerium reads it: the default
/// refuses; `keep_unchanged` forwards `%2F` as decided on (for upstreams
/// that do not decode it); `unescape_and_forward` decides on the decoded
/// path; `unescape_and_redirect` sends the client there.
#[tokio::test(flavor = "multi_thread")]
async fn escaped_slash_actions() {
    let up = echo_upstream("a").await;
    let config = |action: &str| {
        format!(
            "address: 127.0.0.1:{{port}}
insecure_server: true
path_with_escaped_slashes_action: {action}
routes:
  - from: https://app.localhost
    prefix: /public/
    to: http://{up}
    allow_public_unauthenticated_access: true
  - from: https://app.localhost
    to: http://{up}
    allow_any_authenticated_user: true
",
            up = up.addr
        )
    };
    let path_seen = |body: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        v["path"].as_str().unwrap_or("").to_string()
    };

    let gh = Gatehouse::start(&config("KEEP_UNCHANGED"));
    let (status, body) = h1(gh.port, "app.localhost", "/public/group%2fproject").await;
    assert_eq!(
        (status, path_seen(&body).as_str()),
        (200, "/public/group%2Fproject")
    );
    drop(gh);

    let gh = Gatehouse::start(&config("unescape_and_forward"));
    let (status, body) = h1(gh.port, "app.localhost", "/public/group%2fproject").await;
    assert_eq!(
        (status, path_seen(&body).as_str()),
        (200, "/public/group/project")
    );
    let (status, _) = h1(gh.port, "app.localhost", "/public/..%2fadmin").await;
    assert_eq!(status, 401, "decided on /admin, which needs a session");
    drop(gh);

    let gh = Gatehouse::start(&config(
        "PATH_WITH_ESCAPED_SLASHES_ACTION_UNESCAPE_AND_REDIRECT",
    ));
    let text = raw_exchange(
        gh.port,
        b"GET /public/a%2Fb?x=1 HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 307"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("location: /public/a/b?x=1\r\n"),
        "{text}"
    );
    drop(gh);

    // With slashes kept, an unescaped `//host` would be a redirect to
    // another site: refused instead (found on reading the change again).
    let gh = Gatehouse::start(&format!(
        "merge_slashes: false\n{}",
        config("unescape_and_redirect")
    ));
    for path in [
        "/%2F%2Fevil.example",
        "/%2f/evil.example/",
        "/%5c%5cevil.example",
    ] {
        let text = raw_exchange(
            gh.port,
            format!("GET {path} HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 400"), "{path}: {text}");
        assert!(!text.to_ascii_lowercase().contains("location:"), "{text}");
    }
    drop(gh);

    let (code, out) = check("path_with_escaped_slashes_action: sometimes\n");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(":1:35: path_with_escaped_slashes_action `sometimes`"),
        "{out}"
    );
    let (code, out) = check("normalize_path: false\n");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(":1:17: normalize_path: false is not supported"),
        "{out}"
    );
}

/// The differential test: thousands of generated raw paths, each sent to
/// gatehouse in front of nginx and of the Node upstream under a deny rule
/// on `/admin`. For every one, either gatehouse refused it (400), or the
/// upstream received exactly the canonical path the policy decided on, and
/// then neither nginx's nor WHATWG's reading of it is `/admin` unless the
/// policy saw `/admin` (and denied it).
#[tokio::test(flavor = "multi_thread")]
async fn the_upstream_receives_the_path_the_policy_decided_on() {
    const PARTS: &[&str] = &[
        "/", "/", "admin", "admin", "x", ".", "..", "%2e", "%2E", "%2e%2e", "%2f", "%2F", "%5c",
        "\\", ";", ";a=1", "%3b", "%00", "%25", "%252e", "%61", "//", "%20", "~", "-", "%7e",
    ];
    let (nginx, node) = (nginx_upstream(), NodeUpstream::start());
    let gh = Gatehouse::start(&deny_admin(&nginx, &node));
    let rules = gatehouse_config::RequestRules::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let (mut refused, mut denied, mut passed) = (0, 0, 0);
    for _ in 0..1500 {
        let mut path = String::from("/");
        for _ in 0..rng.random_range(1..8) {
            path.push_str(PARTS[rng.random_range(0..PARTS.len())]);
        }
        let decided = canonical_path(&path, &rules).map(|c| c.path.into_owned());
        for host in ["app.localhost", "node.localhost"] {
            let (status, body) = h1(gh.port, host, &path).await;
            match &decided {
                Err(_) => {
                    assert_eq!(status, 400, "{host}{path} is ambiguous: {body}");
                    refused += 1;
                }
                Ok(p) if p.starts_with("/admin") => {
                    assert_eq!(status, 403, "{host}{path} decided as {p}: {body}");
                    denied += 1;
                }
                Ok(p) => {
                    assert_eq!(status, 200, "{host}{path} decided as {p}: {body}");
                    passed += 1;
                    if host == "app.localhost" {
                        let raw = body.trim_end().rsplit_once(" raw=").map_or("", |(_, r)| r);
                        assert_eq!(
                            raw, p,
                            "nginx received another path than decided for {path}"
                        );
                        assert!(!body.starts_with("ADMIN"), "{path} -> nginx /admin: {body}");
                    } else {
                        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                        assert_eq!(
                            v["raw"],
                            p.as_str(),
                            "node received another path for {path}"
                        );
                        assert_eq!(v["admin"], false, "{path} -> WHATWG /admin: {body}");
                    }
                }
            }
        }
    }
    eprintln!("differential: {refused} refused, {denied} denied, {passed} passed");
    assert!(
        refused > 100 && denied > 50 && passed > 100,
        "{refused} {denied} {passed}"
    );
}

/// A rewrite must not turn a path into one the upstream reads another way:
/// `prefix: /app` + `prefix_rewrite: /api/` would make `/app../admin` into
/// `/api/../admin` (found by an attacker's review); the rewritten path must
/// itself be canonical, or the request is refused.
#[tokio::test(flavor = "multi_thread")]
async fn rewrites_cannot_walk_out_of_their_base() {
    let nginx = nginx_upstream();
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
insecure_server: true
routes:
  - from: https://app.localhost
    prefix: /app
    prefix_rewrite: /api/
    to: http://127.0.0.1:{up}
    allow_public_unauthenticated_access: true
  - from: https://app.localhost
    regex: '^/rx(.*)$'
    regex_rewrite_pattern: '^/rx(.*)$'
    regex_rewrite_substitution: '/api/\\1'
    to: http://127.0.0.1:{up}
    allow_public_unauthenticated_access: true
  - from: https://app.localhost
    to: http://127.0.0.1:{up}
    policy: {{allow: {{or: [{{reject: true}}]}}}}
",
        up = nginx.port
    ));
    let (status, body) = h1(gh.port, "app.localhost", "/app/x").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "page uri=/api/x raw=/api/x\n")
    );
    let (status, body) = h1(gh.port, "app.localhost", "/rx/y").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "page uri=/api/y raw=/api/y\n")
    );
    for path in [
        "/app../admin",
        "/app./admin",
        "/app.%2e/admin",
        "/rx../admin",
        "/rx./admin",
    ] {
        for (proto, status, body) in both(gh.port, "app.localhost", path).await {
            assert!(
                !body.contains("ADMIN"),
                "{proto} {path} reached /admin: {body}"
            );
            assert_eq!(status, 400, "{proto} {path}: {body}");
        }
    }
}

/// Servlet containers (Jetty under Jenkins, Tomcat) cut `;parameters` from
/// every segment before routing: `/secret;x` is their `/secret`. A request
/// must mean the same route and pass the policy under both readings, or it
/// is refused; matrix parameters that change nothing still pass.
#[tokio::test(flavor = "multi_thread")]
async fn path_parameters_mean_the_same_to_servlet_containers() {
    let up = echo_upstream("a").await;
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
insecure_server: true
routes:
  - from: https://app.localhost
    path: /secret
    to: http://{up}
    policy: {{allow: {{or: [{{reject: true}}]}}}}
  - from: https://app.localhost
    to: http://{up}
    policy:
      - allow: {{or: [{{accept: true}}]}}
      - deny: {{or: [{{http_path: /script}}]}}
",
        up = up.addr
    ));
    for (path, want) in [
        ("/secret", 403),
        ("/secret;x", 400),
        ("/secret;jsessionid=0123", 400),
        ("/secret%3bx", 400),
        ("/script", 403),
        ("/script;x", 403),
        ("/script%3Bx=1", 403),
        ("/page;v=1", 200),
        ("/a;x/b", 200),
    ] {
        for (proto, status, body) in both(gh.port, "app.localhost", path).await {
            assert_eq!(status, want, "{proto} {path}: {body}");
        }
    }
}

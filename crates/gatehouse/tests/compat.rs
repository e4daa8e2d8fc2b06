//! The compatibility run: Pomerium configurations as Pomerium's docs write
//! them (examples/pomerium/: the verify quickstart, client certificates, an
//! ingress-style setup) pass `gatehouse check` with every key in force (no
//! key without effect, no warning), and run: each is started with its
//! hosts on loopback and its upstreams replaced by a live one, and its
//! routes answer as Pomerium's would.

mod common;

use std::path::{Path, PathBuf};

use common::mtls::{ClientKind, Pki};
use common::*;

/// The files a configuration names under /etc/gatehouse/.
fn etc(dir: &Path, pki: &Pki) -> PathBuf {
    install_crypto();
    let ca = TestCa::new();
    let (cert, key, _) = ca.leaf(&["*.localhost", "localhost"]);
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let secret = "Yh0dMVSyX8WpOomAIu9hEi7GNXNWBeXHHzPWbcfNcGo=";
    for (name, contents) in [
        ("tls.crt", cert),
        ("tls.key", key),
        ("shared-secret", secret.to_string()),
        ("cookie-secret", secret.to_string()),
        ("idp-client-secret", "client-secret".to_string()),
        ("client-ca.pem", pki.ca_pem()),
        ("client-ca.crl", pki.crl_pem()),
        ("partner-ca.pem", pki.other_ca_pem()),
    ] {
        std::fs::write(etc.join(name), contents).unwrap();
    }
    etc
}

fn example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/pomerium")
            .join(name),
    )
    .unwrap()
}

#[test]
fn pomerium_configurations_check_with_every_key_in_force() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let etc = etc(dir.path(), &pki);
    let mut checked = 0;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pomerium");
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("/etc/gatehouse/", &format!("{}/", etc.display()));
        let copy = dir.path().join(path.file_name().unwrap());
        std::fs::write(&copy, text).unwrap();
        let (code, out) = check_file(&copy);
        assert_eq!(code, 0, "{}:\n{out}", path.display());
        assert!(
            out.contains(", 0 warnings);") && out.contains(" in force, 0 without effect"),
            "{}:\n{out}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 3);
}

/// A configuration ready to run here: hosts on loopback, upstreams live.
fn runnable(text: &str, etc: &Path, upstream: &Upstream, extra: &[(&str, String)]) -> String {
    let text = text
        .replace("/etc/gatehouse/", &format!("{}/", etc.display()))
        .replace(".localhost.pomerium.io", ".localhost")
        .replace(".example.com", ".localhost");
    let text = live_upstreams(&text, &format!("http://{}", upstream.addr));
    let mut out = String::from("address: 127.0.0.1:{port}\n");
    for line in text.lines() {
        if line.starts_with("address:") {
            continue;
        }
        let replaced = extra
            .iter()
            .find(|(key, _)| line.starts_with(&format!("{key}:")))
            .map(|(key, value)| format!("{key}: {value}"));
        out.push_str(&replaced.unwrap_or_else(|| line.to_string()));
        out.push('\n');
    }
    out
}

/// Every `http://name:port` (an upstream of the example) becomes `live`.
fn live_upstreams(text: &str, live: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("http://") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 7..];
        let host_len = after
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
            .unwrap_or(after.len());
        let port = after[host_len..]
            .strip_prefix(':')
            .map(|p| p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len()));
        match port {
            Some(n) if host_len > 0 && n > 0 => {
                out.push_str(live);
                rest = &after[host_len + 1 + n..];
            }
            _ => {
                out.push_str("http://");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn client(gh: &Gatehouse, hosts: &[&str], identity: Option<reqwest::Identity>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    for h in hosts {
        b = b.resolve(h, gh.addr());
    }
    if let Some(i) = identity {
        b = b.identity(i);
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn pomerium_configurations_run() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let etc = etc(dir.path(), &pki);
    let up = echo_upstream("app").await;

    // The quickstart: the verify app asks for sign-in on the authenticate host.
    let gh = Gatehouse::start(&runnable(&example("verify.yaml"), &etc, &up, &[]));
    let c = client(&gh, &["verify.localhost"], None);
    let resp = c
        .get(gh.url("verify.localhost", "/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://authenticate.localhost"),
        "{location}"
    );
    drop(gh);

    // Client certificates.
    let gh = Gatehouse::start(&runnable(&example("mtls.yaml"), &etc, &up, &[]));
    let hosts = ["app.localhost", "admin.localhost", "partner.localhost"];
    let none = client(&gh, &hosts, None);
    let valid = client(&gh, &hosts, Some(pki.identity(ClientKind::Valid)));
    let partner = client(&gh, &hosts, Some(pki.identity(ClientKind::WrongCa)));
    let get = |c: &reqwest::Client, host: &str| c.get(gh.url(host, "/")).send();
    assert_eq!(get(&none, "app.localhost").await.unwrap().status(), 495);
    let resp = get(&valid, "app.localhost").await.unwrap();
    assert_eq!(resp.status(), 200);
    let echo: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(
        echo["headers"]["x-client-cert-fingerprint"][0],
        pki.fingerprint(ClientKind::Valid).as_str()
    );
    assert_eq!(get(&valid, "admin.localhost").await.unwrap().status(), 200);
    assert_eq!(
        get(&partner, "partner.localhost").await.unwrap().status(),
        200
    );
    assert_eq!(
        get(&valid, "partner.localhost").await.unwrap().status(),
        495
    );
    drop(gh);

    // Ingress-style: public, protected, the health listener.
    let health = free_port();
    let gh = Gatehouse::start(&runnable(
        &example("ingress.yaml"),
        &etc,
        &up,
        &[
            ("http_redirect_addr", format!("127.0.0.1:{}", free_port())),
            ("health_check_addr", format!("127.0.0.1:{health}")),
        ],
    ));
    let c = client(
        &gh,
        &["status.localhost", "apps.localhost", "wiki.localhost"],
        None,
    );
    let resp = c.get(gh.url("status.localhost", "/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    for (host, path) in [("apps.localhost", "/grafana/"), ("wiki.localhost", "/")] {
        let resp = c
            .get(gh.url(host, path))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302, "{host}{path}");
    }
    let resp = c
        .get(gh.url("apps.localhost", "/api/v1/admin/x"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let ready = reqwest::get(format!("http://127.0.0.1:{health}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

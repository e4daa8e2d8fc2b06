//! `autocert` against Let's Encrypt's own test CA, `pebble` (Debian
//! package), with `pebble-challtestsrv` answering every DNS name with
//! 127.0.0.1, so pebble validates the challenges on gatehouse's own
//! listeners: TLS-ALPN-01 on `address`, HTTP-01 on `http_redirect_addr`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// pebble and its DNS, stopped (by their ids) when dropped.
struct Pebble {
    pebble: Child,
    dns: Child,
    port: u16,
    mgmt: u16,
    dns_port: u16,
}

impl Pebble {
    /// pebble validating on `tls_port` (TLS-ALPN-01) and `http_port`
    /// (HTTP-01), serving its API with a certificate from `ca`.
    /// Accounts need external account binding with this key id and MAC.
    fn start_with_eab(dir: &Path, ca: &TestCa, tls_port: u16, (kid, mac): (&str, &str)) -> Pebble {
        let mut p = Pebble::start_on((free_port(), free_port()), dir, ca, tls_port, free_port());
        // Restarted with the binding required (the config is rewritten).
        let path = dir.join("pebble.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config["pebble"]["externalAccountBindingRequired"] = true.into();
        config["pebble"]["externalAccountMACKeys"] = serde_json::json!({ kid: mac });
        std::fs::write(&path, config.to_string()).unwrap();
        let _ = p.pebble.kill();
        let _ = p.pebble.wait();
        while std::net::TcpStream::connect(("127.0.0.1", p.port)).is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
        p.pebble = Command::new("pebble")
            .arg("-config")
            .arg(&path)
            .args(["-dnsserver", &format!("127.0.0.1:{}", p.dns_port)])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        p.wait_up();
        p
    }

    /// As [`Pebble::start`], its API on `port` and management on `mgmt`.
    fn start_on(
        (port, mgmt): (u16, u16),
        dir: &Path,
        ca: &TestCa,
        tls_port: u16,
        http_port: u16,
    ) -> Pebble {
        let (cert, key, _) = ca.leaf(&["localhost"]);
        std::fs::write(dir.join("pebble.crt"), cert).unwrap();
        std::fs::write(dir.join("pebble.key"), key).unwrap();
        let (dns_port, dns_mgmt) = (free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{mgmt}"),
                "certificate": dir.join("pebble.crt"),
                "privateKey": dir.join("pebble.key"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_mgmt}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian package pebble)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // No random sleeps or nonce rejections: the test's time is its own.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (Debian package)");
        let p = Pebble {
            pebble,
            dns,
            port,
            mgmt,
            dns_port,
        };
        p.wait_up();
        p
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", self.mgmt)).is_err()
        {
            assert!(Instant::now() < deadline, "pebble did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn directory(&self) -> String {
        format!("https://localhost:{}/dir", self.port)
    }

    /// The root pebble issues under (new each run).
    async fn root(&self, ca: &TestCa) -> String {
        let c = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
            .no_proxy()
            .build()
            .unwrap();
        c.get(format!("https://localhost:{}/roots/0", self.mgmt))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in [&mut self.pebble, &mut self.dns] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Where autocert keeps `host`'s certificate for the CA at `directory`.
fn kept(autocert_dir: &Path, directory: &str, host: &str, ext: &str) -> std::path::PathBuf {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, directory.as_bytes());
    let hash: String = d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    autocert_dir.join(format!("certificates/{hash}/{host}.{ext}"))
}

/// Whether `host` on gatehouse presents a certificate for it that chains
/// to `root_pem` (and only that root is trusted).
async fn served_under(gh: &Gatehouse, host: &str, root_pem: &str) -> bool {
    let c = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap()])
        .resolve(host, gh.addr())
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    c.get(gh.url(host, "/")).send().await.is_ok()
}

async fn wait_served(gh: &Gatehouse, host: &str, root_pem: &str, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if served_under(gh, host, root_pem).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

fn config(pebble_dir: &str, ca_file: &Path, autocert_dir: &Path, extra: &str) -> String {
    format!(
        "address: 127.0.0.1:{{port}}
{extra}autocert: true
autocert_ca: {pebble_dir}
autocert_trusted_ca_file: {ca}
autocert_dir: {dir}
autocert_email: admin@example.com
routes:
  - from: https://app.localhost
    response: {{status: 200, body: app}}
    allow_public_unauthenticated_access: true
  - from: https://other.localhost
    response: {{status: 200, body: other}}
    allow_public_unauthenticated_access: true
",
        ca = ca_file.display(),
        dir = autocert_dir.display()
    )
}

/// TLS-ALPN-01 on the TLS listener: every route host gets a certificate
/// from the CA, kept on disk for the owner only; a restart serves them at
/// once from `autocert_dir`, with the CA gone.
#[tokio::test(flavor = "multi_thread")]
async fn route_hosts_get_certificates_over_tls_alpn_and_keep_them() {
    install_crypto();
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = work.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let autocert_dir = work.path().join("autocert");
    let port = free_port();
    // No HTTP-01 port: only the TLS listener can answer. Accounts need an
    // external account binding (as ZeroSSL's).
    let mac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let pebble = Pebble::start_with_eab(work.path(), &ca, port, ("kid-1", mac));
    let root = pebble.root(&ca).await;
    let yaml = config(
        &pebble.directory(),
        &ca_file,
        &autocert_dir,
        &format!("autocert_eab_key_id: kid-1\nautocert_eab_mac_key: {mac}\n"),
    );
    let gh = Gatehouse::start_on(port, tempfile::tempdir().unwrap(), &yaml);
    for host in ["app.localhost", "other.localhost"] {
        assert!(
            wait_served(&gh, host, &root, 60).await,
            "{host} has no certificate from the CA:\n{}",
            gh.log_text()
        );
    }
    assert!(gh.log_text().contains("ACME account created"));
    assert!(gh.log_text().contains("\"challenge\":\"tls-alpn-01\""));
    assert!(!gh.log_text().contains(mac), "the EAB key in a log line");
    // A route added by a reload gets its certificate.
    gh.write_config(&yaml.replace(
        "routes:\n",
        "routes:\n  - from: https://new.localhost\n    response: {status: 200, body: new}\n    allow_public_unauthenticated_access: true\n",
    ));
    gh.signal("HUP");
    assert!(
        wait_served(&gh, "new.localhost", &root, 60).await,
        "the reload's new host:\n{}",
        gh.log_text()
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let key = kept(&autocert_dir, &pebble.directory(), "app.localhost", "key");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    // A restart with the CA gone: the kept certificates serve at once.
    drop(gh);
    drop(pebble);
    let gh = Gatehouse::start_on(free_port(), tempfile::tempdir().unwrap(), &yaml);
    assert!(
        served_under(&gh, "app.localhost", &root).await,
        "{}",
        gh.log_text()
    );
    assert!(gh.log_text().contains("autocert: certificate loaded"));
    assert!(!gh.log_text().contains("ACME account created"));
}

/// A kept certificate with a third of its life left is renewed, over
/// HTTP-01 on `http_redirect_addr`; while the CA is down (at start) the
/// old certificate keeps serving and the order is retried; once the CA is
/// up the new one takes its place.
#[tokio::test(flavor = "multi_thread")]
async fn a_due_certificate_is_renewed_over_http01_when_the_ca_comes_back() {
    install_crypto();
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = work.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let autocert_dir = work.path().join("autocert");
    let pebble_ports = (free_port(), free_port());
    let directory = format!("https://localhost:{}/dir", pebble_ports.0);
    // A kept certificate near the end of its life (valid until 2027, issued
    // in 2020): due for renewal.
    {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["app.localhost".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2027, 1, 1);
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        let crt = kept(&autocert_dir, &directory, "app.localhost", "crt");
        std::fs::create_dir_all(crt.parent().unwrap()).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let dirs = [
                autocert_dir.clone(),
                autocert_dir.join("certificates"),
                crt.parent().unwrap().to_path_buf(),
            ];
            for d in dirs {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
            }
        }
        std::fs::write(&crt, cert.pem()).unwrap();
        let key_path = kept(&autocert_dir, &directory, "app.localhost", "key");
        std::fs::write(key_path, key.serialize_pem()).unwrap();
    }
    let (port, http_port) = (free_port(), free_port());
    // The CA's address is known before it runs: gatehouse starts while
    // it is down.
    let yaml = config(
        &directory,
        &ca_file,
        &autocert_dir,
        &format!("http_redirect_addr: 127.0.0.1:{http_port}\n"),
    );
    let gh = Gatehouse::start_on(port, tempfile::tempdir().unwrap(), &yaml);
    // The old certificate serves, and the CA cannot be reached.
    assert!(
        served_under(&gh, "app.localhost", &ca.pem()).await,
        "{}",
        gh.log_text()
    );
    assert!(
        gh.wait_log("the certificate in force keeps serving", 0),
        "{}",
        gh.log_text()
    );
    // The CA comes up.
    let pebble = Pebble::start_on(pebble_ports, work.path(), &ca, port, http_port);
    let root = pebble.root(&ca).await;
    assert!(
        wait_served(&gh, "app.localhost", &root, 90).await,
        "not renewed:\n{}",
        gh.log_text()
    );
    assert!(!served_under(&gh, "app.localhost", &ca.pem()).await);
    assert!(
        gh.log_text().contains("\"challenge\":\"http-01\""),
        "{}",
        gh.log_text()
    );
    let stored =
        std::fs::read_to_string(kept(&autocert_dir, &directory, "app.localhost", "crt")).unwrap();
    assert!(!stored.contains(&ca.pem()[30..80]));
}

/// Instances sharing a session store (Redis) share the work: one orders a
/// host's certificate while holding its lease, the others take it from the
/// store (sealed with the shared secret); an HTTP-01 check that reaches an
/// instance for another's order is answered from the store. Both serve
/// the CA's certificate; it was ordered once.
#[tokio::test(flavor = "multi_thread")]
async fn instances_sharing_redis_order_each_certificate_once() {
    install_crypto();
    let redis = Redis::start();
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = work.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let (port_a, http_a, port_b, http_b) = (free_port(), free_port(), free_port(), free_port());
    // The CA checks one address: instance A's (as behind a load balancer
    // that sends it there whichever instance ordered).
    let pebble = Pebble::start_on((free_port(), free_port()), work.path(), &ca, port_a, http_a);
    let root = pebble.root(&ca).await;
    let yaml = |http: u16, dir: &str| {
        format!(
            "address: 127.0.0.1:{{port}}
http_redirect_addr: 127.0.0.1:{http}
shared_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
cookie_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
databroker_storage_type: redis
databroker_storage_connection_string: {redis}
autocert: true
autocert_ca: {dir_url}
autocert_trusted_ca_file: {ca}
autocert_dir: {dir}
routes:
  - from: https://app.localhost
    response: {{status: 200, body: app}}
    allow_public_unauthenticated_access: true
",
            redis = redis.url(),
            dir_url = pebble.directory(),
            ca = ca_file.display(),
            dir = work.path().join(dir).display()
        )
    };
    let a = Gatehouse::start_on(port_a, tempfile::tempdir().unwrap(), &yaml(http_a, "a"));
    let b = Gatehouse::start_on(port_b, tempfile::tempdir().unwrap(), &yaml(http_b, "b"));
    for gh in [&a, &b] {
        assert!(
            wait_served(gh, "app.localhost", &root, 60).await,
            "{}",
            gh.log_text()
        );
    }
    let obtained = a.log_count("autocert: certificate obtained")
        + b.log_count("autocert: certificate obtained");
    let shared = a.log_count("autocert: certificate from the shared store")
        + b.log_count("autocert: certificate from the shared store");
    assert_eq!(
        (obtained, shared),
        (1, 1),
        "A:\n{}\nB:\n{}",
        a.log_text(),
        b.log_text()
    );
    assert_eq!(
        a.log_count("ACME account created") + b.log_count("ACME account created"),
        1
    );
}

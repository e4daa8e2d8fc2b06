//! TCP tunnels (`tcp+https` routes) end to end: `gatehouse tcp` opens a
//! local port, signs the user in through the browser once (programmatic
//! login), keeps the token, and carries real clients' connections
//! (`redis-cli` to `redis-server`) through `CONNECT`; a denied user and a
//! session gatehouse no longer knows are handled as `pomerium-cli` does.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A running `gatehouse tcp`, stopped (by its id) when dropped.
struct TcpClient {
    child: Child,
    port: u16,
    /// Where its browser command writes the sign-in URL it was given.
    opened: PathBuf,
}

impl TcpClient {
    fn start(gh: &Gatehouse, work: &Path, name: &str, ca: &Path) -> TcpClient {
        TcpClient::start_for(gh, work, name, ca, "redis.localhost:6379")
    }

    fn start_for(gh: &Gatehouse, work: &Path, name: &str, ca: &Path, dest: &str) -> TcpClient {
        let dir = work.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        // The "browser": records the URL; the test signs in with it.
        let (browser, opened) = browser_script(&dir);
        let port = free_port();
        let mut child = Command::new(BIN)
            .args(["tcp", dest])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--pomerium-url", &format!("https://localhost:{}", gh.port)])
            .arg("--alternate-ca-path")
            .arg(ca)
            .arg("--browser-cmd")
            .arg(&browser)
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(line.contains("listening on"), "{line}");
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                eprintln!("[gatehouse tcp] {l}");
            }
        });
        TcpClient {
            child,
            port,
            opened,
        }
    }

    fn token_file(&self) -> PathBuf {
        self.opened
            .parent()
            .unwrap()
            .join("cache/gatehouse/tcp")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    }

    /// `redis-cli PING` through the tunnel (in the background).
    fn ping(&self) -> Child {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "PING"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("redis-cli (Debian package redis-tools)")
    }

    /// Waits for the browser command, then signs in as `user` there.
    async fn sign_in(&self, gh: &Gatehouse, user: &str) {
        sign_in_from(&self.opened, gh, user).await;
    }
}

impl Drop for TcpClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// gatehouse's certificate (for `localhost` and `redis.localhost`) in
/// `cert.pem` / `key.pem` under `w`, from a new CA: the CA's file.
fn tls_files(w: &Path) -> PathBuf {
    let ca = TestCa::new();
    let (cert, key, _) = ca.leaf(&["localhost", "redis.localhost"]);
    std::fs::write(w.join("cert.pem"), cert).unwrap();
    std::fs::write(w.join("key.pem"), key).unwrap();
    let ca_file = w.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    ca_file
}

/// The "browser" `gatehouse tcp` opens: a script recording the URL in
/// `opened-url` under `dir`. (script, recorded URL's file)
fn browser_script(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let opened = dir.join("opened-url");
    let browser = dir.join("browser.sh");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > {}\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    (browser, opened)
}

/// Waits for the browser script to record the sign-in URL, then signs in
/// there as `user`.
async fn sign_in_from(opened: &Path, gh: &Gatehouse, user: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        if let Ok(u) = std::fs::read_to_string(opened)
            && !u.is_empty()
        {
            break u;
        }
        assert!(Instant::now() < deadline, "the browser was never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = std::fs::remove_file(opened);
    let browser = gh.browser(&["localhost"], true);
    // The sign-in form, then the hand-off to the client's listener.
    let resp = submit_login(&browser, &url, user, "wonderland").await;
    assert_eq!(resp.status(), 200, "{}", gh.log_text());
    assert_eq!(
        resp.text().await.unwrap(),
        "login complete, you may close this page"
    );
}

/// A server the test started, stopped (by its id) however the test ends.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn output(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn config(redis_port: u16, work: &Path) -> String {
    format!(
        "address: 127.0.0.1:{{port}}
certificate_file: {cert}
certificate_key_file: {key}
authenticate_service_url: https://localhost:{{port}}
idp_provider: local
cookie_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
local_users:
  - {{username: alice, email: alice@example.com, password_hash: '{hash}'}}
  - {{username: bob, email: bob@example.org, password_hash: '{hash}'}}
routes:
  - from: tcp+https://redis.localhost:6379
    to: tcp://127.0.0.1:{redis_port}
    allowed_domains: [example.com]
",
        cert = work.join("cert.pem").display(),
        key = work.join("key.pem").display(),
        hash = hash("wonderland"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_through_a_tunnel_for_an_allowed_user_only() {
    let redis = Redis::start();
    let work = tempfile::tempdir().unwrap();
    let ca_file = tls_files(work.path());
    let port = free_port();
    let gh = Gatehouse::start_on(
        port,
        tempfile::tempdir().unwrap(),
        &config(redis.port, work.path()),
    );

    // alice: signs in once in the browser, then redis answers.
    let alice = TcpClient::start(&gh, work.path(), "alice", &ca_file);
    let ping = alice.ping();
    alice.sign_in(&gh, "alice").await;
    assert_eq!(output(ping).trim(), "PONG", "{}", gh.log_text());
    // The token is kept, for its owner only, and used: no browser now.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(alice.token_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(output(alice.ping()).trim(), "PONG");
    assert!(!alice.opened.exists(), "signed in again with a kept token");

    // bob signs in too, but the route's policy denies him: no bytes reach
    // redis, and the client says why.
    let bob = TcpClient::start(&gh, work.path(), "bob", &ca_file);
    let ping = bob.ping();
    bob.sign_in(&gh, "bob").await;
    assert_ne!(output(ping).trim(), "PONG");
    assert!(
        gh.log_text()
            .lines()
            .any(|l| l.contains("\"method\":\"CONNECT\"") && l.contains("\"response-code\":403")),
        "{}",
        gh.log_text()
    );

    // A session gatehouse no longer knows (a restart with sessions in
    // memory): the kept token is refused, alice signs in again.
    drop(gh);
    let gh = Gatehouse::start_on(
        port,
        tempfile::tempdir().unwrap(),
        &config(redis.port, work.path()),
    );
    let ping = alice.ping();
    alice.sign_in(&gh, "alice").await;
    assert_eq!(output(ping).trim(), "PONG", "{}", gh.log_text());
}

/// The raw protocol, as `pomerium-cli` speaks it: `CONNECT` without a
/// token is 401 (never a redirect), to a port no route names 404.
#[tokio::test(flavor = "multi_thread")]
async fn connect_answers_as_pomerium_cli_expects() {
    let redis = Redis::start();
    let work = tempfile::tempdir().unwrap();
    tls_files(work.path());
    let dead = free_port();
    let gh = Gatehouse::start(&format!(
        "{}  - from: tcp+https://down.localhost:7000\n    to: tcp://127.0.0.1:{dead}\n    allow_public_unauthenticated_access: true\n",
        config(redis.port, work.path())
    ));
    for (target, status) in [
        ("redis.localhost:6379", "401"),
        ("redis.localhost:6380", "404"),
        ("other.localhost:6379", "404"),
        // The target is down: 503, as Envoy (pomerium-cli keeps its token).
        ("down.localhost:7000", "503"),
    ] {
        let answer = tls_exchange(
            gh.port,
            format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{target}: {answer}"
        );
        assert!(
            !answer.to_ascii_lowercase().contains("\r\nlocation:"),
            "{answer}"
        );
    }
}

/// One TLS exchange with gatehouse (any certificate): what it answered.
async fn tls_exchange(port: u16, raw: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    install_crypto();
    let cfg = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut s = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out[..n]).into_owned()
}

#[derive(Debug)]
struct AnyCert;

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// HTTP/2 `CONNECT` (as `pomerium-cli`'s HTTP/2 tunneler sends it): the
/// stream carries the tunnel's bytes both ways.
#[tokio::test(flavor = "multi_thread")]
async fn a_tunnel_over_http2() {
    use http_body_util::Empty;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let redis = Redis::start();
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
insecure_server: true
routes:
  - from: tcp+https://redis.localhost:6379
    to: tcp://127.0.0.1:{}
    allow_public_unauthenticated_access: true
",
        redis.port
    ));
    let mut send = h2c_sender::<Empty<bytes::Bytes>>(gh.port).await;
    let req = http::Request::connect("redis.localhost:6379")
        .body(Empty::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let upgraded = hyper::upgrade::on(resp).await.unwrap();
    let mut io = hyper_util::rt::TokioIo::new(upgraded);
    io.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), io.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"+PONG\r\n");
}

/// OpenSSH through a tunnel, with `gatehouse tcp` as its `ProxyCommand`
/// (standard input and output): the user signs in in the browser, then
/// `ssh` logs in to a real `sshd` behind gatehouse.
#[tokio::test(flavor = "multi_thread")]
async fn ssh_through_a_tunnel_as_a_proxy_command() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let keygen = |name: &str| {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(w.join(name))
            .status()
            .unwrap()
            .success();
        assert!(ok, "ssh-keygen");
    };
    keygen("host_key");
    keygen("user_key");
    std::fs::copy(w.join("user_key.pub"), w.join("authorized_keys")).unwrap();
    // sshd refuses keys and configs others may write.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(w, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    std::fs::create_dir_all("/run/sshd").unwrap();
    let sshd_port = free_port();
    std::fs::write(
        w.join("sshd_config"),
        format!(
            "Port {sshd_port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n",
            hk = w.join("host_key").display(),
            ak = w.join("authorized_keys").display(),
            pid = w.join("sshd.pid").display(),
        ),
    )
    .unwrap();
    let _sshd = Stopped(
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(w.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd (Debian package openssh-server)"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", sshd_port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let ca_file = tls_files(w);
    let yaml = config(1, w).replace(
        "  - from: tcp+https://redis.localhost:6379\n    to: tcp://127.0.0.1:1\n",
        &format!("  - from: tcp+https://ssh.localhost:22\n    to: tcp://127.0.0.1:{sshd_port}\n"),
    );
    let gh = Gatehouse::start(&yaml);
    let (browser, opened) = browser_script(w);
    let proxy_command = format!(
        "{BIN} tcp ssh.localhost:22 --listen - --pomerium-url https://localhost:{} --alternate-ca-path {} --browser-cmd {}",
        gh.port,
        ca_file.display(),
        browser.display()
    );
    let ssh = |cache: &str| {
        Command::new("ssh")
            .arg("-o")
            .arg(format!("ProxyCommand={proxy_command}"))
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
            .arg("-i")
            .arg(w.join("user_key"))
            .args(["root@ssh.localhost", "echo", "through-the-tunnel"])
            .env("XDG_CACHE_HOME", w.join(cache))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = ssh("cache");
    // The browser opens; alice signs in.
    sign_in_from(&opened, &gh, "alice").await;
    let stdout =
        |c: Child| String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).into_owned();
    assert_eq!(
        stdout(first).trim(),
        "through-the-tunnel",
        "{}",
        gh.log_text()
    );
    // Again, with the kept token: no browser.
    let second = ssh("cache").wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&second.stdout).trim(),
        "through-the-tunnel"
    );
    assert!(!String::from_utf8_lossy(&second.stderr).contains("browser"));
    // bob is not allowed: ssh never reaches sshd.
    let bob = ssh("cache-bob");
    sign_in_from(&opened, &gh, "bob").await;
    let out = bob.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("denied by its route's policy"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// PostgreSQL through a tunnel: `psql` to a real server (Debian
/// `postgresql`, run as its own user on loopback).
#[tokio::test(flavor = "multi_thread")]
async fn psql_through_a_tunnel() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (Debian package postgresql)")
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .find(|p| p.join("postgres").exists())
        .expect("a PostgreSQL server binary");
    // The server runs as `postgres`: its directory is its own.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(w, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let data = w.join("pg");
    std::fs::create_dir(&data).unwrap();
    let (uid, gid) = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata("/var/lib/postgresql").expect("the postgres user's home");
        (m.uid(), m.gid())
    };
    std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
    let as_postgres = |program: &Path| {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            &uid.to_string(),
            "--regid",
            &gid.to_string(),
            "--clear-groups",
        ])
        .arg(program);
        c
    };
    let ok = as_postgres(&bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "initdb");
    let pg_port = free_port();
    let _postgres = Stopped(
        as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &pg_port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", data.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", pg_port)).is_err() {
        assert!(Instant::now() < deadline, "postgres did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let ca_file = tls_files(w);
    let yaml = config(1, w).replace(
        "  - from: tcp+https://redis.localhost:6379\n    to: tcp://127.0.0.1:1\n",
        &format!("  - from: tcp+https://pg.localhost:5432\n    to: tcp://127.0.0.1:{pg_port}\n"),
    );
    let gh = Gatehouse::start(&yaml);
    let client = TcpClient::start_for(&gh, w, "alice", &ca_file, "pg.localhost:5432");
    let psql = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &client.port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-tAc", "select 40 + 2"])
        .env("PGSSLMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "30")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql (Debian package postgresql-client)");
    client.sign_in(&gh, "alice").await;
    assert_eq!(output(psql).trim(), "42", "{}", gh.log_text());
    // bob is not allowed: psql gets no server.
    let bob = TcpClient::start_for(&gh, w, "bob", &ca_file, "pg.localhost:5432");
    let psql = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &bob.port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-tAc", "select 40 + 2"])
        .env("PGSSLMODE", "disable")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    bob.sign_in(&gh, "bob").await;
    let out = output(psql);
    assert!(!out.contains("42"), "{out}");
}

/// Found by an attacker's review: a tunnel was cut `timeout_read` after it
/// opened (HTTP/1.1) or `timeout_idle` after (HTTP/2), however busy. A
/// tunnel lasts while bytes flow; the route's `idle_timeout` closes one
/// that is silent for that long.
#[tokio::test(flavor = "multi_thread")]
async fn tunnels_outlive_connection_deadlines_and_end_when_idle() {
    use http_body_util::Empty;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let redis = Redis::start();
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
insecure_server: true
timeout_read: 1s
timeout_idle: 1s
routes:
  - from: tcp+https://redis.localhost:6379
    to: tcp://127.0.0.1:{r}
    allow_public_unauthenticated_access: true
  - from: tcp+https://quiet.localhost:6379
    to: tcp://127.0.0.1:{r}
    idle_timeout: 2s
    allow_public_unauthenticated_access: true
",
        r = redis.port
    ));
    async fn ping<S: AsyncReadExt + AsyncWriteExt + Unpin>(s: &mut S) -> Vec<u8> {
        s.write_all(b"PING\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        buf[..n].to_vec()
    }
    // HTTP/1.1: busy for 4 s, past timeout_read and timeout_idle.
    let mut h1 = tokio::net::TcpStream::connect(("127.0.0.1", gh.port))
        .await
        .unwrap();
    h1.write_all(b"CONNECT redis.localhost:6379 HTTP/1.1\r\nHost: redis.localhost:6379\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 256];
    let n = h1.read(&mut head).await.unwrap();
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );
    // HTTP/2, on its own connection.
    let mut send = h2c_sender::<Empty<bytes::Bytes>>(gh.port).await;
    let resp = send
        .send_request(
            http::Request::connect("redis.localhost:6379")
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut h2 = hyper_util::rt::TokioIo::new(hyper::upgrade::on(resp).await.unwrap());
    for _ in 0..8 {
        assert_eq!(ping(&mut h1).await, b"+PONG\r\n");
        assert_eq!(ping(&mut h2).await, b"+PONG\r\n");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Silent for longer than the route's idle_timeout: closed.
    let mut quiet = tokio::net::TcpStream::connect(("127.0.0.1", gh.port))
        .await
        .unwrap();
    quiet
        .write_all(b"CONNECT quiet.localhost:6379 HTTP/1.1\r\nHost: quiet.localhost:6379\r\n\r\n")
        .await
        .unwrap();
    let n = quiet.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));
    assert_eq!(ping(&mut quiet).await, b"+PONG\r\n");
    let mut rest = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), quiet.read(&mut rest))
        .await
        .expect("closed after idle_timeout");
    assert!(matches!(closed, Ok(0) | Err(_)));
}

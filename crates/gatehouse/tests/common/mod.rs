//! End-to-end harness: runs the real `gatehouse` binary on loopback against
//! real upstream servers (HTTP/1.1 + h2c echo, TLS upstream, websocket echo),
//! on free ports, and stops everything it started.
#![allow(dead_code)]

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub mod mtls;

pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A port nothing listens on right now, and that no outgoing connection
/// will take before the server it is meant for binds it: chosen below the
/// kernel's ephemeral range (`ip_local_port_range`), where connections'
/// source ports and `bind(0)` never land. A port from `bind(0)` is itself
/// ephemeral, so any test's client could take it as its source port in
/// the gap (which once failed a run with "Address already in use").
/// Each process walks its own stretch of the range (from its id), so two
/// test binaries running at once do not hand out the same ports either.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| {
            let mut it = r.split_whitespace().map(|p| p.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    // Below the ephemeral range, or above it when there is no room below.
    let (first, last) = if range.0 >= 11_000 {
        (10_000, range.0)
    } else {
        ((range.1 + 1).min(64_535), 65_536)
    };
    let span = last - first;
    let start = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (first + (start + n) % span) as u16;
        let v4 = std::net::TcpListener::bind(("127.0.0.1", port));
        let v6 = std::net::TcpListener::bind(("::1", port));
        if v4.is_ok() && !matches!(&v6, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse) {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

/// True when process `pid` holds a listening TCP socket on `port` (from
/// `/proc`: the socket inodes of its descriptors against the kernel's
/// table of listening sockets).
pub fn listens(pid: u32, port: u16) -> bool {
    let own = socket_links(pid);
    listening_sockets()
        .iter()
        .any(|(local, inode)| local_port(local) == Some(port) && own.contains(inode))
}

/// Every listening TCP socket: its local address as `/proc/net` writes it
/// (`ADDR:PORT` in hex) and its `socket:[inode]` link name.
fn listening_sockets() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // State 0A is LISTEN.
            if let (Some(local), Some(&"0A"), Some(inode)) = (f.get(1), f.get(3), f.get(9)) {
                found.push(((*local).to_owned(), format!("socket:[{inode}]")));
            }
        }
    }
    found
}

fn local_port(local: &str) -> Option<u16> {
    u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
}

/// What process `pid`'s file descriptors point to.
fn socket_links(pid: u32) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .collect()
}

/// The listening sockets of process `pid` bound to anything but loopback,
/// as `/proc/net` writes their addresses: tests listen on loopback only.
pub fn non_loopback_listeners(pid: u32) -> Vec<String> {
    let own = socket_links(pid);
    listening_sockets()
        .into_iter()
        .filter(|(local, inode)| {
            let addr = local.rsplit_once(':').map_or("", |(a, _)| a);
            // 127.0.0.0/8 (little-endian: the last byte is 7F), ::1, and
            // ::ffff:127.x.
            let loopback = (addr.len() == 8 && addr.ends_with("7F"))
                || addr == "00000000000000000000000001000000"
                || (addr.starts_with("0000000000000000FFFF0000") && addr.ends_with("7F"));
            !loopback && own.contains(inode)
        })
        .map(|(local, _)| local)
        .collect()
}

/// A running gatehouse process; killed on drop.
pub struct Gatehouse {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Gatehouse {
    /// Writes `yaml` (with `{port}` replaced) and starts gatehouse on it.
    pub fn start(yaml: &str) -> Gatehouse {
        Self::start_in(tempfile::tempdir().expect("tempdir"), yaml)
    }

    /// On a free port; another one if a parallel test's server took it
    /// between choosing and binding.
    pub fn start_in(dir: tempfile::TempDir, yaml: &str) -> Gatehouse {
        Self::start_with_env(dir, yaml, &[])
    }

    /// As [`Gatehouse::start_in`], with environment variables set for it.
    pub fn start_with_env(dir: tempfile::TempDir, yaml: &str, env: &[(&str, &str)]) -> Gatehouse {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start_on(free_port(), dir.path(), yaml, env) {
                Ok(gh) => return gh.with_dir(dir),
                Err(e) if e.contains("in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last}")
    }

    /// Starts on a port chosen beforehand (when a peer must know it first).
    pub fn start_on(port: u16, dir: tempfile::TempDir, yaml: &str) -> Gatehouse {
        match Self::try_start_on(port, dir.path(), yaml, &[]) {
            Ok(gh) => gh.with_dir(dir),
            Err(e) => panic!("{e}"),
        }
    }

    fn with_dir(mut self, dir: tempfile::TempDir) -> Gatehouse {
        self.dir = dir;
        self
    }

    fn try_start_on(
        port: u16,
        dir: &std::path::Path,
        yaml: &str,
        env: &[(&str, &str)],
    ) -> Result<Gatehouse, String> {
        let config = dir.join("config.yaml");
        std::fs::write(&config, yaml.replace("{port}", &port.to_string())).expect("write config");
        let mut child = Command::new(BIN)
            .args(["run", "-c"])
            .arg(&config)
            .args(["--log-format", "json", "--drain-timeout", "10s"])
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gatehouse");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut gh = Gatehouse {
            child,
            port,
            // Replaced by the caller's directory (which holds the config).
            dir: tempfile::tempdir().expect("tempdir"),
            config,
            log,
        };
        gh.wait_ready()?;
        Ok(gh)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "gatehouse exited ({status}); log:\n{}",
                    self.log_text()
                ));
            }
            // Something answers on the port, and it is this process: a
            // port chosen free may have been taken by another test's
            // server meanwhile, which must not be mistaken for ours.
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && listens(self.child.id(), self.port)
            {
                let wide = non_loopback_listeners(self.child.id());
                assert!(
                    wide.is_empty(),
                    "gatehouse listens beyond loopback ({wide:?}): give the test's config an `address: 127.0.0.1:...`"
                );
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(format!(
            "gatehouse did not start; log:\n{}",
            self.log_text()
        ))
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until the log contains `needle` (count occurrences > `after`).
    pub fn wait_log(&self, needle: &str, after: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log_count(needle) > after {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn write_config(&self, yaml: &str) {
        // Write then rename, as editors and config management do.
        let tmp = self.dir.path().join(".config.yaml.tmp");
        std::fs::write(&tmp, yaml.replace("{port}", &self.port.to_string())).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} failed");
    }

    /// Peak resident memory (VmHWM) of the process, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.child.id(), "VmHWM:")
    }

    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.child.id(), "VmRSS:")
    }

    /// An HTTPS client that reaches `hosts` on this gatehouse (self-signed
    /// certificates accepted, redirects not followed, no cookies).
    pub fn client(&self, hosts: &[&str]) -> reqwest::Client {
        self.client_builder(hosts).build().unwrap()
    }

    /// A browser-like client for `hosts`: keeps cookies, and follows
    /// redirects when `follow` is set.
    pub fn browser(&self, hosts: &[&str], follow: bool) -> reqwest::Client {
        let redirects = if follow {
            reqwest::redirect::Policy::limited(20)
        } else {
            reqwest::redirect::Policy::none()
        };
        self.client_builder(hosts)
            .cookie_store(true)
            .redirect(redirects)
            .build()
            .unwrap()
    }

    fn client_builder(&self, hosts: &[&str]) -> reqwest::ClientBuilder {
        let mut b = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .no_proxy();
        for h in hosts {
            b = b.resolve(h, self.addr());
        }
        b
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port)
    }

    pub fn http_url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs `gatehouse check -c FILE` on `yaml`; returns (exit code, stdout).
pub fn check(yaml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml).unwrap();
    check_file(&config)
}

pub fn check_file(config: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("check")
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

// ---------------------------------------------------------------- upstreams

pub type UpBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

fn full(s: impl Into<Bytes>) -> UpBody {
    Full::new(s.into()).map_err(|never| match never {}).boxed()
}

/// The echo upstream's behaviour, by path:
/// - `/slow?ms=N`: answer after N ms;
/// - `/download?bytes=N`: stream N bytes;
/// - `/upload`: count the request body, answer `{"received": N}`;
/// - `/stall?ms=N`: send `start`, stay silent N ms, then send `end`;
/// - `/reset`: close the connection without answering;
/// - `/redirect`: 302 to `http://<Host>/login`, with two `Link` headers and
///   a `Set-Cookie`;
/// - anything else: JSON echo of method, path, version and headers.
pub async fn echo(
    name: &'static str,
    req: Request<Incoming>,
) -> Result<Response<UpBody>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let param = |k: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    match path.as_str() {
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(param("ms"))).await;
            Ok(Response::new(full("slow done")))
        }
        "/download" => {
            let total = param("bytes");
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures_util::stream::unfold(total, move |left| {
                let chunk = chunk.clone();
                async move {
                    if left == 0 {
                        return None;
                    }
                    let n = left.min(chunk.len() as u64);
                    Some((
                        Ok::<_, std::io::Error>(Frame::data(chunk.slice(..n as usize))),
                        left - n,
                    ))
                }
            });
            let mut resp = Response::new(StreamBody::new(stream).boxed());
            resp.headers_mut().insert("content-length", total.into());
            Ok(resp)
        }
        "/stall" => {
            let ms = param("ms");
            let stream = futures_util::stream::unfold(0u8, move |step| async move {
                match step {
                    0 => Some((
                        Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"start"))),
                        1,
                    )),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Some((Ok(Frame::data(Bytes::from_static(b"end"))), 2))
                    }
                    _ => None,
                }
            });
            Ok(Response::new(StreamBody::new(stream).boxed()))
        }
        "/redirect" => {
            let host = req
                .headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string();
            let mut resp = Response::new(full("moved"));
            *resp.status_mut() = hyper::StatusCode::FOUND;
            let h = resp.headers_mut();
            h.insert("location", format!("http://{host}/login").parse().unwrap());
            h.append("link", "</a.css>; rel=preload".parse().unwrap());
            h.append("link", "</b.js>; rel=preload".parse().unwrap());
            h.insert("set-cookie", "app=1; Path=/".parse().unwrap());
            h.insert("x-upstream", name.parse().unwrap());
            Ok(resp)
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => n += f.data_ref().map(|d| d.len() as u64).unwrap_or(0),
                    Err(_) => break,
                }
            }
            Ok(Response::new(full(format!("{{\"received\":{n}}}"))))
        }
        _ => {
            let mut headers = serde_json::Map::new();
            for (k, v) in req.headers() {
                let entry = headers
                    .entry(k.as_str().to_string())
                    .or_insert_with(|| serde_json::Value::Array(vec![]));
                if let serde_json::Value::Array(a) = entry {
                    a.push(serde_json::Value::String(
                        String::from_utf8_lossy(v.as_bytes()).into(),
                    ));
                }
            }
            let body = serde_json::json!({
                "upstream": name,
                "method": req.method().as_str(),
                "path": path,
                "query": query,
                "version": format!("{:?}", req.version()),
                "headers": headers,
            });
            let mut resp = Response::new(full(body.to_string()));
            resp.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            resp.headers_mut()
                .insert("x-upstream", name.parse().unwrap());
            // Hop-by-hop headers that must not reach the client.
            resp.headers_mut()
                .insert("keep-alive", "timeout=5".parse().unwrap());
            Ok(resp)
        }
    }
}

/// An upstream speaking HTTP/1.1 and h2c (prior knowledge) on one port.
pub struct Upstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn echo_upstream(name: &'static str) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    echo_upstream_on(name, listener)
}

pub fn echo_upstream_on(name: &'static str, listener: TcpListener) -> Upstream {
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let reset = req.uri().path() == "/reset";
                    async move {
                        if reset {
                            // Abort this connection mid-request.
                            return Err::<Response<UpBody>, _>(std::io::Error::other("reset"));
                        }
                        echo(name, req).await.map_err(|never| match never {})
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream { addr, task }
}

/// A certificate authority for test upstreams and servers.
pub struct TestCa {
    pub cert: rcgen::Certificate,
    pub issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gatehouse test CA");
        let cert = params.self_signed(&key).unwrap();
        let issuer = rcgen::Issuer::new(params, key);
        TestCa { cert, issuer }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf certificate for `names`: (cert PEM, key PEM, cert DER).
    pub fn leaf(&self, names: &[&str]) -> (String, String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// An HTTPS upstream (ALPN h2 + http/1.1) with a certificate from `ca`.
pub async fn tls_upstream(name: &'static str, ca: &TestCa, names: &[&str]) -> Upstream {
    let (cert_pem, key_pem, _) = ca.leaf(names);
    let certs: Vec<_> = rustls::pki_types::pem::PemObject::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<rustls::pki_types::CertificateDer<'static>>, _>>()
        .unwrap();
    let key =
        <rustls::pki_types::PrivateKeyDer as rustls::pki_types::pem::PemObject>::from_pem_slice(
            key_pem.as_bytes(),
        )
        .unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = service_fn(move |req| echo(name, req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Upstream { addr, task }
}

/// A websocket echo server.
pub async fn ws_upstream() -> Upstream {
    use futures_util::{SinkExt, StreamExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Upstream { addr, task }
}

pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The test OpenID Provider (npm `oidc-provider`, tests/e2e/idp.mjs).
pub struct Idp {
    child: Child,
    pub issuer: String,
}

impl Idp {
    pub fn start(redirect_uris: &[String], post_logout_redirect_uris: &[String]) -> Idp {
        Self::start_with(0, redirect_uris, post_logout_redirect_uris, &[])
    }

    /// On a given port (0: any), with extra `idp.mjs` arguments.
    pub fn start_with(
        port: u16,
        redirect_uris: &[String],
        post_logout_redirect_uris: &[String],
        extra: &[&str],
    ) -> Idp {
        let port = port.to_string();
        let redirects = redirect_uris.join(",");
        let logouts = post_logout_redirect_uris.join(",");
        let mut args = vec![
            "--port",
            port.as_str(),
            "--redirect-uris",
            redirects.as_str(),
            "--post-logout-redirect-uris",
            logouts.as_str(),
        ];
        args.extend_from_slice(extra);
        Self::node("idp.mjs", &args)
    }

    /// The GitHub stand-in (tests/e2e/github-standin.mjs).
    pub fn github() -> Idp {
        Self::node("github-standin.mjs", &["--port", "0"])
    }

    fn node(script: &str, args: &[&str]) -> Idp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/e2e")
            .join(script);
        let mut child = Command::new("node")
            .arg(&script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node must be installed (scripts/test.sh installs the npm packages)");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let Some(issuer) = line.strip_prefix("ready ").map(|s| s.trim().to_string()) else {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
            panic!(
                "{} did not start (run `npm ci` in tests/e2e): {line}{err}",
                script.display()
            );
        };
        // Keep draining stderr so the process never blocks on a full pipe.
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Idp { child, issuer }
    }
}

impl Idp {
    /// Stops the provider now (before starting another on its port).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn port(&self) -> u16 {
        self.issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gatehouse hash-password` for a test user.
pub fn hash(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The sealed token of a gatehouse form (sign-in, sign-out).
pub fn form_token(page: &str) -> String {
    let start = page.find("name=\"token\" value=\"").expect("form token") + 20;
    page[start..].split('"').next().unwrap().to_string()
}

/// Loads the built-in directory's sign-in page behind `login_url` (for
/// example `https://app.localhost:PORT/.pomerium/sign_in?pomerium_redirect_uri=...`)
/// and posts the credentials; the client keeps the cookies.
pub async fn submit_login(
    c: &reqwest::Client,
    login_url: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    let page = c
        .get(login_url)
        .header("Accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "login page");
    let page = page.text().await.unwrap();
    let token = form_token(&page);
    let origin = url::Url::parse(login_url)
        .unwrap()
        .origin()
        .ascii_serialization();
    c.post(format!("{origin}/.pomerium/sign_in"))
        .header("Origin", &origin)
        .form(&[
            ("username", user),
            ("password", password),
            ("token", &token),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs out through gatehouse's confirm form on `origin`
/// (`https://app.localhost:PORT`): loads the page and posts its token from
/// that origin. The POST's answer and the form token.
pub async fn sign_out(c: &reqwest::Client, origin: &str) -> (reqwest::Response, String) {
    let page = c
        .get(format!("{origin}/.pomerium/sign_out"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = form_token(&page);
    let resp = c
        .post(format!("{origin}/.pomerium/sign_out"))
        .header("Origin", origin)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    (resp, token)
}

/// Programmatic login on `host` as a CLI drives it (`hosts` resolve to
/// gatehouse): the login URL, the user signing in with the built-in
/// directory in a browser, the redirects up to `client_redirect`. Returns
/// the token the CLI's local listener would receive, and the browser.
pub async fn programmatic_login(
    gh: &Gatehouse,
    host: &str,
    hosts: &[&str],
    (user, password): (&str, &str),
    client_redirect: &str,
) -> (String, reqwest::Client) {
    let api = gh.client(hosts);
    let resp = api
        .get(gh.url(
            host,
            &format!(
                "/.pomerium/api/v1/login?pomerium_redirect_uri={}",
                url::form_urlencoded::byte_serialize(client_redirect.as_bytes()).collect::<String>()
            ),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let login_url = resp.text().await.unwrap();
    assert!(
        login_url.contains("/.pomerium/sign_in?pomerium_redirect_uri="),
        "{login_url}"
    );

    // The user's browser: sign in, follow redirects until the client's
    // redirect URI (which the CLI's local listener would serve).
    let mut builder = follow_until(client_redirect).danger_accept_invalid_certs(true);
    for h in hosts {
        builder = builder.resolve(h, gh.addr());
    }
    let browser = builder.build().unwrap();
    let resp = submit_login(&browser, &login_url, user, password).await;
    let location = resp
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("{} {}", resp.status(), gh.log_text()))
        .to_str()
        .unwrap()
        .to_string();
    assert!(location.starts_with(client_redirect), "{location}");
    let url = url::Url::parse(&location).unwrap();
    // The client's own query survives.
    assert!(location.contains("x=1") || !client_redirect.contains("x=1"));
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "pomerium_jwt")
        .map(|(_, v)| v.into_owned())
        .expect("pomerium_jwt");
    (token, browser)
}

/// The sign-in URL on `host` that returns to `/` of that host.
pub fn login_url(gh: &Gatehouse, host: &str) -> String {
    gh.url(
        host,
        &format!(
            "/.pomerium/sign_in?pomerium_redirect_uri={}",
            url::form_urlencoded::byte_serialize(gh.url(host, "/").as_bytes()).collect::<String>()
        ),
    )
}

/// Writes `raw` bytes to a plain-HTTP gatehouse on `port` and reads the
/// answer until the connection closes (or 10 s): for requests a client
/// library would rewrite (odd paths, malformed heads).
pub async fn raw_exchange(port: u16, raw: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// One raw HTTP/1.1 GET of `path` exactly as written (with `extra` header
/// lines, each ending in CRLF) to a plain-HTTP gatehouse: status and body.
pub async fn raw_get(port: u16, host: &str, path: &str, extra: &str) -> (u16, String) {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    let text = raw_exchange(port, request.as_bytes()).await;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status for {path}: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// An HTTP/2 connection (prior knowledge) to a plain-HTTP gatehouse, for
/// requests whose `:path` and headers the test writes itself.
pub async fn h2c_sender<B>(port: u16) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

/// GET `url` and parse the body as JSON.
pub async fn get_json(c: &reqwest::Client, url: &str) -> serde_json::Value {
    get_json_with(c, url, &[]).await
}

/// GET `url` with extra request headers and parse the body as JSON.
pub async fn get_json_with(
    c: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> serde_json::Value {
    let mut req = c.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let text = req.send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A real front proxy (nginx or Caddy from Debian) started by a test on
/// loopback; killed on drop.
pub struct FrontProxy {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl FrontProxy {
    /// nginx in the foreground, one process, with `http_block` as its
    /// `http {}` content (`{dir}` is replaced by its own directory).
    pub fn nginx(port: u16, http_block: &str) -> FrontProxy {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{}\n}}\n",
            http_block.replace("{dir}", &d)
        );
        Self::run_nginx(port, dir, &conf)
    }

    /// nginx in the foreground with `conf` as its configuration, in `dir`.
    fn run_nginx(port: u16, dir: tempfile::TempDir, conf: &str) -> FrontProxy {
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is installed (scripts/test.sh installs it)");
        let child = Command::new(bin)
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        Self::ready(child, port, dir, "error.log")
    }

    /// nginx as a TCP load balancer: `stream_block` as its `stream {}`
    /// content (the stream module loaded; `{dir}` replaced).
    pub fn nginx_stream(port: u16, stream_block: &str) -> FrontProxy {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let module = ["/usr/lib/nginx/modules/ngx_stream_module.so"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect(
                "nginx's stream module is installed (scripts/test.sh installs libnginx-mod-stream)",
            );
        let conf = format!(
            "load_module {module};\ndaemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{ worker_connections 256; }}\nstream {{\n{}\n}}\n",
            stream_block.replace("{dir}", &d)
        );
        Self::run_nginx(port, dir, &conf)
    }

    /// Caddy with this Caddyfile (`{dir}` replaced), admin API off, its data
    /// in its own directory.
    pub fn caddy(port: u16, caddyfile: &str) -> FrontProxy {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::write(dir.path().join("Caddyfile"), caddyfile.replace("{dir}", &d)).unwrap();
        let log = std::fs::File::create(dir.path().join("caddy.log")).unwrap();
        let child = Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(dir.path().join("Caddyfile"))
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start caddy (scripts/test.sh installs it)");
        Self::ready(child, port, dir, "caddy.log")
    }

    fn ready(mut child: Child, port: u16, dir: tempfile::TempDir, log: &str) -> FrontProxy {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "front proxy exited ({status}): {}",
                    std::fs::read_to_string(dir.path().join(log)).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "front proxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        FrontProxy { child, port, dir }
    }
}

impl Drop for FrontProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Real tokens from the test IdP (oidc-provider), as an app that already
/// signed the user in holds them: the authorization code flow with PKCE for
/// `user` (the IdP completes the login by `login_hint`), exchanged at the
/// token endpoint. `redirect_uri` must be registered for the `gatehouse`
/// client; it is never visited. With `resource` (`urn:aud:<name>`) the
/// access token is a JWT for audience `<name>`, as Keycloak issues them.
/// Returns the token endpoint's JSON (`access_token`, `id_token`, ...).
pub async fn idp_tokens(
    issuer: &str,
    redirect_uri: &str,
    user: &str,
    resource: Option<&str>,
) -> serde_json::Value {
    idp_tokens_as(
        issuer,
        ("gatehouse", "gatehouse-secret"),
        redirect_uri,
        user,
        resource,
    )
    .await
}

/// As [`idp_tokens`], for another client of the IdP (`--second-client`).
pub async fn idp_tokens_as(
    issuer: &str,
    (client_id, client_secret): (&str, &str),
    redirect_uri: &str,
    user: &str,
    resource: Option<&str>,
) -> serde_json::Value {
    use base64::Engine;
    let verifier = format!("{:032x}{:032x}", rand_u128(), rand_u128());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref(),
    );
    let c = follow_until(redirect_uri).build().unwrap();
    let mut auth = url::Url::parse(&format!("{issuer}/auth")).unwrap();
    auth.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email profile groups api")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("login_hint", user)
        .append_pair("state", "s")
        .append_pair("nonce", "n");
    if let Some(r) = resource {
        auth.query_pairs_mut().append_pair("resource", r);
    }
    let resp = c.get(auth).send().await.unwrap();
    let location = resp
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no code: {} {:?}", resp.status(), resp.url()))
        .to_str()
        .unwrap()
        .to_string();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"));
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code),
        ("redirect_uri", redirect_uri.to_string()),
        ("code_verifier", verifier),
    ];
    if let Some(r) = resource {
        form.push(("resource", r.to_string()));
    }
    let resp = c
        .post(format!("{issuer}/token"))
        .basic_auth(client_id, Some(client_secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("token endpoint: {text}"))
}

/// A browser-like client (cookies, redirects followed) that stops at the
/// first redirect to a URL starting with `prefix`: the callback a real
/// client would serve, which the test reads from `Location` instead.
pub fn follow_until(prefix: &str) -> reqwest::ClientBuilder {
    let prefix = prefix.to_string();
    reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.url().as_str().starts_with(&prefix) {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
}

fn rand_u128() -> u128 {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    u128::from_le_bytes(b)
}

/// A real `redis-server` (Debian package) on a free loopback port, with
/// append-only persistence so a restart keeps its data (as in production).
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    tls: bool,
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            tls: false,
        };
        r.restart();
        r
    }

    /// TLS only (`rediss://localhost`), with a `localhost` certificate from `ca`.
    pub fn start_tls(ca: &TestCa) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = ca.leaf(&["localhost"]);
        std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
        std::fs::write(dir.path().join("tls.key"), key).unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        let mut r = Redis {
            child: None,
            port: free_port(),
            dir,
            tls: true,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        if self.tls {
            format!("rediss://localhost:{}/0", self.port)
        } else {
            format!("redis://127.0.0.1:{}/0", self.port)
        }
    }

    /// Starts it (again, on the same port and data) and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let mut cmd = Command::new("redis-server");
        let port = self.port.to_string();
        if self.tls {
            let d = self.dir.path();
            cmd.args(["--port", "0", "--tls-port", &port])
                .arg("--tls-cert-file")
                .arg(d.join("tls.crt"))
                .arg("--tls-key-file")
                .arg(d.join("tls.key"))
                .arg("--tls-ca-cert-file")
                .arg(d.join("ca.crt"))
                .args(["--tls-auth-clients", "no"]);
        } else {
            cmd.args(["--port", &port]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1", "-::1", "--protected-mode", "no"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--logfile", "redis.log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if self.ping() || (self.tls && self.log().contains("Ready to accept connections")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start: {}", self.log());
    }

    /// Kills it (SIGKILL: an outage, not a goodbye).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
    /// Runs one command over plain TCP and returns Redis's raw reply (a
    /// test writing to the store as whoever else can reach it).
    pub fn command(&self, args: &[&str]) -> String {
        use std::io::{Read, Write};
        assert!(!self.tls, "plain-TCP Redis only");
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req += &format!("${}\r\n{a}\r\n", a.len());
        }
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A token issuer for tests (a stand-in for an `identity_providers` entry):
/// an ES256 key whose JWKS is served over plain HTTP on loopback.
pub struct TestIssuer {
    key: aws_lc_rs::signature::EcdsaKeyPair,
    pub jwks_url: String,
    _server: Upstream,
}

impl TestIssuer {
    pub async fn start() -> TestIssuer {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        // Uncompressed point: 0x04 ‖ x ‖ y.
        let point = key.public_key().as_ref().to_vec();
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "test-key",
            "x": b64url(&point[1..33]), "y": b64url(&point[33..65]),
        }]})
        .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let jwks = jwks.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<Incoming>| {
                        let mut resp = Response::new(full(jwks.clone()));
                        resp.headers_mut()
                            .insert("content-type", "application/json".parse().unwrap());
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TestIssuer {
            key,
            jwks_url: format!("http://{addr}/jwks"),
            _server: Upstream { addr, task },
        }
    }

    /// A signed JWT with these claims.
    pub fn token(&self, claims: &serde_json::Value) -> String {
        let signing_input = format!(
            "{}.{}",
            b64url(br#"{"alg":"ES256","kid":"test-key","typ":"JWT"}"#),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
            )
            .unwrap();
        format!("{signing_input}.{}", b64url(sig.as_ref()))
    }
}

pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The `name=value` pair of the first `Set-Cookie` named `name`.
pub fn set_cookie_pair(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_string())
}

impl Gatehouse {
    /// A browser-like client for `hosts` on a cookie jar it may share with
    /// another client (one that follows redirects and one that does not).
    pub fn browser_with_jar(
        &self,
        hosts: &[&str],
        jar: Arc<reqwest::cookie::Jar>,
        follow: bool,
    ) -> reqwest::Client {
        let redirects = if follow {
            reqwest::redirect::Policy::limited(20)
        } else {
            reqwest::redirect::Policy::none()
        };
        self.client_builder(hosts)
            .cookie_provider(jar)
            .redirect(redirects)
            .build()
            .unwrap()
    }
}

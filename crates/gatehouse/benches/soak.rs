//! The soak run (`bench/soak.sh`): two gatehouse instances sharing a real
//! Redis, the real OpenID provider, a mixed workload for several minutes,
//! and faults injected one after another:
//!
//! 1. the upstream is killed (every connection cut) and restarted;
//! 2. Redis is killed and restarted (with its append-only file);
//! 3. the identity provider is stopped and started again;
//! 4. both configuration files are replaced by a broken one, then a valid one.
//!
//! Workload: signed-in users fetching pages (each answer carries an
//! assertion the upstream receives) on both instances, full sign-ins
//! through the provider, websocket sessions, 8 MiB uploads.
//!
//! Every answer is classified. An error is *expected* only inside its
//! fault's window (the fault plus 5 s to settle) and only of the kind the
//! fault explains (502 while the upstream is down, 503 for sign-ins while
//! Redis is down, the provider unreachable while it is stopped). Anything
//! else fails the run. Prints counts, p99 latency and both instances' RSS
//! at start and end; exits 1 on an unexpected error, a panic in a log, or
//! RSS growth past the bound.
//!
//! Loopback only. `cargo bench -p gatehouse --bench soak -- --secs 240`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// How long after a fault ends its errors are still expected.
const SETTLE: Duration = Duration::from_secs(5);
/// Allowed RSS growth per instance between warm-up and the end.
const RSS_BOUND_MIB: u64 = 16;
const UPLOAD: usize = 8 << 20;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Work {
    Page,
    SignIn,
    Websocket,
    Upload,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Fault {
    Upstream,
    Redis,
    Idp,
    Config,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    Status(u16),
    /// The client could not finish the exchange (`kind` for the report).
    Failed(&'static str),
}

struct Sample {
    at: Duration,
    work: Work,
    outcome: Outcome,
    micros: u32,
}

#[derive(Default)]
struct Record {
    samples: Vec<Sample>,
    /// (fault, start, end) as they happened.
    windows: Vec<(Fault, Duration, Duration)>,
}

struct Shared {
    start: Instant,
    record: Mutex<Record>,
    stop: AtomicBool,
    ports: [u16; 2],
    ca: String,
}

impl Shared {
    fn note(&self, work: Work, began: Instant, outcome: Outcome) {
        let sample = Sample {
            at: began - self.start,
            work,
            outcome,
            micros: began.elapsed().as_micros().min(u32::MAX as u128) as u32,
        };
        self.record.lock().unwrap().samples.push(sample);
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    fn url(&self, i: usize, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.ports[i % 2])
    }

    fn client(&self, follow: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca.as_bytes()).unwrap())
            .cookie_store(true)
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .redirect(if follow {
                reqwest::redirect::Policy::limited(20)
            } else {
                reqwest::redirect::Policy::none()
            });
        for h in ["app.localhost", "ws.localhost"] {
            b = b.resolve(h, ([127, 0, 0, 1], 0).into());
        }
        b.build().unwrap()
    }
}

/// Whether `outcome` of `work` is explained by `fault`.
fn explained(fault: Fault, work: Work, outcome: &Outcome) -> bool {
    use Outcome::*;
    match fault {
        Fault::Upstream => matches!(
            (work, outcome),
            (Work::Page | Work::Upload | Work::SignIn, Status(502))
        ),
        Fault::Redis => matches!((work, outcome), (Work::SignIn, Status(503))),
        Fault::Idp => matches!(
            (work, outcome),
            (
                Work::SignIn,
                Status(502 | 503) | Failed("provider unreachable")
            )
        ),
        Fault::Config => false,
    }
}

fn kind(e: &reqwest::Error) -> &'static str {
    let text = format!("{e:?}");
    if text.contains("127.0.0.1") && e.is_connect() {
        "provider unreachable"
    } else if e.is_connect() {
        "connect"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    }
}

/// A full sign-in through the provider; the client keeps the session.
async fn sign_in(s: &Shared, c: &reqwest::Client, i: usize) -> Outcome {
    match c
        .get(s.url(i, "app.localhost", "/signed-in"))
        .header("Accept", "text/html")
        .send()
        .await
    {
        Ok(r) if r.status() == 200 && r.url().path() == "/signed-in" => match r.text().await {
            Ok(t) if t.contains("x-pomerium-jwt-assertion") => Outcome::Ok,
            Ok(_) => Outcome::Failed("no assertion"),
            Err(_) => Outcome::Failed("body"),
        },
        Ok(r) if r.status() == 200 => Outcome::Failed("ended elsewhere"),
        Ok(r) => Outcome::Status(r.status().as_u16()),
        Err(e) => Outcome::Failed(kind(&e)),
    }
}

/// A signed-in user: pages on both instances, alternately.
async fn pages(s: Arc<Shared>, user: usize) {
    let c = s.client(true);
    while s.running() {
        let began = Instant::now();
        match sign_in(&s, &c, user).await {
            Outcome::Ok => break,
            o => {
                s.note(Work::SignIn, began, o);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let mut n = 0usize;
    while s.running() {
        n += 1;
        let began = Instant::now();
        let outcome = match c
            .get(s.url(n, "app.localhost", &format!("/page/{user}/{n}")))
            .header("Accept", "application/json")
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => match r.bytes().await {
                Ok(b) if memchr(&b, b"x-pomerium-jwt-assertion") => Outcome::Ok,
                Ok(_) => Outcome::Failed("no assertion"),
                Err(_) => Outcome::Failed("body"),
            },
            Ok(r) => Outcome::Status(r.status().as_u16()),
            Err(e) => Outcome::Failed(kind(&e)),
        };
        s.note(Work::Page, began, outcome);
    }
}

fn memchr(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// New users signing in, one after another, on either instance.
async fn sign_ins(s: Arc<Shared>) {
    let mut n = 0;
    while s.running() {
        n += 1;
        let c = s.client(true);
        let began = Instant::now();
        let o = sign_in(&s, &c, n).await;
        s.note(Work::SignIn, began, o);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Websocket sessions: connect, 20 echoes, close.
async fn websockets(s: Arc<Shared>, worker: usize) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types_certs(&s.ca) {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut n = worker;
    while s.running() {
        n += 1;
        let port = s.ports[n % 2];
        let began = Instant::now();
        let outcome = ws_session(&connector, port).await;
        s.note(Work::Websocket, began, outcome);
    }
}

fn rustls_pki_types_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.unwrap())
        .collect()
}

async fn ws_session(connector: &tokio_rustls::TlsConnector, port: u16) -> Outcome {
    use tokio_tungstenite::tungstenite::Message;
    let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return Outcome::Failed("connect");
    };
    let name = rustls::pki_types::ServerName::try_from("ws.localhost").unwrap();
    let Ok(tls) = connector.connect(name, tcp).await else {
        return Outcome::Failed("tls");
    };
    let url = format!("wss://ws.localhost:{port}/socket");
    let mut ws = match tokio_tungstenite::client_async(url, tls).await {
        Ok((ws, _)) => ws,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            return Outcome::Status(r.status().as_u16());
        }
        Err(_) => return Outcome::Failed("handshake"),
    };
    for i in 0..20 {
        let text = format!("message {i}");
        if ws.send(Message::text(text.clone())).await.is_err() {
            return Outcome::Failed("send");
        }
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str() == text => {}
            _ => return Outcome::Failed("echo"),
        }
    }
    let _ = ws.close(None).await;
    Outcome::Ok
}

/// 8 MiB uploads by a signed-in user.
async fn uploads(s: Arc<Shared>, worker: usize) {
    let c = s.client(true);
    while s.running() {
        let began = Instant::now();
        match sign_in(&s, &c, worker).await {
            Outcome::Ok => break,
            o => {
                s.note(Work::SignIn, began, o);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let body = bytes::Bytes::from(vec![b'u'; UPLOAD]);
    let mut n = worker;
    while s.running() {
        n += 1;
        let began = Instant::now();
        let outcome = match c
            .post(s.url(n, "app.localhost", "/upload"))
            .header("Accept", "application/json")
            .body(body.clone())
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => match r.text().await {
                Ok(t) if t == format!("{{\"received\":{UPLOAD}}}") => Outcome::Ok,
                Ok(_) => Outcome::Failed("short upload"),
                Err(_) => Outcome::Failed("body"),
            },
            Ok(r) => Outcome::Status(r.status().as_u16()),
            Err(e) => Outcome::Failed(kind(&e)),
        };
        s.note(Work::Upload, began, outcome);
    }
}

/// The upstream, killable: `kill` closes the listener and every connection.
struct Killable {
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Killable {
    async fn start(port: u16) -> Killable {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(([127, 0, 0, 1], port).into()).unwrap();
        let listener: TcpListener = socket.listen(1024).unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(|req| echo("app", req));
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Killable {
            port,
            task: Some(task),
        }
    }

    /// Aborting the accept task drops its JoinSet, which aborts every
    /// connection: clients see resets, as when a process dies.
    async fn kill(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

fn config(up: u16, ws: u16, certs: &std::path::Path, idp: &str, redis: &Redis) -> String {
    format!(
        "address: 127.0.0.1:{{port}}
certificate_file: {cert}
certificate_key_file: {key}
idp_provider: oidc
idp_provider_url: {idp}
idp_client_id: gatehouse
idp_client_secret: gatehouse-secret
cookie_secret: {SECRET}
shared_secret: {SECRET}
databroker_storage_type: redis
databroker_storage_connection_string: {redis}
log_level: warn
routes:
  - from: https://app.localhost
    to: http://127.0.0.1:{up}
    allow_any_authenticated_user: true
    pass_identity_headers: true
  - from: https://ws.localhost
    to: http://127.0.0.1:{ws}
    allow_websockets: true
    allow_public_unauthenticated_access: true
",
        cert = certs.join("cert.pem").display(),
        key = certs.join("key.pem").display(),
        redis = redis.url(),
    )
}

fn rss_mib(gh: &Gatehouse) -> u64 {
    proc_status_kib(gh.child.id(), "VmRSS") / 1024
}

#[tokio::main]
async fn main() {
    install_crypto();
    let secs: u64 = std::env::args()
        .skip_while(|a| a != "--secs")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(240);
    let total = Duration::from_secs(secs.max(60));
    let at = |f: f64| total.mul_f64(f);

    let ca = TestCa::new();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, _) = ca.leaf(&["app.localhost", "ws.localhost"]);
    std::fs::write(certs.path().join("cert.pem"), cert).unwrap();
    std::fs::write(certs.path().join("key.pem"), key).unwrap();

    let mut redis = Redis::start();
    let ws = ws_upstream().await;
    let mut up = Killable::start(0).await;
    let ports = [free_port(), free_port()];
    let callbacks: Vec<String> = ports
        .iter()
        .map(|p| format!("https://app.localhost:{p}/oauth2/callback"))
        .collect();
    // Long-lived access tokens: the provider's in-memory grants do not
    // survive its restart, so refreshes are left to the tests.
    let mut idp = Idp::start_with(0, &callbacks, &[], &["--access-token-ttl", "3600"]);
    let idp_port = idp.port();
    let yaml = config(up.port, ws.addr.port(), certs.path(), &idp.issuer, &redis);
    let a = Gatehouse::start_on(ports[0], tempfile::tempdir().unwrap(), &yaml);
    let b = Gatehouse::start_on(ports[1], tempfile::tempdir().unwrap(), &yaml);

    let shared = Arc::new(Shared {
        start: Instant::now(),
        record: Mutex::default(),
        stop: AtomicBool::new(false),
        ports,
        ca: ca.pem(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for user in 0..12 {
        tasks.spawn(pages(shared.clone(), user));
    }
    tasks.spawn(sign_ins(shared.clone()));
    for w in 0..3 {
        tasks.spawn(websockets(shared.clone(), w));
    }
    for w in 0..2 {
        tasks.spawn(uploads(shared.clone(), 100 + w));
    }
    println!(
        "soak: {}s, 2 instances + redis + oidc-provider; 12 page users, sign-ins, 3 websocket loops, 2 upload loops ({} MiB)",
        total.as_secs(),
        UPLOAD >> 20
    );

    let sleep_until = |t: Duration| {
        let start = shared.start;
        async move {
            let now = start.elapsed();
            if t > now {
                tokio::time::sleep(t - now).await;
            }
        }
    };
    let window = |f: Fault, s: Duration| {
        let end = shared.start.elapsed();
        shared.record.lock().unwrap().windows.push((f, s, end));
        println!(
            "  fault {f:?}: {:.1}s .. {:.1}s",
            s.as_secs_f64(),
            end.as_secs_f64()
        );
    };

    sleep_until(at(0.08)).await;
    let rss_start = [rss_mib(&a), rss_mib(&b)];

    sleep_until(at(0.15)).await;
    let t = shared.start.elapsed();
    up.kill().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let port = up.port;
    up = Killable::start(port).await;
    window(Fault::Upstream, t);

    sleep_until(at(0.35)).await;
    let t = shared.start.elapsed();
    redis.stop();
    tokio::time::sleep(Duration::from_secs(6)).await;
    redis.restart();
    window(Fault::Redis, t);

    sleep_until(at(0.55)).await;
    let t = shared.start.elapsed();
    idp.stop();
    tokio::time::sleep(Duration::from_secs(10)).await;
    idp = Idp::start_with(idp_port, &callbacks, &[], &["--access-token-ttl", "3600"]);
    window(Fault::Idp, t);

    sleep_until(at(0.75)).await;
    let t = shared.start.elapsed();
    let reloads = a.log_count("configuration reload rejected");
    for gh in [&a, &b] {
        gh.write_config("routes:\n  - from: https://app.localhost\n    to: [oops\n");
    }
    let rejected = a.wait_log("configuration reload rejected", reloads);
    tokio::time::sleep(Duration::from_secs(5)).await;
    for gh in [&a, &b] {
        gh.write_config(&yaml);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    window(Fault::Config, t);

    sleep_until(total).await;
    let rss_end = [rss_mib(&a), rss_mib(&b)];
    shared.stop.store(true, Ordering::Relaxed);
    let stopping = Instant::now();
    while !tasks.is_empty() && stopping.elapsed() < Duration::from_secs(40) {
        let _ = tokio::time::timeout(Duration::from_secs(1), tasks.join_next()).await;
    }
    tasks.abort_all();

    let record = shared.record.lock().unwrap();
    let ok = report(&record, rss_start, rss_end, rejected, &[&a, &b]);
    drop(record);
    drop((a, b, idp, ws, up));
    std::process::exit(if ok { 0 } else { 1 });
}

fn report(
    r: &Record,
    rss_start: [u64; 2],
    rss_end: [u64; 2],
    broken_config_rejected: bool,
    instances: &[&Gatehouse],
) -> bool {
    let mut served: BTreeMap<Work, (u64, u64)> = BTreeMap::new();
    let mut expected: BTreeMap<(Fault, Work, Outcome), u64> = BTreeMap::new();
    let mut unexpected: Vec<&Sample> = Vec::new();
    for s in &r.samples {
        let e = served.entry(s.work).or_default();
        e.0 += 1;
        if s.outcome == Outcome::Ok {
            e.1 += 1;
            continue;
        }
        let fault = r.windows.iter().find(|(f, start, end)| {
            s.at + Duration::from_micros(s.micros as u64) >= *start
                && s.at <= *end + SETTLE
                && explained(*f, s.work, &s.outcome)
        });
        match fault {
            Some((f, _, _)) => *expected.entry((*f, s.work, s.outcome.clone())).or_default() += 1,
            None => unexpected.push(s),
        }
    }
    let p99 = |work: Work, steady: bool| {
        let mut v: Vec<u32> = r
            .samples
            .iter()
            .filter(|s| s.work == work && s.outcome == Outcome::Ok)
            .filter(|s| {
                !steady
                    || !r
                        .windows
                        .iter()
                        .any(|(_, a, b)| s.at >= *a && s.at <= *b + SETTLE)
            })
            .map(|s| s.micros)
            .collect();
        v.sort_unstable();
        v.get(v.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let span = r.samples.iter().map(|s| s.at).max().unwrap_or_default();
    println!("\nworkload        requests        ok");
    for (w, (n, ok)) in &served {
        println!("{:<14} {n:>9} {ok:>9}", format!("{w:?}"));
    }
    let pages = served.get(&Work::Page).map_or(0, |p| p.0);
    println!(
        "page requests/s {:.0}; page p99 {:.2} ms overall, {:.2} ms outside fault windows; sign-in p99 {:.1} ms; 8 MiB upload p99 {:.1} ms",
        pages as f64 / span.as_secs_f64().max(1.0),
        p99(Work::Page, false),
        p99(Work::Page, true),
        p99(Work::SignIn, true),
        p99(Work::Upload, true),
    );
    println!("\nexpected errors (inside their fault's window):");
    if expected.is_empty() {
        println!("  none");
    }
    for ((f, w, o), n) in &expected {
        println!("  {f:?} / {w:?}: {o:?} x{n}");
    }
    println!("unexpected errors: {}", unexpected.len());
    let mut by_kind: BTreeMap<(Work, Outcome), (u64, f64)> = BTreeMap::new();
    for s in &unexpected {
        let e = by_kind
            .entry((s.work, s.outcome.clone()))
            .or_insert((0, s.at.as_secs_f64()));
        e.0 += 1;
    }
    for ((w, o), (n, first)) in &by_kind {
        println!("  {w:?}: {o:?} x{n} (first at {first:.1}s)");
    }
    let mut ok = unexpected.is_empty();
    println!(
        "broken configuration rejected while the last good one served: {}",
        if broken_config_rejected { "yes" } else { "NO" }
    );
    ok &= broken_config_rejected;
    for (i, gh) in instances.iter().enumerate() {
        let grew = rss_end[i].saturating_sub(rss_start[i]);
        println!(
            "instance {}: RSS {} MiB after warm-up -> {} MiB at the end (+{grew} MiB, bound +{RSS_BOUND_MIB} MiB)",
            ["A", "B"][i],
            rss_start[i],
            rss_end[i]
        );
        ok &= grew <= RSS_BOUND_MIB;
        let panics = gh.log_count("panicked");
        if panics > 0 {
            println!("  {panics} panic(s) in the log");
            ok = false;
        }
    }
    println!("soak: {}", if ok { "PASS" } else { "FAIL" });
    ok
}

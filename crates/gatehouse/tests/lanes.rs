//! Upstream HTTP/1 connections bound to downstream connections (lanes):
//! reused across requests and across downstream connections, replaced when
//! the upstream closes them, dropped after a failed or timed-out exchange,
//! never left hanging; for HTTP/1 clients (a lane per connection) and
//! HTTP/2 clients (a lane per stream). The upstream is a raw TCP server
//! that counts its connections and misbehaves on request.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Gatehouse, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A raw HTTP/1 upstream. Per request path:
/// - `/id`: 200 `conn <n>` (the connection's number), kept open;
/// - `/slow`: the same after 500 ms;
/// - `/close`: 200, then the connection is closed without notice;
/// - `/hang`: never answers (the connection stays open);
/// - `/drop`: closes the connection without answering;
/// - `/big`: 200 with 4 MiB (`conn <n>` then filler), kept open.
///
/// Idle connections are closed after `idle` (like a server's keep-alive
/// timeout).
struct RawUpstream {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

async fn raw_upstream(idle: Duration) -> RawUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let head = match tokio::time::timeout(idle, read_head(&mut s, &mut buf)).await {
                        Ok(Some(h)) => h,
                        _ => return,
                    };
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    match path.as_str() {
                        "/hang" => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        }
                        "/drop" => return,
                        "/slow" => tokio::time::sleep(Duration::from_millis(500)).await,
                        _ => {}
                    }
                    let mut body = format!("conn {n}");
                    if path == "/big" {
                        body.push_str(&".".repeat(4 << 20));
                    }
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                    if path == "/close" {
                        return;
                    }
                }
            });
        }
    });
    RawUpstream { port, accepted }
}

/// Reads one request head (no bodies in these tests).
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One keep-alive downstream connection to a plain-HTTP gatehouse.
struct Downstream {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Downstream {
    async fn open(port: u16) -> Downstream {
        Downstream {
            s: TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
            buf: Vec::new(),
        }
    }

    /// GET `path` on `app.localhost`: status and body.
    async fn get(&mut self, path: &str) -> (u16, String) {
        let req = format!("GET {path} HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
        self.s.write_all(req.as_bytes()).await.unwrap();
        let head = tokio::time::timeout(
            Duration::from_secs(10),
            read_head(&mut self.s, &mut self.buf),
        )
        .await
        .expect("an answer within 10 s")
        .expect("an answer, not a closed connection");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while self.buf.len() < len {
            let mut chunk = [0u8; 4096];
            let n = self.s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed mid-body");
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&self.buf[..len]).into_owned();
        self.buf.drain(..len);
        (status, body)
    }
}

fn start(up: &RawUpstream) -> Gatehouse {
    Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\ninsecure_server: true\nroutes:\n  - {{from: 'https://app.localhost', to: 'http://127.0.0.1:{}', timeout: 1s, allow_public_unauthenticated_access: true}}\n",
        up.port
    ))
}

#[tokio::test]
async fn one_upstream_connection_serves_a_downstream_connection_and_the_next() {
    let up = raw_upstream(Duration::from_secs(30)).await;
    let gh = start(&up);
    let mut d = Downstream::open(gh.port).await;
    for _ in 0..5 {
        assert_eq!(d.get("/id").await, (200, "conn 1".to_string()));
    }
    drop(d);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut d = Downstream::open(gh.port).await;
    assert_eq!(d.get("/id").await, (200, "conn 1".to_string()));
    // An idle client connection holds no upstream connection: another
    // client takes the same one.
    let mut other = Downstream::open(gh.port).await;
    assert_eq!(other.get("/id").await, (200, "conn 1".to_string()));
    assert_eq!(d.get("/id").await, (200, "conn 1".to_string()));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

/// Exchanges at the same time each have their own connection, and each
/// goes back to the pool when it is complete.
#[tokio::test]
async fn concurrent_exchanges_use_their_own_connections() {
    let up = raw_upstream(Duration::from_secs(30)).await;
    let gh = start(&up);
    let mut slow = Downstream::open(gh.port).await;
    let mut fast = Downstream::open(gh.port).await;
    assert_eq!(fast.get("/id").await, (200, "conn 1".to_string()));
    let (a, b) = tokio::join!(slow.get("/slow"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fast.get("/id").await
    });
    assert_eq!(a, (200, "conn 1".to_string()));
    assert_eq!(b, (200, "conn 2".to_string()));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    // Both are pooled now: no third connection.
    assert_eq!(slow.get("/id").await.0, 200);
    assert_eq!(fast.get("/id").await.0, 200);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connections_the_upstream_closed_are_replaced_not_failed() {
    // The upstream closes connections idle for 300 ms.
    let up = raw_upstream(Duration::from_millis(300)).await;
    let gh = start(&up);
    let mut d = Downstream::open(gh.port).await;
    assert_eq!(d.get("/id").await, (200, "conn 1".to_string()));
    // Closed while idle in the pool.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(d.get("/id").await, (200, "conn 2".to_string()));
    // Closed right after an answer.
    assert_eq!(d.get("/close").await, (200, "conn 2".to_string()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(d.get("/id").await, (200, "conn 3".to_string()));
    // Closed while idle, with the client connection gone too.
    drop(d);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut d = Downstream::open(gh.port).await;
    assert_eq!(d.get("/id").await, (200, "conn 4".to_string()));
}

#[tokio::test]
async fn a_failed_or_timed_out_exchange_costs_its_connection_only() {
    let up = raw_upstream(Duration::from_secs(30)).await;
    let gh = start(&up);
    let mut d = Downstream::open(gh.port).await;
    assert_eq!(d.get("/id").await, (200, "conn 1".to_string()));
    // Closed without an answer: 502, and the next request is fine.
    assert_eq!(d.get("/drop").await.0, 502);
    assert_eq!(d.get("/id").await, (200, "conn 2".to_string()));
    // No answer within the route's timeout: 504; the connection that
    // still waits for an answer is not used again.
    assert_eq!(d.get("/hang").await.0, 504);
    assert_eq!(d.get("/id").await, (200, "conn 3".to_string()));
    // Nothing listens any more: 502, not a hang.
    let gone = free_port();
    let gh2 = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}\ninsecure_server: true\nroutes:\n  - {{from: 'https://app.localhost', to: 'http://127.0.0.1:{gone}', allow_public_unauthenticated_access: true}}\n"
    ));
    let mut d = Downstream::open(gh2.port).await;
    assert_eq!(d.get("/id").await.0, 502);
    assert_eq!(d.get("/id").await.0, 502);
}

/// GET `path` on `app.localhost` as one HTTP/2 stream: status and body.
async fn h2_get(
    send: &mut hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    path: &str,
) -> (u16, String) {
    use http_body_util::BodyExt;
    let req = http::Request::get(format!("http://app.localhost{path}"))
        .body(http_body_util::Empty::new())
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
    .await
    .expect("an answer within 10 s")
}

/// HTTP/2 streams each drive a lane of their own (their task polls the
/// upstream connection): connections are reused across streams and
/// connections, concurrent streams get their own, a long answer streams
/// through (its body drives the connection) and gives its connection back,
/// and failures and timeouts cost only their own connection.
#[tokio::test]
async fn http2_streams_ride_lanes_of_their_own() {
    let up = raw_upstream(Duration::from_secs(30)).await;
    let gh = start(&up);
    let mut h2 = common::h2c_sender(gh.port).await;
    for _ in 0..3 {
        assert_eq!(h2_get(&mut h2, "/id").await, (200, "conn 1".to_string()));
    }
    // An HTTP/1 client takes the same pooled connection.
    let mut d = Downstream::open(gh.port).await;
    assert_eq!(d.get("/id").await, (200, "conn 1".to_string()));
    // Two streams at once: two connections, both kept.
    let mut other = h2.clone();
    let (a, b) = tokio::join!(h2_get(&mut h2, "/slow"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        h2_get(&mut other, "/id").await
    });
    assert_eq!(a, (200, "conn 1".to_string()));
    assert_eq!(b, (200, "conn 2".to_string()));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    // 4 MiB: far more than one read, past HTTP/2's flow-control windows.
    let (status, body) = h2_get(&mut h2, "/big").await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), "conn 2".len() + (4 << 20));
    assert!(body.starts_with("conn "), "{}", &body[..16]);
    assert_eq!(h2_get(&mut h2, "/id").await.0, 200);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    // Closed without an answer: 502; no answer within the timeout: 504;
    // then the pooled connection that is left serves on.
    assert_eq!(h2_get(&mut h2, "/drop").await.0, 502);
    assert_eq!(h2_get(&mut h2, "/hang").await.0, 504);
    let (status, body) = h2_get(&mut h2, "/id").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("conn "), "{body}");
    // A stream the client abandons mid-answer costs its connection only.
    let req = http::Request::get("http://app.localhost/slow")
        .body(http_body_util::Empty::new())
        .unwrap();
    let abandoned = tokio::time::timeout(Duration::from_millis(100), h2.send_request(req)).await;
    assert!(abandoned.is_err(), "answered before the client gave up");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(h2_get(&mut h2, "/id").await.0, 200);
    assert_eq!(d.get("/id").await.0, 200);
}

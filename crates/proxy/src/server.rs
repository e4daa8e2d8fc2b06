//! Listeners: accept, TLS handshake (bounded by `timeout_read`), HTTP/1.1 or
//! HTTP/2 (by ALPN over TLS, by the first bytes of a plain connection: the
//! HTTP/2 preface), each served by its own hyper server, slow-client
//! protection, the HTTP→HTTPS redirect listener, and graceful drain on
//! shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::body::{self, Body, RequestBody};
use crate::deadline::{Activity, Deadlines, Tracked};
use crate::forward::ConnInfo;
use crate::{Proxy, answers};

/// Largest request head accepted; bigger gets 431 (Envoy's default is 60 KiB).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Streams at once on one HTTP/2 connection.
const MAX_CONCURRENT_STREAMS: u32 = 200;

/// Bound sockets, ready to serve.
pub struct Listeners {
    main: TcpListener,
    redirect: Option<TcpListener>,
}

impl Listeners {
    pub fn main_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.main.local_addr()
    }
}

pub async fn bind(proxy: &Proxy) -> std::io::Result<Listeners> {
    let main = TcpListener::bind(&proxy.settings.address)
        .await
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", proxy.settings.address),
            )
        })?;
    let redirect =
        match &proxy.settings.http_redirect_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
            })?),
            None => None,
        };
    Ok(Listeners { main, redirect })
}

/// The first bytes of an HTTP/2 connection with prior knowledge (h2c).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The HTTP/1 and HTTP/2 servers every connection is served by.
struct Protocols {
    http1: http1::Builder,
    /// `None` with `codec_type: http1`.
    http2: Option<http2::Builder<TokioExecutor>>,
}

impl Protocols {
    fn new(http1_only: bool) -> Protocols {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            // Replaced by `deadline::Deadlines`, which also honours timeout_idle.
            .header_read_timeout(None)
            // A hard limit on the head (431), however the bytes arrive;
            // the buffer limit alone can be overshot by one read.
            .max_header_size(MAX_HEADER_BYTES)
            .max_buf_size(MAX_HEADER_BYTES)
            .keep_alive(true);
        let h2 = (!http1_only).then(|| {
            let mut h2 = http2::Builder::new(TokioExecutor::new());
            h2.timer(TokioTimer::new())
                // Each stream may hold an upstream connection (its lane):
                // this bounds them per client connection (hyper's default,
                // said here as the bound it is).
                .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                .max_header_list_size(MAX_HEADER_BYTES as u32)
                .keep_alive_interval(Some(Duration::from_secs(60)))
                .keep_alive_timeout(Duration::from_secs(20));
            h2
        });
        Protocols {
            http1: h1,
            http2: h2,
        }
    }
}

/// Serves until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish for up to `drain`.
pub async fn serve(
    proxy: Arc<Proxy>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let protocols = Arc::new(Protocols::new(proxy.settings.http1_only));
    // Every connection holds a receiver: `true` asks it to finish what it
    // is doing and close; the drain is over when all are dropped.
    let (draining, drain_signal) = watch::channel(false);
    let tls = !proxy.settings.insecure;

    let redirect_task = listeners.redirect.map(|l| {
        let port = proxy.settings.https_port;
        let acme = proxy.certs.acme.clone();
        tokio::spawn(serve_redirects(
            l,
            port,
            proxy.settings.proxy_protocol,
            acme,
        ))
    });

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listeners.main.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let local_port = stream.local_addr().map(|a| a.port()).unwrap_or(0);
                let conn = ConnInfo::new(peer, local_port, tls);
                // The TLS settings in force when the connection arrived.
                let acceptor = tls.then(|| TlsAcceptor::from(proxy.server_tls.load_full()));
                let proxy = proxy.clone();
                let protocols = protocols.clone();
                let drain_signal = drain_signal.clone();
                tokio::spawn(async move {
                    serve_connection(proxy, protocols, acceptor, drain_signal, stream, conn).await;
                });
            }
        }
    }
    drop(listeners.main);
    drop(drain_signal);
    if let Some(t) = redirect_task {
        t.abort();
    }
    tracing::info!(
        in_flight = draining.receiver_count(),
        "draining connections"
    );
    proxy
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = draining.send(true);
    if tokio::time::timeout(drain, draining.closed())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached; closing remaining connections");
    }
}

async fn serve_connection(
    proxy: Arc<Proxy>,
    protocols: Arc<Protocols>,
    acceptor: Option<TlsAcceptor>,
    drain_signal: watch::Receiver<bool>,
    mut stream: TcpStream,
    mut conn: ConnInfo,
) {
    let (read_timeout, idle_timeout) = (proxy.settings.timeout_read, proxy.settings.timeout_idle);
    let metrics = proxy.metrics.clone();
    let _open = metrics.connection();
    // The PROXY header and the TLS handshake (or the first bytes of a plain
    // connection) share one `timeout_read` from accept.
    let accepted = tokio::time::Instant::now();
    if proxy.settings.proxy_protocol {
        // The balancer's header first; without one the connection is
        // closed, never served.
        let header =
            tokio::time::timeout(read_timeout, crate::proxy_protocol::read(&mut stream)).await;
        match header {
            Ok(Ok(crate::proxy_protocol::Header::Proxied(client))) => conn.set_peer(client),
            Ok(Ok(crate::proxy_protocol::Header::Local)) => {}
            Ok(Err(e)) => {
                return tracing::debug!(peer = %conn.peer, error = %e, "connection refused");
            }
            Err(_) => {
                return tracing::debug!(peer = %conn.peer, "no PROXY protocol header in time");
            }
        }
    }
    let peer = conn.peer;
    let conn = Arc::new(conn);
    let conn_cert = conn.clone();
    let activity = Arc::new(Activity::default());
    let tracker = activity.clone();
    let shared = proxy.clone();
    // Each request: dispatch, with the request counted in flight until its
    // response body is done.
    let handle = move |mut req: Request<Incoming>, lane: Arc<crate::lane::Lane>| {
        let proxy = proxy.clone();
        let conn = conn.clone();
        let in_flight = tracker.start();
        // A tunnel keeps its connection's activity while its bytes flow
        // (the relay holds a request in flight; see `crate::tunnel`).
        let connect = req.method() == http::Method::CONNECT;
        if connect {
            req.extensions_mut()
                .insert(crate::deadline::TunnelActivity(tracker.clone()));
        }
        let http1 = req.version() != http::Version::HTTP_2;
        if !tracker.rest_forbidden() && !rests_after(&req) {
            tracker.forbid_rest();
        }
        let tracker = tracker.clone();
        async move {
            let rt = proxy.runtime.load_full();
            let req = req.map(RequestBody::Incoming);
            let resp = crate::dispatch::handle(&proxy, &rt, req, &conn, Some(&lane)).await;
            if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS
                || (connect && http1 && resp.status().is_success())
            {
                tracker.upgraded();
            }
            Ok::<_, std::convert::Infallible>(resp.map(|body| Tracked {
                body,
                _in_flight: in_flight,
            }))
        }
    };
    let served = Served {
        protocols: &protocols,
        drain_signal,
        drain_begun: &shared.draining,
        peer,
        activity: activity.clone(),
    };
    match acceptor {
        Some(acceptor) => {
            // Boxed: the handshake's state (1.3 KiB) is not part of the
            // connection's task for its whole life.
            let handshake = Box::pin(tokio::time::timeout_at(
                accepted + read_timeout,
                acceptor.accept(stream),
            ));
            // The stream goes straight into its box, within this match: a
            // binding of it alive across the `.await` below would keep
            // 1.2 KiB in the connection's task for its whole life.
            let (io, h2) = match handshake.await {
                Ok(Ok(tls)) => {
                    let session = tls.get_ref().1;
                    // A TLS-ALPN-01 validation: the handshake was the answer.
                    if session.alpn_protocol() == Some(crate::acme::ACME_TLS_ALPN) {
                        return;
                    }
                    let h2 = session.alpn_protocol() == Some(b"h2");
                    if let Some(chain) = session.peer_certificates() {
                        let chain = chain.iter().map(|c| c.clone().into_owned()).collect();
                        if let Some(cert) = crate::client_cert::PeerCert::new(chain) {
                            let _ = conn_cert.client_cert.set(Arc::new(cert));
                        }
                    }
                    drop(conn_cert);
                    // Boxed (1.3 KiB with the TLS state), so that moving it
                    // between the connection's phases moves a pointer.
                    let io = Box::new(Deadlines::new(tls, activity, read_timeout, idle_timeout));
                    (io, h2)
                }
                Ok(Err(e)) => {
                    return tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                }
                Err(_) => return tracing::debug!(peer = %peer, "TLS handshake timed out"),
            };
            // Nothing of the first request has been read yet.
            served.serve(io, h2, handle, true).await
        }
        None => {
            let preface =
                tokio::time::timeout_at(accepted + read_timeout, starts_with_preface(&stream));
            let h2 = match preface.await {
                Ok(Ok(h2)) => h2 && protocols.http2.is_some(),
                Ok(Err(_)) | Err(_) => return,
            };
            let io = Box::new(Deadlines::new(stream, activity, read_timeout, idle_timeout));
            // The first bytes are there (peeked).
            served.serve(io, h2, handle, false).await
        }
    }
}

/// Whether a plain connection opens with the HTTP/2 preface, from its first
/// bytes (peeked, not consumed): one byte that differs is enough.
async fn starts_with_preface(stream: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; 24];
    // A prefix of the preface ("P", "PRI * HT"…) leaves the bytes unread,
    // so the socket stays readable: wait with a growing pause instead of
    // polling it in a loop (a client holding "P" costs ~10 wake-ups a
    // second, until `timeout_read`).
    let mut pause = Duration::from_millis(1);
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(false);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// One established connection's serving: the right server, the lane
/// driven in the same task, rests (HTTP/1), and a graceful close when the
/// drain starts.
struct Served<'a> {
    protocols: &'a Protocols,
    drain_signal: watch::Receiver<bool>,
    /// Set just before the drain is signalled (see [`DrainGate`]).
    drain_begun: &'a std::sync::atomic::AtomicBool,
    peer: std::net::SocketAddr,
    activity: Arc<Activity>,
}

impl Served<'_> {
    /// `wait`: no byte of the first request has been read yet (HTTP/1
    /// starts at rest).
    async fn serve<T, H, F>(self, mut io: Box<Deadlines<T>>, h2: bool, handle: H, wait: bool)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Fn(Request<Incoming>, Arc<crate::lane::Lane>) -> F
            + Clone
            + Unpin
            + Send
            + Sync
            + 'static,
        F: Future<Output = Result<Response<Tracked<Body>>, std::convert::Infallible>>
            + Send
            + 'static,
    {
        match (h2, &self.protocols.http2) {
            (true, Some(h2)) => {
                // Each stream (a task of its own in hyper) drives a lane of
                // its own: its upstream connection is polled by the
                // stream's task, not by a pooled client's. The request's
                // future is boxed in it: moving the 5 KiB future into the
                // stream's task cost more (HTTP/2 +15% requests/s; HTTP/1
                // keeps it in place).
                let service = service_fn(move |req| {
                    let lane = Arc::new(crate::lane::Lane::default());
                    crate::lane::OnLane::new(handle(req, lane.clone()), lane)
                });
                // Built straight into its box: it is not part of this task.
                let mut conn = Box::pin(h2.serve_connection(TokioIo::new(io), service));
                let Served {
                    mut drain_signal,
                    peer,
                    ..
                } = self;
                // Borrowed, not moved: the receiver must live as long as
                // the connection, since the drain waits for every receiver.
                let result = tokio::select! {
                    r = conn.as_mut() => r,
                    () = drained(&mut drain_signal) => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection closed with an error");
                }
            }
            _ => {
                io.rest_after(REST_AFTER);
                // This connection's lane to its upstreams, driven by this
                // task (see `serve_http1`).
                let lane = Arc::new(crate::lane::Lane::default());
                let on = lane.clone();
                let service = service_fn(move |req| handle(req, on.clone()));
                self.serve_http1(io, service, lane, wait).await
            }
        }
    }

    /// HTTP/1 with rests. hyper's state for a connection (read and write
    /// buffers, the request in flight: ~22 KiB) exists only while the
    /// connection is in use: idle for [`REST_AFTER`], the connection is put
    /// to rest (hyper closes it gracefully but the socket is not closed; it
    /// stays here, with any bytes hyper read ahead), and the first byte of
    /// its next request starts a new hyper connection on it. A new TLS
    /// connection starts at rest. Upgraded connections (websockets) belong
    /// to their tunnel.
    async fn serve_http1<T, S>(
        self,
        mut io: Box<Deadlines<T>>,
        mut service: S,
        lane: Arc<crate::lane::Lane>,
        mut wait: bool,
    ) where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::HttpService<Incoming, ResBody = Tracked<Body>> + Unpin + Send + 'static,
        S::Future: Send + 'static,
    {
        let Served {
            protocols,
            mut drain_signal,
            drain_begun,
            peer,
            activity,
        } = self;
        let draining = drained(&mut drain_signal);
        tokio::pin!(draining);
        let mut drain = false;
        loop {
            if wait {
                let mut byte = [0u8; 1];
                let first = tokio::select! {
                    r = io.read(&mut byte) => r,
                    () = &mut draining, if !drain => {
                        drain = true;
                        Ok(0)
                    }
                };
                match first {
                    Ok(1) => io.give_back(one_byte(byte[0])),
                    // The client or the drain closes it.
                    Ok(_) => return close(&mut io).await,
                    Err(e) => {
                        tracing::debug!(peer = %peer, error = %e, "connection closed");
                        return;
                    }
                }
            }
            let conn = protocols
                .http1
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            let mut joined = crate::lane::Joined::new(conn, lane.clone());
            // Asked to close gracefully (the drain, or a rest).
            let mut closing = false;
            let mut gate = DrainGate::new(drain_begun);
            let result = std::future::poll_fn(|cx| {
                if !drain && gate.may_have_begun(cx) && gate.poll(draining.as_mut(), cx).is_ready()
                {
                    drain = true;
                    if !closing {
                        closing = true;
                        joined.server().graceful_shutdown();
                    }
                }
                if let Poll::Ready(r) = Pin::new(&mut joined).poll(cx) {
                    return Poll::Ready(r);
                }
                // The reader asks for a rest from within that poll.
                if closing || !activity.take_rest() {
                    return Poll::Pending;
                }
                closing = true;
                // An idle hyper connection closes at once, in this poll,
                // and its close is held. One that does not was busy after
                // all (a request body still coming, an answer still being
                // flushed): its close, whenever it comes, is real.
                activity.hold_close(true);
                joined.server().graceful_shutdown();
                let polled = Pin::new(&mut joined).poll(cx);
                if polled.is_pending() {
                    activity.hold_close(false);
                }
                polled
            })
            .await;
            // `None`: upgraded, the tunnel has the socket.
            let Some(parts) = joined.into_server().into_parts() else {
                return;
            };
            io = parts.io.into_inner();
            service = parts.service;
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "connection closed with an error");
                return;
            }
            if !io.take_held_close() {
                // hyper closed it.
                return;
            }
            // At rest the lane holds nothing: its last exchange's connection
            // went back to the pool as hyper closed; one that was not ready
            // for another request then is in an unknown state, not kept.
            lane.unbind();
            if drain {
                return close(&mut io).await;
            }
            if !parts.read_buf.is_empty() {
                // Copied: hyper's whole read buffer would stay with it.
                io.give_back(bytes::Bytes::copy_from_slice(&parts.read_buf));
            }
            wait = !io.has_prefix();
        }
    }
}

/// How long an HTTP/1 connection stays idle before it is put to rest.
/// Rebuilding hyper's state costs ~2 µs, so a connection in steady use
/// never rests; one that waits (a browser's keep-alive, a pool's spare)
/// holds ~11 KiB over TLS instead of ~30.
const REST_AFTER: Duration = Duration::from_millis(100);

/// Whether an HTTP/1 connection may rest after this request: hyper is
/// idle (so closes at once, holding nothing) only after requests without a
/// body, an upgrade or the connection's end (an upgrade asked for and
/// refused stays pending in hyper, and would take the socket with it).
fn rests_after(req: &Request<Incoming>) -> bool {
    use http_body::Body as _;
    req.version() == http::Version::HTTP_11
        && req.body().is_end_stream()
        && req.method() != http::Method::CONNECT
        && !req.headers().contains_key(header::UPGRADE)
        && !crate::forward::lists(req.headers(), &header::CONNECTION, "close")
}

/// Whether a connection's task must poll its drain future on a wake-up.
/// Polling it registers its waker with the watch again (~170
/// instructions, more than the rest of a wake-up between requests), and
/// only the drain itself wakes it: so it is polled on the first wake-up,
/// when the task's waker changes, and once [`crate::Proxy`]'s `draining`
/// is set (before the watch is sent `true`, which wakes every connection).
/// The same rule as `deadline::LazyTimer::poll_until`'s; one type for both
/// measured ~370 instructions a request more, so each keeps its own.
struct DrainGate<'a> {
    begun: &'a std::sync::atomic::AtomicBool,
    registered: Option<std::task::Waker>,
}

impl<'a> DrainGate<'a> {
    fn new(begun: &'a std::sync::atomic::AtomicBool) -> DrainGate<'a> {
        DrainGate {
            begun,
            registered: None,
        }
    }

    fn may_have_begun(&self, cx: &Context<'_>) -> bool {
        self.begun.load(std::sync::atomic::Ordering::Relaxed)
            || !self
                .registered
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
    }

    /// Polls the drain future, noting the waker it registered. (A task out
    /// of its cooperative budget gets `Pending` from the watch without its
    /// waker registered: such a poll is not trusted to wake.)
    fn poll<F: Future>(&mut self, drained: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let budget = tokio::task::coop::has_budget_remaining();
        let polled = drained.poll(cx);
        if polled.is_pending() && budget {
            self.registered = Some(cx.waker().clone());
        }
        polled
    }
}

/// Completes once the drain has begun (never, if the server went away
/// without one).
async fn drained(signal: &mut watch::Receiver<bool>) {
    loop {
        if *signal.borrow_and_update() {
            return;
        }
        if signal.changed().await.is_err() {
            // The server is gone without a drain: serve on.
            std::future::pending::<()>().await;
        }
    }
}

/// Closes a connection at rest (a TLS close_notify, then FIN), within a
/// second: the client may not be reading.
async fn close<T: AsyncWrite + Unpin>(io: &mut Deadlines<T>) {
    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
}

/// One byte as `Bytes`, without an allocation.
fn one_byte(b: u8) -> bytes::Bytes {
    static ALL: [u8; 256] = {
        let mut all = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            all[i] = i as u8;
            i += 1;
        }
        all
    };
    bytes::Bytes::from_static(&ALL[b as usize..=b as usize])
}

/// `http_redirect_addr`: every plain-HTTP request is sent to HTTPS, but
/// autocert's HTTP-01 answers.
async fn serve_redirects(
    listener: TcpListener,
    https_port: u16,
    proxy_protocol: bool,
    acme: Arc<crate::acme::Certs>,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let acme = acme.clone();
        tokio::spawn(async move {
            // The balancer's PROXY header comes first here too.
            if proxy_protocol {
                let header = tokio::time::timeout(
                    Duration::from_secs(10),
                    crate::proxy_protocol::read(&mut stream),
                )
                .await;
                if !matches!(header, Ok(Ok(_))) {
                    return;
                }
            }
            let svc = service_fn(move |req: Request<Incoming>| {
                let acme = acme.clone();
                async move {
                    // Only a token of an order in flight is answered; any
                    // other request is redirected as ever.
                    let answer = match req
                        .uri()
                        .path()
                        .strip_prefix("/.well-known/acme-challenge/")
                    {
                        Some(token) => acme.http_answer(token).await,
                        None => None,
                    };
                    Ok::<_, std::convert::Infallible>(match answer {
                        Some(key_authorization) => {
                            let mut r = Response::new(body::full(key_authorization.into()));
                            r.headers_mut().insert(
                                header::CONTENT_TYPE,
                                HeaderValue::from_static("text/plain"),
                            );
                            r
                        }
                        None => redirect_to_https(&req, https_port),
                    })
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn redirect_to_https(req: &Request<Incoming>, https_port: u16) -> Response<Body> {
    if matches!(req.uri().path(), "/ping" | "/healthz") {
        return answers::ok_text();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(h, _)| h))
        .unwrap_or("localhost");
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = if https_port == 443 {
        format!("https://{host}{pq}")
    } else {
        format!("https://{host}:{https_port}{pq}")
    };
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

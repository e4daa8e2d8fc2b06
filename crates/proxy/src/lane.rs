//! The forwarding lane: upstream HTTP/1 exchanges driven by the task of the
//! downstream connection that asked for them.
//!
//! With a pooled client every proxied request costs a hop to another task
//! (the client's connection task) and back. Here the upstream connection's
//! IO is polled by the downstream connection's own task ([`Joined`]): a
//! request is written and its answer read without waking anything else.
//!
//! - A [`Lane`] belongs to one downstream connection and holds at most one
//!   upstream connection, only for the length of one exchange: checked out
//!   of the [`Pool`] (synchronously) or opened for the request, given back
//!   the moment the exchange is complete (request written, answer read to
//!   its end). Idle downstream connections hold no upstream connection.
//! - The pool keeps idle connections per upstream authority (90 s, at most
//!   1,024 each), across reloads; a reaper closes expired ones and ones the
//!   upstream closed. Each is polled once at checkout (without a waker) so
//!   a connection the upstream closed is dropped, not used; a request a
//!   reused connection could not write at all is sent again once on a new
//!   connection (it was never seen).
//! - Connections idle for [`REST_AFTER`] rest: the reaper keeps only their
//!   socket and drops hyper's state (buffers and request channel, ~30 KiB
//!   each); the next checkout of one builds it again (no network round
//!   trip for HTTP/1). Connections in steady use are taken newest first
//!   and never rest.
//! - Requests to `http://` upstreams take a lane: an HTTP/1 client
//!   connection has one (one request at a time), each HTTP/2 stream (a task
//!   of its own in hyper) has its own ([`OnLane`]), driven by the stream's
//!   task while the request is served and then by its answer's body
//!   ([`LaneBody`]). `https://` and `h2c://` upstreams and websocket
//!   upgrades use the pooled clients of [`crate::upstream`].

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client_h1;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::{Body, BoxError};
use crate::deadline::LazyTimer;

/// How long an idle upstream connection is kept (here and in the pooled
/// clients of [`crate::upstream`]).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream authority, here and in the pooled
/// clients (HTTP/2 clients' streams each take one; with 256, a burst of
/// 640 streams opened and closed hundreds a second).
pub(crate) const MAX_IDLE_PER_AUTHORITY: usize = 1024;
/// How often the reaper looks at the idle connections (a lock and a walk
/// over at most 1,024 per upstream).
const REAP_EVERY: Duration = Duration::from_secs(1);
/// How long an idle upstream connection keeps hyper's state before it
/// rests (socket only). Under load the newest are taken first, so only the
/// spares of a past burst rest.
const REST_AFTER: Duration = Duration::from_secs(2);

type Driver = Pin<Box<client_h1::Connection<TokioIo<TcpStream>, Body>>>;

/// One upstream HTTP/1 connection: the handle requests are sent on and the
/// future that does its IO.
struct Conn {
    authority: Authority,
    sender: client_h1::SendRequest<Body>,
    driver: Driver,
    /// Has carried a request before (so the upstream may have closed it).
    used: bool,
}

impl Conn {
    /// Polls the connection once without a waker: true when it has ended
    /// (the upstream closed it, or sent something unasked).
    fn ended(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.sender.is_closed() || self.driver.as_mut().poll(&mut cx).is_ready()
    }
}

/// A connection in the pool: with hyper's state, ready at once, or at rest
/// (only its socket).
enum Held {
    Live(Conn),
    Resting(TcpStream),
}

impl Held {
    /// Whether the upstream closed it or sent something unasked (a probe
    /// without a system call unless the socket became readable).
    fn ended(&mut self) -> bool {
        match self {
            Held::Live(conn) => conn.ended(),
            Held::Resting(io) => {
                let mut byte = [0u8; 1];
                !matches!(io.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
        }
    }

    /// At rest: hyper's state dropped, the socket kept (unless hyper had
    /// read bytes nobody asked for, which end it).
    ///
    /// `into_parts` gives back the socket and what was read, not what was
    /// still to be written: only a connection hyper calls ready for another
    /// request rests, and hyper says so only with its write queue empty
    /// (true of the vectored-write `TcpStream` lanes use; a connection
    /// whose request-body tail were dropped here would have the next
    /// request land inside it).
    fn rest(self) -> Option<Held> {
        let Held::Live(conn) = self else {
            return Some(self);
        };
        let Conn { sender, driver, .. } = conn;
        if !sender.is_ready() {
            return None;
        }
        drop(sender);
        let parts = Pin::into_inner(driver).into_parts();
        parts
            .read_buf
            .is_empty()
            .then(|| Held::Resting(parts.io.into_inner()))
    }
}

struct Idle {
    held: Held,
    since: Instant,
}

/// An upstream authority as the pool's key: hashed and compared as its
/// bytes, in one pass (`Authority`'s own `Hash` and `Eq` go a byte at a
/// time, case-insensitively: ~600 instructions a lookup, twice per proxied
/// request). Keys are configured `to:` authorities, not a client's; two
/// spellings of one upstream would only get a pool each.
struct PoolKey(Authority);

impl PartialEq for PoolKey {
    fn eq(&self, other: &PoolKey) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for PoolKey {}

impl Hash for PoolKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes: lookups borrow the key as bytes.
        self.0.as_str().as_bytes().hash(state);
    }
}

impl std::borrow::Borrow<[u8]> for PoolKey {
    fn borrow(&self) -> &[u8] {
        self.0.as_str().as_bytes()
    }
}

type IdleMap = HashMap<PoolKey, Vec<Idle>, foldhash::fast::RandomState>;

/// Idle upstream HTTP/1 connections by authority, kept across reloads.
pub struct Pool {
    idle: Mutex<IdleMap>,
    connector: HttpConnector,
    /// The reaper runs once the first connection is kept.
    reaper: std::sync::Once,
    /// [`REST_AFTER`] and [`REAP_EVERY`] (shorter in tests).
    rest_after: Duration,
    reap_every: Duration,
}

impl Pool {
    /// A pool whose new connections are made by `connector` (TCP only:
    /// name resolution, per-address timeouts, happy eyeballs, no-delay and
    /// keep-alive as the pooled clients have them).
    pub fn new(connector: HttpConnector) -> Pool {
        Pool {
            idle: Mutex::default(),
            connector,
            reaper: std::sync::Once::new(),
            rest_after: REST_AFTER,
            reap_every: REAP_EVERY,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdleMap> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection to `authority` that is still open, newest first.
    fn checkout(&self, authority: &Authority) -> Option<Held> {
        let mut map = self.lock();
        let list = map.get_mut(authority.as_str().as_bytes())?;
        while let Some(idle) = list.pop() {
            let idle_for = idle.since.elapsed();
            if idle_for > IDLE_TIMEOUT {
                // Older ones below are older still.
                list.clear();
                break;
            }
            // A probe costs no system call unless the socket has become
            // readable (a close or unasked bytes arrived).
            let mut held = idle.held;
            if !held.ended() {
                return Some(held);
            }
        }
        None
    }

    /// Keeps `conn` for another request, if it is idle and there is room.
    fn put(self: &Arc<Self>, mut conn: Conn) {
        if conn.ended() {
            return;
        }
        self.put_polled(conn);
    }

    /// [`Pool::put`] for a connection just polled and found open (no
    /// second probe).
    fn put_polled(self: &Arc<Self>, conn: Conn) {
        if !conn.sender.is_ready() {
            return;
        }
        let since = Instant::now();
        let mut map = self.lock();
        match map.get_mut(conn.authority.as_str().as_bytes()) {
            Some(list) => {
                if list.len() < MAX_IDLE_PER_AUTHORITY {
                    list.push(Idle {
                        held: Held::Live(conn),
                        since,
                    });
                }
            }
            None => {
                let key = PoolKey(conn.authority.clone());
                let held = Held::Live(conn);
                map.insert(key, vec![Idle { held, since }]);
            }
        }
        drop(map);
        self.reaper.call_once(|| {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(reap(Arc::downgrade(self), self.reap_every));
            }
        });
    }
}

/// Closes idle connections that expired or that the upstream closed, puts
/// to rest the ones idle for [`REST_AFTER`], and forgets authorities with
/// none left; ends with the pool.
async fn reap(pool: Weak<Pool>, every: Duration) {
    let mut every = tokio::time::interval(every);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let mut map = pool.lock();
        for list in map.values_mut() {
            let kept = std::mem::take(list);
            for mut idle in kept {
                let idle_for = idle.since.elapsed();
                if idle_for > IDLE_TIMEOUT || idle.held.ended() {
                    continue;
                }
                let held = if idle_for >= pool.rest_after {
                    idle.held.rest()
                } else {
                    Some(idle.held)
                };
                if let Some(held) = held {
                    list.push(Idle {
                        held,
                        since: idle.since,
                    });
                }
            }
        }
        map.retain(|_, list| !list.is_empty());
    }
}

#[derive(Default)]
struct Bound {
    conn: Option<Conn>,
    /// Where `conn` goes back to.
    pool: Weak<Pool>,
    /// The request is written and its answer has begun: the exchange is
    /// complete once the connection is ready for another.
    sent: bool,
    /// A connection was bound since the last poll: poll it before sleeping.
    installed: bool,
}

impl Bound {
    /// The bound connection, its exchange complete and just polled open,
    /// back to its pool.
    fn give_back(&mut self) {
        self.sent = false;
        if let (Some(conn), Some(pool)) = (self.conn.take(), self.pool.upgrade()) {
            pool.put_polled(conn);
        }
    }
}

/// The upstream exchange of one downstream connection, if one is going on.
#[derive(Default)]
pub struct Lane {
    /// The route's `timeout` for this connection's exchanges (one at a
    /// time): one timer for the connection's life instead of one registered
    /// and cancelled per request; set at the first timed exchange.
    timer: Mutex<Option<LazyTimer>>,
    bound: Mutex<Bound>,
    /// A connection is bound: the connection's task polls the lane on
    /// every wake-up, and most find it empty (between requests).
    busy: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.lock();
        f.debug_struct("Lane")
            .field("bound", &b.conn.as_ref().map(|c| c.authority.as_str()))
            .finish()
    }
}

/// Why a request on a lane failed.
#[derive(Debug)]
pub enum LaneError {
    /// The upstream could not be reached (nothing was sent).
    Connect(BoxError),
    /// The upstream closed or reset the connection, or sent garbage.
    Reset(hyper::Error),
}

impl Lane {
    fn lock(&self) -> std::sync::MutexGuard<'_, Bound> {
        self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drives the bound connection's IO (from the downstream connection's
    /// task); gives it back to its pool once its exchange is complete, and
    /// forgets it once it has ended. True when a connection was bound since
    /// the last call.
    fn poll_bound(&self, cx: &mut Context<'_>) -> bool {
        use std::sync::atomic::Ordering;
        if !self.busy.load(Ordering::Acquire) {
            return false;
        }
        let mut guard = self.lock();
        let b = &mut *guard;
        if let Some(conn) = b.conn.as_mut() {
            if conn.driver.as_mut().poll(cx).is_ready() {
                b.conn = None;
                b.sent = false;
            } else if b.sent && conn.sender.is_ready() {
                // Just polled: open.
                b.give_back();
            }
        }
        if b.conn.is_none() {
            self.busy.store(false, Ordering::Release);
        }
        std::mem::take(&mut b.installed)
    }

    /// `fut` (this connection's exchange), or `None` once `limit` has
    /// passed since now: the route's `timeout` on the connection's timer.
    /// (Pinned by the caller: the exchange's future is not copied into
    /// this one.)
    pub fn within<'a, F: Future>(
        &'a self,
        limit: Duration,
        mut fut: Pin<&'a mut F>,
    ) -> impl Future<Output = Option<F::Output>> + 'a {
        let deadline = tokio::time::Instant::now() + limit;
        std::future::poll_fn(move |cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            let mut timer = self.timer.lock().unwrap_or_else(|e| e.into_inner());
            timer
                .get_or_insert_with(|| LazyTimer::new(deadline))
                .poll_until(cx, deadline)
                .map(|()| None)
        })
    }

    /// Drops the bound connection (after a failed or abandoned exchange,
    /// whose state on the wire is unknown).
    pub fn unbind(&self) {
        let mut b = self.lock();
        b.conn = None;
        b.sent = false;
        self.busy.store(false, std::sync::atomic::Ordering::Release);
    }

    /// Binds `conn` (from `pool`) for this exchange.
    fn bind(&self, conn: Conn, pool: &Arc<Pool>) {
        let mut b = self.lock();
        // A connection still bound here is one whose exchange never
        // completed (the upstream stopped reading, say): not reused.
        b.conn = Some(conn);
        b.pool = Arc::downgrade(pool);
        b.sent = false;
        b.installed = true;
        self.busy.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Sends `req` to `authority` on a connection from `pool` (or a new
    /// one), driven by this lane's task.
    pub async fn send(
        &self,
        pool: &Arc<Pool>,
        authority: &Authority,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, LaneError> {
        let mut req = req;
        for attempt in 0..2 {
            // The second try is on a new connection: after a pooled one
            // turned out closed, the next pooled one may be too (an
            // upstream that restarted closed them all).
            let held = if attempt == 0 {
                pool.checkout(authority)
            } else {
                None
            };
            let (conn, reused) = match held {
                Some(Held::Live(conn)) => (conn, true),
                // At rest: hyper's state again (boxed, as rare as below).
                Some(Held::Resting(io)) => match Box::pin(revive(authority, io)).await {
                    Ok(conn) => (conn, true),
                    Err(_) => continue,
                },
                // Boxed: rare, and its future would otherwise make every
                // request's future larger.
                None => (Box::pin(connect(pool, authority)).await?, false),
            };
            self.bind(conn, pool);
            // Ready once the connection's task (ours) has polled it.
            let ready = std::future::poll_fn(|cx| match self.lock().conn.as_mut() {
                Some(c) => c.sender.poll_ready(cx).map(|r| r.map(|()| true)),
                None => Poll::Ready(Ok(false)),
            })
            .await;
            match ready {
                Ok(true) => {}
                // Ended or failed before anything was written.
                Ok(false) | Err(_) if reused => {
                    self.unbind();
                    continue;
                }
                Ok(false) => {
                    return Err(LaneError::Connect(
                        "the upstream closed the connection at once".into(),
                    ));
                }
                Err(e) => {
                    self.unbind();
                    return Err(LaneError::Reset(e));
                }
            }
            let sent = {
                let mut b = self.lock();
                let Some(conn) = b.conn.as_mut() else {
                    continue;
                };
                conn.used = true;
                conn.sender.try_send_request(req)
            };
            match sent.await {
                Ok(resp) => {
                    // The request is written (its answer has begun): the
                    // exchange is complete once the connection is ready for
                    // another. Not before: hyper may say "ready" while the
                    // request is still queued.
                    let mut b = self.lock();
                    if b.conn.as_ref().is_some_and(|c| c.sender.is_ready()) {
                        // Already complete (the whole answer came in the
                        // read that brought its head, as small answers do):
                        // back to the pool before the answer goes out, so
                        // the client's next request, on any connection,
                        // finds it there. Polled by this task just now:
                        // open.
                        b.give_back();
                        self.busy.store(false, std::sync::atomic::Ordering::Release);
                    } else {
                        b.sent = true;
                    }
                    return Ok(resp);
                }
                Err(mut e) => {
                    self.unbind();
                    // Never written: a reused connection the upstream had
                    // closed. Once more on a new one.
                    match e.take_message() {
                        Some(r) if reused => req = r,
                        _ => return Err(LaneError::Reset(e.into_error())),
                    }
                }
            }
        }
        Err(LaneError::Connect(
            "the upstream closed every connection tried".into(),
        ))
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        let b = self.bound.get_mut().unwrap_or_else(|e| e.into_inner());
        if let (Some(conn), Some(pool)) = (b.conn.take(), b.pool.upgrade()) {
            pool.put(conn);
        }
    }
}

/// A resting connection with hyper's state again.
async fn revive(authority: &Authority, io: TcpStream) -> Result<Conn, hyper::Error> {
    let (sender, driver) = client_h1::Builder::new()
        .handshake(TokioIo::new(io))
        .await?;
    Ok(Conn {
        authority: authority.clone(),
        sender,
        driver: Box::pin(driver),
        used: true,
    })
}

async fn connect(pool: &Pool, authority: &Authority) -> Result<Conn, LaneError> {
    use tower_service::Service;
    let uri = Uri::builder()
        .scheme("http")
        .authority(authority.clone())
        .path_and_query("/")
        .build()
        .map_err(|e| LaneError::Connect(e.into()))?;
    let mut connector = pool.connector.clone();
    let io = connector
        .call(uri)
        .await
        .map_err(|e| LaneError::Connect(e.into()))?;
    let (sender, driver) = client_h1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| LaneError::Connect(e.into()))?;
    Ok(Conn {
        authority: authority.clone(),
        sender,
        driver: Box::pin(driver),
        used: false,
    })
}

/// A downstream connection's future joined with its lane: the upstream
/// connection's IO is driven in the same task, before and after the
/// downstream side (which may have just sent a request on it).
pub struct Joined<S> {
    server: Pin<Box<S>>,
    lane: Arc<Lane>,
}

impl<S> Joined<S> {
    pub fn new(server: S, lane: Arc<Lane>) -> Joined<S> {
        Joined {
            server: Box::pin(server),
            lane,
        }
    }

    /// The downstream connection's future (to ask it to close gracefully).
    pub fn server(&mut self) -> Pin<&mut S> {
        self.server.as_mut()
    }

    /// The downstream connection's future, once it is done.
    pub fn into_server(self) -> S
    where
        S: Unpin,
    {
        *Pin::into_inner(self.server)
    }
}

impl<S: Future> Future for Joined<S> {
    type Output = S::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<S::Output> {
        let this = self.get_mut();
        loop {
            this.lane.poll_bound(cx);
            if let Poll::Ready(out) = this.server.as_mut().poll(cx) {
                // The exchange that poll completed (hyper closes an idle
                // connection in the same poll that answered it, for a
                // rest) gives its upstream connection back now, not when
                // this client next speaks.
                this.lane.poll_bound(cx);
                return Poll::Ready(out);
            }
            // A connection bound during that poll has not been polled yet:
            // poll it now rather than after a wake-up that would not come.
            if !this.lane.poll_bound(cx) {
                return Poll::Pending;
            }
        }
    }
}

/// One HTTP/2 stream's exchange on a lane of its own: the request's future
/// joined with the lane (polled in the stream's task, as [`Joined`] does for
/// an HTTP/1 connection), then its answer's body, which drives the lane
/// until the upstream's answer is read to its end. The upstream connection
/// goes back to the pool when the exchange completes, or when the stream
/// ends (dropped with the body: kept only if its exchange is complete).
pub struct OnLane<F> {
    joined: Joined<F>,
}

impl<F> OnLane<F> {
    pub fn new(request: F, lane: Arc<Lane>) -> OnLane<F> {
        OnLane {
            joined: Joined::new(request, lane),
        }
    }
}

impl<F, B, E> Future for OnLane<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<LaneBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Pin::new(&mut this.joined).poll(cx).map(|r| {
            r.map(|resp| {
                let lane = &this.joined.lane;
                // Nothing bound (a small answer's exchange completes with
                // its head): the body has no lane to drive.
                let lane = lane
                    .busy
                    .load(std::sync::atomic::Ordering::Acquire)
                    .then(|| lane.clone());
                resp.map(|body| LaneBody { body, lane })
            })
        })
    }
}

/// An answer's body that drives its stream's lane while it is read.
pub struct LaneBody<B> {
    body: B,
    lane: Option<Arc<Lane>>,
}

impl<B> http_body::Body for LaneBody<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        if let Some(lane) = &this.lane {
            lane.poll_bound(cx);
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let (Some(lane), Poll::Ready(_)) = (&this.lane, &frame) {
            // The frame may have been the exchange's last: its connection
            // goes back now, not when the stream is dropped.
            lane.poll_bound(cx);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An upstream answering `conn N` (its Nth connection) to every
    /// request; closes connections idle for `idle`.
    async fn upstream(idle: Duration) -> (Authority, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0u8; 1024];
                            match tokio::time::timeout(idle, s.read(&mut chunk)).await {
                                Ok(Ok(k)) if k > 0 => buf.extend_from_slice(&chunk[..k]),
                                _ => return,
                            }
                        }
                        buf.clear();
                        let body = format!("conn {n}");
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (authority, accepted)
    }

    /// One request on `lane`, driven as a downstream connection drives it.
    async fn get(lane: &Arc<Lane>, pool: &Arc<Pool>, authority: &Authority) -> String {
        let exchange = async {
            let req = Request::builder()
                .uri("/")
                .header(http::header::HOST, authority.as_str())
                .body(crate::body::empty())
                .unwrap();
            let resp = lane.send(pool, authority, req).await.unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8(body.to_vec()).unwrap()
        };
        Joined::new(exchange, lane.clone()).await
    }

    fn resting(pool: &Pool) -> usize {
        let map = pool.lock();
        map.values()
            .flatten()
            .filter(|i| matches!(i.held, Held::Resting(_)))
            .count()
    }

    #[tokio::test]
    async fn idle_upstream_connections_rest_and_serve_again() {
        let (authority, accepted) = upstream(Duration::from_millis(1500)).await;
        let mut pool = Pool::new(HttpConnector::new());
        pool.rest_after = Duration::ZERO;
        pool.reap_every = Duration::from_millis(20);
        let pool = Arc::new(pool);
        let lane = Arc::new(Lane::default());
        assert_eq!(get(&lane, &pool, &authority).await, "conn 1");
        // Put to rest by the reaper, then revived for the next request:
        // the same upstream connection.
        let deadline = Instant::now() + Duration::from_secs(5);
        while resting(&pool) == 0 {
            assert!(Instant::now() < deadline, "never rested");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(get(&lane, &pool, &authority).await, "conn 1");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // Closed by the upstream while at rest: dropped, not used.
        while resting(&pool) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(get(&lane, &pool, &authority).await, "conn 2");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// Each exchange gets its whole timeout from its own start, whatever
    /// the connection's timer was set to by the ones before.
    #[tokio::test(start_paused = true)]
    async fn each_exchange_gets_its_own_timeout_on_the_shared_timer() {
        let lane = Lane::default();
        let limit = Duration::from_secs(30);
        // An exchange that answers in time leaves the timer set.
        let quick = std::pin::pin!(tokio::time::sleep(Duration::from_secs(1)));
        assert_eq!(lane.within(limit, quick).await, Some(()));
        // 20 s later, one that never answers: cut 30 s after its start,
        // not when the first one's deadline (29 s from now) passes.
        tokio::time::sleep(Duration::from_secs(20)).await;
        let start = tokio::time::Instant::now();
        let never = std::pin::pin!(std::future::pending::<()>());
        assert_eq!(lane.within(limit, never).await, None);
        assert_eq!(start.elapsed(), limit);
        // A shorter limit than the timer is set to moves it earlier.
        let never = std::pin::pin!(std::future::pending::<()>());
        let start = tokio::time::Instant::now();
        assert_eq!(lane.within(Duration::from_secs(2), never).await, None);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}

//! The forwarding lane: the upstream HTTP/1 connection bound to one
//! downstream HTTP/1 connection, driven by that connection's own task.
//!
//! With a pooled client every proxied request costs a hop to another task
//! (the client's connection task) and back. Here the upstream connection's
//! IO is polled by the downstream connection's task itself ([`Joined`]):
//! a request is written and its answer read without waking anything else.
//!
//! - A [`Lane`] belongs to one downstream connection. Its first request to
//!   a plain-HTTP upstream checks a connection out of the [`Pool`]
//!   (synchronously) or opens one; the connection then stays bound while
//!   the downstream connection sends requests to the same upstream, and
//!   goes back to the pool when the downstream connection has sent nothing
//!   for a second, ends, or its next request is for another upstream (so
//!   idle downstream connections do not hold upstream ones).
//! - The pool keeps idle connections per upstream authority for 90 s (at
//!   most 256 each), across reloads. An idle connection is not polled: one
//!   the upstream closed meanwhile is found at checkout (polled once without
//!   a waker) and dropped; a request a reused connection could not write at
//!   all is sent again once on a new connection (it was never seen).
//! - Only HTTP/1.x requests to `http://` upstreams take a lane; HTTP/2
//!   requests (many at once on one connection), `https://` and `h2c://`
//!   upstreams and websocket upgrades use the pooled clients of
//!   [`crate::upstream`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client_h1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::{Body, BoxError};

/// How long an idle upstream connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream authority.
const MAX_IDLE_PER_AUTHORITY: usize = 256;
/// How long opening an upstream connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a bound connection stays bound to a downstream connection that
/// sends nothing; then it goes back to the pool for others.
const RELEASE_AFTER: Duration = Duration::from_secs(1);

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
    /// (the upstream closed it while nobody was polling it).
    fn ended(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.sender.is_closed() || self.driver.as_mut().poll(&mut cx).is_ready()
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Idle upstream HTTP/1 connections by authority, kept across reloads.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<Authority, Vec<Idle>>>,
}

impl Pool {
    /// An idle connection to `authority` that is still open, newest first.
    fn checkout(&self, authority: &Authority) -> Option<Conn> {
        let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.get_mut(authority)?;
        while let Some(idle) = list.pop() {
            if idle.since.elapsed() > IDLE_TIMEOUT {
                // Older ones below are older still.
                list.clear();
                break;
            }
            let mut conn = idle.conn;
            if !conn.ended() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for another request, if it is idle and there is room.
    fn put(&self, mut conn: Conn) {
        if !conn.sender.is_ready() || conn.ended() {
            return;
        }
        let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(conn.authority.clone()).or_default();
        list.retain(|i| i.since.elapsed() <= IDLE_TIMEOUT);
        if list.len() < MAX_IDLE_PER_AUTHORITY {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Idle connections kept, for tests.
    pub fn idle_count(&self) -> usize {
        let map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        map.values().map(Vec::len).sum()
    }
}

#[derive(Default)]
struct Bound {
    conn: Option<Conn>,
    /// Where `conn` goes back to.
    pool: Weak<Pool>,
    /// A connection was bound since the last poll: poll it before sleeping.
    installed: bool,
    /// When the bound connection last took a request.
    last_used: Option<Instant>,
}

/// The upstream connection bound to one downstream connection.
#[derive(Default)]
pub struct Lane {
    bound: Mutex<Bound>,
}

/// Why a request on a lane failed.
#[derive(Debug)]
pub enum LaneError {
    /// The upstream could not be reached (nothing was sent).
    Connect(BoxError),
    /// The upstream closed or reset the connection, or sent garbage.
    Reset(hyper::Error),
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.lock();
        f.debug_struct("Lane")
            .field("bound", &b.conn.as_ref().map(|c| c.authority.as_str()))
            .finish()
    }
}

impl Lane {
    fn lock(&self) -> std::sync::MutexGuard<'_, Bound> {
        self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drives the bound connection's IO (from the downstream connection's
    /// task); forgets it once it has ended. True when a connection was
    /// bound since the last call.
    fn poll_bound(&self, cx: &mut Context<'_>) -> bool {
        let mut b = self.lock();
        if let Some(conn) = b.conn.as_mut() {
            if conn.driver.as_mut().poll(cx).is_ready() {
                b.conn = None;
            }
        }
        std::mem::take(&mut b.installed)
    }

    /// Gives an idle bound connection back to the pool once the downstream
    /// connection has sent nothing for [`RELEASE_AFTER`]; else when to look
    /// again (`None`: nothing is bound).
    fn release_if_idle(&self, now: Instant) -> Option<Instant> {
        let mut b = self.lock();
        b.conn.as_ref()?;
        let due = b.last_used.map_or(now, |t| t + RELEASE_AFTER);
        let idle = b.conn.as_ref().is_some_and(|c| c.sender.is_ready());
        if now < due || !idle {
            return Some(due.max(now + RELEASE_AFTER / 4));
        }
        if let (Some(conn), Some(pool)) = (b.conn.take(), b.pool.upgrade()) {
            pool.put(conn);
        }
        None
    }

    /// Drops the bound connection (after a failed or abandoned exchange,
    /// whose state on the wire is unknown).
    pub fn unbind(&self) {
        self.lock().conn = None;
    }

    /// Sends `req` to `authority` on this lane's connection: the bound one
    /// when it goes there, else one from `pool`, else a new one.
    pub async fn send(
        &self,
        pool: &Arc<Pool>,
        authority: &Authority,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, LaneError> {
        let mut req = req;
        for _ in 0..2 {
            let reused = match self.take_or_bind(pool, authority) {
                Some(used) => used,
                None => {
                    let conn = connect(authority).await.map_err(LaneError::Connect)?;
                    let mut b = self.lock();
                    if let Some(old) = b.conn.replace(conn) {
                        // Only if this task bound another meanwhile (never
                        // in HTTP/1); keep neither in doubt.
                        drop(old);
                    }
                    b.pool = Arc::downgrade(pool);
                    b.installed = true;
                    false
                }
            };
            // Ready once the connection's task (ours) has polled it.
            std::future::poll_fn(|cx| match self.lock().conn.as_mut() {
                Some(c) => c.sender.poll_ready(cx),
                None => Poll::Ready(Ok(())),
            })
            .await
            .map_err(LaneError::Reset)?;
            let sent = {
                let mut b = self.lock();
                let Some(conn) = b.conn.as_mut() else {
                    if reused {
                        continue;
                    }
                    return Err(LaneError::Connect(
                        "the upstream closed the connection".into(),
                    ));
                };
                conn.used = true;
                let sent = conn.sender.try_send_request(req);
                b.last_used = Some(Instant::now());
                sent
            };
            match sent.await {
                Ok(resp) => return Ok(resp),
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

    /// Makes sure a connection to `authority` is bound, if one is at hand:
    /// `Some(used)` when one is (`used`: it carried a request before),
    /// `None` when a new one must be opened.
    fn take_or_bind(&self, pool: &Arc<Pool>, authority: &Authority) -> Option<bool> {
        let mut b = self.lock();
        if let Some(conn) = b.conn.as_ref() {
            if conn.authority == *authority && !conn.sender.is_closed() {
                return Some(conn.used);
            }
        }
        if let Some(old) = b.conn.take() {
            if let Some(p) = b.pool.upgrade() {
                p.put(old);
            }
        }
        let conn = pool.checkout(authority)?;
        let used = conn.used;
        b.conn = Some(conn);
        b.pool = Arc::downgrade(pool);
        b.installed = true;
        Some(used)
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

async fn connect(authority: &Authority) -> Result<Conn, BoxError> {
    let addr = match authority.port_u16() {
        Some(_) => authority.as_str().to_string(),
        None => format!("{}:80", authority.host()),
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| "connecting to the upstream timed out")??;
    stream.set_nodelay(true)?;
    let (sender, driver) = client_h1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await?;
    Ok(Conn {
        authority: authority.clone(),
        sender,
        driver: Box::pin(driver),
        used: false,
    })
}

/// A downstream connection's future joined with its lane: the upstream
/// connection's IO is driven in the same task, before and after the
/// downstream side (which may have just sent a request on it); an upstream
/// connection the downstream side leaves idle goes back to the pool.
pub struct Joined<S> {
    server: Pin<Box<S>>,
    lane: Arc<Lane>,
    /// Armed while a connection is bound: when to check for idleness.
    release: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Joined<S> {
    pub fn new(server: S, lane: Arc<Lane>) -> Joined<S> {
        Joined {
            server: Box::pin(server),
            lane,
            release: None,
        }
    }
}

impl<S: Future> Future for Joined<S> {
    type Output = S::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<S::Output> {
        let this = self.get_mut();
        loop {
            this.lane.poll_bound(cx);
            if let Poll::Ready(out) = this.server.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            // A connection bound during that poll has not been polled yet:
            // poll it now rather than after a wake-up that would not come.
            if !this.lane.poll_bound(cx) {
                break;
            }
        }
        // One timer per connection, touched about once a second at most.
        loop {
            match this.release.as_mut() {
                None => {
                    if this.lane.lock().conn.is_none() {
                        return Poll::Pending;
                    }
                    this.release = Some(Box::pin(tokio::time::sleep(RELEASE_AFTER)));
                }
                Some(sleep) => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    match this.lane.release_if_idle(Instant::now()) {
                        Some(next) => sleep.as_mut().reset(next.into()),
                        None => {
                            this.release = None;
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
    }
}

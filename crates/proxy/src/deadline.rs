//! Downstream connection deadlines, as Pomerium's options mean them:
//!
//! - `timeout_read`: a request head must arrive completely within this time
//!   of its first byte (and a new connection must send one within it): slow
//!   clients (slowloris) are disconnected;
//! - `timeout_idle`: a connection with no request in flight is closed after
//!   this long, whatever its protocol (HTTP/2 pings do not count as use).
//!
//! hyper's own header timer also runs while a keep-alive connection waits,
//! which would cut idle connections at `timeout_read`; this wrapper replaces
//! it. Upgraded connections (websockets) are left alone.
//!
//! It also tells the server when an HTTP/1 connection has rested long
//! enough for its HTTP state to be put away ([`Deadlines::rest_after`]):
//! hyper's close is then not passed on, the socket goes back to the server
//! with the bytes hyper read ahead ([`Deadlines::give_back`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What the service tells the connection's deadline keeper.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicU32,
    /// Requests ever started, so the reader notices one that came and went
    /// between two of its polls.
    started: AtomicU64,
    upgraded: AtomicBool,
    /// The connection has been idle for its rest time: the server may put
    /// its HTTP/1 state away (set by the reader, taken by the server).
    rest: AtomicBool,
    /// Never rest: a request on this connection had a body, asked for an
    /// upgrade or for the connection's end (hyper may not be idle when it
    /// looks so from here, or keeps an upgrade pending).
    no_rest: AtomicBool,
    /// The server is putting the connection to rest: its HTTP server's
    /// close is not passed on.
    keep_open: AtomicBool,
    /// The reader waiting while requests were in flight: woken when the last
    /// one ends so the idle deadline gets armed.
    reader: AtomicWaker,
}

impl Activity {
    /// Marks a request in flight until the returned guard is dropped (with
    /// the response body, once it has been sent).
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The connection now carries a tunnel (101 Switching Protocols, or an
    /// HTTP/1.1 `CONNECT` answered 2xx).
    pub fn upgraded(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }

    /// Whether the connection has rested long enough, with nothing in
    /// flight, for its HTTP/1 state to be put away (asked once).
    pub fn take_rest(&self) -> bool {
        self.rest.swap(false, Ordering::Relaxed)
            && self.in_flight.load(Ordering::Acquire) == 0
            && !self.no_rest.load(Ordering::Relaxed)
    }

    /// Whether this connection may no longer rest.
    pub fn rest_forbidden(&self) -> bool {
        self.no_rest.load(Ordering::Relaxed)
    }

    /// This connection never rests (see `no_rest`).
    pub fn forbid_rest(&self) {
        self.no_rest.store(true, Ordering::Relaxed);
    }

    /// Holds (or no longer holds) the HTTP server's close: set just before
    /// it is asked to close an idle connection, cleared if it did not close
    /// at once (it was busy after all: its close is then real).
    pub fn hold_close(&self, hold: bool) {
        self.keep_open.store(hold, Ordering::Relaxed);
    }
}

pub struct InFlight(Arc<Activity>);

/// A `CONNECT`'s connection activity, for its relay to hold a request in
/// flight while the tunnel lasts (no idle or read deadline cuts it).
#[derive(Clone)]
pub struct TunnelActivity(pub Arc<Activity>);

impl TunnelActivity {
    pub fn hold(&self) -> InFlight {
        self.0.start()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.reader.wake();
        }
    }
}

/// A response body that keeps its request counted as in flight until it is
/// done.
pub struct Tracked<B> {
    pub body: B,
    pub _in_flight: InFlight,
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head: `timeout_read` runs.
    Head,
    /// A request is in flight: no connection deadline.
    Busy,
    /// Nothing in flight: `timeout_idle` runs.
    Idle,
}

/// An IO stream with the deadlines above.
///
/// The timer is not moved on every request (a timer-wheel update each
/// time): entering a phase notes when it began, and the [`LazyTimer`] is
/// moved only when the phase's deadline is earlier than the one set. When
/// it fires, the current phase's own deadline decides: passed, the
/// connection ends; not yet, the timer is set to it.
pub struct Deadlines<T> {
    io: T,
    activity: Arc<Activity>,
    read_timeout: Duration,
    idle_timeout: Duration,
    timer: LazyTimer,
    /// When the current phase began.
    since: Instant,
    phase: Phase,
    /// First bytes not seen yet (protocol detection).
    first: bool,
    /// HTTP/2: no request heads to time, pings are not use.
    h2: bool,
    /// `Activity::started` as of the last poll.
    seen: u64,
    /// HTTP/1: idle this long, the connection may rest; `None`: never.
    rest_after: Option<Duration>,
    /// This idle spell has ended in a rest (until request bytes arrive).
    rested: bool,
    /// An error met while reading ahead of bytes given back: returned by
    /// the next read.
    error: Option<io::Error>,
    /// Bytes read before a rest, read again first.
    prefix: Bytes,
}

impl<T> Deadlines<T> {
    pub fn new(
        io: T,
        activity: Arc<Activity>,
        read_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        let now = Instant::now();
        Deadlines {
            io,
            activity,
            read_timeout,
            idle_timeout,
            timer: LazyTimer::new(now + read_timeout),
            since: now,
            phase: Phase::Head,
            first: true,
            h2: false,
            seen: 0,
            rest_after: None,
            rested: false,
            error: None,
            prefix: Bytes::new(),
        }
    }

    /// An HTTP/1 connection idle for `rest` (shorter than `timeout_idle`)
    /// asks to rest ([`Activity::take_rest`]).
    pub fn rest_after(&mut self, rest: Duration) {
        self.rest_after = Some(rest);
    }

    /// Whether the server's close was held (the connection is put to
    /// rest); from now on closes are passed on.
    pub fn take_held_close(&mut self) -> bool {
        self.activity.keep_open.swap(false, Ordering::Relaxed)
    }

    /// Bytes the server read and did not use: read again first (after any
    /// given back before).
    pub fn give_back(&mut self, bytes: Bytes) {
        if self.prefix.is_empty() {
            self.prefix = bytes;
        } else {
            let mut all = bytes::BytesMut::from(&self.prefix[..]);
            all.extend_from_slice(&bytes);
            self.prefix = all.freeze();
        }
    }

    /// Whether bytes given back are waiting to be read.
    pub fn has_prefix(&self) -> bool {
        !self.prefix.is_empty()
    }

    /// Request bytes arrived (read, or given back).
    fn arrived(&mut self, read: &[u8]) {
        if self.first {
            self.first = false;
            self.h2 = read.starts_with(b"PRI * HTTP/2.0");
        }
        self.rested = false;
        // The first bytes of a new HTTP/1 request start its head timer.
        let busy = self.sync();
        if !self.h2 && !busy && self.phase != Phase::Head {
            self.enter(Phase::Head);
        }
    }

    /// Whether the idle phase ends in a rest (not yet rested, HTTP/1).
    fn may_rest(&self) -> Option<Duration> {
        match self.rest_after {
            Some(r)
                if !self.rested
                    && !self.h2
                    && r < self.idle_timeout
                    && !self.activity.rest_forbidden() =>
            {
                Some(r)
            }
            _ => None,
        }
    }

    /// Folds in what the service did since the last poll; true while a
    /// request is in flight.
    fn sync(&mut self) -> bool {
        let started = self.activity.started.load(Ordering::Relaxed);
        if started != self.seen {
            // A request head was completed: its timer is over.
            self.seen = started;
            self.phase = Phase::Busy;
        }
        let busy = self.activity.in_flight.load(Ordering::Acquire) > 0;
        if busy {
            self.phase = Phase::Busy;
        }
        busy
    }

    /// Enters `phase` (Head or Idle) now; the timer follows when the
    /// reader next waits.
    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.since = Instant::now();
    }

    /// The current phase's time limit (Head or Idle).
    fn limit(&self) -> Duration {
        match self.phase {
            Phase::Head => self.read_timeout,
            Phase::Idle => self.may_rest().unwrap_or(self.idle_timeout),
            Phase::Busy => self.idle_timeout,
        }
    }
}

/// A timer kept for a connection's life and moved only when a deadline
/// earlier than the one it is set to is asked for: no timer-wheel update
/// per request. When it fires for an earlier deadline than the one asked
/// now, it is set to that one.
pub(crate) struct LazyTimer {
    sleep: Pin<Box<Sleep>>,
    /// When `sleep` fires.
    armed: Instant,
    /// The waker `sleep` was last polled with (and so will wake), while
    /// it is set.
    registered: Option<std::task::Waker>,
}

impl LazyTimer {
    pub(crate) fn new(deadline: Instant) -> LazyTimer {
        LazyTimer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            armed: deadline,
            registered: None,
        }
    }

    /// Ready once `deadline` has passed.
    pub(crate) fn poll_until(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        if deadline < self.armed {
            self.set(deadline);
        }
        // Set no later than needed, not fired, and polled with this waker
        // already: polling it again (the timer entry's lock and waker
        // check, on every wake-up of a busy connection) would change
        // nothing.
        if !self.sleep.is_elapsed()
            && self
                .registered
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        loop {
            // A task out of its cooperative budget gets `Pending` from the
            // sleep without its waker registered (or even its timer entry
            // made): only a poll with budget left can be trusted to wake.
            let budget = tokio::task::coop::has_budget_remaining();
            if self.sleep.as_mut().poll(cx).is_pending() {
                if budget {
                    self.registered = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            if Instant::now() >= deadline {
                self.registered = None;
                return Poll::Ready(());
            }
            // Set for an earlier deadline: on to this one.
            self.set(deadline);
        }
    }

    fn set(&mut self, deadline: Instant) {
        self.armed = deadline;
        self.sleep.as_mut().reset(deadline);
        // Polled again after a reset before it is trusted to wake.
        self.registered = None;
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Deadlines<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.error.take() {
            return Poll::Ready(Err(e));
        }
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            let given = this.prefix.split_to(n);
            buf.put_slice(&given);
            this.arrived(&given);
            // With what has come since, in the same read: a reader handed
            // one byte would grow its buffer for the rest.
            if this.prefix.is_empty() && buf.remaining() > 0 {
                let before = buf.filled().len();
                match Pin::new(&mut this.io).poll_read(cx, buf) {
                    Poll::Ready(Ok(())) if buf.filled().len() > before => {
                        let filled = buf.filled();
                        this.arrived(&filled[before..]);
                    }
                    Poll::Ready(Err(e)) => this.error = Some(e),
                    _ => {}
                }
            }
            return Poll::Ready(Ok(()));
        }
        if this.activity.upgraded.load(Ordering::Relaxed) {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled();
                if filled.len() > before {
                    this.arrived(&filled[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.activity.reader.register(cx.waker());
                if this.sync() {
                    return Poll::Pending;
                }
                if this.phase == Phase::Busy || (this.h2 && this.phase == Phase::Head) {
                    this.enter(Phase::Idle);
                }
                while this
                    .timer
                    .poll_until(cx, this.since + this.limit())
                    .is_ready()
                {
                    if this.phase == Phase::Idle && this.may_rest().is_some() {
                        // Rested long enough: the server is told (it looks
                        // once this poll returns) and the timer goes on to
                        // `timeout_idle`.
                        this.rested = true;
                        this.activity.rest.store(true, Ordering::Relaxed);
                        continue;
                    }
                    let why = match this.phase {
                        Phase::Head => "request headers not received within timeout_read",
                        _ => "connection idle for timeout_idle",
                    };
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Deadlines<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.activity.keep_open.load(Ordering::Relaxed) {
            // Put to rest, not closed: the server keeps the socket.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Uses up the polling task's cooperative budget.
    fn spend_budget(cx: &mut Context<'_>) {
        loop {
            let spent = std::pin::pin!(tokio::task::consume_budget());
            if spent.poll(cx).is_pending() {
                break;
            }
        }
    }

    /// A timer first polled by a task that has used up its cooperative
    /// budget (a busy exchange before it in the same poll) is polled again
    /// once it may register: it fires, instead of being taken for
    /// registered and never polled again.
    #[tokio::test(start_paused = true)]
    async fn a_timer_first_polled_without_budget_still_fires() {
        let start = tokio::time::Instant::now();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut timer = LazyTimer::new(deadline);
        let mut first = true;
        let fired = std::future::poll_fn(|cx| {
            if std::mem::take(&mut first) {
                spend_budget(cx);
                assert!(!tokio::task::coop::has_budget_remaining());
            }
            timer.poll_until(cx, deadline)
        });
        let waited = tokio::time::timeout(Duration::from_secs(60), fired).await;
        assert!(waited.is_ok(), "the timer never fired");
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        // Fired for an earlier deadline with the budget gone: set again
        // for the later one, and that fires too.
        let later = Instant::now() + Duration::from_secs(3);
        let mut first = true;
        let fired = std::future::poll_fn(|cx| {
            if std::mem::take(&mut first) {
                spend_budget(cx);
            }
            timer.poll_until(cx, later)
        });
        let waited = tokio::time::timeout(Duration::from_secs(60), fired).await;
        assert!(waited.is_ok(), "the re-armed timer never fired");
        assert_eq!(start.elapsed(), Duration::from_secs(8));
    }

    const READ: Duration = Duration::from_secs(30);
    const IDLE: Duration = Duration::from_secs(300);

    /// Reads until the wrapper fails; returns how long that took.
    async fn time_to_close(io: &mut Deadlines<tokio::io::DuplexStream>) -> Duration {
        let start = Instant::now();
        let mut buf = [0u8; 64];
        loop {
            match io.read(&mut buf).await {
                Ok(0) => panic!("peer closed; the deadline never fired"),
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
                    return start.elapsed();
                }
            }
        }
    }

    fn pair() -> (
        Deadlines<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
        Arc<Activity>,
    ) {
        let (server, client) = tokio::io::duplex(1024);
        let activity = Arc::new(Activity::default());
        (
            Deadlines::new(server, activity.clone(), READ, IDLE),
            client,
            activity,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_new_connection_gets_timeout_read() {
        let (mut io, _client, _) = pair();
        assert_eq!(time_to_close(&mut io).await, READ);
    }

    /// A first request completes and its response is sent; the connection
    /// rests for `rest`, then a head starts and never ends: how long after
    /// the response the connection is closed.
    async fn slow_head_after(rest: Duration) -> Duration {
        let (mut io, mut client, activity) = pair();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.unwrap() > 0);
        drop(activity.start());
        let reader = tokio::spawn(async move { time_to_close(&mut io).await });
        tokio::time::sleep(rest).await;
        client.write_all(b"GET / HT").await.unwrap();
        reader.await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfinished_head_gets_timeout_read_after_its_first_byte() {
        let rest = Duration::from_secs(100);
        assert_eq!(slow_head_after(rest).await, rest + READ);
    }

    /// The timer is not moved on every request: a head begun just before a
    /// timer set for an earlier phase fires (the one set when the
    /// connection opened, at READ) still gets all of its `timeout_read`,
    /// no more.
    #[tokio::test(start_paused = true)]
    async fn a_head_begun_just_before_an_earlier_timer_gets_its_whole_timeout_read() {
        let rest = READ - Duration::from_secs(1);
        assert_eq!(slow_head_after(rest).await, rest + READ);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_have_no_connection_deadline() {
        let (mut io, mut client, activity) = pair();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.unwrap() > 0);
        let in_flight = activity.start();
        let waited = tokio::time::timeout(Duration::from_secs(3600), io.read(&mut buf)).await;
        assert!(
            waited.is_err(),
            "a long request is not cut by the connection deadlines"
        );
        drop(in_flight);
        // hyper polls the socket again once the response is sent: idle from then.
        assert_eq!(time_to_close(&mut io).await, IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_waiting_when_the_last_request_ends_is_woken() {
        let (mut io, mut client, activity) = pair();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.unwrap() > 0);
        let in_flight = activity.start();
        // The reader is parked while the request is in flight...
        let reader = tokio::spawn(async move { time_to_close(&mut io).await });
        tokio::time::sleep(Duration::from_secs(10)).await;
        // ...and the request ends without any byte arriving.
        drop(in_flight);
        let elapsed = reader.await.unwrap();
        assert_eq!(elapsed, Duration::from_secs(10) + IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn fast_responses_do_not_leave_a_stale_head_timer() {
        let (mut io, mut client, activity) = pair();
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            assert!(io.read(&mut buf).await.unwrap() > 0);
            // Answered before the reader polled again.
            drop(activity.start());
            let waited = tokio::time::timeout(READ * 2, io.read(&mut buf)).await;
            assert!(
                waited.is_err(),
                "the keep-alive connection outlives timeout_read"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn http2_pings_are_not_use() {
        let (mut io, mut client, activity) = pair();
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.unwrap() > 0);
        drop(activity.start());
        let reader = tokio::spawn(async move { time_to_close(&mut io).await });
        // Ping traffic every minute keeps arriving; the connection still idles out.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(60)).await;
            if client
                .write_all(b"\0\0\x08\x06\0\0\0\0\0pingping")
                .await
                .is_err()
            {
                break;
            }
        }
        let elapsed = reader.await.unwrap();
        assert_eq!(elapsed, IDLE);
    }

    const REST: Duration = Duration::from_millis(100);

    /// A request came and went; the connection is idle from now.
    async fn after_one_request(
        rest: bool,
    ) -> (
        Deadlines<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
        Arc<Activity>,
    ) {
        let (mut io, mut client, activity) = pair();
        if rest {
            io.rest_after(REST);
        }
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.unwrap() > 0);
        drop(activity.start());
        (io, client, activity)
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_http1_connection_asks_to_rest_once_and_keeps_its_socket() {
        let (mut io, mut client, activity) = after_one_request(true).await;
        let mut buf = [0u8; 64];
        assert!(!activity.take_rest(), "not before it has been idle");
        let waited = tokio::time::timeout(REST * 3, io.read(&mut buf)).await;
        assert!(waited.is_err(), "resting is not closing");
        assert!(activity.take_rest());
        assert!(!activity.take_rest(), "asked once");
        // The server's close, held, is not passed on: the socket stays open...
        activity.hold_close(true);
        io.shutdown().await.unwrap();
        assert!(io.take_held_close());
        client.write_all(b"G").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 1);
        // ...and from then on closes are real.
        assert!(!io.take_held_close());
        io.shutdown().await.unwrap();
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rested_connection_still_closes_at_timeout_idle() {
        let (mut io, _client, activity) = after_one_request(true).await;
        let mut buf = [0u8; 64];
        let waited = tokio::time::timeout(REST * 3, io.read(&mut buf)).await;
        assert!(waited.is_err());
        assert!(activity.take_rest());
        activity.hold_close(true);
        assert!(io.take_held_close());
        assert_eq!(time_to_close(&mut io).await, IDLE - REST * 3);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_given_back_are_read_first_and_start_the_head_timer() {
        let (mut io, mut client, _activity) = after_one_request(true).await;
        io.give_back(Bytes::from_static(b"GET /next HT"));
        client.write_all(b"TP/1.1\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = io.read(&mut buf).await.unwrap();
        // What arrived since comes in the same read.
        assert_eq!(&buf[..n], b"GET /next HTTP/1.1\r\n");
        assert!(!io.has_prefix());
        // The head never ends: timeout_read, from the bytes given back.
        assert_eq!(time_to_close(&mut io).await, READ);
    }

    #[tokio::test(start_paused = true)]
    async fn no_rest_without_rest_after_or_with_a_request_in_flight() {
        let (mut io, _client, activity) = after_one_request(false).await;
        let mut buf = [0u8; 64];
        let waited = tokio::time::timeout(REST * 3, io.read(&mut buf)).await;
        assert!(waited.is_err());
        assert!(!activity.take_rest(), "not asked to rest");

        let (mut io, _client, activity) = after_one_request(true).await;
        let in_flight = activity.start();
        let waited = tokio::time::timeout(REST * 3, io.read(&mut buf)).await;
        assert!(waited.is_err());
        assert!(!activity.take_rest(), "busy, not idle");
        drop(in_flight);

        let (mut io, _client, activity) = after_one_request(true).await;
        activity.forbid_rest();
        let waited = tokio::time::timeout(REST * 3, io.read(&mut buf)).await;
        assert!(waited.is_err());
        assert!(!activity.take_rest(), "forbidden");
    }

    #[tokio::test(start_paused = true)]
    async fn upgraded_connections_are_left_alone() {
        let (mut io, mut client, activity) = pair();
        activity.upgraded();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            io.read_exact(&mut buf).await.map(|_| buf)
        });
        tokio::time::sleep(Duration::from_secs(3600)).await;
        client.write_all(b"ws-frame").await.unwrap();
        assert_eq!(&reader.await.unwrap().unwrap(), b"ws-frame");
    }
}

//! Body types. Requests: [`RequestBody`], the client's stream or bytes
//! built in memory (so the dispatcher and every handler can be driven by a
//! test without a socket). Everything gatehouse sends, to the client or to
//! the upstream: [`Body`], an enum, so bodies that pass through unchanged
//! are neither boxed nor called through a vtable.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body gatehouse sends.
pub enum Body {
    /// Gatehouse's own answers (`None`: empty).
    Bytes(Option<Bytes>),
    /// The upstream's answer on its way to the client.
    Upstream(hyper::body::Incoming),
    /// The client's request body on its way to the upstream.
    Client(RequestBody),
    /// The same two with the route's `idle_timeout`.
    UpstreamIdle(IdleTimeout<hyper::body::Incoming>),
    ClientIdle(IdleTimeout<RequestBody>),
    /// Anything else (the access log's byte counter).
    Boxed(BoxBody<Bytes, BoxError>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Body::Bytes(_) => "Body::Bytes",
            Body::Upstream(_) | Body::UpstreamIdle(_) => "Body::Upstream",
            Body::Client(_) | Body::ClientIdle(_) => "Body::Client",
            Body::Boxed(_) => "Body::Boxed",
        })
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Bytes(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Body::Upstream(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BoxError::from))),
            Body::Client(b) => Pin::new(b).poll_frame(cx),
            Body::UpstreamIdle(b) => Pin::new(b).poll_frame(cx),
            Body::ClientIdle(b) => Pin::new(b).poll_frame(cx),
            Body::Boxed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Bytes(b) => b.as_ref().is_none_or(Bytes::is_empty),
            Body::Upstream(b) => b.is_end_stream(),
            Body::Client(b) => b.is_end_stream(),
            Body::UpstreamIdle(b) => b.is_end_stream(),
            Body::ClientIdle(b) => b.is_end_stream(),
            Body::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Body::Bytes(b) => {
                http_body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            Body::Upstream(b) => b.size_hint(),
            Body::Client(b) => b.size_hint(),
            Body::UpstreamIdle(b) => b.size_hint(),
            Body::ClientIdle(b) => b.size_hint(),
            Body::Boxed(b) => b.size_hint(),
        }
    }
}

pub fn full(bytes: Bytes) -> Body {
    Body::Bytes(Some(bytes))
}

pub fn empty() -> Body {
    Body::Bytes(None)
}

/// Any other body, boxed.
pub fn boxed<B>(b: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    Body::Boxed(b.map_err(Into::into).boxed())
}

/// A request body as gatehouse's handlers take it: the client's stream
/// (wrapped at the listener, no copy and no allocation), or bytes built in
/// memory (in-process tests).
#[derive(Debug)]
pub enum RequestBody {
    Incoming(hyper::body::Incoming),
    Bytes(Option<Bytes>),
}

impl RequestBody {
    /// No body.
    pub fn empty() -> RequestBody {
        RequestBody::Bytes(None)
    }
}

impl From<hyper::body::Incoming> for RequestBody {
    fn from(b: hyper::body::Incoming) -> RequestBody {
        RequestBody::Incoming(b)
    }
}

impl From<Bytes> for RequestBody {
    fn from(b: Bytes) -> RequestBody {
        RequestBody::Bytes((!b.is_empty()).then_some(b))
    }
}

impl From<&'static str> for RequestBody {
    fn from(s: &'static str) -> RequestBody {
        RequestBody::from(Bytes::from_static(s.as_bytes()))
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Incoming(b) => std::pin::Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BoxError::from))),
            RequestBody::Bytes(b) => std::task::Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(http_body::Frame::data(b))),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Incoming(b) => b.is_end_stream(),
            RequestBody::Bytes(b) => b.as_ref().is_none_or(Bytes::is_empty),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            RequestBody::Incoming(b) => b.size_hint(),
            RequestBody::Bytes(b) => {
                http_body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// A request body read whole, if it is at most `max` bytes and arrives
/// within 30 s (gatehouse's own forms and the console's API).
pub async fn collect_limited<B>(incoming: B, max: usize) -> Option<Bytes>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let limited = http_body_util::Limited::new(incoming, max);
    match tokio::time::timeout(std::time::Duration::from_secs(30), limited.collect()).await {
        Ok(Ok(collected)) => Some(collected.to_bytes()),
        _ => None,
    }
}

/// `body`, cut with an error at `deadline` (`timeout_write`): a response
/// still streaming then ends as a failed stream (HTTP/1.1: the connection
/// closes; HTTP/2: the stream is reset).
pub fn until(body: Body, deadline: tokio::time::Instant) -> Body {
    if http_body::Body::is_end_stream(&body) {
        return body;
    }
    boxed(Until {
        inner: body,
        sleep: Box::pin(tokio::time::sleep_until(deadline)),
    })
}

struct Until {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

/// The error a body ends with when `timeout_write` passes.
#[derive(Debug, thiserror::Error)]
#[error("the response took longer than timeout_write")]
pub struct StreamTimedOut;

impl http_body::Body for Until {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        use std::future::Future;
        let this = &mut *self;
        // The limit holds even for a stream that keeps flowing.
        if this.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(StreamTimedOut))));
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A body that fails when no frame arrives for `idle` (a route's
/// `idle_timeout`): a stalled stream is cut instead of holding resources.
pub struct IdleTimeout<B> {
    inner: B,
    idle: std::time::Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, idle: std::time::Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

/// The error a body ends with when its route's `idle_timeout` passes.
#[derive(Debug, thiserror::Error)]
#[error("no data for {0:?} (route idle_timeout)")]
pub struct IdleTimedOut(pub std::time::Duration);

impl<B> http_body::Body for IdleTimeout<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::future::Future;
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.sleep.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(IdleTimedOut(this.idle))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The upstream's answer, with the route's idle timeout if it has one.
pub fn from_upstream(incoming: hyper::body::Incoming, idle: Option<std::time::Duration>) -> Body {
    match idle {
        Some(d) => Body::UpstreamIdle(IdleTimeout::new(incoming, d)),
        None => Body::Upstream(incoming),
    }
}

/// What became of a client's request body on its way upstream (shared with
/// the code that judges the upstream: a body the client broke off, or had
/// not finished sending, says nothing about the upstream).
pub mod client_state {
    pub const SENDING: u8 = 0;
    pub const SENT: u8 = 1;
    pub const BROKEN: u8 = 2;
}

/// `body`, with its fate written to `state` ([`client_state`]).
pub fn watched(body: Body, state: std::sync::Arc<std::sync::atomic::AtomicU8>) -> Body {
    use std::sync::atomic::Ordering;
    if http_body::Body::is_end_stream(&body) {
        state.store(client_state::SENT, Ordering::Relaxed);
        return body;
    }
    boxed(Watched { inner: body, state })
}

struct Watched {
    inner: Body,
    state: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        use std::sync::atomic::Ordering;
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.state.store(client_state::SENT, Ordering::Relaxed),
            Poll::Ready(Some(Err(_))) => this.state.store(client_state::BROKEN, Ordering::Relaxed),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => {
                this.state.store(client_state::SENT, Ordering::Relaxed)
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The client's request body, with the route's idle timeout if it has one.
pub fn from_client(body: RequestBody, idle: Option<std::time::Duration>) -> Body {
    match idle {
        Some(d) => Body::ClientIdle(IdleTimeout::new(body, d)),
        None => Body::Client(body),
    }
}

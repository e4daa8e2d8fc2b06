//! Body types. Requests: [`RequestBody`], the client's stream or bytes
//! built in memory (so the dispatcher and every handler can be driven by a
//! test without a socket). Responses: [`Body`]; upstream bodies stream
//! through untouched, and gatehouse's own pages are small in-memory bodies.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
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

pub fn stream<B>(incoming: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    incoming.map_err(Into::into).boxed()
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

/// An upstream or downstream body, with the route's idle timeout if it has one.
pub fn stream_with_idle<B>(incoming: B, idle: Option<std::time::Duration>) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    match idle {
        Some(d) => IdleTimeout::new(incoming, d).boxed(),
        None => stream(incoming),
    }
}

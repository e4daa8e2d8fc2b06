//! The response body type: upstream bodies stream through untouched, and
//! gatehouse's own pages are small in-memory bodies.

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

/// A request body read whole, if it is at most `max` bytes and arrives
/// within 30 s (gatehouse's own forms and the console's API).
pub async fn collect_limited(incoming: hyper::body::Incoming, max: usize) -> Option<Bytes> {
    let limited = http_body_util::Limited::new(incoming, max);
    match tokio::time::timeout(std::time::Duration::from_secs(30), limited.collect()).await {
        Ok(Ok(collected)) => Some(collected.to_bytes()),
        _ => None,
    }
}

pub fn stream(incoming: hyper::body::Incoming) -> Body {
    incoming.map_err(BoxError::from).boxed()
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
pub fn stream_with_idle(
    incoming: hyper::body::Incoming,
    idle: Option<std::time::Duration>,
) -> Body {
    match idle {
        Some(d) => IdleTimeout::new(incoming, d).boxed(),
        None => stream(incoming),
    }
}

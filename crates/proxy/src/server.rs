//! Listeners: accept, TLS handshake (bounded by `timeout_read`), HTTP/1.1 or
//! HTTP/2 by ALPN, slow-client protection, the HTTP→HTTPS redirect listener,
//! and graceful drain on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::body::{self, Body, RequestBody};
use crate::deadline::{Activity, Deadlines, Tracked};
use crate::forward::ConnInfo;
use crate::{Proxy, answers};

/// Largest request head accepted; bigger gets 431 (Envoy's default is 60 KiB).
const MAX_HEADER_BYTES: usize = 64 * 1024;

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

/// Serves until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish for up to `drain`.
pub async fn serve(
    proxy: Arc<Proxy>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let graceful = Arc::new(GracefulShutdown::new());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Replaced by `deadline::Deadlines`, which also honours timeout_idle.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .keep_alive_interval(Some(Duration::from_secs(60)))
        .keep_alive_timeout(Duration::from_secs(20));
    if proxy.settings.http1_only {
        builder = builder.http1_only();
    }
    let builder = Arc::new(builder);
    let acceptor = (!proxy.settings.insecure).then(|| {
        TlsAcceptor::from(crate::tls::server_config(
            proxy.certs.clone(),
            !proxy.settings.http1_only,
        ))
    });

    let redirect_task = listeners.redirect.map(|l| {
        let port = proxy.settings.https_port;
        tokio::spawn(serve_redirects(l, port))
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
                let conn = ConnInfo::new(peer, local_port, acceptor.is_some());
                let proxy = proxy.clone();
                let builder = builder.clone();
                let acceptor = acceptor.clone();
                let graceful = graceful.clone();
                tokio::spawn(async move {
                    serve_connection(proxy, builder, acceptor, graceful, stream, conn).await;
                });
            }
        }
    }
    drop(listeners.main);
    if let Some(t) = redirect_task {
        t.abort();
    }
    tracing::info!(in_flight = graceful.count(), "draining connections");
    match Arc::try_unwrap(graceful) {
        Ok(g) => {
            if tokio::time::timeout(drain, g.shutdown()).await.is_err() {
                tracing::warn!("drain timeout reached; closing remaining connections");
            }
        }
        Err(g) => {
            // Connection tasks still hold a clone only while starting up.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok(g) = Arc::try_unwrap(g) {
                let _ = tokio::time::timeout(drain, g.shutdown()).await;
            }
        }
    }
}

async fn serve_connection(
    proxy: Arc<Proxy>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    acceptor: Option<TlsAcceptor>,
    graceful: Arc<GracefulShutdown>,
    stream: TcpStream,
    conn: ConnInfo,
) {
    let (read_timeout, idle_timeout) = (proxy.settings.timeout_read, proxy.settings.timeout_idle);
    let metrics = proxy.metrics.clone();
    let _open = metrics.connection();
    let peer = conn.peer;
    // This connection's lane to its upstreams, driven by this task.
    let lane = Arc::new(crate::lane::Lane::default());
    let mut conn = conn;
    conn.lane = Some(lane.clone());
    let conn = Arc::new(conn);
    let activity = Arc::new(Activity::default());
    let tracker = activity.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let proxy = proxy.clone();
        let conn = conn.clone();
        let in_flight = tracker.start();
        let tracker = tracker.clone();
        async move {
            let rt = proxy.runtime.load_full();
            let resp =
                crate::dispatch::handle(&proxy, &rt, req.map(RequestBody::Incoming), &conn).await;
            if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                tracker.upgraded();
            }
            Ok::<_, std::convert::Infallible>(resp.map(|body| Tracked {
                body,
                _in_flight: in_flight,
            }))
        }
    });
    match acceptor {
        Some(acceptor) => match tokio::time::timeout(read_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let io = Deadlines::new(tls, activity, read_timeout, idle_timeout);
                serve_io(&builder, graceful, TokioIo::new(io), service, peer, lane).await
            }
            Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
        },
        None => {
            let io = Deadlines::new(stream, activity, read_timeout, idle_timeout);
            serve_io(&builder, graceful, TokioIo::new(io), service, peer, lane).await
        }
    }
}

/// Serves HTTP on an established (TLS or plain) connection, watched by the
/// graceful-shutdown tracker, with its lane's upstream connection driven in
/// the same task.
async fn serve_io<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    graceful: Arc<GracefulShutdown>,
    io: I,
    service: S,
    peer: std::net::SocketAddr,
    lane: Arc<crate::lane::Lane>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Tracked<Body>>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let watched = graceful.watch(
        builder
            .serve_connection_with_upgrades(io, service)
            .into_owned(),
    );
    drop(graceful);
    let joined = crate::lane::Joined::new(watched, lane);
    if let Err(e) = joined.await {
        tracing::debug!(peer = %peer, error = %e, "connection closed with an error");
    }
}

/// `http_redirect_addr`: every plain-HTTP request is sent to HTTPS.
async fn serve_redirects(listener: TcpListener, https_port: u16) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| async move {
                Ok::<_, std::convert::Infallible>(redirect_to_https(&req, https_port))
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

//! The floor of `bench/proxy.sh`: the smallest hyper proxy that sends an
//! upstream what a Pomerium upstream expects, measured beside nginx and
//! gatehouse to tell what any proxy built on hyper can reach on a machine.
//!
//! Not gatehouse and not a design for it: no routes, policy, timeouts,
//! pool or error pages. What it keeps is the least a drop-in for Pomerium
//! must do per request: `X-Forwarded-For` (the peer appended),
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, a random `X-Request-Id` and the
//! upstream's `Host`, with `Connection` dropped both ways. The rest is as lean as
//! hyper allows (the `shared/experiments/data-plane` "hyper-lean" design):
//!
//! - a current-thread runtime, one task per client connection;
//! - an HTTP/1-only server, and one upstream HTTP/1 connection per client
//!   connection, made when first needed (again if it closes), whose IO is
//!   polled inside the client connection's task: no pool, no lock, no
//!   cross-task wake-up.
//!
//! Usage: `gatehouse-floor LISTEN UPSTREAM` (both `ip:port`, loopback);
//! `TLS_CERT` and `TLS_KEY` (PEM files) serve HTTPS.
//!
//! It depends on nothing of gatehouse, on purpose (its request id is made
//! as `gatehouse_proxy::dispatch` makes one, written out here).

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{self, HeaderName, HeaderValue};
use hyper::Request;
use hyper::body::Incoming;
use hyper::client::conn::http1 as client_h1;
use hyper::server::conn::http1 as server_h1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ClientConn = client_h1::Connection<TokioIo<TcpStream>, Incoming>;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The upstream side of one client connection.
struct Upstream {
    addr: SocketAddr,
    sender: Option<client_h1::SendRequest<Incoming>>,
    conn: Option<Pin<Box<ClientConn>>>,
    /// A request made a new connection: poll it before sleeping.
    installed: bool,
}

impl Upstream {
    fn poll(&mut self, cx: &mut Context<'_>) {
        if let Some(c) = self.conn.as_mut()
            && c.as_mut().poll(cx).is_ready()
        {
            self.conn = None;
            self.sender = None;
        }
    }
}

/// A client connection and its upstream connection, driven by one task.
struct Joined<S> {
    server: Pin<Box<S>>,
    up: Rc<RefCell<Upstream>>,
}

impl<S: Future> Future for Joined<S> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            this.up.borrow_mut().poll(cx);
            if this.server.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            // The server may have queued a request: write it now.
            this.up.borrow_mut().poll(cx);
            if !std::mem::take(&mut this.up.borrow_mut().installed) {
                return Poll::Pending;
            }
        }
    }
}

async fn connect(up: &RefCell<Upstream>) -> Result<(), BoxError> {
    let addr = up.borrow().addr;
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = client_h1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await?;
    let mut u = up.borrow_mut();
    u.sender = Some(sender);
    u.conn = Some(Box::pin(conn));
    u.installed = true;
    Ok(())
}

/// A random request id: 32 hex digits.
fn request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n: u128 = rand::random();
    let mut buf = [0u8; 32];
    for (pair, b) in buf.chunks_exact_mut(2).zip(n.to_be_bytes()) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
    HeaderValue::from_bytes(&buf).expect("hex digits")
}

/// The headers a Pomerium upstream expects.
fn upstream_headers(req: &mut Request<Incoming>, peer: IpAddr, tls: bool, host: &HeaderValue) {
    let headers = req.headers_mut();
    headers.remove(header::CONNECTION);
    let original_host = headers.insert(header::HOST, host.clone());
    let forwarded_for = match headers.get(&X_FORWARDED_FOR) {
        Some(v) => {
            let mut joined = v.as_bytes().to_vec();
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(peer.to_string().as_bytes());
            HeaderValue::from_bytes(&joined).ok()
        }
        None => HeaderValue::from_str(&peer.to_string()).ok(),
    };
    if let Some(v) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    if let Some(h) = original_host {
        headers.insert(X_FORWARDED_HOST.clone(), h);
    }
    headers.insert(X_REQUEST_ID.clone(), request_id());
}

async fn serve_conn<IO>(io: IO, peer: IpAddr, tls: bool, upstream: SocketAddr)
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let host = HeaderValue::from_str(&upstream.to_string()).expect("an address");
    let up = Rc::new(RefCell::new(Upstream {
        addr: upstream,
        sender: None,
        conn: None,
        installed: false,
    }));
    let svc_up = up.clone();
    let svc = service_fn(move |mut req: Request<Incoming>| {
        let up = svc_up.clone();
        upstream_headers(&mut req, peer, tls, &host);
        async move {
            let dead = up.borrow().sender.as_ref().is_none_or(|s| s.is_closed());
            if dead {
                connect(&up).await?;
            }
            std::future::poll_fn(|cx| match up.borrow_mut().sender.as_mut() {
                Some(s) => s.poll_ready(cx),
                None => Poll::Ready(Ok(())),
            })
            .await?;
            let sent = match up.borrow_mut().sender.as_mut() {
                Some(s) => s.send_request(req),
                None => return Err::<_, BoxError>("upstream closed".into()),
            };
            let mut resp = sent.await?;
            // Hop-by-hop, as every proxy drops it (`Keep-Alive` with it
            // when sent: nginx sends none).
            if let Some(listed) = resp.headers_mut().remove(header::CONNECTION)
                && listed.as_bytes().eq_ignore_ascii_case(b"keep-alive")
                && resp.headers().contains_key("keep-alive")
            {
                resp.headers_mut().remove("keep-alive");
            }
            Ok(resp)
        }
    });
    let server = server_h1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc);
    Joined {
        server: Box::pin(server),
        up,
    }
    .await;
}

fn tls_acceptor() -> Option<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let cert = std::env::var("TLS_CERT").ok()?;
    let key = std::env::var("TLS_KEY").ok()?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .expect("TLS_CERT")
        .collect::<Result<_, _>>()
        .expect("TLS_CERT");
    let key = PrivateKeyDer::from_pem_file(&key).expect("TLS_KEY");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("TLS certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: gatehouse-floor LISTEN UPSTREAM");
    let upstream: SocketAddr = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: gatehouse-floor LISTEN UPSTREAM");
    assert!(
        listen.ip().is_loopback() && upstream.ip().is_loopback(),
        "loopback addresses only"
    );
    let acceptor = tls_acceptor();
    let tls = acceptor.is_some();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(listen).await.expect("listen");
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            match acceptor.clone() {
                None => {
                    tokio::task::spawn_local(serve_conn(stream, peer.ip(), tls, upstream));
                }
                Some(acc) => {
                    tokio::task::spawn_local(async move {
                        if let Ok(stream) = acc.accept(stream).await {
                            serve_conn(stream, peer.ip(), tls, upstream).await;
                        }
                    });
                }
            }
        }
    });
}

//! OTLP trace export: spans in a bounded queue, sent in batches as
//! `ExportTraceServiceRequest` protobuf messages over `http/protobuf` or
//! `grpc`. A span that finds the queue full is dropped and counted; one
//! export is in flight at a time, within the configured timeout, and a
//! failed batch is dropped (counted, and warned about at most once a
//! minute), so a slow or absent collector never holds up a request.
//!
//! The protobuf is written by hand (a few messages of
//! `opentelemetry/proto/trace/v1/trace.proto`), field numbers as there.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gatehouse_config::{OtlpProtocol, Tracing};
use http::{HeaderValue, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;

/// One finished span.
#[derive(Debug, Clone)]
pub struct SpanData {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    /// The parent came from the client's `traceparent`.
    pub remote_parent: bool,
    pub name: String,
    pub kind: SpanKind,
    pub start: u64,
    pub end: u64,
    pub attributes: Vec<(&'static str, Value)>,
    /// Status ERROR (server spans: 5xx; client spans: failed or 5xx).
    pub error: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// How many spans went where (for `/metrics`).
#[derive(Debug, Default)]
pub struct SpanCounts {
    pub exported: AtomicU64,
    /// Found the queue full.
    pub dropped: AtomicU64,
    /// In a batch the collector did not take.
    pub failed: AtomicU64,
}

/// The most bytes of spans waiting for export (by [`SpanData::weight`]),
/// whatever their number: clients choose paths and user agents.
const QUEUE_BYTES: usize = 16 << 20;

/// One export's body is cut at about this many bytes (collectors refuse
/// gRPC messages over 4 MiB by default).
const EXPORT_BYTES: usize = 2 << 20;

impl SpanData {
    /// About what the span holds in memory and in its export.
    fn weight(&self) -> usize {
        let attributes: usize = self
            .attributes
            .iter()
            .map(|(k, v)| {
                k.len()
                    + 16
                    + match v {
                        Value::Str(s) => s.len(),
                        Value::Int(_) | Value::Bool(_) => 8,
                    }
            })
            .sum();
        96 + self.name.len() + attributes
    }
}

/// The sending side of one configuration's exporter: cheap to clone; the
/// exporter sends what is left and stops when the last clone is gone.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<SpanData>,
    counts: Arc<SpanCounts>,
    /// Bytes of spans queued, at most [`QUEUE_BYTES`].
    queued: Arc<AtomicUsize>,
}

impl Sink {
    /// Queues one request's spans, all of them or (when the queue is short
    /// of room, by count or by bytes) none: dropped and counted.
    pub fn send_all(&self, spans: Vec<SpanData>) {
        let n = spans.len() as u64;
        let bytes: usize = spans.iter().map(SpanData::weight).sum();
        let before = self.queued.fetch_add(bytes, Relaxed);
        if self.tx.capacity() < spans.len() || before + bytes > QUEUE_BYTES {
            self.queued.fetch_sub(bytes, Relaxed);
            self.counts.dropped.fetch_add(n, Relaxed);
            return;
        }
        for span in spans {
            let w = span.weight();
            if self.tx.try_send(span).is_err() {
                self.queued.fetch_sub(w, Relaxed);
                self.counts.dropped.fetch_add(1, Relaxed);
            }
        }
    }
}

/// A sink whose spans the test reads itself (no exporter).
#[cfg(test)]
pub(crate) fn test_sink(capacity: usize) -> (Sink, mpsc::Receiver<SpanData>) {
    let (tx, rx) = mpsc::channel(capacity);
    let sink = Sink {
        tx,
        counts: Arc::default(),
        queued: Arc::default(),
    };
    (sink, rx)
}

/// Starts the exporter for `cfg` on the current Tokio runtime (none: no
/// exporter, as in `gatehouse check`).
pub fn start(cfg: &Tracing, counts: Arc<SpanCounts>) -> Option<Sink> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let (tx, rx) = mpsc::channel(Tracing::QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    let exporter = Exporter::new(cfg.clone(), counts.clone(), queued.clone());
    handle.spawn(exporter.run(rx));
    Some(Sink { tx, counts, queued })
}

type ExportClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

struct Exporter {
    cfg: Tracing,
    counts: Arc<SpanCounts>,
    queued: Arc<AtomicUsize>,
    client: Option<ExportClient>,
    /// The endpoint as logged: scheme, host, port and path (never a query).
    shown: String,
    last_warning: Option<Instant>,
}

impl Exporter {
    fn new(cfg: Tracing, counts: Arc<SpanCounts>, queued: Arc<AtomicUsize>) -> Exporter {
        let client = match crate::upstream::system_tls_config() {
            Ok(tls) => {
                let b = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http();
                let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
                http.enforce_http(false);
                http.set_nodelay(true);
                http.set_connect_timeout(Some(cfg.timeout));
                let mut builder = Client::builder(TokioExecutor::new());
                builder.pool_idle_timeout(Duration::from_secs(60));
                let connector = match cfg.protocol {
                    OtlpProtocol::Grpc => {
                        builder.http2_only(true);
                        b.enable_http2().wrap_connector(http)
                    }
                    OtlpProtocol::HttpProtobuf => b.enable_all_versions().wrap_connector(http),
                };
                Some(builder.build(connector))
            }
            Err(e) => {
                tracing::warn!(error = %e, "OTLP exporter: no TLS settings; spans are not exported");
                None
            }
        };
        let u = &cfg.endpoint;
        let shown = format!(
            "{}://{}{}",
            u.scheme_str().unwrap_or("http"),
            u.authority().map_or("", |a| a.as_str()),
            u.path()
        );
        Exporter {
            cfg,
            counts,
            queued,
            client,
            shown,
            last_warning: None,
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<SpanData>) {
        let mut batch = Vec::with_capacity(self.cfg.max_batch);
        loop {
            // A batch starts with its first span and waits at most the
            // schedule delay for more (or until it is full).
            let Some(first) = rx.recv().await else { break };
            let mut bytes = first.weight();
            self.queued.fetch_sub(bytes, Relaxed);
            batch.push(first);
            let deadline = tokio::time::Instant::now() + self.cfg.schedule_delay;
            let mut closed = false;
            while batch.len() < self.cfg.max_batch && bytes < EXPORT_BYTES {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(span)) => {
                        let w = span.weight();
                        self.queued.fetch_sub(w, Relaxed);
                        bytes += w;
                        batch.push(span);
                    }
                    Ok(None) => {
                        closed = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.export(&batch).await;
            batch.clear();
            if closed {
                break;
            }
        }
    }

    async fn export(&mut self, spans: &[SpanData]) {
        let n = spans.len() as u64;
        let message = encode_request(&self.cfg.resource, spans, self.cfg.attribute_value_limit);
        let result = match &self.client {
            Some(client) => tokio::time::timeout(self.cfg.timeout, self.send(client, message))
                .await
                .unwrap_or_else(|_| Err("timed out".to_string())),
            None => Err("no client".to_string()),
        };
        match result {
            Ok(()) => {
                self.counts.exported.fetch_add(n, Relaxed);
            }
            Err(why) => {
                self.counts.failed.fetch_add(n, Relaxed);
                let quiet = self
                    .last_warning
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(60));
                if !quiet {
                    self.last_warning = Some(Instant::now());
                    // The endpoint's path and host only: never its headers.
                    tracing::warn!(endpoint = %self.shown, spans = n, error = %why, "OTLP export failed; the batch is dropped");
                }
            }
        }
    }

    async fn send(&self, client: &ExportClient, message: Vec<u8>) -> Result<(), String> {
        let grpc = self.cfg.protocol == OtlpProtocol::Grpc;
        let body = if grpc {
            // gRPC framing: not compressed, then the length.
            let mut framed = Vec::with_capacity(message.len() + 5);
            framed.push(0);
            framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
            framed.extend_from_slice(&message);
            framed
        } else {
            message
        };
        let mut req = Request::post(self.cfg.endpoint.clone())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let h = req.headers_mut();
        for (name, value) in &self.cfg.headers {
            h.append(name.clone(), value.clone());
        }
        if grpc {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            h.insert(header::TE, HeaderValue::from_static("trailers"));
        } else {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            );
        }
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("gatehouse/", env!("CARGO_PKG_VERSION"))),
        );
        let resp = client.request(req).await.map_err(|e| {
            let mut s = e.to_string();
            if let Some(src) = std::error::Error::source(&e) {
                s = format!("{s}: {src}");
            }
            s
        })?;
        let status = resp.status();
        let head_grpc_status = grpc_status(resp.headers());
        // The answer is read (so the connection can be reused), bounded.
        let collected = Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        if !status.is_success() {
            return Err(format!("the collector answered {status}"));
        }
        if grpc {
            let code = head_grpc_status
                .or_else(|| collected.trailers().and_then(grpc_status))
                .ok_or("the collector gave no grpc-status")?;
            if code != 0 {
                return Err(format!("the collector answered grpc-status {code}"));
            }
        }
        Ok(())
    }
}

fn grpc_status(h: &http::HeaderMap) -> Option<u32> {
    h.get("grpc-status")?.to_str().ok()?.trim().parse().ok()
}

// ---- protobuf

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    tag(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
    tag(out, field, 5);
    out.extend_from_slice(&v.to_le_bytes());
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 0);
    varint(out, v);
}

/// A text cut to at most `limit` bytes, at a character boundary.
fn cut(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `KeyValue { key = 1; AnyValue value = 2 }`,
/// `AnyValue { string_value = 1; bool_value = 2; int_value = 3 }`.
fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Value, limit: usize) {
    let mut any = Vec::new();
    match value {
        Value::Str(s) => bytes_field(&mut any, 1, cut(s, limit).as_bytes()),
        Value::Bool(b) => varint_field(&mut any, 2, u64::from(*b)),
        Value::Int(i) => varint_field(&mut any, 3, *i as u64),
    }
    let mut kv = Vec::new();
    bytes_field(&mut kv, 1, key.as_bytes());
    bytes_field(&mut kv, 2, &any);
    bytes_field(out, field, &kv);
}

/// `Span` (trace.proto): ids 1, 2, parent 4, name 5, kind 6, times 7 and
/// 8, attributes 9, status 15, flags 16.
fn span(out: &mut Vec<u8>, s: &SpanData, limit: usize) {
    let mut m = Vec::with_capacity(256);
    bytes_field(&mut m, 1, &s.trace_id);
    bytes_field(&mut m, 2, &s.span_id);
    if let Some(p) = &s.parent {
        bytes_field(&mut m, 4, p);
    }
    bytes_field(&mut m, 5, cut(&s.name, limit).as_bytes());
    varint_field(&mut m, 6, s.kind as u64);
    fixed64(&mut m, 7, s.start);
    fixed64(&mut m, 8, s.end.max(s.start));
    for (k, v) in &s.attributes {
        key_value(&mut m, 9, k, v, limit);
    }
    if s.error {
        // Status { code = 3 }: STATUS_CODE_ERROR.
        let mut st = Vec::new();
        varint_field(&mut st, 3, 2);
        bytes_field(&mut m, 15, &st);
    }
    // SpanFlags: the sampled trace flag, and "has is_remote" (0x100)
    // with "is_remote" (0x200) for the parent.
    let mut flags = 0x01 | 0x100;
    if s.remote_parent {
        flags |= 0x200;
    }
    fixed32(&mut m, 16, flags);
    bytes_field(out, 2, &m);
}

/// `ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 }`.
pub fn encode_request(resource: &[(String, String)], spans: &[SpanData], limit: usize) -> Vec<u8> {
    // Resource { attributes = 1 }
    let mut res = Vec::new();
    for (k, v) in resource {
        key_value(&mut res, 1, k, &Value::Str(v.clone()), limit);
    }
    // InstrumentationScope { name = 1; version = 2 }
    let mut scope = Vec::new();
    bytes_field(&mut scope, 1, b"gatehouse");
    bytes_field(&mut scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
    // ScopeSpans { scope = 1; spans = 2 }
    let mut scope_spans = Vec::with_capacity(spans.len() * 256);
    bytes_field(&mut scope_spans, 1, &scope);
    for s in spans {
        span(&mut scope_spans, s, limit);
    }
    // ResourceSpans { resource = 1; scope_spans = 2 }
    let mut rs = Vec::with_capacity(scope_spans.len() + res.len() + 16);
    bytes_field(&mut rs, 1, &res);
    bytes_field(&mut rs, 2, &scope_spans);
    let mut out = Vec::with_capacity(rs.len() + 8);
    bytes_field(&mut out, 1, &rs);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_cuts() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("hi", 5), "hi");
    }

    #[test]
    fn a_request_holds_its_spans() {
        let s = SpanData {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: None,
            remote_parent: false,
            name: "GET".into(),
            kind: SpanKind::Server,
            start: 1,
            end: 2,
            attributes: vec![("http.response.status_code", Value::Int(200))],
            error: false,
        };
        let m = encode_request(&[("service.name".into(), "gatehouse".into())], &[s], 256);
        // One ResourceSpans (field 1, length-delimited).
        assert_eq!(m[0], 0x0a);
        assert!(m.windows(9).any(|w| w == b"gatehouse"));
        assert!(m.windows(16).any(|w| w == [1u8; 16]));
    }
}

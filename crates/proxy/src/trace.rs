//! Request tracing (`otel_*`): W3C trace context in, a span per request
//! with `authorize` and `upstream` children, W3C trace context out.
//!
//! - A client's valid `traceparent` is continued: its trace id is kept,
//!   its span becomes the request span's parent, and its sampled flag
//!   decides (parent-based sampling, as OpenTelemetry's default). An
//!   invalid one is replaced by a new trace, and its `tracestate` dropped
//!   (W3C trace context, "mutating the traceparent field").
//! - New traces are sampled by `otel_traces_sampler_arg` on the trace id
//!   (OpenTelemetry's `TraceIdRatioBased`), so every instance that sees a
//!   trace decides alike.
//! - The upstream gets `traceparent` naming the `upstream` span, sampled
//!   or not, so its own spans join the trace.
//! - What a span carries: method, path (never the query), host, scheme,
//!   client address, user agent, protocol, status, the route, the request
//!   id. Never the user's identity, cookies or headers.
//!
//! Only configurations with tracing pay anything: the dispatcher holds an
//! `Option<Box<RequestTrace>>`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::body::{Body, BoxError};
use crate::otlp::{Sink, SpanData, SpanKind, Value};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// One configuration's tracing: its sampler and exporter.
pub struct Tracer {
    /// `None` when no exporter could start (no Tokio runtime): trace
    /// context is still passed on.
    sink: Option<Sink>,
    /// `otel_attribute_value_length_limit`: text is cut when recorded, so
    /// a queued span holds no more than this per attribute.
    limit: usize,
    /// A new trace is sampled when the trace id's low 63 bits fall below
    /// this (`ratio * 2^63`).
    bound: u64,
    always: bool,
}

impl Tracer {
    pub fn new(cfg: &gatehouse_config::Tracing, sink: Option<Sink>) -> Tracer {
        Tracer {
            sink,
            limit: cfg.attribute_value_limit,
            bound: (cfg.sampler_ratio * (1u64 << 63) as f64) as u64,
            always: cfg.sampler_ratio >= 1.0,
        }
    }

    fn samples(&self, trace_id: &[u8; 16]) -> bool {
        if self.always {
            return true;
        }
        let low = u64::from_be_bytes(trace_id[8..16].try_into().unwrap_or([0; 8]));
        (low >> 1) < self.bound
    }

    /// The trace of one request: continues the client's `traceparent` or
    /// starts one. An invalid `traceparent` and its `tracestate` are
    /// removed from `req`.
    pub fn begin<B>(
        &self,
        req: &mut Request<B>,
        peer: std::net::IpAddr,
        https: bool,
        request_id: &HeaderValue,
    ) -> Box<RequestTrace> {
        let parent = parse_traceparent(req.headers());
        if parent.is_none() {
            // A new trace: the client's state (of no valid parent, or of
            // none) has nothing to belong to.
            req.headers_mut().remove(&TRACEPARENT);
            req.headers_mut().remove(&TRACESTATE);
        }
        let (trace_id, parent_id, sampled) = match parent {
            Some(p) => (p.trace_id, Some(p.span_id), p.sampled),
            None => {
                let id = new_trace_id();
                (id, None, self.samples(&id))
            }
        };
        let sink = if sampled { self.sink.clone() } else { None };
        let recording = sink.is_some();
        let mut t = Box::new(RequestTrace {
            sink,
            limit: self.limit,
            trace_id,
            root: new_span_id(),
            parent: parent_id,
            sampled,
            t0: Instant::now(),
            unix0: unix_nanos(),
            name: String::new(),
            attributes: Vec::new(),
            children: Vec::new(),
        });
        if recording {
            let h = req.headers();
            let limit = self.limit;
            let text = |v: &HeaderValue| cut_text(v.as_bytes(), limit);
            t.name = req.method().as_str().to_string();
            t.attributes.extend([
                ("http.request.method", Value::Str(req.method().to_string())),
                (
                    "url.path",
                    Value::Str(cut_text(req.uri().path().as_bytes(), limit)),
                ),
                (
                    "url.scheme",
                    Value::Str(if https { "https" } else { "http" }.into()),
                ),
                ("client.address", Value::Str(peer.to_string())),
                (
                    "network.protocol.version",
                    Value::Str(
                        match req.version() {
                            http::Version::HTTP_2 => "2",
                            http::Version::HTTP_10 => "1.0",
                            _ => "1.1",
                        }
                        .into(),
                    ),
                ),
                ("guid:x-request-id", Value::Str(text(request_id))),
            ]);
            // Host and port only: never a userinfo an absolute-form
            // target (or a Host header) may carry.
            let authority = match req.uri().authority() {
                Some(a) => Some(a.clone()),
                None => h
                    .get(http::header::HOST)
                    .and_then(|v| http::uri::Authority::try_from(v.as_bytes()).ok()),
            };
            if let Some(a) = authority {
                let host = match a.port() {
                    Some(p) => format!("{}:{p}", a.host()),
                    None => a.host().to_string(),
                };
                t.attributes.push((
                    "server.address",
                    Value::Str(cut_text(host.as_bytes(), limit)),
                ));
            }
            if let Some(ua) = h.get(http::header::USER_AGENT) {
                t.attributes
                    .push(("user_agent.original", Value::Str(text(ua))));
            }
        }
        t
    }
}

/// A valid `traceparent` from a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

/// W3C trace context, level 1: `version-traceid-parentid-flags` in lower
/// case hex; version `ff` and all-zero ids are invalid; a later version
/// may append `-…`; two `traceparent` headers are one too many.
pub fn parse_traceparent(headers: &HeaderMap) -> Option<Parent> {
    let mut all = headers.get_all(&TRACEPARENT).iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let s = v.as_bytes();
    if s.len() < 55 || s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
        return None;
    }
    let version = hex_bytes::<1>(&s[0..2])?[0];
    if version == 0xff || (version == 0 && s.len() != 55) || (s.len() > 55 && s[55] != b'-') {
        return None;
    }
    let trace_id = hex_bytes::<16>(&s[3..35])?;
    let span_id = hex_bytes::<8>(&s[36..52])?;
    let flags = hex_bytes::<1>(&s[53..55])?[0];
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// Lower-case hex only (W3C: upper case is invalid).
fn hex_bytes<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(s[2 * i])? << 4 | digit(s[2 * i + 1])?;
    }
    Some(out)
}

/// At most `limit` bytes of `bytes` as text (cut at a character
/// boundary, invalid UTF-8 replaced after the cut, so a value never grows
/// past the limit by much).
fn cut_text(bytes: &[u8], limit: usize) -> String {
    let head = &bytes[..bytes.len().min(limit)];
    let mut s = String::from_utf8_lossy(head).into_owned();
    if s.len() > limit {
        let mut end = limit;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        // Held for as long as the span waits: no more than it says.
        s.shrink_to_fit();
    }
    s
}

fn new_trace_id() -> [u8; 16] {
    loop {
        let id: u128 = rand::random();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

pub fn new_span_id() -> [u8; 8] {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One request's trace, filled in by the dispatcher's phases.
pub struct RequestTrace {
    /// Where its spans go; `None` when not sampled (or already sent).
    sink: Option<Sink>,
    limit: usize,
    trace_id: [u8; 16],
    /// The request span.
    root: [u8; 8],
    /// The client's span, when it sent a valid `traceparent`.
    parent: Option<[u8; 8]>,
    sampled: bool,
    t0: Instant,
    unix0: u64,
    name: String,
    attributes: Vec<(&'static str, Value)>,
    children: Vec<SpanData>,
}

impl RequestTrace {
    /// Whether this request's spans are recorded.
    pub fn recording(&self) -> bool {
        self.sink.is_some()
    }

    fn at(&self, t: Instant) -> u64 {
        self.unix0 + t.saturating_duration_since(self.t0).as_nanos() as u64
    }

    /// The `traceparent` for a call made in span `span`.
    pub fn traceparent(&self, span: &[u8; 8]) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = [b'-'; 55];
        s[..2].copy_from_slice(b"00");
        for (i, b) in self.trace_id.iter().chain(span.iter()).enumerate() {
            // Trace id at 3..35, span id at 36..52.
            let at = if i < 16 { 3 + 2 * i } else { 36 + 2 * (i - 16) };
            s[at] = HEX[usize::from(b >> 4)];
            s[at + 1] = HEX[usize::from(b & 0xf)];
        }
        s[53..].copy_from_slice(if self.sampled { b"01" } else { b"00" });
        HeaderValue::from_bytes(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Sets an attribute of the request span.
    pub fn set(&mut self, key: &'static str, value: Value) {
        if self.recording() {
            let value = match value {
                Value::Str(s) if s.len() > self.limit => {
                    Value::Str(cut_text(s.as_bytes(), self.limit))
                }
                v => v,
            };
            match self.attributes.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => self.attributes.push((key, value)),
            }
        }
    }

    /// Names the request span (`GET <route>`).
    pub fn rename(&mut self, name: String) {
        if self.recording() {
            self.name = name;
        }
    }

    /// A finished phase of the request, as a child of the request span.
    pub fn child(
        &mut self,
        name: &str,
        kind: SpanKind,
        span_id: [u8; 8],
        start: Instant,
        attributes: Vec<(&'static str, Value)>,
        error: bool,
    ) {
        if !self.recording() {
            return;
        }
        let end = Instant::now();
        self.children.push(SpanData {
            trace_id: self.trace_id,
            span_id,
            parent: Some(self.root),
            remote_parent: false,
            name: name.to_string(),
            kind,
            start: self.at(start),
            end: self.at(end),
            attributes,
            error,
        });
    }

    /// The response, whose end ends the request span.
    pub fn finish(mut self: Box<Self>, resp: Response<Body>) -> Response<Body> {
        if !self.recording() {
            return resp;
        }
        let status = resp.status();
        self.set(
            "http.response.status_code",
            Value::Int(i64::from(status.as_u16())),
        );
        let error = status.is_server_error();
        resp.map(|inner| {
            crate::body::boxed(Traced {
                inner,
                trace: Some(self),
                error,
            })
        })
    }

    /// Ends the request span and queues it with its children: the
    /// request span first (a child without it is an orphan), and all or
    /// none of them when the queue is short of room.
    fn end(&mut self, error: bool) {
        let Some(sink) = self.sink.take() else { return };
        let end = self.at(Instant::now());
        let root = SpanData {
            trace_id: self.trace_id,
            span_id: self.root,
            parent: self.parent,
            remote_parent: self.parent.is_some(),
            name: std::mem::take(&mut self.name),
            kind: SpanKind::Server,
            start: self.unix0,
            end,
            attributes: std::mem::take(&mut self.attributes),
            error,
        };
        let mut spans = std::mem::take(&mut self.children);
        spans.insert(0, root);
        sink.send_all(spans);
    }
}

/// A request that ends without its response being sent (the client went
/// away, the connection was cut): its span still ends, as an error.
impl Drop for RequestTrace {
    fn drop(&mut self) {
        self.end(true);
    }
}

/// The response body; the request span ends when it is done (or dropped).
struct Traced {
    inner: Body,
    trace: Option<Box<RequestTrace>>,
    error: bool,
}

impl HttpBody for Traced {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            self.error = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if let Some(mut t) = self.trace.take() {
            t.end(self.error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(&TRACEPARENT, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn valid_traceparents_are_continued() {
        let p = parse_traceparent(&headers(&[GOOD])).unwrap();
        assert_eq!(
            crate::hex::lower(&p.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(crate::hex::lower(&p.span_id), "00f067aa0ba902b7");
        assert!(p.sampled);
        let unsampled = GOOD.replace("-01", "-00");
        assert!(!parse_traceparent(&headers(&[&unsampled])).unwrap().sampled);
        // A later version may carry more after a dash.
        let later = GOOD.replacen("00-", "01-", 1) + "-extra";
        assert!(parse_traceparent(&headers(&[&later])).is_some());
    }

    #[test]
    fn invalid_traceparents_are_refused_in_every_spelling() {
        for bad in [
            GOOD.to_uppercase(),
            GOOD.replacen("00-", "ff-", 1),
            GOOD.to_string() + "-extra",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".to_string(),
            GOOD[..54].to_string(),
            GOOD.replace('-', "_"),
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01".to_string(),
            " ".to_string() + &GOOD[1..],
        ] {
            assert!(parse_traceparent(&headers(&[&bad])).is_none(), "{bad}");
        }
        assert!(parse_traceparent(&headers(&[GOOD, GOOD])).is_none());
    }

    #[test]
    fn sampling_by_ratio_is_decided_by_the_trace_id() {
        let cfg = |r: f64| gatehouse_config::Tracing {
            sampler_ratio: r,
            ..config(256)
        };
        let none = Tracer::new(&cfg(0.0), None);
        let half = Tracer::new(&cfg(0.5), None);
        let all = Tracer::new(&cfg(1.0), None);
        let mut low = [0u8; 16];
        low[15] = 2;
        let mut high = [0xffu8; 16];
        high[15] = 0xfe;
        assert!(!none.samples(&low) && all.samples(&high));
        assert!(half.samples(&low) && !half.samples(&high));
        // A client's decision stands, whatever the ratio.
        let mut req = Request::new(());
        req.headers_mut()
            .insert(&TRACEPARENT, HeaderValue::from_static(GOOD));
        let t = none.begin(
            &mut req,
            [127, 0, 0, 1].into(),
            false,
            &HeaderValue::from_static("id"),
        );
        assert!(t.sampled);
        let up = t.traceparent(&[1; 8]);
        assert!(
            up.to_str()
                .unwrap()
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-0101010101010101-01")
        );
    }

    fn config(limit: usize) -> gatehouse_config::Tracing {
        gatehouse_config::Tracing {
            endpoint: "http://127.0.0.1:4318/v1/traces".parse().unwrap(),
            protocol: gatehouse_config::OtlpProtocol::HttpProtobuf,
            headers: vec![],
            timeout: std::time::Duration::from_secs(1),
            sampler_ratio: 1.0,
            resource: vec![],
            attribute_value_limit: limit,
            schedule_delay: std::time::Duration::from_secs(1),
            max_batch: 1,
        }
    }

    fn attr<'a>(s: &'a SpanData, k: &str) -> Option<&'a Value> {
        s.attributes.iter().find(|(n, _)| *n == k).map(|(_, v)| v)
    }

    /// Found by an attacker's review: a long user agent (each invalid
    /// byte tripled by lossy decoding) was queued whole, 2560 spans of
    /// 190 KB held half a gigabyte; a URL's userinfo reached the collector.
    #[test]
    fn recorded_text_is_cut_and_hosts_carry_no_userinfo() {
        let (sink, mut rx) = crate::otlp::test_sink(16);
        let t = Tracer::new(&config(64), Some(sink));
        let mut req = Request::get("http://alice:Pa55w0rd@app.localhost:8443/x")
            .header(
                http::header::USER_AGENT,
                HeaderValue::from_bytes(&[0xff; 5000]).unwrap(),
            )
            .body(())
            .unwrap();
        let rt = t.begin(
            &mut req,
            [127, 0, 0, 1].into(),
            false,
            &HeaderValue::from_static("id"),
        );
        drop(rt);
        let root = rx.try_recv().unwrap();
        assert_eq!(
            attr(&root, "server.address"),
            Some(&Value::Str("app.localhost:8443".into()))
        );
        match attr(&root, "user_agent.original") {
            Some(Value::Str(ua)) => assert!(ua.len() <= 64, "{}", ua.len()),
            other => panic!("{other:?}"),
        }
        // Dropped before its answer (the client went away): still ended,
        // as an error.
        assert!(root.error);
    }

    #[test]
    fn a_new_trace_drops_the_clients_tracestate() {
        let t = Tracer::new(&config(256), None);
        let mut req = Request::new(());
        req.headers_mut()
            .insert(&TRACESTATE, HeaderValue::from_static("vendor=orphan"));
        let _t = t.begin(
            &mut req,
            [127, 0, 0, 1].into(),
            false,
            &HeaderValue::from_static("id"),
        );
        assert!(!req.headers().contains_key(&TRACESTATE));
        // With a valid parent it stays.
        let mut req = Request::new(());
        req.headers_mut()
            .insert(&TRACEPARENT, HeaderValue::from_static(GOOD));
        req.headers_mut()
            .insert(&TRACESTATE, HeaderValue::from_static("vendor=kept"));
        let _t = t.begin(
            &mut req,
            [127, 0, 0, 1].into(),
            false,
            &HeaderValue::from_static("id"),
        );
        assert_eq!(req.headers()[&TRACESTATE], "vendor=kept");
    }

    #[test]
    fn a_requests_spans_are_queued_together_or_not_at_all() {
        // Room for two spans: a request with three (root and two
        // children) is dropped whole, never a child without its parent.
        let (sink, mut rx) = crate::otlp::test_sink(2);
        let t = Tracer::new(&config(256), Some(sink));
        let mut req = Request::new(());
        let mut rt = t.begin(
            &mut req,
            [127, 0, 0, 1].into(),
            false,
            &HeaderValue::from_static("id"),
        );
        for name in ["authorize", "upstream"] {
            rt.child(
                name,
                SpanKind::Internal,
                new_span_id(),
                Instant::now(),
                vec![],
                false,
            );
        }
        drop(rt);
        assert!(rx.try_recv().is_err());
        let mut rt = t.begin(
            &mut req,
            [127, 0, 0, 1].into(),
            false,
            &HeaderValue::from_static("id"),
        );
        rt.child(
            "authorize",
            SpanKind::Internal,
            new_span_id(),
            Instant::now(),
            vec![],
            false,
        );
        drop(rt);
        assert_eq!(
            rx.try_recv().unwrap().kind,
            SpanKind::Server,
            "the request span first"
        );
        assert_eq!(rx.try_recv().unwrap().name, "authorize");
    }

    #[test]
    fn an_invalid_traceparent_and_its_tracestate_are_removed() {
        let t = Tracer::new(&config(256), None);
        let mut req = Request::new(());
        req.headers_mut()
            .insert(&TRACEPARENT, HeaderValue::from_static("garbage"));
        req.headers_mut()
            .insert(&TRACESTATE, HeaderValue::from_static("vendor=x"));
        let rt = t.begin(
            &mut req,
            [127, 0, 0, 1].into(),
            false,
            &HeaderValue::from_static("id"),
        );
        assert!(!req.headers().contains_key(&TRACEPARENT));
        assert!(!req.headers().contains_key(&TRACESTATE));
        assert!(rt.parent.is_none());
    }
}

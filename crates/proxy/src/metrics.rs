//! Prometheus metrics (`metrics_address`, optional `metrics_basic_auth`).
//!
//! Everything on the request path is an atomic add into counters that were
//! found once per configuration (each route's [`RouteMetrics`] lives in its
//! `RouteState`): no lock, no lookup, no allocation per request. The text
//! format is built only when scraped. Counters survive reloads (a route keeps
//! its series while its label stays the same).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_policy::{ALL_REASONS, Decision};

/// Upper bounds (seconds) of the request duration histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// One route's request counters.
#[derive(Default)]
pub struct RouteMetrics {
    /// By status class: 1xx .. 5xx.
    status: [AtomicU64; 5],
    /// Cumulative histogram counts per bucket (last: +Inf).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    upstream_errors: [AtomicU64; UPSTREAM_ERRORS.len()],
    /// Policy decisions on this route: allow, deny, sign-in.
    decisions: [AtomicU64; 3],
}

/// A route's counters at one moment (for the console).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteCounts {
    pub requests: u64,
    pub allowed: u64,
    pub denied: u64,
    pub sign_in: u64,
    pub server_errors: u64,
}

/// Kinds of upstream failure, as labels.
pub const UPSTREAM_ERRORS: [&str; 3] = ["connect", "timeout", "reset"];

impl RouteMetrics {
    /// One answered request: its status and the time to its response head.
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.status[class].fetch_add(1, Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// A policy decision on this route.
    pub fn decided(&self, d: &gatehouse_policy::Decision) {
        let i = match d {
            gatehouse_policy::Decision::Allow(_) => 0,
            gatehouse_policy::Decision::Deny(_) => 1,
            gatehouse_policy::Decision::SignIn(_) => 2,
        };
        self.decisions[i].fetch_add(1, Relaxed);
    }

    pub fn counts(&self) -> RouteCounts {
        RouteCounts {
            requests: self.status.iter().map(|c| c.load(Relaxed)).sum(),
            allowed: self.decisions[0].load(Relaxed),
            denied: self.decisions[1].load(Relaxed),
            sign_in: self.decisions[2].load(Relaxed),
            server_errors: self.status[4].load(Relaxed),
        }
    }

    /// An upstream failure of one of [`UPSTREAM_ERRORS`] (by code).
    pub fn upstream_error(&self, code: &str) {
        let kind = match code {
            "upstream_connect" => 0,
            "upstream_timeout" => 1,
            "upstream_reset" => 2,
            _ => return,
        };
        self.upstream_errors[kind].fetch_add(1, Relaxed);
    }
}

/// Sign-in outcomes, as labels.
#[derive(Debug, Clone, Copy)]
pub enum SignInResult {
    Success,
    Failure,
}

/// Token refresh outcomes, as labels.
#[derive(Debug, Clone, Copy)]
pub enum RefreshResult {
    Success,
    TemporaryFailure,
    Refused,
}

/// Process-wide metrics.
pub struct Metrics {
    routes: Mutex<BTreeMap<String, Arc<RouteMetrics>>>,
    /// Requests no route matched (404, 400), and gatehouse's own endpoints.
    pub unrouted: Arc<RouteMetrics>,
    open_connections: AtomicI64,
    connections: AtomicU64,
    decisions: [AtomicU64; 3],
    reasons: [AtomicU64; 64],
    sign_ins: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Answers gatehouse refused with, by fault and code.
    refusals: Mutex<BTreeMap<(crate::error::Fault, &'static str), u64>>,
    refreshes: [AtomicU64; 3],
    store_errors: AtomicU64,
    assertion_hits: AtomicU64,
    assertion_misses: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    last_reload_ok: AtomicU64,
    started: u64,
    /// The session store, for its operation and cache counts.
    store: Option<Arc<gatehouse_identity::store::Counted>>,
    /// Request spans (`otel_*`): exported, dropped, failed.
    pub spans: Arc<crate::otlp::SpanCounts>,
}

impl Default for Metrics {
    fn default() -> Self {
        let now = gatehouse_identity::session::unix_now();
        Metrics {
            routes: Default::default(),
            unrouted: Default::default(),
            open_connections: Default::default(),
            connections: Default::default(),
            decisions: Default::default(),
            reasons: [const { AtomicU64::new(0) }; 64],
            sign_ins: Default::default(),
            refusals: Default::default(),
            refreshes: Default::default(),
            store_errors: Default::default(),
            assertion_hits: Default::default(),
            assertion_misses: Default::default(),
            reloads_ok: Default::default(),
            reloads_failed: Default::default(),
            last_reload_ok: AtomicU64::new(now),
            started: now,
            store: None,
            spans: Default::default(),
        }
    }
}

impl Metrics {
    /// Metrics that also report `store`'s operations and cache.
    pub fn with_store(store: Arc<gatehouse_identity::store::Counted>) -> Metrics {
        Metrics {
            store: Some(store),
            ..Metrics::default()
        }
    }
}

/// Counts an open connection until dropped.
pub struct ConnectionGuard<'a>(&'a Metrics);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    /// The counters of the route labelled `label` (kept across reloads).
    pub fn route(&self, label: &str) -> Arc<RouteMetrics> {
        let mut map = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(label.to_string()).or_default().clone()
    }

    /// Forgets routes no configuration has any more.
    pub fn retain_routes(&self, labels: &[String]) {
        let mut map = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|k, _| labels.contains(k));
    }

    pub fn connection(&self) -> ConnectionGuard<'_> {
        self.open_connections.fetch_add(1, Relaxed);
        self.connections.fetch_add(1, Relaxed);
        ConnectionGuard(self)
    }

    pub fn decision(&self, d: Decision) {
        let (i, reasons) = match d {
            Decision::Allow(r) => (0, r),
            Decision::Deny(r) => (1, r),
            Decision::SignIn(r) => (2, r),
        };
        self.decisions[i].fetch_add(1, Relaxed);
        for r in reasons.iter() {
            self.reasons[r as usize].fetch_add(1, Relaxed);
        }
    }

    pub fn sign_in(&self, idp: &str, result: SignInResult) {
        let label = match result {
            SignInResult::Success => "success",
            SignInResult::Failure => "failure",
        };
        let mut map = self.sign_ins.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((idp.to_string(), label)).or_default() += 1;
    }

    /// A refusal gatehouse answered (counted once per answer by the
    /// dispatcher).
    pub fn refusal(&self, r: crate::error::Refusal) {
        let mut map = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((r.fault, r.code)).or_default() += 1;
    }

    pub fn refresh(&self, result: RefreshResult) {
        self.refreshes[result as usize].fetch_add(1, Relaxed);
    }

    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Relaxed);
    }

    pub fn assertion_cache(&self, hit: bool) {
        if hit {
            self.assertion_hits.fetch_add(1, Relaxed);
        } else {
            self.assertion_misses.fetch_add(1, Relaxed);
        }
    }

    /// A configuration reload's outcome.
    pub fn reload(&self, ok: bool) {
        if ok {
            self.reloads_ok.fetch_add(1, Relaxed);
            self.last_reload_ok
                .store(gatehouse_identity::session::unix_now(), Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);

        let routes: Vec<(String, Arc<RouteMetrics>)> = {
            let map = self.routes.lock().unwrap_or_else(|p| p.into_inner());
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let all = routes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_ref()))
            .chain(std::iter::once(("", self.unrouted.as_ref())));

        header(
            &mut out,
            "gatehouse_build_info",
            "gauge",
            "Build information.",
        );
        let _ = writeln!(
            out,
            "gatehouse_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        header(
            &mut out,
            "gatehouse_process_start_time_seconds",
            "gauge",
            "Start time of the process (Unix seconds).",
        );
        let _ = writeln!(out, "gatehouse_process_start_time_seconds {}", self.started);
        if let Some(rss) = resident_bytes() {
            header(
                &mut out,
                "gatehouse_process_resident_memory_bytes",
                "gauge",
                "Resident memory.",
            );
            let _ = writeln!(out, "gatehouse_process_resident_memory_bytes {rss}");
        }

        header(
            &mut out,
            "gatehouse_http_server_requests_total",
            "counter",
            "Requests answered, by route and status class.",
        );
        let routes_all: Vec<(&str, &RouteMetrics)> = all.collect();
        for (label, m) in &routes_all {
            for (i, c) in m.status.iter().enumerate() {
                let n = c.load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "gatehouse_http_server_requests_total{{route=\"{}\",code=\"{}xx\"}} {n}",
                        escape(label),
                        i + 1
                    );
                }
            }
        }
        header(
            &mut out,
            "gatehouse_http_server_request_duration_seconds",
            "histogram",
            "Time from request to response head, by route.",
        );
        for (label, m) in &routes_all {
            let counts: Vec<u64> = m.buckets.iter().map(|b| b.load(Relaxed)).collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let label = escape(label);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += counts[i];
                let _ = writeln!(
                    out,
                    "gatehouse_http_server_request_duration_seconds_bucket{{route=\"{label}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "gatehouse_http_server_request_duration_seconds_bucket{{route=\"{label}\",le=\"+Inf\"}} {total}\n\
                 gatehouse_http_server_request_duration_seconds_sum{{route=\"{label}\"}} {}\n\
                 gatehouse_http_server_request_duration_seconds_count{{route=\"{label}\"}} {total}",
                m.sum_micros.load(Relaxed) as f64 / 1e6
            );
        }
        header(
            &mut out,
            "gatehouse_upstream_errors_total",
            "counter",
            "Upstream failures, by route and kind (connect, timeout, reset).",
        );
        for (label, m) in &routes_all {
            for (kind, c) in UPSTREAM_ERRORS.iter().zip(&m.upstream_errors) {
                let n = c.load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "gatehouse_upstream_errors_total{{route=\"{}\",kind=\"{kind}\"}} {n}",
                        escape(label)
                    );
                }
            }
        }
        header(
            &mut out,
            "gatehouse_route_authorize_decisions_total",
            "counter",
            "Policy decisions on proxied requests, by route and result.",
        );
        for (label, m) in &routes_all {
            for (result, c) in ["allow", "deny", "sign-in"].iter().zip(&m.decisions) {
                let n = c.load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "gatehouse_route_authorize_decisions_total{{route=\"{}\",result=\"{result}\"}} {n}",
                        escape(label)
                    );
                }
            }
        }

        header(
            &mut out,
            "gatehouse_authorize_decisions_total",
            "counter",
            "Policy decisions, by result.",
        );
        for (result, c) in ["allow", "deny", "sign-in"].iter().zip(&self.decisions) {
            let _ = writeln!(
                out,
                "gatehouse_authorize_decisions_total{{result=\"{result}\"}} {}",
                c.load(Relaxed)
            );
        }
        header(
            &mut out,
            "gatehouse_authorize_reasons_total",
            "counter",
            "Reasons given by policy decisions.",
        );
        for r in ALL_REASONS {
            let n = self.reasons[r as usize].load(Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "gatehouse_authorize_reasons_total{{reason=\"{}\"}} {n}",
                    r.as_str()
                );
            }
        }

        header(
            &mut out,
            "gatehouse_refusals_total",
            "counter",
            "Answers gatehouse refused a request with, by who is at fault (downstream, policy, upstream, internal) and code.",
        );
        for ((fault, code), n) in self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "gatehouse_refusals_total{{source=\"{}\",code=\"{code}\"}} {n}",
                fault.label()
            );
        }
        header(
            &mut out,
            "gatehouse_trace_spans_total",
            "counter",
            "Request spans (otel_*), by what became of them: exported, dropped (queue full) or failed (the collector did not take them).",
        );
        for (outcome, n) in [
            ("exported", &self.spans.exported),
            ("dropped", &self.spans.dropped),
            ("failed", &self.spans.failed),
        ] {
            let _ = writeln!(
                out,
                "gatehouse_trace_spans_total{{outcome=\"{outcome}\"}} {}",
                n.load(Relaxed)
            );
        }
        header(
            &mut out,
            "gatehouse_sign_ins_total",
            "counter",
            "Sign-ins, by identity provider and result.",
        );
        for ((idp, result), n) in self
            .sign_ins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "gatehouse_sign_ins_total{{idp=\"{}\",result=\"{result}\"}} {n}",
                escape(idp)
            );
        }
        header(
            &mut out,
            "gatehouse_token_refreshes_total",
            "counter",
            "Identity provider token refreshes, by result.",
        );
        for (result, c) in ["success", "temporary_failure", "refused"]
            .iter()
            .zip(&self.refreshes)
        {
            let _ = writeln!(
                out,
                "gatehouse_token_refreshes_total{{result=\"{result}\"}} {}",
                c.load(Relaxed)
            );
        }
        header(
            &mut out,
            "gatehouse_session_store_errors_total",
            "counter",
            "Session store operations that failed.",
        );
        let _ = writeln!(
            out,
            "gatehouse_session_store_errors_total {}",
            self.store_errors.load(Relaxed)
        );
        if let Some(store) = &self.store {
            use gatehouse_identity::store::SessionStore;
            header(
                &mut out,
                "gatehouse_session_store_operations_total",
                "counter",
                "Session store operations by kind (once: one-time hand-off tokens; lease: refresh leases).",
            );
            for (op, n) in gatehouse_identity::store::OPERATIONS
                .iter()
                .zip(store.operations())
            {
                let _ = writeln!(
                    out,
                    "gatehouse_session_store_operations_total{{op=\"{op}\"}} {n}"
                );
            }
            let (hits, misses) = store.cache_counts();
            header(
                &mut out,
                "gatehouse_session_cache_hits_total",
                "counter",
                "Session lookups answered by this instance's hot-session cache (Redis store).",
            );
            let _ = writeln!(out, "gatehouse_session_cache_hits_total {hits}");
            header(
                &mut out,
                "gatehouse_session_cache_misses_total",
                "counter",
                "Session lookups that went to Redis.",
            );
            let _ = writeln!(out, "gatehouse_session_cache_misses_total {misses}");
        }
        header(
            &mut out,
            "gatehouse_assertion_cache_hits_total",
            "counter",
            "Assertions served from the cache.",
        );
        let _ = writeln!(
            out,
            "gatehouse_assertion_cache_hits_total {}",
            self.assertion_hits.load(Relaxed)
        );
        header(
            &mut out,
            "gatehouse_assertion_cache_misses_total",
            "counter",
            "Assertions signed.",
        );
        let _ = writeln!(
            out,
            "gatehouse_assertion_cache_misses_total {}",
            self.assertion_misses.load(Relaxed)
        );

        header(
            &mut out,
            "gatehouse_config_reloads_total",
            "counter",
            "Configuration reloads, by result.",
        );
        let _ = writeln!(
            out,
            "gatehouse_config_reloads_total{{result=\"success\"}} {}\ngatehouse_config_reloads_total{{result=\"failure\"}} {}",
            self.reloads_ok.load(Relaxed),
            self.reloads_failed.load(Relaxed)
        );
        header(
            &mut out,
            "gatehouse_config_last_reload_success_timestamp_seconds",
            "gauge",
            "When the configuration in force was loaded (Unix seconds).",
        );
        let _ = writeln!(
            out,
            "gatehouse_config_last_reload_success_timestamp_seconds {}",
            self.last_reload_ok.load(Relaxed)
        );
        header(
            &mut out,
            "gatehouse_open_connections",
            "gauge",
            "Client connections open now.",
        );
        let _ = writeln!(
            out,
            "gatehouse_open_connections {}",
            self.open_connections.load(Relaxed)
        );
        header(
            &mut out,
            "gatehouse_connections_total",
            "counter",
            "Client connections accepted.",
        );
        let _ = writeln!(
            out,
            "gatehouse_connections_total {}",
            self.connections.load(Relaxed)
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value: backslash, double quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Serves `/metrics` on `listener` until the process ends. With
/// `basic_auth` (`metrics_basic_auth`: base64 of `user:password`), scrapes
/// must send it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    basic_auth: Option<String>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioIo, TokioTimer};
    let basic_auth: Option<Arc<str>> = basic_auth.map(|b| Arc::from(b.trim()));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let metrics = metrics.clone();
        let basic_auth = basic_auth.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                let basic_auth = basic_auth.clone();
                async move {
                    let mut resp = http::Response::new(Full::new(bytes::Bytes::new()));
                    let authorized = basic_auth.as_deref().is_none_or(|want| {
                        req.headers()
                            .get(http::header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Basic "))
                            .is_some_and(|got| {
                                constant_time_eq(got.trim().as_bytes(), want.as_bytes())
                            })
                    });
                    if !authorized {
                        *resp.status_mut() = http::StatusCode::UNAUTHORIZED;
                        resp.headers_mut().insert(
                            http::header::WWW_AUTHENTICATE,
                            http::HeaderValue::from_static("Basic realm=\"gatehouse metrics\""),
                        );
                    } else if req.uri().path() == "/metrics" {
                        *resp.body_mut() = Full::new(bytes::Bytes::from(metrics.render()));
                        resp.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static(
                                "text/plain; version=0.0.4; charset=utf-8",
                            ),
                        );
                    } else {
                        *resp.status_mut() = http::StatusCode::NOT_FOUND;
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            match acceptor {
                // TLS (and, with `metrics_client_ca`, the scraper's
                // certificate) before anything is read.
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    if let Ok(Ok(tls)) = handshake.await {
                        let _ = http.serve_connection(TokioIo::new(tls), svc).await;
                    }
                }
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                }
            }
        });
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_policy::{Reason, Reasons};

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        let r = m.route("app \"x\"");
        r.record(200, Duration::from_millis(3));
        r.record(204, Duration::from_millis(30));
        r.record(502, Duration::from_secs(20));
        r.upstream_error("upstream_connect");
        m.refusal(crate::error::Refusal {
            fault: crate::error::Fault::Upstream,
            code: "upstream_connect",
        });
        m.decision(Decision::Deny(Reasons::one(Reason::GroupsUnauthorized)));
        m.sign_in("oidc", SignInResult::Success);
        m.refresh(RefreshResult::Refused);
        m.assertion_cache(true);
        m.reload(false);
        let _c = m.connection();
        let text = m.render();
        for line in [
            "gatehouse_http_server_requests_total{route=\"app \\\"x\\\"\",code=\"2xx\"} 2",
            "gatehouse_http_server_requests_total{route=\"app \\\"x\\\"\",code=\"5xx\"} 1",
            "gatehouse_http_server_request_duration_seconds_bucket{route=\"app \\\"x\\\"\",le=\"0.005\"} 1",
            "gatehouse_http_server_request_duration_seconds_bucket{route=\"app \\\"x\\\"\",le=\"0.05\"} 2",
            "gatehouse_http_server_request_duration_seconds_bucket{route=\"app \\\"x\\\"\",le=\"+Inf\"} 3",
            "gatehouse_http_server_request_duration_seconds_count{route=\"app \\\"x\\\"\"} 3",
            "gatehouse_upstream_errors_total{route=\"app \\\"x\\\"\",kind=\"connect\"} 1",
            "gatehouse_authorize_decisions_total{result=\"deny\"} 1",
            "gatehouse_authorize_reasons_total{reason=\"groups-unauthorized\"} 1",
            "gatehouse_sign_ins_total{idp=\"oidc\",result=\"success\"} 1",
            "gatehouse_refusals_total{source=\"upstream\",code=\"upstream_connect\"} 1",
            "gatehouse_token_refreshes_total{result=\"refused\"} 1",
            "gatehouse_assertion_cache_hits_total 1",
            "gatehouse_config_reloads_total{result=\"failure\"} 1",
            "gatehouse_open_connections 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        // The same label after a reload is the same series.
        assert!(Arc::ptr_eq(&r, &m.route("app \"x\"")));
        // Every sample line belongs to a declared family.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {family} ")), "{l}");
        }
    }
}

//! OpenTelemetry tracing (`otel_*`) against real peers: spans exported to
//! a receiver built from the official OTLP classes (`opentelemetry-proto`,
//! over `http/protobuf` and over gRPC with `grpcio`), and trace context
//! read upstream by OpenTelemetry's own W3C propagator
//! (`tests/e2e/otlp_receiver.py`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e")
}

/// The receiver and app process; stopped (by its id) when dropped.
struct Receiver {
    child: Child,
    spans: Arc<Mutex<Vec<Value>>>,
    http: u16,
    grpc: u16,
    app: u16,
}

impl Receiver {
    fn start() -> Receiver {
        let python = e2e_dir().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: scripts/test.sh installs the receiver's packages there",
            python.display()
        );
        let (http, grpc, app) = (free_port(), free_port(), free_port());
        let mut child = Command::new(python)
            .arg(e2e_dir().join("otlp_receiver.py"))
            .args(["--http", &http.to_string()])
            .args(["--grpc", &grpc.to_string()])
            .args(["--app", &app.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(
            lines.next().and_then(Result::ok).as_deref(),
            Some("ready"),
            "the receiver did not start"
        );
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str::<Value>(&line).unwrap());
            }
        });
        Receiver {
            child,
            spans,
            http,
            grpc,
            app,
        }
    }

    /// The spans of `trace`, once `n` of them have arrived.
    fn trace(&self, trace: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found: Vec<Value> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s["trace_id"] == trace)
                .cloned()
                .collect();
            if found.len() >= n || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn all(&self) -> Vec<Value> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .unwrap_or_else(|| panic!("no `{name}` span in {spans:#?}"))
}

async fn app_view(c: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Value {
    let mut req = c.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

fn config(endpoint_keys: &str, app: u16) -> String {
    format!(
        "address: 127.0.0.1:{{port}}
idp_provider: local
cookie_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
local_users:
  - username: alice
    email: alice@example.com
    password_hash: '{hash}'
otel_traces_exporter: otlp
{endpoint_keys}
otel_exporter_otlp_headers: Authorization=Bearer%20s3cret-collector-token
otel_resource_attributes: [deployment.environment=test]
otel_bsp_schedule_delay: 100
routes:
  - from: https://app.localhost
    to: http://127.0.0.1:{app}
    name: app
    allow_public_unauthenticated_access: true
  - from: https://private.localhost
    to: http://127.0.0.1:{app}
    name: private
    allowed_domains: [example.com]
",
        hash = hash("wonderland")
    )
}

async fn spans_for_one_transport(rx: &Receiver, endpoint_keys: &str, transport: &str) {
    let gh = Gatehouse::start(&config(endpoint_keys, rx.app));
    let c = gh.client(&["app.localhost", "private.localhost"]);
    let url = gh.url("app.localhost", "/hello?token=query-secret");

    // A sampled client trace is continued: same trace id, the client's
    // span as the request span's parent, the upstream span named upstream.
    let parent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let seen = app_view(
        &c,
        &url,
        &[("traceparent", &parent), ("tracestate", "vendor=kept")],
    )
    .await;
    assert_eq!(seen["valid"], true, "{seen}");
    assert_eq!(seen["trace_id"], CLIENT_TRACE);
    assert_ne!(seen["span_id"], CLIENT_SPAN);
    assert_eq!(seen["sampled"], true);
    assert_eq!(seen["tracestate"], "vendor=kept");
    let spans = rx.trace(CLIENT_TRACE, 3);
    let spans: Vec<Value> = spans
        .into_iter()
        .filter(|s| s["transport"] == transport)
        .collect();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let root = named(&spans, "GET");
    let authorize = named(&spans, "authorize");
    let upstream = named(&spans, "upstream");
    assert_eq!(root["parent_span_id"], CLIENT_SPAN);
    assert_eq!(root["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(root["name"], "GET app");
    let a = &root["attributes"];
    assert_eq!(a["http.request.method"], "GET");
    assert_eq!(a["url.path"], "/hello");
    assert_eq!(a["http.response.status_code"], 200);
    assert_eq!(a["upstream_cluster"], "app");
    assert_eq!(a["server.address"], format!("app.localhost:{}", gh.port));
    assert_eq!(a["url.scheme"], "https");
    assert!(
        a["guid:x-request-id"]
            .as_str()
            .is_some_and(|s| s.len() == 32)
    );
    // The parent is remote (SpanFlags: sampled, has-is-remote, is-remote).
    assert_eq!(root["flags"], 0x301);
    assert_eq!(authorize["parent_span_id"], root["span_id"]);
    assert_eq!(authorize["kind"], 1, "SPAN_KIND_INTERNAL");
    assert_eq!(
        authorize["attributes"]["gatehouse.authorize.result"],
        "allow"
    );
    assert_eq!(upstream["parent_span_id"], root["span_id"]);
    assert_eq!(upstream["kind"], 3, "SPAN_KIND_CLIENT");
    assert_eq!(upstream["span_id"], seen["span_id"]);
    assert_eq!(upstream["attributes"]["server.port"], rx.app);
    assert_eq!(upstream["attributes"]["http.response.status_code"], 200);
    // Phases lie within the request.
    for child in [authorize, upstream] {
        assert!(child["start"].as_u64() >= root["start"].as_u64());
        assert!(child["end"].as_u64() <= root["end"].as_u64());
    }
    assert_eq!(root["resource"]["service.name"], "gatehouse");
    assert_eq!(root["resource"]["deployment.environment"], "test");
    assert_eq!(root["scope"], "gatehouse");
    // The collector's credentials went with the export, decoded.
    assert_eq!(root["authorization"], "Bearer s3cret-collector-token");

    // No client trace: a new, sampled one (otel_traces_sampler_arg: 1),
    // without the client's orphan tracestate.
    let seen = app_view(
        &c,
        &gh.url("app.localhost", "/new"),
        &[("tracestate", "vendor=orphan")],
    )
    .await;
    assert_eq!(seen["valid"], true);
    assert_eq!(seen["sampled"], true);
    assert_eq!(seen["tracestate"], Value::Null);
    let fresh = rx.trace(seen["trace_id"].as_str().unwrap(), 3);
    assert_eq!(named(&fresh, "GET")["parent_span_id"], "");

    // An invalid traceparent starts a new trace and loses its tracestate.
    let seen = app_view(
        &c,
        &gh.url("app.localhost", "/bad"),
        &[
            (
                "traceparent",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            ),
            ("tracestate", "vendor=dropped"),
        ],
    )
    .await;
    assert_eq!(seen["valid"], true);
    assert_ne!(seen["trace_id"], CLIENT_TRACE.to_string());
    assert_eq!(seen["tracestate"], Value::Null);

    // An unsampled client trace is passed on, unsampled, and not exported.
    let quiet = "0af7651916cd43dd8448eb211c80319c";
    let seen = app_view(
        &c,
        &gh.url("app.localhost", "/quiet"),
        &[("traceparent", &format!("00-{quiet}-b7ad6b7169203331-00"))],
    )
    .await;
    assert_eq!(seen["trace_id"], quiet);
    assert_eq!(seen["sampled"], false);

    // A request sent to sign in: the request and authorize spans say so.
    let signin_trace = "11111111111111111111111111111111";
    let resp = c
        .get(gh.url("private.localhost", "/"))
        .header(
            "traceparent",
            format!("00-{signin_trace}-2222222222222222-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let spans = rx.trace(signin_trace, 2);
    assert_eq!(
        spans.len(),
        2,
        "no upstream span when none was asked: {spans:#?}"
    );
    assert_eq!(
        named(&spans, "GET")["attributes"]["http.response.status_code"],
        302
    );
    assert_eq!(
        named(&spans, "authorize")["attributes"]["gatehouse.authorize.result"],
        "sign_in"
    );

    // Batches go out in order: by now an export of the earlier,
    // unsampled trace would have arrived.
    assert!(
        !rx.all().iter().any(|s| s["trace_id"] == quiet),
        "an unsampled trace was exported"
    );
    let everything = serde_json::to_string(&rx.all()).unwrap();
    assert!(
        !everything.contains("query-secret"),
        "a query reached a span"
    );
    assert!(!everything.contains("alice"), "the user reached a span");
    // The collector's token is in no log line.
    assert!(!gh.log_text().contains("s3cret-collector-token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_a_real_otlp_receiver_over_http_protobuf() {
    let rx = Receiver::start();
    let keys = format!("otel_exporter_otlp_endpoint: http://127.0.0.1:{}", rx.http);
    spans_for_one_transport(&rx, &keys, "http").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_a_real_otlp_receiver_over_grpc() {
    let rx = Receiver::start();
    let keys = format!(
        "otel_exporter_otlp_traces_endpoint: http://127.0.0.1:{}\notel_exporter_otlp_protocol: grpc",
        rx.grpc
    );
    spans_for_one_transport(&rx, &keys, "grpc").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_is_down_costs_requests_nothing() {
    let rx = Receiver::start();
    let dead = free_port();
    let mport = free_port();
    let yaml = config(
        &format!(
            "otel_exporter_otlp_endpoint: http://127.0.0.1:{dead}\nmetrics_address: 127.0.0.1:{mport}\notel_exporter_otlp_timeout: 500"
        ),
        rx.app,
    );
    let gh = Gatehouse::start(&yaml);
    let c = gh.client(&["app.localhost"]);
    for _ in 0..5 {
        let seen = app_view(&c, &gh.url("app.localhost", "/"), &[]).await;
        assert_eq!(seen["valid"], true);
    }
    // The failed export is counted and warned about, without the headers.
    let deadline = Instant::now() + Duration::from_secs(20);
    let failed = loop {
        let text = reqwest::get(format!("http://127.0.0.1:{mport}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let n: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("gatehouse_trace_spans_total{outcome=\"failed\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if n >= 15 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(failed >= 15, "5 requests, 3 spans each: {failed} failed");
    assert!(gh.wait_log("OTLP export failed", 0));
    assert!(!gh.log_text().contains("s3cret-collector-token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_tracing_a_clients_trace_context_passes_through_untouched() {
    let rx = Receiver::start();
    let gh = Gatehouse::start(&format!(
        "address: 127.0.0.1:{{port}}
routes:
  - from: https://app.localhost
    to: http://127.0.0.1:{}
    allow_public_unauthenticated_access: true
",
        rx.app
    ));
    let c = gh.client(&["app.localhost"]);
    let parent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let seen = app_view(
        &c,
        &gh.url("app.localhost", "/"),
        &[("traceparent", &parent)],
    )
    .await;
    assert_eq!(seen["traceparent"], parent);
    assert_eq!(seen["span_id"], CLIENT_SPAN);
}

//! `health_check_addr`: Pomerium's health endpoints on a listener of their
//! own (`/startupz`, `/readyz`, `/healthz`, `/status`), for probes and
//! `pomerium health`-style checks. Every host of the main listener also
//! answers `/ping` and `/healthz` with `OK` (see [`crate::dispatch`]).
//!
//! The checks, each `RUNNING`, `TERMINATING` or `UNAVAILABLE` with an
//! error:
//! - `config.loaded`: a configuration is in force (its route count);
//! - `proxy.service`: the main listener serves; `TERMINATING` while
//!   draining;
//! - `storage.backend`: the session store answers a lookup within 2 s.
//!
//! `/startupz` is 200 once every check has reported; `/readyz` when every
//! check is `RUNNING` without error; `/healthz` when none has an error
//! (`TERMINATING` is healthy). Otherwise 503. The body maps each check to
//! its status, as Pomerium's.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Method, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use gatehouse_identity::store::SessionStore;

use crate::Proxy;

/// How long the session store may take to answer a probe.
const STORE_PROBE: Duration = Duration::from_secs(2);

/// One check's state.
struct Check {
    name: &'static str,
    status: &'static str,
    error: Option<String>,
    attributes: Vec<(&'static str, String)>,
}

impl Check {
    fn to_json(&self) -> Value {
        let mut v = json!({ "status": self.status });
        if let Some(e) = &self.error {
            v["error"] = json!(e);
        }
        if !self.attributes.is_empty() {
            v["attributes"] = self
                .attributes
                .iter()
                .map(|(k, val)| json!({"Key": k, "Value": val}))
                .collect();
        }
        v
    }
}

async fn checks(proxy: &Proxy) -> Vec<Check> {
    let rt = proxy.runtime();
    let config = Check {
        name: "config.loaded",
        status: "RUNNING",
        error: None,
        attributes: vec![
            ("routes", rt.config.routes.len().to_string()),
            ("source", rt.config.source.display().to_string()),
        ],
    };
    let draining = proxy.draining.load(Ordering::Relaxed);
    let service = Check {
        name: "proxy.service",
        status: if draining { "TERMINATING" } else { "RUNNING" },
        error: None,
        attributes: Vec::new(),
    };
    let store = store_state(proxy).await;
    let storage = Check {
        name: "storage.backend",
        status: store.1,
        error: store.0,
        attributes: vec![("type", proxy.storage.describe())],
    };
    vec![config, service, storage]
}

/// The session store's state, probed at most once a second whatever the
/// number of probes (a lookup of an id no session has: answered by every
/// backend that works, an error or nothing in time from one that does not).
async fn store_state(proxy: &Proxy) -> (Option<String>, &'static str) {
    static LAST: std::sync::Mutex<Option<(std::time::Instant, Option<String>)>> =
        std::sync::Mutex::new(None);
    {
        let last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, error)) = &*last
            && at.elapsed() < Duration::from_secs(1)
        {
            let status = if error.is_some() {
                "UNAVAILABLE"
            } else {
                "RUNNING"
            };
            return (error.clone(), status);
        }
    }
    let probe = gatehouse_identity::session::SessionId::random();
    let error = match tokio::time::timeout(STORE_PROBE, proxy.store.get(&probe)).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", STORE_PROBE.as_secs())),
    };
    *LAST.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((std::time::Instant::now(), error.clone()));
    let status = if error.is_some() {
        "UNAVAILABLE"
    } else {
        "RUNNING"
    };
    (error, status)
}

/// The answer for one probe path, or `None` for a path that is not one.
async fn answer(proxy: &Proxy, path: &str) -> Option<(StatusCode, Value)> {
    let all = match path {
        "/startupz" | "/readyz" | "/healthz" | "/status" => checks(proxy).await,
        _ => return None,
    };
    let map: serde_json::Map<String, Value> = all
        .iter()
        .map(|c| (c.name.to_string(), c.to_json()))
        .collect();
    let ok = match path {
        "/startupz" => true,
        "/readyz" => all
            .iter()
            .all(|c| c.status == "RUNNING" && c.error.is_none()),
        "/healthz" => all.iter().all(|c| c.error.is_none()),
        _ => {
            let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
            names.sort_unstable();
            return Some((StatusCode::OK, json!({"statuses": map, "checks": names})));
        }
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Some((status, Value::Object(map)))
}

/// Serves the health endpoints on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, proxy: Arc<Proxy>) {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioIo, TokioTimer};
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let proxy = proxy.clone();
                async move {
                    let mut resp = Response::new(Full::new(bytes::Bytes::new()));
                    let head = req.method() == Method::HEAD;
                    if req.method() != Method::GET && !head {
                        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                        resp.headers_mut()
                            .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
                        return Ok::<_, std::convert::Infallible>(resp);
                    }
                    match answer(&proxy, req.uri().path()).await {
                        Some((status, body)) => {
                            *resp.status_mut() = status;
                            resp.headers_mut().insert(
                                header::CONTENT_TYPE,
                                http::HeaderValue::from_static("application/json"),
                            );
                            resp.headers_mut().insert(
                                header::CACHE_CONTROL,
                                http::HeaderValue::from_static("no-store"),
                            );
                            if !head {
                                let text =
                                    serde_json::to_string_pretty(&body).unwrap_or_default() + "\n";
                                *resp.body_mut() = Full::new(bytes::Bytes::from(text));
                            }
                        }
                        None => *resp.status_mut() = StatusCode::NOT_FOUND,
                    }
                    Ok(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

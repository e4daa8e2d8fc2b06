//! How a route spreads requests over its targets and leaves failing ones
//! out: `load_balancing_policy`, `outlier_detection` and `health_checks`,
//! in Envoy's shapes as Pomerium passes them on.

use std::time::Duration;

use super::Compiler;
use crate::compiled::{HealthCheck, HealthCheckKind, LoadBalancing, OutlierDetection};
use crate::de::Spanned;
use crate::yaml::{Node, Value};

impl Compiler<'_> {
    /// `load_balancing_policy`: Pomerium's names, in any case, with or
    /// without the `LOAD_BALANCING_POLICY_` prefix of its API.
    pub(super) fn load_balancing(&mut self, v: Option<&Spanned<String>>) -> LoadBalancing {
        let Some(v) = v else {
            return LoadBalancing::default();
        };
        let name = v.value.trim().to_ascii_lowercase();
        let name = name.strip_prefix("load_balancing_policy_").unwrap_or(&name);
        match name {
            "" | "round_robin" => LoadBalancing::RoundRobin,
            "least_request" => LoadBalancing::LeastRequest,
            "random" => LoadBalancing::Random,
            "ring_hash" => LoadBalancing::RingHash,
            "maglev" => LoadBalancing::Maglev,
            other => {
                self.error(
                    &v.mark,
                    format!("load_balancing_policy `{other}` must be round_robin, least_request, random, ring_hash or maglev"),
                );
                LoadBalancing::default()
            }
        }
    }

    /// `outlier_detection` (Envoy's defaults for what is not given).
    pub(super) fn outlier_detection(&mut self, node: &Node) -> Option<OutlierDetection> {
        if node.is_null() {
            return None;
        }
        let Value::Map(entries) = &node.value else {
            self.error(&node.mark, "`outlier_detection` must be a mapping (consecutive_5xx, consecutive_gateway_failure, base_ejection_time, max_ejection_percent, ...)");
            return None;
        };
        let mut o = OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
        };
        for (k, v) in entries {
            let key = k.as_str().unwrap_or_default();
            match key {
                "consecutive_5xx" => o.consecutive_5xx = self.count(v, key),
                "consecutive_gateway_failure" => {
                    o.consecutive_gateway_failure = self.count(v, key)
                }
                "base_ejection_time" => o.base_ejection_time = self.duration(v, key),
                "max_ejection_time" => o.max_ejection_time = self.duration(v, key),
                "max_ejection_percent" => {
                    o.max_ejection_percent = self.count(v, key).min(100)
                }
                // Envoy's knobs that change nothing here, said so.
                "interval" | "enforcing_consecutive_5xx" | "enforcing_consecutive_gateway_failure"
                | "max_ejection_time_jitter" => self.warn(
                    &k.mark,
                    format!("outlier_detection.{key} has no effect in gatehouse (targets are judged on every answer)"),
                ),
                "success_rate_minimum_hosts" | "success_rate_request_volume"
                | "success_rate_stdev_factor" | "enforcing_success_rate"
                | "failure_percentage_threshold" | "failure_percentage_minimum_hosts"
                | "failure_percentage_request_volume" | "enforcing_failure_percentage"
                | "enforcing_failure_percentage_local_origin" | "consecutive_local_origin_failure"
                | "enforcing_consecutive_local_origin_failure" | "enforcing_local_origin_success_rate"
                | "split_external_local_origin_errors" | "always_eject_one_host"
                | "successful_active_health_check_uneject_host" => self.warn(
                    &k.mark,
                    format!("outlier_detection.{key} is not implemented: only consecutive failures eject"),
                ),
                other => self.error(&k.mark, format!("unknown outlier_detection option `{other}`")),
            }
        }
        Some(o)
    }

    /// `health_checks`: a list of Envoy health checks (HTTP or TCP).
    pub(super) fn health_checks(&mut self, node: &Node) -> Vec<HealthCheck> {
        let mut out = Vec::new();
        let items = match &node.value {
            Value::Seq(items) => items,
            _ if node.is_null() => return out,
            _ => {
                self.error(&node.mark, "`health_checks` must be a list");
                return out;
            }
        };
        for item in items {
            let Value::Map(entries) = &item.value else {
                self.error(&item.mark, "each health check must be a mapping");
                continue;
            };
            let mut check = HealthCheck {
                timeout: Duration::from_secs(5),
                interval: Duration::from_secs(10),
                healthy_threshold: 1,
                unhealthy_threshold: 2,
                kind: HealthCheckKind::Tcp,
            };
            let mut kind_given = false;
            for (k, v) in entries {
                let key = k.as_str().unwrap_or_default();
                match key {
                    "timeout" => check.timeout = self.duration(v, key),
                    "interval" => check.interval = self.duration(v, key),
                    "healthy_threshold" => check.healthy_threshold = self.count(v, key).max(1),
                    "unhealthy_threshold" => {
                        check.unhealthy_threshold = self.count(v, key).max(1)
                    }
                    "tcp_health_check" => {
                        kind_given = true;
                        self.tcp_check(v);
                    }
                    "http_health_check" => {
                        kind_given = true;
                        check.kind = self.http_check(v);
                    }
                    "grpc_health_check" | "custom_health_check" => self.error(
                        &k.mark,
                        format!("health_checks: `{key}` is not supported (http_health_check or tcp_health_check)"),
                    ),
                    "interval_jitter" | "initial_jitter" | "no_traffic_interval"
                    | "unhealthy_interval" | "unhealthy_edge_interval" | "healthy_edge_interval"
                    | "event_log_path" | "always_log_health_check_failures"
                    | "reuse_connection" => self.warn(
                        &k.mark,
                        format!("health_checks.{key} has no effect in gatehouse"),
                    ),
                    other => self.error(&k.mark, format!("unknown health check option `{other}`")),
                }
            }
            if !kind_given {
                self.error(
                    &item.mark,
                    "a health check needs `http_health_check` or `tcp_health_check`",
                );
                continue;
            }
            // Probes are bounded: at most one per second per target, each
            // done before the next is due.
            if check.interval < Duration::from_secs(1)
                || check.timeout.is_zero()
                || check.timeout > check.interval
            {
                self.error(
                    &item.mark,
                    "a health check needs an `interval` of at least 1s and a non-zero `timeout` no longer than it",
                );
                continue;
            }
            out.push(check);
        }
        out
    }

    /// `tcp_health_check`: a connection is the probe; `send`/`receive`
    /// payloads are not exchanged (said, since a check that expects an
    /// answer passes on the connection alone).
    fn tcp_check(&mut self, node: &Node) {
        match &node.value {
            Value::Map(entries) => {
                for (k, _) in entries {
                    match k.as_str().unwrap_or_default() {
                        key @ ("send" | "receive" | "proxy_protocol_config") => self.warn(
                            &k.mark,
                            format!("tcp_health_check.{key} has no effect in gatehouse: a target that accepts the connection is healthy"),
                        ),
                        other => self.error(
                            &k.mark,
                            format!("unknown tcp_health_check option `{other}`"),
                        ),
                    }
                }
            }
            _ if node.is_null() => {}
            _ => self.error(
                &node.mark,
                "tcp_health_check must be a mapping (`{}` for a plain connection check)",
            ),
        }
    }

    fn http_check(&mut self, node: &Node) -> HealthCheckKind {
        let mut path = "/".to_string();
        let mut host = None;
        let mut expected = Vec::new();
        if !matches!(node.value, Value::Map(_)) && !node.is_null() {
            self.error(
                &node.mark,
                "http_health_check must be a mapping (path, host, expected_statuses)",
            );
        }
        if let Value::Map(entries) = &node.value {
            for (k, v) in entries {
                let key = k.as_str().unwrap_or_default();
                match key {
                    "path" => match v.as_str() {
                        Some(p) if p.starts_with('/') => path = p.to_string(),
                        _ => self.error(&v.mark, "http_health_check.path must start with `/`"),
                    },
                    "host" => host = v.as_str().map(str::to_string),
                    "expected_statuses" => {
                        let Value::Seq(ranges) = &v.value else {
                            self.error(&v.mark, "expected_statuses must be a list of {start, end}");
                            continue;
                        };
                        for r in ranges {
                            let n = |f: &str| {
                                r.get(f)
                                    .and_then(Node::as_str)
                                    .and_then(|s| s.parse::<u16>().ok())
                            };
                            match (n("start"), n("end")) {
                                (Some(s), Some(e)) if (100..=599).contains(&s) && e > s && e <= 600 => {
                                    expected.push((s, e))
                                }
                                _ => self.error(
                                    &r.mark,
                                    "an expected_statuses range is {start, end}: 100 <= start < end <= 600 (end excluded)",
                                ),
                            }
                        }
                    }
                    "request_headers_to_add"
                    | "request_headers_to_remove"
                    | "codec_client_type"
                    | "retriable_statuses"
                    | "send"
                    | "receive"
                    | "method" => self.warn(
                        &k.mark,
                        format!("http_health_check.{key} has no effect in gatehouse"),
                    ),
                    other => self.error(
                        &k.mark,
                        format!("unknown http_health_check option `{other}`"),
                    ),
                }
            }
        }
        if expected.is_empty() {
            expected.push((200, 300));
        }
        HealthCheckKind::Http {
            path,
            host,
            expected,
        }
    }

    fn count(&mut self, v: &Node, key: &str) -> u32 {
        match v.as_str().and_then(|s| s.trim().parse::<u32>().ok()) {
            Some(n) => n,
            None => {
                self.error(&v.mark, format!("`{key}` must be a whole number"));
                0
            }
        }
    }

    fn duration(&mut self, v: &Node, key: &str) -> Duration {
        match v.as_str().map(crate::model::parse_duration) {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.error(&v.mark, format!("`{key}`: {e}"));
                Duration::ZERO
            }
            None => {
                self.error(&v.mark, format!("`{key}` must be a duration like `10s`"));
                Duration::ZERO
            }
        }
    }
}

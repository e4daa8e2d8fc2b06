//! OpenTelemetry tracing (`otel_*`), read as Pomerium reads it: tracing is
//! on with `otel_traces_exporter: otlp`; the traces-specific keys win over
//! the general ones; the protocol, when not named, is guessed from the
//! endpoint as Pomerium does.

use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::Compiler;
use crate::compiled::{OtlpProtocol, Tracing};
use crate::de::Spanned;
use crate::model::{Millis, Options, PairList};

/// The gRPC method spans are exported to.
const GRPC_METHOD: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

impl Compiler<'_> {
    pub(super) fn tracing(&mut self, opts: &Options) -> Option<Tracing> {
        let exporter = opts.otel_traces_exporter.as_ref()?;
        match exporter.value.trim() {
            "otlp" => {}
            "" | "none" | "noop" => return None,
            other => {
                self.error(
                    &exporter.mark,
                    format!("otel_traces_exporter `{other}` must be `otlp` or `none`"),
                );
                return None;
            }
        }
        // The endpoint: the traces-specific one as written, else the
        // general one (to which `http/protobuf` adds `/v1/traces`).
        let (endpoint, specific) = match (
            &opts.otel_exporter_otlp_traces_endpoint,
            &opts.otel_exporter_otlp_endpoint,
        ) {
            (Some(e), _) => (e.clone(), true),
            (None, Some(e)) => (e.clone(), false),
            (None, None) => {
                self.warn(
                    &exporter.mark,
                    "otel_traces_exporter: otlp without otel_exporter_otlp_endpoint: spans go to http://localhost:4318 (the OTLP default)",
                );
                (
                    Spanned {
                        value: "http://localhost:4318".to_string(),
                        mark: exporter.mark.clone(),
                    },
                    false,
                )
            }
        };
        // The value is not echoed: it may hold credentials.
        let url = match url::Url::parse(endpoint.value.trim()) {
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                self.error(
                    &endpoint.mark,
                    "the OTLP endpoint must not hold credentials: give them in otel_exporter_otlp_headers (`Authorization=Basic%20…`)",
                );
                return None;
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            _ => {
                self.error(
                    &endpoint.mark,
                    "the OTLP endpoint must be a URL like `http://localhost:4318` (http or https)",
                );
                return None;
            }
        };
        let protocol = match opts
            .otel_exporter_otlp_traces_protocol
            .as_ref()
            .or(opts.otel_exporter_otlp_protocol.as_ref())
        {
            Some(p) => match p.value.trim().to_ascii_lowercase().as_str() {
                "grpc" => OtlpProtocol::Grpc,
                "http/protobuf" => OtlpProtocol::HttpProtobuf,
                "" => guess_protocol(&url, specific),
                other => {
                    self.error(
                        &p.mark,
                        format!("the OTLP protocol `{other}` must be `grpc` or `http/protobuf`"),
                    );
                    return None;
                }
            },
            None => guess_protocol(&url, specific),
        };
        let target = match protocol {
            OtlpProtocol::HttpProtobuf if specific => url.to_string(),
            OtlpProtocol::HttpProtobuf => {
                let mut u = url.clone();
                let path = format!("{}/v1/traces", u.path().trim_end_matches('/'));
                u.set_path(&path);
                u.to_string()
            }
            OtlpProtocol::Grpc => format!(
                "{}://{}{GRPC_METHOD}",
                url.scheme(),
                &url[url::Position::BeforeHost..url::Position::AfterPort]
            ),
        };
        let endpoint_uri = match target.parse::<http::Uri>() {
            Ok(u) => u,
            Err(e) => {
                self.error(&endpoint.mark, format!("the OTLP endpoint: {e}"));
                return None;
            }
        };
        let headers = self.otel_pairs(
            opts.otel_exporter_otlp_traces_headers
                .as_ref()
                .or(opts.otel_exporter_otlp_headers.as_ref()),
            "otel_exporter_otlp_headers",
        );
        let headers = headers
            .into_iter()
            .filter_map(|(k, v, mark)| {
                let name = HeaderName::from_bytes(k.as_bytes());
                let value = HeaderValue::from_str(&v);
                match (name, value) {
                    (Ok(n), Ok(mut v)) => {
                        v.set_sensitive(true);
                        Some((n, v))
                    }
                    _ => {
                        // Neither part is echoed: either may be a credential.
                        self.error(
                            &mark,
                            "otel_exporter_otlp_headers: an entry is not a valid header (a name of letters, digits and `-`, a value of visible characters)",
                        );
                        None
                    }
                }
            })
            .collect();
        let timeout = self.otel_millis(
            opts.otel_exporter_otlp_traces_timeout
                .as_ref()
                .or(opts.otel_exporter_otlp_timeout.as_ref()),
            Duration::from_secs(10),
            "the OTLP export timeout",
        );
        let sampler_ratio = match &opts.otel_traces_sampler_arg {
            None => 1.0,
            Some(v) if v.value.is_nan() => {
                self.error(
                    &v.mark,
                    "otel_traces_sampler_arg must be a number from 0 to 1",
                );
                1.0
            }
            Some(v) => v.value.clamp(0.0, 1.0),
        };
        let mut resource = vec![("service.name".to_string(), "gatehouse".to_string())];
        for (k, v, _) in self.otel_pairs(
            opts.otel_resource_attributes.as_ref(),
            "otel_resource_attributes",
        ) {
            match resource.iter_mut().find(|(name, _)| *name == k) {
                Some(slot) => slot.1 = v,
                None => resource.push((k, v)),
            }
        }
        let attribute_value_limit = opts
            .otel_attribute_value_length_limit
            .as_ref()
            .map_or(256, |v| v.value.clamp(64, 32768) as usize);
        let schedule_delay = self
            .otel_millis(
                opts.otel_bsp_schedule_delay.as_ref(),
                Duration::from_secs(5),
                "otel_bsp_schedule_delay",
            )
            .max(Duration::from_millis(100));
        let max_batch = opts
            .otel_bsp_max_export_batch_size
            .as_ref()
            .map_or(512, |v| v.value.clamp(1, Tracing::QUEUE as i64) as usize);
        Some(Tracing {
            endpoint: endpoint_uri,
            protocol,
            headers,
            timeout,
            sampler_ratio,
            resource,
            attribute_value_limit,
            schedule_delay,
            max_batch,
        })
    }

    /// `key=value` entries (headers, resource attributes); values may be
    /// percent-encoded, as in `OTEL_EXPORTER_OTLP_HEADERS`.
    fn otel_pairs(
        &mut self,
        list: Option<&Spanned<PairList>>,
        key: &str,
    ) -> Vec<(String, String, crate::yaml::Mark)> {
        let Some(list) = list else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, entry) in list.value.0.iter().enumerate() {
            match entry.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    let v = percent_decode(v.trim());
                    out.push((k.trim().to_string(), v, list.mark.clone()));
                }
                // Not echoed: a header entry may be a credential.
                _ => self.error(
                    &list.mark,
                    format!("{key}: entry {} must be written `name=value`", i + 1),
                ),
            }
        }
        out
    }

    fn otel_millis(
        &mut self,
        v: Option<&Spanned<Millis>>,
        default: Duration,
        what: &str,
    ) -> Duration {
        match v {
            None => default,
            Some(d) if d.value.0.is_zero() => {
                self.error(&d.mark, format!("{what} must be greater than 0"));
                default
            }
            Some(d) => d.value.0.min(Duration::from_secs(300)),
        }
    }
}

/// Pomerium's guess (`BestEffortProtocolFromOTLPEndpoint`): port 4318 is
/// HTTP, 4317 gRPC; otherwise a path fits HTTP on the traces-specific
/// endpoint and gRPC on the general one.
fn guess_protocol(url: &url::Url, specific: bool) -> OtlpProtocol {
    match url.port() {
        Some(4318) => OtlpProtocol::HttpProtobuf,
        Some(4317) => OtlpProtocol::Grpc,
        _ => {
            let has_path = !url.path().trim_matches('/').is_empty();
            match (has_path, specific) {
                (true, true) | (false, false) => OtlpProtocol::HttpProtobuf,
                (false, true) | (true, false) => OtlpProtocol::Grpc,
            }
        }
    }
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_guess_follows_pomerium() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(
            guess_protocol(&u("http://c:4318"), false),
            OtlpProtocol::HttpProtobuf
        );
        assert_eq!(
            guess_protocol(&u("http://c:4317/x"), true),
            OtlpProtocol::Grpc
        );
        assert_eq!(
            guess_protocol(&u("http://c:9/v1/traces"), true),
            OtlpProtocol::HttpProtobuf
        );
        assert_eq!(guess_protocol(&u("http://c:9"), true), OtlpProtocol::Grpc);
        assert_eq!(
            guess_protocol(&u("http://c:9/sub"), false),
            OtlpProtocol::Grpc
        );
        assert_eq!(
            guess_protocol(&u("http://c:9"), false),
            OtlpProtocol::HttpProtobuf
        );
    }

    #[test]
    fn header_values_are_percent_decoded() {
        assert_eq!(percent_decode("Basic%20abc"), "Basic abc");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("plain"), "plain");
    }
}

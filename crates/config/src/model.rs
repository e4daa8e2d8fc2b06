//! The configuration file as written: Pomerium's key names, every value kept
//! with its position. Nothing here is validated beyond its shape; see
//! [`crate::compile`] for meaning.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::de::{RawNode, Spanned};

type S<T> = Option<Spanned<T>>;

/// Top-level options (Pomerium `config.yaml`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Options {
    // --- listeners and TLS
    pub address: S<String>,
    pub insecure_server: Option<bool>,
    pub http_redirect_addr: S<String>,
    pub certificates: Option<Vec<Spanned<CertificateOption>>>,
    pub certificate: S<String>,
    pub certificate_key: S<String>,
    pub certificate_file: S<String>,
    pub certificate_key_file: S<String>,
    pub certificate_authority: S<String>,
    pub certificate_authority_file: S<String>,
    pub timeout_read: S<GoDuration>,
    pub timeout_write: S<GoDuration>,
    pub timeout_idle: S<GoDuration>,
    pub default_upstream_timeout: S<GoDuration>,
    pub set_response_headers: S<StringMap>,
    pub skip_xff_append: Option<bool>,
    pub xff_num_trusted_hops: Option<Spanned<u32>>,
    // --- how requests are made canonical (Envoy's connection manager
    // options as Pomerium sets them)
    pub normalize_path: Option<Spanned<bool>>,
    pub merge_slashes: Option<bool>,
    pub path_with_escaped_slashes_action: S<String>,
    pub headers_with_underscores_action: S<String>,
    /// gatehouse: peers (IPs or CIDRs) whose `X-Pomerium-Jwt-Assertion` is
    /// passed upstream as `X-Pomerium-Jwt-Assertion-For` (a gatehouse or
    /// Pomerium in front). Empty: never, the client's copy is dropped.
    pub trusted_assertion_sources: S<StringList>,
    /// gatehouse: peers (IPs or CIDRs) allowed to ask the forward-auth
    /// endpoint about a request (nginx, Caddy, Traefik in front). Default:
    /// loopback only.
    pub forward_auth_trusted_sources: S<StringList>,
    pub use_proxy_protocol: Option<bool>,
    /// Client certificates (Pomerium's `downstream_mtls`).
    pub downstream_mtls: Option<Spanned<DownstreamMtlsOptions>>,
    pub codec_type: S<String>,
    pub services: S<String>,
    pub grpc_address: S<String>,
    pub grpc_insecure: Option<bool>,
    pub grpc_client_timeout: S<GoDuration>,

    // --- routes
    pub routes: Option<Vec<Spanned<RouteOptions>>>,
    /// Legacy name of `routes`; both lists are used, `policy` first.
    pub policy: Option<Vec<Spanned<RouteOptions>>>,

    // --- authenticate / identity provider (sign-in issue)
    pub authenticate_service_url: S<String>,
    pub authenticate_internal_service_url: S<String>,
    pub idp_provider: S<String>,
    pub idp_provider_url: S<String>,
    pub idp_client_id: S<String>,
    pub idp_client_secret: S<String>,
    pub idp_client_secret_file: S<String>,
    pub idp_scopes: S<StringList>,
    pub idp_request_params: S<StringMap>,
    pub idp_access_token_allowed_audiences: S<StringList>,
    pub identity_providers: Option<RawNode>,
    pub bearer_token_format: S<String>,
    pub local_users_file: S<String>,
    pub local_users: Option<Vec<Spanned<LocalUser>>>,
    /// gatehouse: wrong passwords allowed per user/address within the window.
    pub login_throttle_failures: Option<Spanned<u32>>,
    pub login_throttle_window: S<GoDuration>,
    pub login_throttle_lockout: S<GoDuration>,
    pub signout_redirect_url: S<String>,
    pub programmatic_redirect_domain_whitelist: S<StringList>,

    // --- secrets and cookies
    pub shared_secret: S<String>,
    pub shared_secret_file: S<String>,
    pub cookie_secret: S<String>,
    pub cookie_secret_file: S<String>,
    pub cookie_name: S<String>,
    pub cookie_expire: S<GoDuration>,
    pub cookie_domain: S<String>,
    pub cookie_http_only: Option<bool>,
    pub cookie_secure: Option<bool>,
    pub cookie_same_site: S<String>,

    // --- upstream identity (assertion issue)
    pub signing_key: S<String>,
    pub signing_key_file: S<String>,
    pub jwt_claims_headers: S<ClaimsHeaders>,
    pub jwt_issuer_format: S<String>,
    pub pass_identity_headers: Option<bool>,
    /// Groups the assertion may carry: a list, or `{groups, infer_from_ppl}`.
    pub jwt_groups_filter: Option<RawNode>,

    // --- storage
    pub databroker_storage_type: S<String>,
    pub databroker_storage_connection_string: S<String>,
    pub databroker_storage_connection_string_file: S<String>,
    /// Redis over TLS (`rediss://`): the CA to trust instead of the system's,
    /// and a client certificate for mutual TLS (Pomerium's old Redis keys).
    pub databroker_storage_ca_file: S<String>,
    pub databroker_storage_cert_file: S<String>,
    pub databroker_storage_key_file: S<String>,
    /// gatehouse: how long signed-in users keep working from an instance's
    /// cache of hot sessions while Redis cannot be reached.
    pub databroker_storage_outage_grace: S<GoDuration>,

    // --- observability
    pub log_level: S<String>,
    pub proxy_log_level: S<String>,
    pub access_log_fields: S<StringList>,
    pub authorize_log_fields: S<StringList>,
    pub metrics_address: S<String>,
    pub metrics_basic_auth: S<String>,
    /// The metrics listener's own certificate (PEM or base64 of PEM, or files).
    pub metrics_certificate: S<String>,
    pub metrics_certificate_file: S<String>,
    pub metrics_certificate_key: S<String>,
    pub metrics_certificate_key_file: S<String>,
    /// The CA scrapers' client certificates must chain to.
    pub metrics_client_ca: S<String>,
    pub metrics_client_ca_file: S<String>,
    pub health_check_addr: S<String>,
    pub runtime_flags: Option<BTreeMap<String, bool>>,

    // --- automatic certificates (ACME)
    pub autocert: Option<bool>,
    pub autocert_dir: S<String>,
    pub autocert_ca: S<String>,
    pub autocert_email: S<String>,
    pub autocert_use_staging: Option<bool>,
    pub autocert_eab_key_id: S<String>,
    pub autocert_eab_mac_key: S<String>,
    pub autocert_trusted_ca: S<String>,
    pub autocert_trusted_ca_file: S<String>,

    // --- OpenTelemetry tracing (Pomerium's `otel_*`, also `OTEL_*` variables)
    pub otel_traces_exporter: S<String>,
    pub otel_traces_sampler_arg: S<f64>,
    pub otel_resource_attributes: S<PairList>,
    pub otel_log_level: S<String>,
    pub otel_attribute_value_length_limit: S<i64>,
    pub otel_exporter_otlp_endpoint: S<String>,
    pub otel_exporter_otlp_traces_endpoint: S<String>,
    pub otel_exporter_otlp_protocol: S<String>,
    pub otel_exporter_otlp_traces_protocol: S<String>,
    pub otel_exporter_otlp_headers: S<PairList>,
    pub otel_exporter_otlp_traces_headers: S<PairList>,
    pub otel_exporter_otlp_timeout: S<Millis>,
    pub otel_exporter_otlp_traces_timeout: S<Millis>,
    pub otel_bsp_schedule_delay: S<Millis>,
    pub otel_bsp_max_export_batch_size: S<i64>,

    // --- gatehouse: the console (routes and settings managed in a browser)
    pub console: Option<Spanned<ConsoleOptions>>,
}

/// `console:`: where the console is served and who may use it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConsoleOptions {
    /// The host it answers on, as a route's `from` (`https://console.example.com`).
    pub from: S<String>,
    /// Who may use it: a PPL policy, as on a route (required).
    pub policy: Option<RawNode>,
    /// Where console changes are kept when sessions are in memory (default
    /// `gatehouse-console.redb` beside the configuration file). With
    /// `databroker_storage_type: file` or `redis` they live in that store.
    pub storage_file: S<String>,
}

/// `downstream_mtls:`: which client certificates are trusted, and what a
/// missing or invalid one means.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DownstreamMtlsOptions {
    /// CA bundle: PEM, or base64 of PEM.
    pub ca: S<String>,
    pub ca_file: S<String>,
    /// Revocation lists: PEM, or base64 of PEM.
    pub crl: S<String>,
    pub crl_file: S<String>,
    /// `policy_with_default_deny` (default), `policy`, `reject_connection`.
    pub enforcement: S<String>,
    /// A list of single-key maps `{dns|email|uri|ip_address|user_principal_name: regex}`.
    pub match_subject_alt_names: Option<RawNode>,
    pub max_verify_depth: Option<Spanned<u32>>,
}

/// One entry of `certificates:` (Pomerium: `cert`/`key`, files or base64).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CertificateOption {
    pub cert: S<String>,
    pub key: S<String>,
}

/// One built-in directory user.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct LocalUser {
    pub username: String,
    pub email: String,
    pub name: String,
    pub groups: Vec<String>,
    pub password_hash: String,
}

/// One entry of `routes:`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RouteOptions {
    pub name: S<String>,
    pub description: S<String>,
    pub logo_url: S<String>,
    pub from: S<String>,
    pub to: S<StringList>,
    pub redirect: Option<RawNode>,
    pub response: Option<RawNode>,
    pub prefix: S<String>,
    pub path: S<String>,
    pub regex: S<String>,
    pub regex_priority_order: Option<i64>,
    pub prefix_rewrite: S<String>,
    pub regex_rewrite_pattern: S<String>,
    pub regex_rewrite_substitution: S<String>,
    pub host_rewrite: S<String>,
    pub host_rewrite_header: S<String>,
    pub host_path_regex_rewrite_pattern: S<String>,
    pub host_path_regex_rewrite_substitution: S<String>,
    pub preserve_host_header: Option<bool>,
    pub allow_websockets: Option<bool>,
    pub allow_spdy: Option<bool>,
    pub timeout: S<GoDuration>,
    pub idle_timeout: S<GoDuration>,
    pub tls_skip_verify: Option<bool>,
    pub tls_server_name: S<String>,
    pub tls_upstream_server_name: S<String>,
    pub tls_downstream_server_name: S<String>,
    /// The CA client certificates for this route must chain to (instead of
    /// `downstream_mtls.ca`).
    pub tls_downstream_client_ca: S<String>,
    pub tls_downstream_client_ca_file: S<String>,
    pub tls_custom_ca: S<String>,
    pub tls_custom_ca_file: S<String>,
    pub tls_client_cert: S<String>,
    pub tls_client_key: S<String>,
    pub tls_client_cert_file: S<String>,
    pub tls_client_key_file: S<String>,
    pub set_request_headers: S<StringMap>,
    pub remove_request_headers: S<StringList>,
    pub set_response_headers: S<StringMap>,
    pub rewrite_response_headers: Option<RawNode>,
    pub load_balancing_policy: S<String>,
    pub health_checks: Option<RawNode>,
    pub outlier_detection: Option<RawNode>,

    // --- authorization (compiled by the policy crate)
    pub allow_public_unauthenticated_access: Option<Spanned<bool>>,
    pub allow_any_authenticated_user: Option<Spanned<bool>>,
    pub cors_allow_preflight: Option<Spanned<bool>>,
    pub allowed_users: S<StringList>,
    pub allowed_domains: S<StringList>,
    pub allowed_idp_claims: Option<RawNode>,
    pub policy: Option<RawNode>,
    /// More rules (Pomerium's console writes them): their allow lists join
    /// the route's, their `source_ppl` rules join its policy.
    pub sub_policies: Option<RawNode>,
    pub show_error_details: Option<bool>,

    // --- identity (later issues)
    pub pass_identity_headers: Option<bool>,
    pub jwt_claims_headers: S<ClaimsHeaders>,
    pub jwt_issuer_format: S<String>,
    pub jwt_groups_filter: Option<RawNode>,
    pub bearer_token_format: S<String>,
    pub idp_client_id: S<String>,
    pub idp_client_secret: S<String>,
    pub idp_access_token_allowed_audiences: S<StringList>,
    pub identity_providers: S<StringList>,
    pub depends_on: S<StringList>,
    pub cookie_same_site: S<String>,
    /// gatehouse: origins allowed to embed this route in a frame.
    pub frame_ancestors: S<StringList>,
}

/// A Go-style duration (`300ms`, `30s`, `5m`, `1h30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

/// A duration in whole milliseconds, as Pomerium reads the `otel_*`
/// durations (`5000`); a Go duration (`5s`) is taken too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub Duration);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t = text.trim();
        if let Ok(ms) = t.parse::<i64>() {
            return if ms < 0 {
                Err(de::Error::custom(format!(
                    "`{t}` is negative; expected milliseconds like `5000`"
                )))
            } else {
                Ok(Millis(Duration::from_millis(ms as u64)))
            };
        }
        parse_duration(t).map(Millis).map_err(|_| {
            de::Error::custom(format!(
                "`{t}` is not a duration; expected milliseconds like `5000` (or `5s`)"
            ))
        })
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(GoDuration)
            .map_err(de::Error::custom)
    }
}

/// Parses Go's `time.ParseDuration` syntax. Negative durations are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err(format!("invalid duration `{text}`: must not be negative"));
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() {
            return Err(format!("invalid duration `{text}`: expected a number"));
        }
        let value: f64 = num
            .parse()
            .map_err(|_| format!("invalid duration `{text}`: bad number `{num}`"))?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!(
                    "invalid duration `{text}`: missing unit (use ms, s, m or h, e.g. `30s`)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration `{text}`: unknown unit `{}` (use ns, us, ms, s, m or h, e.g. `30s`)",
                    other.trim()
                ));
            }
        };
        total += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total)
        .map_err(|_| format!("invalid duration `{text}`: out of range"))
}

/// A list given as a YAML list or as one comma/space separated string
/// (Pomerium accepts both, e.g. `idp_scopes: openid,email`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_list(d, &[',', ' ']).map(StringList)
    }
}

/// `name=value` entries (`otel_exporter_otlp_headers`): a list, or one
/// string with the entries separated by commas only (as
/// `OTEL_EXPORTER_OTLP_HEADERS`; a value may hold spaces).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairList(pub Vec<String>);

impl<'de> Deserialize<'de> for PairList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_list(d, &[',']).map(PairList)
    }
}

/// A list of strings, or one string split at any of `separators`.
fn string_list<'de, D: Deserializer<'de>>(
    d: D,
    separators: &'static [char],
) -> Result<Vec<String>, D::Error> {
    struct V(&'static [char]);
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of strings or a comma-separated string")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<String>, E> {
            Ok(s.split(self.0)
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<String>, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V(separators))
}

/// A string-to-string map whose values may be any scalar (`disable: true`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringMap(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names to values")
            }
            fn visit_unit<E: de::Error>(self) -> Result<StringMap, E> {
                Ok(StringMap::default())
            }
            /// The environment form `K:V,K2:V2` (Pomerium's `HEADERS`).
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StringMap, E> {
                let mut out = Vec::new();
                for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
                    let (k, v) = pair.split_once(':').ok_or_else(|| {
                        E::custom(format!("expected `Name:value`, found `{pair}`"))
                    })?;
                    out.push((k.trim().to_string(), v.trim().to_string()));
                }
                Ok(StringMap(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StringMap, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, ScalarString>()? {
                    out.push((k, v.0));
                }
                Ok(StringMap(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Any scalar, as the text it was written with.
struct ScalarString(String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(ScalarString)
    }
}

/// `jwt_claims_headers`: a list or comma string of claims (header
/// `X-Pomerium-Claim-<claim>`), or a map of header name to claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimsHeaders(pub Vec<(String, String)>);

impl ClaimsHeaders {
    fn from_claims(claims: Vec<String>) -> Self {
        ClaimsHeaders(
            claims
                .into_iter()
                .map(|c| (format!("x-pomerium-claim-{c}"), c))
                .collect(),
        )
    }
}

impl<'de> Deserialize<'de> for ClaimsHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ClaimsHeaders;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a list of claims, a comma-separated string, or a mapping of header to claim",
                )
            }
            fn visit_unit<E: de::Error>(self) -> Result<ClaimsHeaders, E> {
                Ok(ClaimsHeaders::default())
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ClaimsHeaders, E> {
                let list: StringList = StringList(
                    s.split([',', ' '])
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(String::from)
                        .collect(),
                );
                Ok(ClaimsHeaders::from_claims(list.0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ClaimsHeaders, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(ClaimsHeaders::from_claims(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClaimsHeaders, A::Error> {
                let mut out = Vec::new();
                while let Some((header, claim)) = map.next_entry::<String, String>()? {
                    out.push((header.to_ascii_lowercase(), claim));
                }
                Ok(ClaimsHeaders(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(
            parse_duration("14h").unwrap(),
            Duration::from_secs(14 * 3600)
        );
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("30").unwrap_err().contains("missing unit"));
        assert!(parse_duration("3d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
    }
}

//! The registry of every Pomerium key, and what gatehouse does with each:
//! honour it with Pomerium's meaning (in force), refuse it (the key protects
//! something gatehouse does not implement, so running without it would let
//! in requests the file means to keep out), report it as removed from
//! Pomerium, or accept it with no effect and say why that is harmless.
//! gatehouse's own keys are listed too, so the model and this table can be
//! checked against each other (tests.rs): a key the model reads is in the
//! table, a key in force is one the model reads, and every key of
//! Pomerium's `config/options.go` and `config/policy.go` is here.
//! docs/pomerium-compatibility.md is [`markdown`]'s output (a test keeps it
//! so).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::diagnostic::Diagnostic;
use crate::yaml::{Mark, Node, Value};

/// Where a key is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// A top-level option.
    Global,
    /// An option of one entry of `routes` / `policy`.
    Route,
    /// Both.
    Any,
}

/// What gatehouse does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Honoured with Pomerium's meaning; `note` says where gatehouse's
    /// reading narrows or extends it (empty when it does not).
    InForce { note: &'static str },
    /// gatehouse's own key (Pomerium has none by this name).
    Own { note: &'static str },
    /// An error: without the key, gatehouse would let in what the file keeps
    /// out. `risk` says what would happen if it were ignored.
    Refused { risk: &'static str },
    /// An error, as in Pomerium: the key was removed there.
    Removed { hint: &'static str },
    /// A warning: no effect in gatehouse, and harmless without it because
    /// `why`.
    Ignored { why: &'static str },
}

/// One key. `key` ending in `*` matches every key with that prefix (for
/// keys a newer Pomerium may add to a family; the table names each key
/// Pomerium has today).
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub scope: Scope,
    pub key: &'static str,
    pub status: Status,
    /// Sub-keys of a refused mapping, also refused through the environment
    /// (`DOWNSTREAM_MTLS_CA`).
    pub sub_keys: &'static [&'static str],
    /// Values that mean "off" beyond the empty ones (`services: all`).
    pub off_values: &'static [&'static str],
}

const fn entry(scope: Scope, key: &'static str, status: Status) -> Entry {
    Entry {
        scope,
        key,
        status,
        sub_keys: &[],
        off_values: &[],
    }
}

const fn in_force(scope: Scope, key: &'static str, note: &'static str) -> Entry {
    entry(scope, key, Status::InForce { note })
}

const fn own(scope: Scope, key: &'static str, note: &'static str) -> Entry {
    entry(scope, key, Status::Own { note })
}

const fn removed(key: &'static str, hint: &'static str) -> Entry {
    entry(Any, key, Status::Removed { hint })
}

const fn ignored(scope: Scope, key: &'static str, why: &'static str) -> Entry {
    entry(scope, key, Status::Ignored { why })
}

use Scope::{Any, Global, Route};

const NO_SSH: &str = "gatehouse serves no SSH (ssh:// routes are refused)";
const ONE_PROCESS: &str = "gatehouse runs every service in one process and authorizes each request itself with this file's routes and policies";
const NO_ENVOY: &str = "gatehouse has no Envoy";
const NO_CLUSTER: &str = "sessions stay in the store `databroker_storage_type` names; an instance that does not know a session asks the user to sign in";
const UPSTREAM_CREDENTIAL: &str =
    "no credential is sent upstream, so an upstream that requires one refuses the request";
const AVAILABILITY: &str = "it only affects availability: upstreams are tried without it";
const NO_MCP: &str = "MCP clients cannot sign in through gatehouse; the route's policy still applies to every request";
const NO_UPGRADES: &str = "upgrades other than websockets (allow_websockets) are refused";
const NO_RECORDING: &str = "sessions are not recorded (SSH is not served)";
const NO_INTERNAL_TLS: &str = "gatehouse makes no TLS calls between its own services";
const NO_GRPC: &str = "gatehouse has no gRPC listener, so nothing is served there";
const DNS: &str = "upstream names are resolved by the system resolver";

/// Every Pomerium key, and gatehouse's own, with what gatehouse does.
pub const KEYS: &[Entry] = &[
    // ================= global: in force
    in_force(Global, "address", ""),
    in_force(Global, "insecure_server", ""),
    in_force(Global, "http_redirect_addr", ""),
    in_force(Global, "certificates", ""),
    in_force(Global, "certificate", ""),
    in_force(Global, "certificate_key", ""),
    in_force(Global, "certificate_file", ""),
    in_force(Global, "certificate_key_file", ""),
    in_force(Global, "timeout_read", ""),
    in_force(Global, "timeout_idle", ""),
    in_force(
        Global,
        "timeout_write",
        "the whole request and response, as Envoy's `max_stream_duration`; a websocket tunnel is closed at the limit",
    ),
    in_force(Global, "default_upstream_timeout", ""),
    in_force(
        Global,
        "codec_type",
        "`http3` is refused (gatehouse serves no QUIC)",
    ),
    in_force(Global, "set_response_headers", ""),
    in_force(
        Global,
        "downstream_mtls",
        "`ca`, `ca_file`, `crl`, `crl_file`, `enforcement`, `match_subject_alt_names`, `max_verify_depth`, as Pomerium",
    ),
    in_force(Global, "skip_xff_append", ""),
    in_force(Global, "xff_num_trusted_hops", ""),
    in_force(
        Global,
        "use_proxy_protocol",
        "v1 and v2; every connection must start with a header (read at start, like the address)",
    ),
    in_force(
        Global,
        "normalize_path",
        "only `true`: `false` is refused, so policy always sees the path the upstream acts on",
    ),
    in_force(Global, "merge_slashes", ""),
    in_force(Global, "path_with_escaped_slashes_action", ""),
    in_force(Global, "headers_with_underscores_action", ""),
    in_force(Global, "routes", ""),
    in_force(
        Global,
        "policy",
        "the legacy name of `routes`; both lists are used, `policy` first",
    ),
    in_force(Global, "authenticate_service_url", ""),
    in_force(Global, "signout_redirect_url", ""),
    in_force(Global, "programmatic_redirect_domain_whitelist", ""),
    in_force(
        Global,
        "idp_provider",
        "oidc, google, azure, okta, auth0, gitlab, cognito, github and gatehouse's `local`; apple, onelogin, ping and hosted load, and sign-in to them answers 401",
    ),
    in_force(Global, "idp_provider_url", ""),
    in_force(Global, "idp_client_id", ""),
    in_force(Global, "idp_client_secret", ""),
    in_force(Global, "idp_client_secret_file", ""),
    in_force(Global, "idp_scopes", ""),
    in_force(Global, "idp_request_params", ""),
    in_force(Global, "idp_access_token_allowed_audiences", ""),
    in_force(Global, "identity_providers", ""),
    in_force(Global, "bearer_token_format", ""),
    in_force(Global, "shared_secret", ""),
    in_force(Global, "shared_secret_file", ""),
    in_force(Global, "cookie_secret", ""),
    in_force(Global, "cookie_secret_file", ""),
    in_force(Global, "cookie_name", ""),
    in_force(Global, "cookie_expire", ""),
    in_force(Global, "cookie_domain", ""),
    in_force(Global, "cookie_http_only", ""),
    in_force(Global, "cookie_same_site", ""),
    in_force(Global, "signing_key", ""),
    in_force(Global, "signing_key_file", ""),
    in_force(Global, "jwt_claims_headers", ""),
    in_force(Global, "jwt_issuer_format", ""),
    in_force(Global, "pass_identity_headers", ""),
    in_force(
        Global,
        "jwt_groups_filter",
        "a list, or `{groups, infer_from_ppl}`; filters the IdP's groups too (Pomerium: directory groups only, and only through its API)",
    ),
    in_force(
        Global,
        "databroker_storage_type",
        "`memory`, `file` and `redis`; `postgres` is refused",
    ),
    in_force(Global, "databroker_storage_connection_string", ""),
    in_force(Global, "databroker_storage_connection_string_file", ""),
    in_force(Global, "log_level", ""),
    in_force(Global, "access_log_fields", ""),
    in_force(
        Global,
        "authorize_log_fields",
        "the fields gatehouse has a value for; the others (Envoy route checksums, impersonation, MCP, tokens) are left out with a warning",
    ),
    in_force(Global, "metrics_address", ""),
    in_force(Global, "metrics_basic_auth", ""),
    in_force(Global, "metrics_certificate", ""),
    in_force(Global, "metrics_certificate_file", ""),
    in_force(Global, "metrics_certificate_key", ""),
    in_force(Global, "metrics_certificate_key_file", ""),
    in_force(
        Global,
        "metrics_client_ca",
        "scrapers must present a certificate issued by it (TLS handshake)",
    ),
    in_force(Global, "metrics_client_ca_file", ""),
    in_force(
        Global,
        "autocert",
        "certificates over ACME (TLS-ALPN-01 on `address`, HTTP-01 on `http_redirect_addr`) for every route host and the authenticate host no configured certificate covers; renewed when a third of their life is left",
    ),
    in_force(Global, "autocert_ca", "the ACME directory URL (https)"),
    in_force(Global, "autocert_email", ""),
    in_force(Global, "autocert_use_staging", ""),
    in_force(Global, "autocert_eab_key_id", ""),
    in_force(
        Global,
        "autocert_eab_mac_key",
        "base64url; kept out of logs and exports",
    ),
    ignored(
        Global,
        "autocert_must_staple",
        "certificates are ordered without must-staple: gatehouse does not staple OCSP, and browsers refuse must-staple certificates without it",
    ),
    in_force(
        Global,
        "autocert_dir",
        "default `$XDG_DATA_HOME/gatehouse/autocert` (else `~/.local/share/gatehouse/autocert`)",
    ),
    in_force(
        Global,
        "autocert_trusted_ca",
        "trusted for the ACME server's TLS, beside the system's CAs",
    ),
    in_force(Global, "autocert_trusted_ca_file", ""),
    in_force(
        Global,
        "otel_traces_exporter",
        "`otlp`: a span per request (with `authorize` and `upstream` children) over OTLP; `traceparent` continued from clients and passed upstream",
    ),
    in_force(
        Global,
        "otel_traces_sampler_arg",
        "the share of new traces sampled; a client's `traceparent` decides for its own",
    ),
    in_force(Global, "otel_resource_attributes", ""),
    in_force(
        Global,
        "otel_attribute_value_length_limit",
        "64 to 32768 bytes (default 256, as Envoy's path tag)",
    ),
    in_force(Global, "otel_exporter_otlp_endpoint", ""),
    in_force(Global, "otel_exporter_otlp_traces_endpoint", ""),
    in_force(
        Global,
        "otel_exporter_otlp_protocol",
        "`grpc` or `http/protobuf`; guessed from the endpoint when unset, as Pomerium",
    ),
    in_force(Global, "otel_exporter_otlp_traces_protocol", ""),
    in_force(
        Global,
        "otel_exporter_otlp_headers",
        "kept out of logs and exports",
    ),
    in_force(
        Global,
        "otel_exporter_otlp_traces_headers",
        "kept out of logs and exports",
    ),
    in_force(
        Global,
        "otel_exporter_otlp_timeout",
        "milliseconds (default 10000)",
    ),
    in_force(Global, "otel_exporter_otlp_traces_timeout", "milliseconds"),
    in_force(
        Global,
        "otel_bsp_schedule_delay",
        "milliseconds (default 5000, at least 100); at most 2048 spans wait, more are dropped and counted",
    ),
    in_force(Global, "otel_bsp_max_export_batch_size", "default 512"),
    in_force(
        Global,
        "health_check_addr",
        "`/startupz`, `/readyz`, `/healthz`, `/status`; bound only when set (Pomerium binds 127.0.0.1:28080 by default)",
    ),
    in_force(
        Global,
        "runtime_flags",
        "`pomerium_jwt_endpoint` is honoured; the other flags tune Pomerium's Envoy, SSH and MCP services and have no effect",
    ),
    // ================= global: gatehouse's own
    own(
        Global,
        "trusted_assertion_sources",
        "peers whose `X-Pomerium-Jwt-Assertion` is passed upstream as `X-Pomerium-Jwt-Assertion-For`",
    ),
    own(
        Global,
        "forward_auth_trusted_sources",
        "peers allowed to ask the forward-auth endpoint about a request",
    ),
    own(
        Global,
        "local_users",
        "built-in users (the `local` identity provider)",
    ),
    own(Global, "local_users_file", "built-in users, from a file"),
    own(
        Global,
        "login_throttle_failures",
        "wrong passwords allowed per user and address within the window",
    ),
    own(Global, "login_throttle_window", ""),
    own(Global, "login_throttle_lockout", ""),
    own(
        Global,
        "cookie_secure",
        "`false` only for plain-HTTP development set-ups",
    ),
    own(
        Global,
        "databroker_storage_ca_file",
        "Redis over TLS: the CA to trust",
    ),
    own(
        Global,
        "databroker_storage_cert_file",
        "Redis over TLS: a client certificate",
    ),
    own(
        Global,
        "databroker_storage_key_file",
        "Redis over TLS: the client certificate's key",
    ),
    own(
        Global,
        "databroker_storage_outage_grace",
        "how long signed-in users keep working while Redis cannot be reached",
    ),
    own(
        Global,
        "console",
        "the console: routes and settings managed in a browser",
    ),
    // ================= global: refused
    // ================= removed from Pomerium (errors there too)
    removed("client_ca", "use `downstream_mtls` instead"),
    removed("client_ca_file", "use `downstream_mtls` instead"),
    removed("idp_service_account", "directory sync options were removed"),
    removed(
        "idp_refresh_directory_timeout",
        "directory sync options were removed",
    ),
    removed(
        "idp_refresh_directory_interval",
        "directory sync options were removed",
    ),
    removed("idp_qps", "directory sync options were removed"),
    removed("allowed_groups", "use a `policy` with `groups` instead"),
    removed(
        "set_authorization_header",
        "use `set_request_headers` instead",
    ),
    removed("tracing_*", "use the `otel_*` options instead"),
    // ================= global: no effect, and why that is harmless
    ignored(Global, "proxy_log_level", NO_ENVOY),
    Entry {
        off_values: &["all"],
        ..ignored(Global, "services", ONE_PROCESS)
    },
    ignored(Global, "authenticate_internal_service_url", ONE_PROCESS),
    ignored(Global, "authorize_service_url", ONE_PROCESS),
    ignored(Global, "authorize_service_urls", ONE_PROCESS),
    ignored(Global, "authorize_internal_service_url", ONE_PROCESS),
    ignored(Global, "databroker_service_url", NO_CLUSTER),
    ignored(Global, "databroker_service_urls", NO_CLUSTER),
    ignored(Global, "databroker_internal_service_url", NO_CLUSTER),
    ignored(Global, "databroker_cluster_leader_id", NO_CLUSTER),
    ignored(Global, "databroker_cluster_node_id", NO_CLUSTER),
    ignored(Global, "databroker_cluster_nodes", NO_CLUSTER),
    ignored(Global, "databroker_cluster_*", NO_CLUSTER),
    ignored(Global, "databroker_raft_bind_address", NO_CLUSTER),
    ignored(
        Global,
        "certificate_authority",
        "it trusts more upstream certificates, not fewer: without it such upstreams fail verification (502); use the route's `tls_custom_ca`",
    ),
    ignored(
        Global,
        "certificate_authority_file",
        "it trusts more upstream certificates, not fewer: without it such upstreams fail verification (502); use the route's `tls_custom_ca_file`",
    ),
    ignored(Global, "grpc_address", NO_GRPC),
    ignored(Global, "grpc_insecure", NO_GRPC),
    ignored(
        Global,
        "grpc_client_timeout",
        "gatehouse makes no gRPC calls between services",
    ),
    ignored(Global, "override_certificate_name", NO_INTERNAL_TLS),
    ignored(Global, "tls_derive", NO_INTERNAL_TLS),
    ignored(
        Global,
        "health_check_systemd_disabled",
        "gatehouse sends no systemd health notifications",
    ),
    ignored(
        Global,
        "debug_address",
        "no debug listener is opened, so nothing is served there",
    ),
    ignored(Global, "allow_upgrades", NO_UPGRADES),
    ignored(
        Global,
        "auto_apply_changesets",
        "it belongs to Pomerium Zero; this file is the whole configuration",
    ),
    ignored(Global, "installation_id", "it belongs to Pomerium Zero"),
    ignored(Global, "envoy_dynamic_extensions", NO_ENVOY),
    ignored(Global, "envoy_admin_access_log_path", NO_ENVOY),
    ignored(Global, "envoy_admin_profile_path", NO_ENVOY),
    ignored(Global, "envoy_admin_address", NO_ENVOY),
    ignored(Global, "envoy_bind_config_source_address", NO_ENVOY),
    ignored(Global, "envoy_bind_config_freebind", NO_ENVOY),
    ignored(Global, "envoy_*", NO_ENVOY),
    ignored(Global, "session_recording_concurrency", NO_RECORDING),
    ignored(Global, "blob_storage", NO_RECORDING),
    ignored(
        Global,
        "policy_file",
        "routes in that file are not loaded, so their hosts are not served (404)",
    ),
    ignored(Global, "ssh_address", NO_SSH),
    ignored(Global, "ssh_host_key_files", NO_SSH),
    ignored(Global, "ssh_host_keys", NO_SSH),
    ignored(Global, "ssh_user_ca_key_file", NO_SSH),
    ignored(Global, "ssh_user_ca_key", NO_SSH),
    ignored(Global, "ssh_rls_enabled", NO_SSH),
    ignored(Global, "ssh_rls_additional_entries", NO_SSH),
    ignored(Global, "ssh_*", NO_SSH),
    ignored(
        Global,
        "google_cloud_serverless_authentication_service_account",
        UPSTREAM_CREDENTIAL,
    ),
    ignored(Global, "mcp_allowed_client_id_domains", NO_MCP),
    ignored(Global, "mcp_allowed_as_metadata_domains", NO_MCP),
    ignored(Global, "mcp_*", NO_MCP),
    ignored(Global, "circuit_breaker_thresholds", AVAILABILITY),
    ignored(Global, "dns_failure_refresh_rate", DNS),
    ignored(Global, "dns_lookup_family", DNS),
    ignored(Global, "dns_query_timeout", DNS),
    ignored(Global, "dns_query_tries", DNS),
    ignored(Global, "dns_refresh_rate", DNS),
    ignored(Global, "dns_udp_max_queries", DNS),
    ignored(Global, "dns_use_tcp", DNS),
    ignored(Global, "dns_resolvers", DNS),
    ignored(Global, "dns_*", DNS),
    ignored(
        Global,
        "otel_log_level",
        "the exporter's own messages follow `log_level` (export failures are warnings)",
    ),
    ignored(Global, "otel_*", "not one of Pomerium's `otel_*` keys"),
    ignored(
        Global,
        "autocert*",
        "not one of Pomerium's `autocert_*` keys",
    ),
    // ================= routes: in force
    in_force(Route, "name", ""),
    in_force(Route, "description", "shown in the routes portal"),
    in_force(
        Route,
        "logo_url",
        "given to the routes portal's JSON; the page shows no images",
    ),
    in_force(
        Route,
        "from",
        "http(s) routes and `tcp+https` tunnels (CONNECT, `gatehouse tcp`); `udp+https` and `ssh` are refused",
    ),
    in_force(
        Route,
        "to",
        "weighted lists as in Pomerium (`url,weight`); `tcp://host:port` for tunnels",
    ),
    in_force(Route, "redirect", ""),
    in_force(Route, "response", ""),
    in_force(Route, "prefix", ""),
    in_force(Route, "path", ""),
    in_force(Route, "regex", ""),
    in_force(
        Route,
        "regex_priority_order",
        "orders the `regex` routes of one host: higher first, unset last, file order among equals (Pomerium applies it only to routes from its API)",
    ),
    in_force(Route, "prefix_rewrite", ""),
    in_force(Route, "regex_rewrite_pattern", ""),
    in_force(Route, "regex_rewrite_substitution", ""),
    in_force(Route, "host_rewrite", ""),
    in_force(Route, "host_rewrite_header", ""),
    in_force(Route, "host_path_regex_rewrite_pattern", ""),
    in_force(Route, "host_path_regex_rewrite_substitution", ""),
    in_force(Route, "preserve_host_header", ""),
    in_force(Route, "allow_websockets", ""),
    in_force(Route, "timeout", ""),
    in_force(Route, "idle_timeout", ""),
    in_force(Route, "tls_skip_verify", ""),
    in_force(Route, "tls_server_name", ""),
    in_force(Route, "tls_upstream_server_name", ""),
    in_force(Route, "tls_custom_ca", ""),
    in_force(Route, "tls_downstream_client_ca", ""),
    in_force(Route, "tls_downstream_client_ca_file", ""),
    in_force(Route, "tls_custom_ca_file", ""),
    in_force(Route, "tls_client_cert", ""),
    in_force(Route, "tls_client_key", ""),
    in_force(Route, "tls_client_cert_file", ""),
    in_force(Route, "tls_client_key_file", ""),
    in_force(Route, "set_request_headers", ""),
    in_force(Route, "remove_request_headers", ""),
    in_force(Route, "set_response_headers", ""),
    in_force(
        Route,
        "rewrite_response_headers",
        "each value of a repeated header is rewritten on its own (Envoy joins them first)",
    ),
    in_force(
        Route,
        "load_balancing_policy",
        "round_robin, least_request, random, ring_hash and maglev (both hash the client address)",
    ),
    in_force(
        Route,
        "health_checks",
        "HTTP and TCP checks; a target failing them leaves the rotation",
    ),
    in_force(
        Route,
        "outlier_detection",
        "consecutive 5xx and gateway failures eject a target for base_ejection_time (times its ejections), within max_ejection_percent (at least one); Envoy's success-rate and failure-percentage rules warn",
    ),
    in_force(Route, "allow_public_unauthenticated_access", ""),
    in_force(Route, "allow_any_authenticated_user", ""),
    in_force(Route, "cors_allow_preflight", ""),
    in_force(Route, "allowed_users", ""),
    in_force(Route, "allowed_domains", ""),
    in_force(Route, "allowed_idp_claims", ""),
    in_force(
        Route,
        "policy",
        "PPL, with every criterion and operator Pomerium's open-source edition has",
    ),
    in_force(
        Route,
        "sub_policies",
        "allow lists and `source_ppl` rules join the route's; `rego` alone is refused (gatehouse runs no Rego)",
    ),
    in_force(Route, "show_error_details", ""),
    in_force(Route, "pass_identity_headers", ""),
    in_force(Route, "jwt_issuer_format", ""),
    in_force(
        Route,
        "jwt_groups_filter",
        "widens the global filter for this route",
    ),
    in_force(Route, "bearer_token_format", ""),
    in_force(Route, "idp_access_token_allowed_audiences", ""),
    in_force(
        Route,
        "idp_client_id",
        "a client of the global OpenID provider for this route; its sessions are good only on routes with this client",
    ),
    in_force(Route, "idp_client_secret", ""),
    in_force(Route, "identity_providers", ""),
    // ================= routes: gatehouse's own
    own(Route, "jwt_claims_headers", "the global key, for one route"),
    own(
        Route,
        "cookie_same_site",
        "the global key, for one route's session cookie",
    ),
    own(
        Route,
        "frame_ancestors",
        "origins allowed to embed the route in a frame",
    ),
    // ================= routes: refused
    // ================= routes: no effect, and why that is harmless
    Entry {
        off_values: &["false"],
        ..ignored(Route, "allow_spdy", "SPDY upgrades are refused")
    },
    ignored(
        Route,
        "tls_downstream_server_name",
        "certificates are chosen by the SNI the client sends; the route's host is matched as usual",
    ),
    ignored(
        Route,
        "depends_on",
        "users sign in to those hosts when they first visit them",
    ),
    ignored(Route, "circuit_breaker_thresholds", AVAILABILITY),
    ignored(
        Route,
        "healthy_panic_threshold",
        "when every target is out of rotation all are used (Envoy's panic mode), whatever the threshold",
    ),
    ignored(
        Route,
        "tls_upstream_allow_renegotiation",
        "an upstream that renegotiates TLS fails (502)",
    ),
    ignored(
        Route,
        "kubernetes_service_account_token",
        UPSTREAM_CREDENTIAL,
    ),
    ignored(
        Route,
        "kubernetes_service_account_token_file",
        UPSTREAM_CREDENTIAL,
    ),
    ignored(
        Route,
        "enable_google_cloud_serverless_authentication",
        UPSTREAM_CREDENTIAL,
    ),
    ignored(Route, "mcp", NO_MCP),
    ignored(
        Route,
        "upstream_tunnel",
        "the upstream is reached directly or not at all (502)",
    ),
    ignored(Route, "allow_upgrades", NO_UPGRADES),
    ignored(Route, "session_recording", NO_RECORDING),
];

/// The entry for `key` read at `scope`.
pub fn lookup(scope: Scope, key: &str) -> Option<&'static Entry> {
    KEYS.iter().find(|e| {
        (e.scope == scope || e.scope == Any)
            && match e.key.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => key == e.key,
            }
    })
}

/// Checks every top-level key and every route key against [`KEYS`], and
/// the environment for refused keys the model has no field for (so they
/// are not read from it otherwise). Returns the keys it reported (name and
/// mark), so they are not reported again as unknown.
pub(crate) fn check(
    root: &Node,
    env: &dyn Fn(&str) -> Option<String>,
    model_fields: &[&str],
    diags: &mut Vec<Diagnostic>,
) -> Survey {
    let mut survey = Survey::default();
    let Value::Map(entries) = &root.value else {
        return survey;
    };
    for (k, v) in entries {
        check_key(Global, k, v, diags, &mut survey);
        if matches!(k.as_str(), Some("routes" | "policy"))
            && let Value::Seq(routes) = &v.value
        {
            for route in routes {
                if let Value::Map(keys) = &route.value {
                    for (rk, rv) in keys {
                        check_key(Route, rk, rv, diags, &mut survey);
                    }
                }
            }
        }
    }
    for entry in KEYS {
        let Status::Refused { risk } = entry.status else {
            continue;
        };
        if entry.scope == Route || model_fields.contains(&entry.key) {
            continue;
        }
        let names = std::iter::once(entry.key.to_ascii_uppercase()).chain(
            entry
                .sub_keys
                .iter()
                .map(|s| format!("{}_{}", entry.key, s).to_ascii_uppercase()),
        );
        for var in names {
            if env(&var).is_some_and(|v| !v.trim().is_empty()) {
                diags.push(Diagnostic::error(
                    Mark::env(&var),
                    refused_message(entry.key, risk),
                ));
            }
        }
    }
    survey
}

/// What [`check`] found in a file: the keys it reported (name and mark,
/// so they are not reported again as unknown), and which keys are set.
#[derive(Debug, Default)]
pub(crate) struct Survey {
    pub reported: Vec<(String, Mark)>,
    pub keys: KeyCounts,
}

/// Distinct keys a configuration sets (a route key counts once however
/// many routes set it), by what gatehouse does with them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyCounts {
    /// Keys honoured: Pomerium's in force, and gatehouse's own.
    pub in_force: BTreeSet<(Scope, String)>,
    /// Keys accepted with no effect (each has its warning).
    pub without_effect: BTreeSet<(Scope, String)>,
}

fn check_key(
    scope: Scope,
    key: &Node,
    value: &Node,
    diags: &mut Vec<Diagnostic>,
    survey: &mut Survey,
) {
    let Some(name) = key.as_str() else { return };
    let Some(entry) = lookup(scope, name) else {
        return;
    };
    let off = is_off(value, entry.off_values);
    let diag = match entry.status {
        // The model reads it; its own checks apply.
        Status::InForce { .. } | Status::Own { .. } => {
            survey.keys.in_force.insert((scope, name.to_string()));
            return;
        }
        Status::Refused { risk } if !off => {
            Diagnostic::error(key.mark.clone(), refused_message(name, risk))
        }
        Status::Removed { hint } => Diagnostic::error(
            key.mark.clone(),
            format!("option `{name}` was removed from Pomerium: {hint}"),
        ),
        // The console writes only keys it means: one it sends that does
        // nothing is an error there (see `unknown_key`), not a warning.
        Status::Ignored { .. } if crate::origin::target(&key.mark).is_some() => return,
        Status::Ignored { why } if !off => {
            survey.keys.without_effect.insert((scope, name.to_string()));
            Diagnostic::warning(
                key.mark.clone(),
                format!("`{name}` is not supported and is ignored; harmless: {why}"),
            )
        }
        // Set to nothing: there is nothing to refuse or ignore.
        _ => {
            survey.reported.push((name.to_string(), key.mark.clone()));
            return;
        }
    };
    survey.reported.push((name.to_string(), key.mark.clone()));
    diags.push(diag);
}

fn refused_message(key: &str, risk: &str) -> String {
    format!(
        "`{key}` is not implemented by gatehouse, and ignoring it is unsafe: {risk}. Remove it to run without it"
    )
}

/// Null, empty, `false`, `0`, an empty list or mapping, or one of the
/// entry's own "off" values: the key asks for nothing.
fn is_off(node: &Node, off_values: &[&str]) -> bool {
    match &node.value {
        Value::Scalar(s) => {
            node.is_null()
                || s.text.trim().is_empty()
                || (!s.quoted && matches!(s.text.as_str(), "false" | "False" | "FALSE" | "0"))
                || off_values.contains(&s.text.trim())
        }
        Value::Seq(items) => items.is_empty(),
        Value::Map(entries) => entries.is_empty(),
    }
}

/// The compatibility table (docs/pomerium-compatibility.md), from [`KEYS`].
pub fn markdown() -> String {
    let named = || KEYS.iter().filter(|e| !e.key.ends_with('*'));
    let count = |f: fn(&Status) -> bool| named().filter(|e| f(&e.status)).count();
    let in_force = count(|s| matches!(s, Status::InForce { .. }));
    let refused = count(|s| matches!(s, Status::Refused { .. }));
    let ignored = count(|s| matches!(s, Status::Ignored { .. }));
    let own = count(|s| matches!(s, Status::Own { .. }));
    let scope = |e: &Entry| match e.scope {
        Global => "global",
        Route => "route",
        Any => "any",
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "# Pomerium compatibility\n\n\
         <!-- Generated from crates/config/src/registry.rs; a test keeps this file equal to it.\n\
         \x20    After changing the registry: GATEHOUSE_BLESS=1 cargo test -p gatehouse-config compatibility_table -->\n\n\
         Every key Pomerium reads from a configuration file (its `config/options.go` and\n\
         `config/policy.go`), and `jwt_groups_filter`, which Pomerium takes only through its\n\
         API, with what gatehouse does with each. A global key and a route key of the same\n\
         name are counted apart, as Pomerium lists them.\n\n\
         | | keys |\n|---|---|\n\
         | in force, with Pomerium's meaning | {in_force} |\n\
         | refused: an error naming the key, because ignoring it would let in what the file keeps out | {refused} |\n\
         | accepted with no effect: a warning naming the key and why that is harmless | {ignored} |\n\
         | **Pomerium keys** | **{}** |\n\
         | gatehouse's own keys | {own} |\n\n\
         A key in none of these lists is unknown: a warning, as in Pomerium (a file may be\n\
         written for a newer version). `gatehouse check` ends with how many of the file's\n\
         keys are in force and how many have no effect.\n\n\
         Pomerium configurations written as its docs write them (`examples/pomerium/`: the\n\
         verify quickstart, client certificates, an ingress-style setup) pass `check` with\n\
         every key in force and run in the test suite (`crates/gatehouse/tests/compat.rs`).\n",
        in_force + refused + ignored
    );
    let table = |out: &mut String,
                 title: &str,
                 intro: &str,
                 head: &str,
                 f: fn(&Status) -> Option<&'static str>| {
        let _ = write!(out, "\n## {title}\n\n{intro}\n");
        let rows: Vec<String> = named()
            .filter_map(|e| {
                f(&e.status).map(|text| format!("| {} | `{}` | {} |", scope(e), e.key, text))
            })
            .collect();
        if rows.is_empty() {
            let _ = writeln!(out, "\nNone today.");
            return;
        }
        let _ = write!(out, "\n| scope | key | {head} |\n|---|---|---|\n");
        for row in rows {
            let _ = writeln!(out, "{row}");
        }
    };
    table(
        &mut out,
        "In force",
        "Honoured with Pomerium's meaning; the note says where gatehouse's reading narrows it.",
        "note",
        |s| match s {
            Status::InForce { note } => Some(note),
            _ => None,
        },
    );
    table(
        &mut out,
        "Refused",
        "Fail closed: these are errors in `gatehouse check` and `gatehouse run`, and a reload that adds one is refused. \
         A key set to nothing (`~`, `''`, `false`, `0`, `{}`, `[]`) asks for nothing and is accepted. \
         They are refused from the environment too (as its upper-case variable).",
        "what would happen if it were ignored",
        |s| match s {
            Status::Refused { risk } => Some(risk),
            _ => None,
        },
    );
    table(
        &mut out,
        "Accepted with no effect",
        "A warning that names the key and gives the reason. None of them can let in a request the file keeps out.",
        "why that is harmless",
        |s| match s {
            Status::Ignored { why } => Some(why),
            _ => None,
        },
    );
    table(
        &mut out,
        "gatehouse's own keys",
        "Keys Pomerium does not have (see [configuration](configuration.md)).",
        "what it does",
        |s| match s {
            Status::Own { note } => Some(note),
            _ => None,
        },
    );
    let _ = write!(
        out,
        "\n## Removed from Pomerium\n\nErrors, as in Pomerium.\n\n| key | instead |\n|---|---|\n"
    );
    for e in KEYS {
        if let Status::Removed { hint } = e.status {
            let _ = writeln!(out, "| `{}` | {} |", e.key, hint);
        }
    }
    let families: Vec<&str> = KEYS
        .iter()
        .filter(|e| e.key.ends_with('*') && matches!(e.status, Status::Ignored { .. }))
        .map(|e| e.key)
        .collect();
    let _ = write!(
        out,
        "\nKeys a newer Pomerium adds to the families {} are accepted with no effect, like the rest of their family.\n",
        families
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out
}

//! The registry of Pomerium keys that gatehouse does not implement, and what
//! it does when a file sets one: refuse it (the key protects something, so
//! running without it would let in requests the file means to keep out),
//! report it as removed from Pomerium, or ignore it with the reason that is
//! harmless. One table, checked in one walk over the tree; keys that
//! gatehouse implements are not listed here. docs/configuration.md
//! ("Settings gatehouse refuses") lists the refused keys.

use crate::diagnostic::Diagnostic;
use crate::yaml::{Mark, Node, Value};

/// Where a key is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A top-level option.
    Global,
    /// An option of one entry of `routes` / `policy`.
    Route,
    /// Both.
    Any,
}

/// What gatehouse does with a key it does not implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// An error: without the key, gatehouse would let in what the file keeps
    /// out. `risk` says what would happen if it were ignored.
    Refused { risk: &'static str },
    /// An error, as in Pomerium: the key was removed there.
    Removed { hint: &'static str },
    /// A warning: not implemented, and harmless without it because `why`.
    Ignored { why: &'static str },
}

/// One key. `key` ending in `*` matches every key with that prefix.
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

const fn refused(scope: Scope, key: &'static str, risk: &'static str) -> Entry {
    Entry {
        scope,
        key,
        status: Status::Refused { risk },
        sub_keys: &[],
        off_values: &[],
    }
}

const fn removed(key: &'static str, hint: &'static str) -> Entry {
    Entry {
        scope: Scope::Any,
        key,
        status: Status::Removed { hint },
        sub_keys: &[],
        off_values: &[],
    }
}

const fn ignored(scope: Scope, key: &'static str, why: &'static str) -> Entry {
    Entry {
        scope,
        key,
        status: Status::Ignored { why },
        sub_keys: &[],
        off_values: &[],
    }
}

use Scope::{Any, Global, Route};

const NO_SSH: &str = "gatehouse serves no SSH (ssh:// routes are refused)";
const ONE_PROCESS: &str = "gatehouse runs every service in one process and authorizes each request itself with this file's routes and policies";
const NO_ENVOY: &str = "gatehouse has no Envoy";
const NO_TRACING: &str = "trace export is not implemented; nothing is sent";
const NO_ACME: &str = "no certificate is obtained; without certificates gatehouse serves a self-signed one, which browsers refuse until it is trusted";
const NO_CLUSTER: &str = "sessions stay in the store `databroker_storage_type` names; an instance that does not know a session asks the user to sign in";
const UPSTREAM_CREDENTIAL: &str =
    "no credential is sent upstream, so an upstream that requires one refuses the request";
const AVAILABILITY: &str = "it only affects availability: upstreams are tried without it";
const NO_MCP: &str = "MCP clients cannot sign in through gatehouse; the route's policy still applies to every request";

/// Every key gatehouse does not implement, with what it does about it.
pub const KEYS: &[Entry] = &[
    // --- refused: running without them would let in what the file keeps out
    Entry {
        sub_keys: &[
            "ca",
            "ca_file",
            "crl",
            "crl_file",
            "enforcement",
            "match_subject_alt_names",
            "max_verify_depth",
        ],
        ..refused(
            Global,
            "downstream_mtls",
            "client certificates are not requested or checked yet, so clients without a certificate would be let in",
        )
    },
    refused(
        Route,
        "tls_downstream_client_ca",
        "client certificates are not requested or checked yet, so clients without a certificate would be let in to this route",
    ),
    refused(
        Route,
        "tls_downstream_client_ca_file",
        "client certificates are not requested or checked yet, so clients without a certificate would be let in to this route",
    ),
    refused(
        Global,
        "metrics_client_ca",
        "the metrics endpoint would answer clients without a certificate",
    ),
    refused(
        Global,
        "metrics_client_ca_file",
        "the metrics endpoint would answer clients without a certificate",
    ),
    refused(
        Global,
        "metrics_certificate",
        "metrics (and their basic-auth credentials) would be served over plain HTTP",
    ),
    refused(
        Global,
        "metrics_certificate_file",
        "metrics (and their basic-auth credentials) would be served over plain HTTP",
    ),
    refused(
        Global,
        "metrics_certificate_key",
        "metrics (and their basic-auth credentials) would be served over plain HTTP",
    ),
    refused(
        Global,
        "metrics_certificate_key_file",
        "metrics (and their basic-auth credentials) would be served over plain HTTP",
    ),
    refused(
        Global,
        "use_proxy_protocol",
        "the PROXY header would be read as a request, and client addresses would be the load balancer's",
    ),
    refused(
        Route,
        "sub_policies",
        "their rules (deny rules included) would not be applied",
    ),
    refused(
        Route,
        "regex_priority_order",
        "routes are matched in file order, so another route (and its policy) could answer requests meant for this one",
    ),
    refused(
        Route,
        "idp_client_id",
        "users would sign in with the global identity provider client, which may admit users this route's client does not",
    ),
    refused(
        Route,
        "idp_client_secret",
        "users would sign in with the global identity provider client, which may admit users this route's client does not",
    ),
    // --- removed from Pomerium (errors there too)
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
    // --- ignored, with why that is harmless (global)
    ignored(Global, "proxy_log_level", NO_ENVOY),
    ignored(
        Global,
        "authorize_log_fields",
        "it only chooses what the authorize log line holds (its fields are fixed)",
    ),
    Entry {
        off_values: &["all"],
        ..ignored(Global, "services", ONE_PROCESS)
    },
    Entry {
        off_values: &["0s"],
        ..ignored(
            Global,
            "timeout_write",
            "it is not enforced yet; it only limits how long a response may take to send, not who gets one",
        )
    },
    ignored(Global, "authenticate_internal_service_url", ONE_PROCESS),
    ignored(Global, "authorize_service_url", ONE_PROCESS),
    ignored(Global, "authorize_service_urls", ONE_PROCESS),
    ignored(Global, "authorize_internal_service_url", ONE_PROCESS),
    ignored(Global, "databroker_service_url", NO_CLUSTER),
    ignored(Global, "databroker_service_urls", NO_CLUSTER),
    ignored(Global, "databroker_internal_service_url", NO_CLUSTER),
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
    ignored(
        Global,
        "grpc_address",
        "gatehouse has no gRPC listener, so nothing is served there",
    ),
    ignored(
        Global,
        "grpc_insecure",
        "gatehouse has no gRPC listener, so nothing is served there",
    ),
    ignored(
        Global,
        "grpc_client_timeout",
        "gatehouse makes no gRPC calls between services",
    ),
    ignored(
        Global,
        "override_certificate_name",
        "gatehouse makes no TLS calls between its own services",
    ),
    ignored(
        Global,
        "tls_derive",
        "gatehouse makes no TLS calls between its own services",
    ),
    ignored(
        Global,
        "health_check_addr",
        "no health-check listener is opened, so nothing is served there",
    ),
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
    ignored(
        Global,
        "allow_upgrades",
        "upgrades other than websockets (allow_websockets) are refused",
    ),
    ignored(
        Global,
        "auto_apply_changesets",
        "it belongs to Pomerium Zero; this file is the whole configuration",
    ),
    ignored(Global, "installation_id", "it belongs to Pomerium Zero"),
    ignored(Global, "envoy_*", NO_ENVOY),
    ignored(
        Global,
        "session_recording_concurrency",
        "sessions are not recorded (SSH is not served)",
    ),
    ignored(
        Global,
        "blob_storage",
        "sessions are not recorded (SSH is not served)",
    ),
    ignored(
        Global,
        "policy_file",
        "routes in that file are not loaded, so their hosts are not served (404)",
    ),
    ignored(Global, "ssh_*", NO_SSH),
    ignored(
        Global,
        "google_cloud_serverless_authentication_service_account",
        UPSTREAM_CREDENTIAL,
    ),
    ignored(Global, "mcp_*", NO_MCP),
    ignored(Global, "circuit_breaker_thresholds", AVAILABILITY),
    ignored(
        Global,
        "dns_*",
        "upstream names are resolved by the system resolver",
    ),
    ignored(Global, "otel_*", NO_TRACING),
    ignored(Global, "autocert*", NO_ACME),
    // --- ignored, with why that is harmless (routes)
    ignored(
        Route,
        "description",
        "it is only shown in a routes portal, which gatehouse does not have",
    ),
    ignored(
        Route,
        "logo_url",
        "it is only shown in a routes portal, which gatehouse does not have",
    ),
    ignored(
        Route,
        "tls_downstream_server_name",
        "certificates are chosen by the SNI the client sends; the route's host is matched as usual",
    ),
    ignored(
        Route,
        "rewrite_response_headers",
        "upstream response headers are passed unchanged (a `Location` may name the upstream's host)",
    ),
    ignored(
        Route,
        "depends_on",
        "users sign in to those hosts when they first visit them",
    ),
    ignored(Route, "health_checks", AVAILABILITY),
    ignored(Route, "outlier_detection", AVAILABILITY),
    ignored(Route, "circuit_breaker_thresholds", AVAILABILITY),
    ignored(Route, "healthy_panic_threshold", AVAILABILITY),
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
    ignored(
        Route,
        "allow_upgrades",
        "upgrades other than websockets (allow_websockets) are refused",
    ),
    ignored(
        Route,
        "session_recording",
        "sessions are not recorded (SSH is not served)",
    ),
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
) -> Vec<(String, Mark)> {
    let mut reported = Vec::new();
    let Value::Map(entries) = &root.value else {
        return reported;
    };
    for (k, v) in entries {
        check_key(Global, k, v, diags, &mut reported);
        if matches!(k.as_str(), Some("routes" | "policy")) {
            if let Value::Seq(routes) = &v.value {
                for route in routes {
                    if let Value::Map(keys) = &route.value {
                        for (rk, rv) in keys {
                            check_key(Route, rk, rv, diags, &mut reported);
                        }
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
    reported
}

fn check_key(
    scope: Scope,
    key: &Node,
    value: &Node,
    diags: &mut Vec<Diagnostic>,
    reported: &mut Vec<(String, Mark)>,
) {
    let Some(name) = key.as_str() else { return };
    let Some(entry) = lookup(scope, name) else {
        return;
    };
    let off = is_off(value, entry.off_values);
    let diag = match entry.status {
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
        Status::Ignored { why } if !off => Diagnostic::warning(
            key.mark.clone(),
            format!("`{name}` is not supported and is ignored; harmless: {why}"),
        ),
        // Set to nothing: there is nothing to refuse or ignore.
        _ => {
            reported.push((name.to_string(), key.mark.clone()));
            return;
        }
    };
    reported.push((name.to_string(), key.mark.clone()));
    diags.push(diag);
}

fn refused_message(key: &str, risk: &str) -> String {
    format!(
        "`{key}` is not implemented by gatehouse yet, and ignoring it is unsafe: {risk}. Remove it to run without it"
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

//! The registry against Pomerium's key list, the model and the docs.

use std::collections::BTreeSet;
use std::path::Path;

use crate::de::struct_fields;
use crate::model::{Options, RouteOptions};
use crate::registry::{self, Entry, KEYS, Scope, Status, lookup};

/// Every top-level key of Pomerium's `config/options.go` `Options` and the
/// structs it inlines (`GlobalOptions`, `DNSOptions`, `otelconfig.Config`,
/// `AutocertOptions`, `DataBrokerOptions`), from its `mapstructure` tags,
/// and `set_response_headers`, which it reads apart from them.
const POMERIUM_GLOBAL: &str = "
installation_id log_level proxy_log_level access_log_fields authorize_log_fields shared_secret
shared_secret_file services address insecure_server certificates certificate certificate_key
certificate_file certificate_key_file http_redirect_addr timeout_read timeout_write timeout_idle
policy policy_file routes authenticate_service_url authenticate_internal_service_url
signout_redirect_url cookie_name cookie_secret cookie_secret_file cookie_domain cookie_http_only
cookie_expire cookie_same_site idp_client_id idp_client_secret idp_client_secret_file
idp_provider idp_provider_url idp_scopes idp_access_token_allowed_audiences identity_providers
idp_request_params authorize_service_url authorize_service_urls authorize_internal_service_url
override_certificate_name certificate_authority certificate_authority_file tls_derive
signing_key signing_key_file jwt_claims_headers default_upstream_timeout debug_address
metrics_address metrics_basic_auth metrics_certificate metrics_certificate_key
metrics_certificate_file metrics_certificate_key_file metrics_client_ca metrics_client_ca_file
grpc_address grpc_insecure grpc_client_timeout ssh_address ssh_host_key_files ssh_host_keys
ssh_user_ca_key_file ssh_user_ca_key ssh_rls_enabled ssh_rls_additional_entries downstream_mtls
google_cloud_serverless_authentication_service_account use_proxy_protocol skip_xff_append
xff_num_trusted_hops envoy_admin_access_log_path envoy_admin_profile_path envoy_admin_address
envoy_bind_config_source_address envoy_bind_config_freebind
programmatic_redirect_domain_whitelist mcp_allowed_client_id_domains
mcp_allowed_as_metadata_domains pass_identity_headers runtime_flags circuit_breaker_thresholds
health_check_addr health_check_systemd_disabled blob_storage set_response_headers
allow_upgrades auto_apply_changesets bearer_token_format codec_type envoy_dynamic_extensions
headers_with_underscores_action jwt_issuer_format merge_slashes normalize_path
path_with_escaped_slashes_action session_recording_concurrency
dns_failure_refresh_rate dns_lookup_family dns_query_timeout dns_query_tries dns_refresh_rate
dns_udp_max_queries dns_use_tcp dns_resolvers
otel_traces_exporter otel_traces_sampler_arg otel_resource_attributes otel_log_level
otel_attribute_value_length_limit otel_exporter_otlp_endpoint otel_exporter_otlp_traces_endpoint
otel_exporter_otlp_protocol otel_exporter_otlp_traces_protocol otel_exporter_otlp_headers
otel_exporter_otlp_traces_headers otel_exporter_otlp_timeout otel_exporter_otlp_traces_timeout
otel_bsp_schedule_delay otel_bsp_max_export_batch_size
autocert autocert_ca autocert_email autocert_use_staging autocert_eab_key_id autocert_eab_mac_key
autocert_must_staple autocert_dir autocert_trusted_ca autocert_trusted_ca_file
databroker_cluster_leader_id databroker_cluster_node_id databroker_cluster_nodes
databroker_internal_service_url databroker_raft_bind_address databroker_service_url
databroker_service_urls databroker_storage_connection_string
databroker_storage_connection_string_file databroker_storage_type
";

/// Every key of a Pomerium route (`config/policy.go` `Policy` and the
/// `RouteOptions` it inlines).
const POMERIUM_ROUTE: &str = "
name description logo_url from to redirect response allowed_users allowed_domains
allowed_idp_claims prefix path regex regex_priority_order prefix_rewrite regex_rewrite_pattern
regex_rewrite_substitution host_rewrite host_rewrite_header host_path_regex_rewrite_pattern
host_path_regex_rewrite_substitution cors_allow_preflight allow_public_unauthenticated_access
allow_any_authenticated_user timeout idle_timeout allow_websockets allow_spdy tls_skip_verify
tls_server_name tls_downstream_server_name tls_upstream_server_name tls_custom_ca
tls_custom_ca_file tls_client_cert tls_client_key tls_client_cert_file tls_client_key_file
tls_downstream_client_ca tls_downstream_client_ca_file tls_upstream_allow_renegotiation
set_request_headers remove_request_headers preserve_host_header pass_identity_headers
kubernetes_service_account_token kubernetes_service_account_token_file
enable_google_cloud_serverless_authentication sub_policies rewrite_response_headers
set_response_headers idp_client_id idp_client_secret idp_access_token_allowed_audiences
identity_providers show_error_details policy depends_on mcp circuit_breaker_thresholds
upstream_tunnel outlier_detection health_checks healthy_panic_threshold
allow_upgrades bearer_token_format jwt_issuer_format load_balancing_policy session_recording
";

/// Pomerium keys set only through its API (not read from files), listed
/// because users ask for them.
const POMERIUM_API_ONLY: &[&str] = &["jwt_groups_filter"];

fn pomerium(scope: Scope) -> BTreeSet<&'static str> {
    match scope {
        Scope::Global => POMERIUM_GLOBAL,
        _ => POMERIUM_ROUTE,
    }
    .split_whitespace()
    .collect()
}

fn named() -> impl Iterator<Item = &'static Entry> {
    KEYS.iter().filter(|e| !e.key.ends_with('*'))
}

fn is_pomerium_status(s: &Status) -> bool {
    matches!(
        s,
        Status::InForce { .. } | Status::Refused { .. } | Status::Ignored { .. }
    )
}

#[test]
fn every_pomerium_key_has_a_named_entry() {
    for scope in [Scope::Global, Scope::Route] {
        for key in pomerium(scope) {
            let entry = named()
                .find(|e| e.key == key && e.scope == scope)
                .unwrap_or_else(|| panic!("{scope:?} key `{key}` is not in the registry"));
            assert!(
                is_pomerium_status(&entry.status),
                "{scope:?} `{key}` is Pomerium's: in force, refused or ignored"
            );
        }
    }
}

#[test]
fn every_named_entry_is_pomerium_s_or_marked_as_gatehouse_s() {
    let mut seen = BTreeSet::new();
    for e in named() {
        assert!(seen.insert((e.scope, e.key)), "`{}` is listed twice", e.key);
        match e.status {
            Status::Own { .. } => assert!(
                !pomerium(e.scope).contains(e.key),
                "`{}` is Pomerium's, not gatehouse's own",
                e.key
            ),
            Status::Removed { .. } => {}
            _ => assert!(
                pomerium(e.scope).contains(e.key) || POMERIUM_API_ONLY.contains(&e.key),
                "{:?} `{}` is not a Pomerium key: mark it as gatehouse's own",
                e.scope,
                e.key
            ),
        }
    }
}

#[test]
fn the_model_reads_exactly_the_keys_in_force() {
    for (scope, fields) in [
        (Scope::Global, struct_fields::<Options>()),
        (Scope::Route, struct_fields::<RouteOptions>()),
    ] {
        // A key the model reads has an entry, so it is never silent.
        for field in fields {
            let entry = lookup(scope, field)
                .unwrap_or_else(|| panic!("{scope:?} field `{field}` is not in the registry"));
            assert!(
                !matches!(entry.status, Status::Removed { .. }),
                "`{field}` was removed from Pomerium but the model reads it"
            );
        }
        // A key in force is read by the model (else it would be unknown).
        for e in named().filter(|e| e.scope == scope) {
            if matches!(e.status, Status::InForce { .. } | Status::Own { .. }) {
                assert!(
                    fields.contains(&e.key),
                    "{scope:?} `{}` is in force but the model does not read it",
                    e.key
                );
            }
        }
    }
}

#[test]
fn a_file_is_told_which_keys_are_in_force_and_which_do_nothing() {
    let text = "address: :8443\ngrpc_address: :5443\nroutes:\n  - from: https://a.example.com\n    to: http://127.0.0.1:1\n    allow_public_unauthenticated_access: true\n    tls_upstream_allow_renegotiation: true\n  - from: https://b.example.com\n    to: http://127.0.0.1:2\n    allow_public_unauthenticated_access: true\n    healthy_panic_threshold: ''\n";
    let loaded = crate::load_str(text, "c.yaml", Path::new("."), &|_| None).unwrap();
    let names = |s: &BTreeSet<(Scope, String)>| {
        s.iter()
            .map(|(scope, k)| format!("{scope:?}.{k}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&loaded.keys.in_force),
        [
            "Global.address",
            "Global.routes",
            "Route.allow_public_unauthenticated_access",
            "Route.from",
            "Route.to"
        ]
    );
    // An empty `healthy_panic_threshold` asks for nothing.
    assert_eq!(
        names(&loaded.keys.without_effect),
        [
            "Global.grpc_address",
            "Route.tls_upstream_allow_renegotiation"
        ]
    );
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
}

#[test]
fn compatibility_table_is_the_registry() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/pomerium-compatibility.md");
    let want = registry::markdown();
    if std::env::var_os("GATEHOUSE_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/pomerium-compatibility.md differs from the registry: run GATEHOUSE_BLESS=1 cargo test -p gatehouse-config compatibility_table"
    );
}

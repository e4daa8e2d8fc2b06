use std::path::Path;

use super::*;

fn load(text: &str) -> Result<Loaded, Rejected> {
    load_str(text, "c.yaml", Path::new("."), &|_| None)
}

fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(r) => r
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.to_string())
            .collect(),
    }
}

const PUBLIC: &str = "    allow_public_unauthenticated_access: true\n";

#[test]
fn a_minimal_route_compiles() {
    let cfg = load(&format!(
        "address: 127.0.0.1:8443\nroutes:\n  - from: https://app.example.com\n    to: http://127.0.0.1:8080\n{PUBLIC}"
    ))
    .unwrap()
    .config;
    assert_eq!(cfg.address, "127.0.0.1:8443");
    let r = &cfg.routes[0];
    assert_eq!(r.from.host, HostPattern::Exact("app.example.com".into()));
    assert!(r.authorization.public.is_some());
    assert_eq!(r.timeout, Some(std::time::Duration::from_secs(30)));
    let RouteAction::Forward(ups) = &r.action else {
        panic!()
    };
    assert_eq!(ups[0].authority.as_str(), "127.0.0.1:8080");
    // Pomerium's defaults, without HSTS when no certificate is configured.
    let names: Vec<_> = r.response_headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x-frame-options", "x-xss-protection"]);
}

#[test]
fn bad_url_unknown_scheme_path_in_from_and_weight_zero() {
    let errs = errors(
        "routes:\n  - from: https://a.example.com/path\n    to: http://x\n  - from: ftp://b.example.com\n    to: http://x\n  - from: https://c.example.com\n    to: ['http://x,0']\n  - from: https://d.example.com\n    to: 'gopher://x'\n  - from: https://e.example.com\n    to: 'http://'\n",
    );
    let all = errs.join("\n");
    assert!(
        all.contains("c.yaml:2:11: `from` must not have a path"),
        "{all}"
    );
    assert!(
        all.contains("c.yaml:4:11: unknown `from` scheme `ftp`"),
        "{all}"
    );
    assert!(all.contains("c.yaml:7:9: weight 0"), "{all}");
    assert!(
        all.contains("c.yaml:9:9: unknown `to` scheme `gopher`"),
        "{all}"
    );
    assert!(all.contains("c.yaml:11:9: invalid `to` URL"), "{all}");
}

#[test]
fn conflicting_rewrites() {
    let all = errors(
        "routes:\n  - from: https://a.example.com\n    to: http://x\n    prefix_rewrite: /a\n    regex_rewrite_pattern: '^/b'\n    regex_rewrite_substitution: /c\n  - from: https://b.example.com\n    to: http://x\n    host_rewrite: h\n    host_rewrite_header: X-Host\n",
    )
    .join("\n");
    assert!(all.contains("c.yaml:5:28: conflicting rewrites"), "{all}");
    assert!(all.contains("conflicting host rewrites"), "{all}");
}

#[test]
fn unreadable_certificate_names_the_file() {
    let all = errors(
        "certificate_file: /nonexistent/cert.pem\ncertificate_key_file: /nonexistent/key.pem\n",
    )
    .join("\n");
    assert!(
        all.contains("c.yaml:1:19: cannot read server certificate file `/nonexistent/cert.pem`"),
        "{all}"
    );
}

#[test]
fn duplicate_route() {
    let all = errors(
        "routes:\n  - from: https://a.example.com\n    to: http://x\n    prefix: /api\n  - from: https://A.example.com\n    to: http://y\n    prefix: /api\n",
    )
    .join("\n");
    assert!(all.contains("c.yaml:5:11: duplicate route: `https://a.example.com` prefix /api is already defined at line 2"), "{all}");
}

#[test]
fn unknown_keys_warn_and_removed_keys_fail() {
    let loaded = load(&format!(
        "adress: :443\nroutes:\n  - from: https://a.example.com\n    to: http://x\n    frobnicate: 1\n{PUBLIC}"
    ))
    .unwrap();
    let w: Vec<String> = loaded.warnings.iter().map(|d| d.to_string()).collect();
    assert!(
        w.contains(&"c.yaml:1:1: warning: unknown config option `adress` (ignored); did you mean `address`?".to_string()),
        "{w:?}"
    );
    assert!(
        w.contains(
            &"c.yaml:5:5: warning: unknown config option `frobnicate` (ignored)".to_string()
        ),
        "{w:?}"
    );
    let all = errors("client_ca: abc\n").join("\n");
    assert!(
        all.contains("c.yaml:1:1: option `client_ca` was removed"),
        "{all}"
    );
}

#[test]
fn type_errors_have_positions() {
    let all = errors("timeout_read: soon\n").join("\n");
    assert!(
        all.starts_with("c.yaml:1:15: invalid duration `soon`"),
        "{all}"
    );
    let all = errors("insecure_server: maybe\n").join("\n");
    assert!(
        all.starts_with("c.yaml:1:18: expected true or false"),
        "{all}"
    );
}

#[test]
fn environment_overrides_file_and_parses_structures() {
    let env = |k: &str| {
        match k {
        "ADDRESS" => Some("127.0.0.1:9443".to_string()),
        "INSECURE_SERVER" => Some("true".to_string()),
        "ROUTES" => Some("[{from: 'https://env.example.com', to: 'http://x', allow_public_unauthenticated_access: true}]".to_string()),
        "HEADERS" => Some("X-Test:1,X-Other:two".to_string()),
        _ => None,
    }
    };
    let cfg = load_str("address: :443\n", "c.yaml", Path::new("."), &env)
        .unwrap()
        .config;
    assert_eq!(cfg.address, "127.0.0.1:9443");
    assert!(cfg.insecure_server);
    assert_eq!(
        cfg.routes[0].from.host,
        HostPattern::Exact("env.example.com".into())
    );
    let names: Vec<_> = cfg.routes[0]
        .response_headers
        .iter()
        .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
        .collect();
    assert_eq!(names, ["x-test=1", "x-other=two"]);
}

#[test]
fn environment_errors_name_the_variable() {
    let env = |k: &str| (k == "TIMEOUT_IDLE").then(|| "forever".to_string());
    let r = load_str("", "c.yaml", Path::new("."), &env).unwrap_err();
    assert!(
        r.diagnostics[0]
            .to_string()
            .starts_with("env:TIMEOUT_IDLE: invalid duration"),
        "{r}"
    );
}

#[test]
fn secret_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("secret"),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
    )
    .unwrap();
    let cfg = load_str(
        "shared_secret_file: secret\n",
        "c.yaml",
        dir.path(),
        &|_| None,
    )
    .unwrap()
    .config;
    assert_eq!(
        cfg.options.shared_secret.unwrap().value,
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    );
    assert_eq!(
        cfg.sign_in.shared_secret,
        Some(std::array::from_fn(|i| i as u8))
    );
    // Watched like every file the configuration names: editing it reloads.
    assert!(
        cfg.watched_files.contains(&dir.path().join("secret")),
        "{:?}",
        cfg.watched_files
    );
}

#[test]
fn cookie_secure_is_named_as_without_effect() {
    let loaded = load("cookie_secure: false\n").unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.to_string().contains("cookie_secure") && w.to_string().contains("Secure")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn a_full_pomerium_file_loads() {
    let text = r#"
authenticate_service_url: https://authenticate.localhost.pomerium.io
idp_provider: oidc
idp_provider_url: https://idp.example.com
idp_client_id: client
idp_client_secret: secret
idp_scopes: openid,profile,email,offline_access
idp_request_params: {prompt: login}
shared_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
cookie_secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
cookie_name: _gh
cookie_expire: 8h
cookie_same_site: lax
signing_key: LS0tLS1CRUdJTi...
jwt_claims_headers: email,groups
jwt_issuer_format: uri
pass_identity_headers: true
databroker_storage_type: memory
insecure_server: true
address: :8080
routes:
  - from: https://verify.localhost.pomerium.io
    to: https://verify.pomerium.com
    pass_identity_headers: true
    policy:
      - allow:
          or:
            - email:
                is: user@example.com
  - from: https://grafana.example.com
    to:
      - http://grafana-1:3000,2
      - http://grafana-2:3000
    allow_any_authenticated_user: true
    jwt_claims_headers:
      X-Email: email
    set_request_headers:
      X-Token: ${pomerium.access_token}
      X-Literal: $$5
"#;
    let loaded = load(text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let cfg = loaded.config;
    assert_eq!(cfg.routes.len(), 2);
    assert!(
        cfg.options.routes.as_ref().unwrap()[0]
            .value
            .policy
            .is_some()
    );
    let claims = cfg.options.jwt_claims_headers.as_ref().unwrap();
    assert_eq!(
        claims.value.0[1],
        ("x-pomerium-claim-groups".to_string(), "groups".to_string())
    );
    let r = &cfg.routes[1];
    assert!(r.authorization.any_authenticated_user.is_some() && r.authorization.public.is_none());
    assert_eq!(
        r.set_request_headers[0].1.parts,
        vec![TemplatePart::AccessToken]
    );
    assert_eq!(r.set_request_headers[1].1.as_literal(), Some("$5"));
    let RouteAction::Forward(ups) = &r.action else {
        panic!()
    };
    assert_eq!(ups.iter().map(|u| u.weight).collect::<Vec<_>>(), [2, 1]);
}

#[test]
fn json_config_has_positions() {
    let r = load_str(
        "{\n  \"routes\": [\n    {\"from\": \"https://a.example.com/x\", \"to\": \"http://y\"}\n  ]\n}\n",
        "c.json",
        Path::new("."),
        &|_| None,
    )
    .unwrap_err();
    assert!(
        r.diagnostics[0]
            .to_string()
            .starts_with("c.json:3:14: `from` must not have a path"),
        "{r}"
    );
}

#[test]
fn public_access_cannot_be_combined() {
    let all = errors(
        "routes:\n  - from: https://a.example.com\n    to: http://x\n    allow_public_unauthenticated_access: true\n    allowed_domains: [example.com]\n",
    )
    .join("\n");
    assert!(
        all.contains("cannot be combined with allowed_domains"),
        "{all}"
    );
}

#[test]
fn timeouts_follow_pomerium() {
    let cfg = load(
        "default_upstream_timeout: 10s\nroutes:\n  - from: https://a.example.com\n    to: http://x\n    allow_websockets: true\n  - from: https://b.example.com\n    to: http://x\n    timeout: 2s\n  - from: https://c.example.com\n    to: http://x\n",
    )
    .unwrap()
    .config;
    let t: Vec<_> = cfg.routes.iter().map(|r| r.timeout).collect();
    use std::time::Duration;
    assert_eq!(
        t,
        [
            None,
            Some(Duration::from_secs(2)),
            Some(Duration::from_secs(10))
        ]
    );
}

#[test]
fn path_in_to_is_a_prefix_rewrite() {
    let cfg =
        load("routes:\n  - from: https://a.example.com\n    to: http://x/base\n    prefix: /app\n")
            .unwrap()
            .config;
    let PathRewrite::Prefix {
        matched,
        replacement,
    } = &cfg.routes[0].rewrite
    else {
        panic!()
    };
    assert_eq!((matched.as_str(), replacement.as_str()), ("/app", "/base"));
}

#[test]
fn templates_parse() {
    assert_eq!(
        parse_template(r#"Bearer ${pomerium.request.headers["X-Foo"]}!"#).unwrap(),
        vec![
            TemplatePart::Literal("Bearer ".into()),
            TemplatePart::RequestHeader(http::HeaderName::from_static("x-foo")),
            TemplatePart::Literal("!".into())
        ]
    );
    assert!(parse_template("${pomerium.nope}").is_err());
}

/// Hostile input: thousands of mutations of a full file (bytes flipped,
/// deleted, duplicated, truncated) never panic the loader, and every
/// rejection names a position (`GATEHOUSE_FUZZ_ROUNDS=N` runs more rounds).
#[test]
fn mutated_configs_never_panic() {
    use rand::{Rng, SeedableRng};
    let seed_text = r#"address: 127.0.0.1:8443
certificates:
  - {cert: a.crt, key: a.key}
set_response_headers: {X-A: b, disable: false}
routes:
  - from: https://a.example.com:8443
    to: ['http://127.0.0.1:1,2', 'h2c://b:2']
    prefix: /api
    prefix_rewrite: /
    set_request_headers: {X-T: '${pomerium.request.headers["X"]} $$'}
    timeout: 1m30s
    policy: [{allow: {or: [{email: {is: a@b.c}}]}}]
  - from: https://*.example.com
    redirect: {https_redirect: true, response_code: 308}
    regex: '^/x/[0-9]+$'
base: &b {timeout: 5s, to: &t [http://a, http://b]}
extra: [*t, *t, {<<: *b, from: 'https://c'}]
"#;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x9a7e_4015e);
    let bytes = seed_text.as_bytes();
    let rounds = std::env::var("GATEHOUSE_FUZZ_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    for _ in 0..rounds {
        let mut b = bytes.to_vec();
        for _ in 0..rng.random_range(1..6) {
            let i = rng.random_range(0..b.len().max(1));
            match rng.random_range(0..5) {
                0 => b[i] = rng.random_range(0x20..0x7f),
                1 => {
                    b.remove(i);
                }
                2 => {
                    const PUNCT: &[u8] = b"{}[]:,-'\"&*!%@ \n\t#|>";
                    b.insert(i, PUNCT[rng.random_range(0..PUNCT.len())])
                }
                3 => b.truncate(i),
                _ => {
                    let end = (i + rng.random_range(1..40)).min(b.len());
                    let dup = b[i..end].to_vec();
                    b.splice(i..i, dup);
                }
            }
            if b.is_empty() {
                break;
            }
        }
        let text = String::from_utf8_lossy(&b);
        if let Err(r) = load_str(&text, "m.yaml", Path::new("/nonexistent"), &|_| None) {
            assert!(!r.diagnostics.is_empty());
            for d in r.diagnostics.iter().filter(|d| d.is_error()) {
                assert!(
                    d.mark.line >= 1,
                    "error without a position: {d} for:\n{text}"
                );
            }
        }
    }
}

#[test]
fn secrets_must_be_32_bytes() {
    let all = errors("cookie_secret: c2hvcnQ=\n").join("\n");
    assert!(
        all.contains("c.yaml:1:16: cookie_secret must be base64 of 32 random bytes"),
        "{all}"
    );
}

#[test]
fn local_users_inline_and_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$7mGgVLGYtDkmTqj0XxdWbvlXkLRqVbP3kxz4lyiR2o8";
    std::fs::write(
        dir.path().join("users.yaml"),
        format!("users:\n  - {{username: bob, email: bob@example.com, password_hash: '{hash}'}}\n"),
    )
    .unwrap();
    let cfg = load_str(
        &format!("idp_provider: local\nlocal_users_file: users.yaml\nlocal_users:\n  - {{username: alice, groups: [admins], password_hash: '{hash}'}}\n"),
        "c.yaml",
        dir.path(),
        &|_| None,
    )
    .unwrap()
    .config;
    let Provider::Local(users) = &cfg.sign_in.provider else {
        panic!()
    };
    let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(
        cfg.watched_files.iter().any(|f| f.ends_with("users.yaml")),
        "the user file is watched"
    );

    let all = errors(
        "idp_provider: local\nlocal_users:\n  - {username: carol, password_hash: plaintext}\n",
    )
    .join("\n");
    assert!(
        all.contains("c.yaml:3:5: user `carol`: password_hash must be an argon2id PHC string"),
        "{all}"
    );
    let all = errors("idp_provider: local\n").join("\n");
    assert!(all.contains("needs users"), "{all}");
}

#[test]
fn named_providers_get_pomeriums_defaults() {
    let cfg = load("idp_provider: google\nidp_client_id: id\nidp_client_secret: s\n")
        .unwrap()
        .config;
    let Provider::Oidc(p) = &cfg.sign_in.provider else {
        panic!()
    };
    assert_eq!(p.issuer, "https://accounts.google.com");
    assert_eq!(p.scopes, ["openid", "profile", "email"]);
    assert!(
        p.request_params
            .contains(&("access_type".into(), "offline".into()))
    );
    let cfg = load("idp_provider: oidc\nidp_provider_url: https://kc.example.com/realms/x\nidp_client_id: id\nidp_client_secret: s\nidp_scopes: openid,email\nidp_request_params: {login_hint: bob}\n").unwrap().config;
    let Provider::Oidc(p) = &cfg.sign_in.provider else {
        panic!()
    };
    assert_eq!(p.scopes, ["openid", "email"]);
    assert_eq!(
        p.request_params,
        [("login_hint".to_string(), "bob".to_string())]
    );
    let all = errors("idp_provider: azure\nidp_client_id: id\nidp_client_secret: s\n").join("\n");
    assert!(
        all.contains("c.yaml:1:15: `idp_provider: azure` needs `idp_provider_url`"),
        "{all}"
    );
    let cfg = load("idp_provider: github\nidp_client_id: id\nidp_client_secret: s\n")
        .unwrap()
        .config;
    let Provider::GitHub(g) = &cfg.sign_in.provider else {
        panic!()
    };
    assert_eq!(g.scopes, ["user:email", "read:org"]);
    assert_eq!(g.url, None);
}

#[test]
fn bearer_embedding_and_forward_auth_options() {
    let cfg = load(&format!(
        "identity_providers:
  keycloak:
    issuer: https://kc.example.com/realms/main
    audiences: [grafana]
  partner: {{issuer: https://partner.example.com, jwks_url: https://partner.example.com/keys, supported_algs: [ES256]}}
programmatic_redirect_domain_whitelist: [localhost, '*.cli.example.com']
routes:
  - from: https://grafana.example.com
    to: http://127.0.0.1:3000
    bearer_token_format: jwt
    identity_providers: [partner]
    cookie_same_site: none
    frame_ancestors: [https://portal.example.com, 'https://*.example.org', self]
{PUBLIC}"
    ))
    .unwrap()
    .config;
    assert_eq!(cfg.identity_providers.len(), 2);
    let kc = &cfg.identity_providers[0];
    assert_eq!(kc.name, "keycloak");
    assert_eq!(kc.jwks_url, None);
    assert_eq!(kc.supported_algs, ["RS256", "ES256", "EdDSA"]);
    assert_eq!(cfg.identity_providers[1].supported_algs, ["ES256"]);
    // A written `*.` is kept: it admits subdomains (a plain entry does not).
    assert_eq!(
        cfg.programmatic_redirect_domains,
        ["localhost", "*.cli.example.com"]
    );
    let loopback: Vec<String> = cfg
        .forward_auth_trusted_sources
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(loopback, ["127.0.0.0/8", "::1/128"]);
    let r = &cfg.routes[0];
    assert_eq!(r.bearer_token_format, BearerTokenFormat::Jwt);
    assert_eq!(r.identity_providers, ["partner"]);
    assert_eq!(r.cookie_same_site, Some(SameSite::None));
    let headers: Vec<(String, String)> = r
        .response_headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    assert!(!headers.iter().any(|(n, _)| n == "x-frame-options"));
    assert!(headers.contains(&(
        "content-security-policy".into(),
        "frame-ancestors https://portal.example.com https://*.example.org 'self'".into()
    )));
}

#[test]
fn bearer_and_embedding_mistakes_are_positioned() {
    let errs = errors(&format!(
        "identity_providers:
  nameless: {{audiences: [x]}}
  sym: {{issuer: https://a.example.com, supported_algs: [HS256]}}
routes:
  - from: https://a.example.com
    to: http://127.0.0.1:1
    bearer_token_format: jwt
    identity_providers: [missing]
    frame_ancestors: ['https://x.example.com/path', 'none']
{PUBLIC}  - from: https://b.example.com
    to: http://127.0.0.1:1
    bearer_token_format: idp_access_token
{PUBLIC}  - from: https://c.example.com
    to: http://127.0.0.1:1
    bearer_token_format: jwts
{PUBLIC}"
    ));
    let all = errs.join("\n");
    assert!(
        all.contains("c.yaml:2:13: identity_providers.nameless needs `issuer`"),
        "{all}"
    );
    assert!(
        all.contains(
            "c.yaml:3:56: identity_providers.sym.supported_algs: `HS256` is never accepted"
        ),
        "{all}"
    );
    assert!(
        all.contains(
            "c.yaml:8:25: identity_providers: `missing` is not in the global identity_providers"
        ),
        "{all}"
    );
    assert!(
        all.contains("frame_ancestors: `https://x.example.com/path` must be an origin"),
        "{all}"
    );
    assert!(
        all.contains("bearer_token_format: idp_access_token needs `idp_provider: oidc`"),
        "{all}"
    );
    assert!(all.contains("bearer_token_format `jwts` must be"), "{all}");
    // jwt without any identity provider.
    let errs = errors(&format!(
        "routes:\n  - from: https://a.example.com\n    to: http://127.0.0.1:1\n    bearer_token_format: jwt\n{PUBLIC}"
    ));
    assert!(
        errs[0].contains("bearer_token_format: jwt needs at least one entry"),
        "{errs:?}"
    );
}

#[test]
fn session_store_settings() {
    let route =
        format!("routes:\n  - from: https://a.example.com\n    to: http://127.0.0.1:1\n{PUBLIC}");
    let ok = load(&format!(
        "databroker_storage_type: redis\ndatabroker_storage_connection_string: rediss://:s3cret@redis.internal:6380/2\ndatabroker_storage_outage_grace: 90s\n{route}"
    ))
    .unwrap();
    let storage = &ok.config.sign_in.storage;
    assert_eq!(
        storage.kind,
        StorageKind::Redis("rediss://:s3cret@redis.internal:6380/2".into())
    );
    assert_eq!(storage.outage_grace, std::time::Duration::from_secs(90));
    // Never the password in a message.
    assert_eq!(storage.describe(), "redis rediss://redis.internal:6380/2");
    let default = load(&route).unwrap();
    assert_eq!(default.config.sign_in.storage.kind, StorageKind::Memory);
    assert_eq!(
        default.config.sign_in.storage.outage_grace,
        std::time::Duration::from_secs(300)
    );

    let cases = [
        (
            "databroker_storage_type: redis\n",
            "c.yaml:1:26: databroker_storage_type redis needs databroker_storage_connection_string",
        ),
        (
            "databroker_storage_type: redis\ndatabroker_storage_connection_string: http://r:6379\n",
            "c.yaml:2:39: databroker_storage_connection_string: scheme `http` is not supported",
        ),
        (
            "databroker_storage_type: redis\ndatabroker_storage_connection_string: redis://:pw@r:6379/x\n",
            "`/x` is not a database number",
        ),
        (
            "databroker_storage_type: postgres\n",
            "postgres is not supported by gatehouse",
        ),
        (
            "databroker_storage_type: redis\ndatabroker_storage_connection_string: redis://r\ndatabroker_storage_cert_file: c.pem\n",
            "databroker_storage_cert_file and databroker_storage_key_file go together",
        ),
        (
            "databroker_storage_type: redis\ndatabroker_storage_connection_string: redis://r\ndatabroker_storage_ca_file: /nonexistent/ca.pem\n",
            "c.yaml:3:29: cannot read databroker_storage_ca_file file `/nonexistent/ca.pem`",
        ),
        (
            "databroker_storage_type: redsi\n",
            "unknown databroker_storage_type `redsi`",
        ),
    ];
    for (head, want) in cases {
        let errs = errors(&format!("{head}{route}")).join("\n");
        assert!(errs.contains(want), "{head}: {errs}");
        assert!(!errs.contains("pw@"), "password in a message: {errs}");
    }
}

#[test]
fn the_console_is_a_route_of_its_own() {
    let loaded = load(
        "console:\n  from: https://console.localhost\n  policy: {allow: {and: [{groups: {has: admins}}]}}\nroutes:\n  - {from: 'https://a.localhost', to: 'http://127.0.0.1:1'}\n",
    )
    .unwrap();
    let console = loaded.config.console.as_ref().expect("console");
    assert_eq!(console.from.to_string(), "https://console.localhost");
    assert!(
        matches!(console.storage, ConsoleStorage::File(ref p) if p.ends_with("gatehouse-console.redb"))
    );
    let last = loaded.config.routes.last().unwrap();
    assert!(matches!(last.action, RouteAction::Console));
    assert!(last.authorization.policy.is_some());
    assert!(!last.pass_identity_headers);

    let e = errors("console:\n  from: https://console.localhost\n");
    assert!(e[0].contains("`policy` is required"), "{e:?}");
    let e = errors("console:\n  policy: {allow: {and: [{accept: true}]}}\n");
    assert!(e[0].contains("`from` is required"), "{e:?}");
    let e = errors(
        "console:\n  from: https://a.localhost\n  policy: {allow: {and: [{accept: true}]}}\nroutes:\n  - {from: 'https://a.localhost', to: 'http://127.0.0.1:1'}\n",
    );
    assert!(e[0].contains("also served by the route at line 5"), "{e:?}");
}

#[test]
fn console_overlay_is_checked_like_the_file() {
    use crate::overlay::{Overlay, Target, target};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "routes:\n  - {from: 'https://a.localhost', to: 'http://127.0.0.1:1', allow_any_authenticated_user: true}\n",
    )
    .unwrap();
    let env = |_: &str| None;
    let good = Overlay {
        routes: vec![(
            "r1".into(),
            serde_json::json!({"from": "https://b.localhost", "to": ["http://127.0.0.1:2"], "allow_any_authenticated_user": true}),
        )],
        settings: vec![("cookie_expire".into(), serde_json::json!("2h"))],
    };
    let loaded = crate::overlay::load_file_with_overlay(&path, &env, &good).unwrap();
    assert_eq!(loaded.config.routes.len(), 2);
    assert_eq!(loaded.config.routes[1].console_id(), Some("r1"));
    assert_eq!(
        loaded.config.sign_in.cookie.expire,
        std::time::Duration::from_secs(7200)
    );

    let bad = Overlay {
        routes: vec![(
            "r2".into(),
            serde_json::json!({"from": "https://b.localhost", "to": ["nope"], "timeout": "soon"}),
        )],
        settings: vec![],
    };
    let rejected = crate::overlay::load_file_with_overlay(&path, &env, &bad).unwrap_err();
    let targets: Vec<_> = rejected
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| target(&d.mark))
        .collect();
    assert!(
        targets.contains(&Some(Target::Route("r2", Some("timeout")))),
        "{rejected}"
    );
}

#[test]
fn unknown_keys_in_console_values_are_errors_on_their_key() {
    use crate::overlay::{Overlay, Target, target};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "routes: []\nnewer_option: 1\n").unwrap();
    let overlay = Overlay {
        routes: vec![(
            "r1".into(),
            serde_json::json!({"from": "https://b.localhost", "to": ["http://127.0.0.1:2"], "tto": 1}),
        )],
        settings: vec![],
    };
    let rejected = crate::overlay::load_file_with_overlay(&path, &|_| None, &overlay).unwrap_err();
    let errors: Vec<_> = rejected
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert_eq!(errors.len(), 1, "{rejected}");
    assert_eq!(
        target(&errors[0].mark),
        Some(Target::Route("r1", Some("tto")))
    );
    // The file's own unknown key stays a warning.
    assert!(
        rejected
            .diagnostics
            .iter()
            .any(|d| !d.is_error() && d.message.contains("newer_option"))
    );
}

// ---------------------------------------------------- configuration input

const ROUTE: &str = "routes:\n  - from: https://a.example.com\n    to: http://127.0.0.1:1\n    allow_any_authenticated_user: true\n";

#[test]
fn no_pomerium_key_is_refused_today_and_the_registry_says_so() {
    // Every key is in force or harmless without effect: the refusal
    // mechanism stays (a key added to the registry as refused is an error
    // at its key, from files, the environment and the console), with
    // nothing in it.
    assert!(
        !registry::KEYS
            .iter()
            .any(|e| matches!(e.status, registry::Status::Refused { .. }))
    );
}

#[test]
fn route_clients_are_resolved_against_the_global_one() {
    let oidc = "idp_provider: oidc\nidp_provider_url: https://idp.example.com\nidp_client_id: main\nidp_client_secret: main-secret\n";
    let cfg = load(&format!(
        "{oidc}{ROUTE}    idp_client_id: other\n    idp_client_secret: other-secret\n  - from: https://b.example.com\n    to: http://127.0.0.1:1\n    allow_any_authenticated_user: true\n    idp_client_id: other\n    idp_client_secret: other-secret\n  - from: https://c.example.com\n    to: http://127.0.0.1:1\n    allow_any_authenticated_user: true\n    idp_client_id: main\n"
    ))
    .unwrap()
    .config;
    assert_eq!(cfg.routes[0].idp_client.as_deref(), Some("oidc:other"));
    assert_eq!(cfg.sign_in.route_clients.len(), 1);
    assert_eq!(cfg.sign_in.route_clients[0].client_secret, "other-secret");
    // Only the id: the global secret; not the same as `other-secret`.
    let all = errors(&format!(
        "{oidc}{ROUTE}    idp_client_id: other\n    idp_client_secret: other-secret\n  - from: https://b.example.com\n    to: http://127.0.0.1:1\n    allow_any_authenticated_user: true\n    idp_client_id: other\n"
    ))
    .join("\n");
    assert!(
        all.contains("idp_client_id `other` has another secret on an earlier route"),
        "{all}"
    );
    // The global id names the global client.
    assert_eq!(cfg.routes[2].idp_client, None);
    // Provider tokens are verified for the route's own client.
    let cfg = load(&format!(
        "{oidc}{ROUTE}    idp_client_id: other\n    bearer_token_format: idp_identity_token\n"
    ))
    .unwrap()
    .config;
    assert_eq!(
        cfg.oidc_client_of(&cfg.routes[0]),
        Some(("oidc:other", "other"))
    );
    // A trusted issuer's name cannot look like a route's client.
    let all = errors(&format!(
        "identity_providers:\n  'oidc:other': {{issuer: https://x.example.com, jwks_url: https://x.example.com/keys}}\n{ROUTE}"
    ))
    .join("\n");
    assert!(all.contains("may not contain `:`"), "{all}");
    // Without an OpenID provider: an error at the key.
    let all = errors(&format!("{ROUTE}    idp_client_id: other\n")).join("\n");
    assert!(
        all.contains("c.yaml:5:20: a route's own idp_client_id / idp_client_secret needs an OpenID Connect idp_provider"),
        "{all}"
    );
}

#[test]
fn refused_keys_set_to_nothing_are_accepted() {
    for off in [
        "downstream_mtls: {}\n",
        "downstream_mtls: ~\n",
        "use_proxy_protocol: false\n",
    ] {
        let loaded = load(&format!("{off}{ROUTE}")).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }
    let loaded = load(&format!("{ROUTE}    tls_downstream_client_ca: ''\n")).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn refused_keys_from_the_environment_are_errors() {
    let env = |k: &str| match k {
        "ROUTES" => Some(
            "[{from: 'https://b.example.com', to: 'http://x', idp_client_id: other}]".to_string(),
        ),
        _ => None,
    };
    let rejected = load_str("", "c.yaml", Path::new("."), &env).unwrap_err();
    let all = rejected.to_string();
    let expected = "env:ROUTES: a route's own idp_client_id / idp_client_secret needs an OpenID Connect idp_provider";
    assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
}

#[test]
fn refused_keys_from_the_console_are_errors_on_their_key() {
    use crate::overlay::{Overlay, Target, target};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "routes: []\n").unwrap();
    let overlay = Overlay {
        routes: vec![(
            "r1".into(),
            serde_json::json!({"from": "https://b.localhost", "to": ["http://127.0.0.1:2"], "allow_any_authenticated_user": true, "idp_client_id": "abc"}),
        )],
        settings: vec![],
    };
    let rejected = crate::overlay::load_file_with_overlay(&path, &|_| None, &overlay).unwrap_err();
    let errors: Vec<_> = rejected
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert_eq!(errors.len(), 1, "{rejected}");
    assert_eq!(
        target(&errors[0].mark),
        Some(Target::Route("r1", Some("idp_client_id")))
    );
    assert!(
        errors[0]
            .message
            .contains("needs an OpenID Connect idp_provider"),
        "{rejected}"
    );
}

#[test]
fn harmless_keys_warn_and_say_why() {
    let loaded = load(&format!(
        "otel_log_level: debug\nservices: all\nproxy_log_level: debug\n{ROUTE}    kubernetes_service_account_token: abc\n"
    ))
    .unwrap();
    let w: Vec<String> = loaded.warnings.iter().map(|d| d.to_string()).collect();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w[0].starts_with(
            "c.yaml:1:1: warning: `otel_log_level` is not supported and is ignored; harmless: "
        ),
        "{w:?}"
    );
    assert!(
        w[1].starts_with("c.yaml:3:1: warning: `proxy_log_level`"),
        "{w:?}"
    );
    assert!(
        w[2].contains("`kubernetes_service_account_token`") && w[2].contains("upstream"),
        "{w:?}"
    );
}

/// Every refused key is listed in the documentation, with its reason.
#[test]
fn a_byte_order_mark_does_not_hide_the_first_key() {
    let loaded = load(&format!("\u{feff}{ROUTE}")).unwrap();
    assert_eq!(loaded.config.routes.len(), 1);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let all = errors("\u{feff}timeout_read: soon\n").join("\n");
    assert!(all.starts_with("c.yaml:1:15: invalid duration"), "{all}");
}

#[test]
fn huge_values_are_shortened_in_messages() {
    let value = "x".repeat(1 << 20);
    for text in [
        format!("timeout_read: {value}\n"),
        format!("{value}: 1\n{value}: 2\n"),
        format!("routes:\n  - from: https://a.example.com\n    to: 'http//{value}'\n"),
        format!("{value}: 1\n{ROUTE}"),
    ] {
        let diagnostics = match load(&text) {
            Ok(l) => l.warnings,
            Err(r) => r.diagnostics,
        };
        assert!(!diagnostics.is_empty());
        for d in &diagnostics {
            assert!(
                d.message.len() < 1200,
                "{} bytes: {}",
                d.message.len(),
                shorten(&d.message)
            );
        }
    }
    let all = errors(&format!("timeout_read: {value}\n")).join("");
    assert!(all.contains("…(1048576 bytes)`"), "{all}");
}

#[test]
fn files_are_read_with_a_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, format!("a: {}\n", "x".repeat(MAX_INPUT_BYTES))).unwrap();
    for path in [big.as_path(), Path::new("/dev/zero")] {
        let all = load_file_with_env(path, &|_| None).unwrap_err().to_string();
        assert!(
            all.contains(&format!(
                "{}: cannot read config file: it is larger than the limit of 8 MiB",
                path.display()
            )),
            "{all}"
        );
    }
    // Files the configuration names are bounded the same way.
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("shared_secret_file: /dev/zero\ncertificate_file: /dev/zero\ncertificate_key_file: /dev/zero\n{ROUTE}")).unwrap();
    let all = load_file_with_env(&config, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        all.contains("cannot read `shared_secret_file` `/dev/zero`: it is larger than the limit"),
        "{all}"
    );
    assert!(
        all.contains("file `/dev/zero`: it is larger than the limit"),
        "{all}"
    );
}

#[test]
fn an_alias_bomb_is_refused_by_the_loader() {
    let mut text = String::from("x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..=9 {
        let items = vec![format!("*x{}", i - 1); 9].join(",");
        text.push_str(&format!("x{i}: &x{i} [{items}]\n"));
    }
    let all = errors(&text).join("\n");
    assert!(all.starts_with("c.yaml:6:"), "{all}");
    assert!(
        all.contains("alias `*x4` makes the configuration take more than 64 MiB"),
        "{all}"
    );
}

#[test]
fn rewrite_response_headers_are_compiled_in_order_and_checked() {
    let cfg = load(&format!(
        "routes:\n  - from: https://a.example.com\n    to: http://127.0.0.1:1\n{PUBLIC}    rewrite_response_headers:\n      - {{header: Location, prefix: 'http://10.0.0.5/', value: 'https://a.example.com/'}}\n      - {{header: link, value: x}}\n"
    ))
    .unwrap()
    .config;
    let rules = &cfg.routes[0].rewrite_response_headers;
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].name, "location");
    assert_eq!(rules[0].prefix, "http://10.0.0.5/");
    assert_eq!(rules[0].value, "https://a.example.com/");
    assert_eq!(
        (rules[1].prefix.as_str(), rules[1].value.as_str()),
        ("", "x")
    );
    let all = errors(&format!(
        "routes:\n  - from: https://a.example.com\n    to: http://127.0.0.1:1\n{PUBLIC}    rewrite_response_headers:\n      - {{prefix: a, value: b}}\n      - {{header: 'bad name', value: b}}\n      - {{header: Location, value: \"a\\nb\"}}\n      - {{header: Location, prfix: a}}\n      - just-a-string\n"
    ))
    .join("\n");
    for want in [
        "c.yaml:6:9: `rewrite_response_headers` entry needs `header`",
        "c.yaml:7:18: `bad name` is not a valid HTTP header name",
        "is not a valid HTTP header value",
        "c.yaml:9:28: unknown `rewrite_response_headers` option `prfix`",
        "c.yaml:10:9: each `rewrite_response_headers` entry must be a mapping",
    ] {
        assert!(all.contains(want), "{want}\n{all}");
    }
}

/// A CA certificate (made with `openssl req -x509`; only its PEM is read
/// here: the proxy's tests verify certificates against CAs).
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBhjCCAS2gAwIBAgIUYVstoLeSfHEL9fFSB3/paWzhXt0wCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOQ29uZmlnIFRlc3QgQ0EwHhcNMjYxMTMwMjMxNDAyWhcNMzYx
MTI3MjMxNDAyWjAZMRcwFQYDVQQDDA5Db25maWcgVGVzdCBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABH/N5iDlFlKn9oUiaoJZXUyXK2gZ8n5sRp6kOqNYVa1W
ZXYZYOxlSk+e7+ZKuM3+hZWt5rtuWUm715ea0ULpUrCjUzBRMB0GA1UdDgQWBBSY
Btt8d/aHqgB4vhxRrhm3at+NZDAfBgNVHSMEGDAWgBSYBtt8d/aHqgB4vhxRrhm3
at+NZDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIG2z7LoTYpnq
my+4WnO292tolSOnyPq9GAkdDNGK+7b2AiBweFXdYvz0Y4hmZUMDYqAqVnOcr6dj
0LQHvA/UegJOsA==
-----END CERTIFICATE-----
";

#[test]
fn downstream_mtls_is_compiled_with_pomerium_s_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), TEST_CA).unwrap();
    let load_in = |text: &str, env: &dyn Fn(&str) -> Option<String>| {
        load_str(text, "c.yaml", dir.path(), env)
    };
    // Defaults: policy_with_default_deny, depth 1, every route denies a
    // missing or invalid certificate.
    let cfg = load_in(
        &format!("downstream_mtls:\n  ca_file: ca.pem\n{ROUTE}"),
        &|_| None,
    )
    .unwrap()
    .config;
    let rules = cfg.client_certs.as_ref().unwrap();
    assert_eq!(rules.enforcement, Enforcement::PolicyWithDefaultDeny);
    assert_eq!(rules.max_verify_depth, 1);
    assert_eq!(rules.ca.len(), 1);
    assert!(cfg.routes[0].client_cert_default_deny);
    // `policy`: only policies look at certificates.
    let cfg = load_in(
        &format!("downstream_mtls:\n  ca_file: ca.pem\n  enforcement: policy\n  max_verify_depth: 0\n  match_subject_alt_names:\n    - dns: '.*\\.example\\.com'\n    - Email: '.*@example\\.com'\n{ROUTE}"),
        &|_| None,
    )
    .unwrap()
    .config;
    let rules = cfg.client_certs.as_ref().unwrap();
    assert_eq!(rules.enforcement, Enforcement::Policy);
    assert_eq!(rules.max_verify_depth, 0);
    assert_eq!(rules.match_subject_alt_names.len(), 2);
    assert!(
        rules.match_subject_alt_names[0]
            .pattern
            .is_match("a.example.com")
    );
    assert!(
        !rules.match_subject_alt_names[0]
            .pattern
            .is_match("a.example.com.evil")
    );
    assert!(!cfg.routes[0].client_cert_default_deny);
    // A route's own CA alone turns client certificates on.
    let cfg = load_in(
        &format!("{ROUTE}    tls_downstream_client_ca_file: ca.pem\n"),
        &|_| None,
    )
    .unwrap()
    .config;
    assert_eq!(cfg.routes[0].client_ca.len(), 1);
    assert_eq!(cfg.client_certs.as_ref().unwrap().all_cas.len(), 1);
    assert!(cfg.client_certs.as_ref().unwrap().ca.is_empty());
    // From the environment, key by key.
    let cfg = load_in(ROUTE, &|k| match k {
        "DOWNSTREAM_MTLS_CA_FILE" => Some("ca.pem".into()),
        "DOWNSTREAM_MTLS_ENFORCEMENT" => Some("reject_connection".into()),
        _ => None,
    })
    .unwrap()
    .config;
    assert_eq!(
        cfg.client_certs.as_ref().unwrap().enforcement,
        Enforcement::RejectConnection
    );
    // No CA at all: nothing is asked for, and nothing else may be set.
    assert!(
        load_in(&format!("downstream_mtls: {{}}\n{ROUTE}"), &|_| None)
            .unwrap()
            .config
            .client_certs
            .is_none()
    );
    let all = match load_in(
        &format!("downstream_mtls:\n  enforcement: reject_connection\n{ROUTE}"),
        &|_| None,
    ) {
        Err(r) => r.to_string(),
        Ok(_) => panic!("accepted"),
    };
    assert!(all.contains("downstream_mtls needs a `ca`"), "{all}");
    // Mistakes, each at its place.
    let all = match load_in(
        &format!(
            "downstream_mtls:\n  ca_file: ca.pem\n  ca: x\n  enforcement: deny\n  crl: '-----BEGIN CERTIFICATE-----'\n  match_subject_alt_names:\n    - cn: x\n    - dns: '('\n{ROUTE}    tls_downstream_client_ca_file: missing.pem\n"
        ),
        &|_| None,
    ) {
        Err(r) => r.to_string(),
        Ok(_) => panic!("accepted"),
    };
    for want in [
        "c.yaml:2:12: set only one of `downstream_mtls.ca` and `downstream_mtls.ca_file`",
        "c.yaml:4:16: downstream_mtls.enforcement `deny` must be policy_with_default_deny, policy or reject_connection",
        "downstream_mtls.crl: no PEM `X509 CRL` found",
        "c.yaml:7:7: unknown subject alt name type `cn`",
        "c.yaml:8:12: invalid regular expression",
        "cannot read tls_downstream_client_ca file",
    ] {
        assert!(all.contains(want), "{want}\n{all}");
    }
}

#[test]
fn jwt_groups_filter_forms_and_merging() {
    let cfg = load(&format!(
        "jwt_groups_filter: [staff]\n{ROUTE}    jwt_groups_filter: 'a, b'\n  - from: https://b.example.com\n    to: http://127.0.0.1:1\n    allow_any_authenticated_user: true\n    jwt_groups_filter: {{groups: [c], infer_from_ppl: true}}\n  - from: https://c.example.com\n    to: http://127.0.0.1:1\n    allow_any_authenticated_user: true\n"
    ))
    .unwrap()
    .config;
    let f = |i: usize| cfg.routes[i].groups_filter.clone().unwrap();
    assert_eq!(f(0).groups, ["staff", "a", "b"]);
    assert!(!f(0).infer_from_ppl);
    assert_eq!(f(1).groups, ["staff", "c"]);
    assert!(f(1).infer_from_ppl);
    assert_eq!(f(2).groups, ["staff"]);
    let cfg = load(ROUTE).unwrap().config;
    assert!(cfg.routes[0].groups_filter.is_none());
    let all = errors(&format!(
        "jwt_groups_filter: {{groups: [a], infer: true}}\n{ROUTE}    jwt_groups_filter: {{infer_from_ppl: maybe}}\n"
    ))
    .join("\n");
    assert!(
        all.contains("c.yaml:1:34: unknown `jwt_groups_filter` option `infer`"),
        "{all}"
    );
    assert!(
        all.contains("`infer_from_ppl` must be true or false"),
        "{all}"
    );
}

#[test]
fn load_balancing_and_target_health_are_compiled() {
    let cfg = load(&format!(
        "{ROUTE}    load_balancing_policy: LOAD_BALANCING_POLICY_MAGLEV\n    outlier_detection: {{consecutive_5xx: 3, base_ejection_time: 10s, max_ejection_time: 1m, interval: 5s}}\n    health_checks:\n      - {{timeout: 2s, interval: 3s, http_health_check: {{path: /healthz, expected_statuses: [{{start: 200, end: 400}}]}}}}\n      - {{tcp_health_check: {{}}}}\n"
    ))
    .unwrap();
    let r = &cfg.config.routes[0];
    assert_eq!(r.load_balancing, LoadBalancing::Maglev);
    let o = r.outlier_detection.as_ref().unwrap();
    assert_eq!((o.consecutive_5xx, o.consecutive_gateway_failure), (3, 5));
    assert_eq!(o.base_ejection_time, std::time::Duration::from_secs(10));
    assert_eq!(o.max_ejection_time, std::time::Duration::from_secs(60));
    assert_eq!(r.health_checks.len(), 2);
    assert_eq!(
        r.health_checks[0].kind,
        HealthCheckKind::Http {
            path: "/healthz".into(),
            host: None,
            expected: vec![(200, 400)]
        }
    );
    assert_eq!(r.health_checks[1].kind, HealthCheckKind::Tcp);
    assert!(
        cfg.warnings.iter().any(|w| w
            .to_string()
            .contains("outlier_detection.interval has no effect")),
        "{:?}",
        cfg.warnings
    );
    let all = errors(&format!(
        "{ROUTE}    load_balancing_policy: fastest\n    health_checks:\n      - {{interval: 1s}}\n      - {{grpc_health_check: {{}}}}\n      - {{interval: 100ms, timeout: 50ms, tcp_health_check: {{}}}}\n      - {{interval: 2s, timeout: 3s, tcp_health_check: {{}}}}\n    outlier_detection: {{consecutive_5xx: many}}\n"
    ))
    .join("\n");
    for want in [
        "load_balancing_policy `fastest` must be round_robin, least_request, random, ring_hash or maglev",
        "a health check needs `http_health_check` or `tcp_health_check`",
        "`grpc_health_check` is not supported",
        "`consecutive_5xx` must be a whole number",
    ] {
        assert!(all.contains(want), "{want}\n{all}");
    }
    // Both bad timings: a probe storm (100ms) and probes that overlap.
    let bounded = "a health check needs an `interval` of at least 1s and a non-zero `timeout` no longer than it";
    assert_eq!(all.matches(bounded).count(), 2, "{all}");
}

#[test]
fn console_routes_take_no_secrets() {
    use crate::overlay::{Overlay, Target, target};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "idp_provider: oidc\nidp_provider_url: https://idp.example.com\nidp_client_id: main\nidp_client_secret: main-secret\nroutes: []\n",
    )
    .unwrap();
    for (key, value) in [
        ("idp_client_secret", "s3cr3t"),
        ("tls_client_key", "-----BEGIN PRIVATE KEY-----"),
    ] {
        let overlay = Overlay {
            routes: vec![(
                "r1".into(),
                serde_json::json!({"from": "https://b.localhost", "to": ["http://127.0.0.1:2"], "allow_any_authenticated_user": true, "idp_client_id": "other", key: value}),
            )],
            settings: vec![],
        };
        let rejected =
            crate::overlay::load_file_with_overlay(&path, &|_| None, &overlay).unwrap_err();
        let error = rejected
            .diagnostics
            .iter()
            .find(|d| d.is_error() && d.message.contains("the console keeps no secrets"))
            .unwrap_or_else(|| panic!("{key}: {rejected}"));
        assert_eq!(target(&error.mark), Some(Target::Route("r1", Some(key))));
    }
}

#[test]
fn otel_settings_are_read_as_pomerium_reads_them() {
    let cfg = load(&format!(
        "otel_traces_exporter: otlp\notel_exporter_otlp_endpoint: https://collector.localhost:9000/base/\notel_exporter_otlp_protocol: http/protobuf\notel_exporter_otlp_headers: ['authorization=Bearer%20t', 'x-tenant=a']\notel_exporter_otlp_timeout: 2500\notel_traces_sampler_arg: 2\notel_attribute_value_length_limit: 10\notel_bsp_schedule_delay: 5\notel_bsp_max_export_batch_size: 100000\notel_resource_attributes: [service.name=edge, region=eu]\n{ROUTE}"
    ))
    .unwrap();
    let t = cfg.config.tracing.unwrap();
    assert_eq!(
        t.endpoint,
        "https://collector.localhost:9000/base/v1/traces"
    );
    assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(t.headers.len(), 2);
    assert_eq!(t.headers[0].1, "Bearer t");
    assert!(t.headers[0].1.is_sensitive());
    assert_eq!(t.timeout, std::time::Duration::from_millis(2500));
    // Clamped as Pomerium clamps them.
    assert_eq!(t.sampler_ratio, 1.0);
    assert_eq!(t.attribute_value_limit, 64);
    assert_eq!(t.schedule_delay, std::time::Duration::from_millis(100));
    assert_eq!(t.max_batch, Tracing::QUEUE);
    assert_eq!(
        t.resource,
        [
            ("service.name".to_string(), "edge".to_string()),
            ("region".to_string(), "eu".to_string())
        ]
    );
    // The traces-specific endpoint is used as written; gRPC takes the
    // service's method path; the protocol is guessed from the port.
    let cfg = load(&format!(
        "otel_traces_exporter: otlp\notel_exporter_otlp_traces_endpoint: http://c.localhost:4317/ignored\notel_exporter_otlp_endpoint: http://other:1\n{ROUTE}"
    ))
    .unwrap();
    let t = cfg.config.tracing.unwrap();
    assert_eq!(t.protocol, OtlpProtocol::Grpc);
    assert_eq!(
        t.endpoint,
        "http://c.localhost:4317/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    );
    // From the environment, as OTEL_* variables.
    let env = |k: &str| match k {
        "OTEL_TRACES_EXPORTER" => Some("otlp".to_string()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4318".to_string()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("api-key=k1,x-b=2".to_string()),
        _ => None,
    };
    let cfg = load_str(ROUTE, "c.yaml", Path::new("."), &env).unwrap();
    let t = cfg.config.tracing.unwrap();
    assert_eq!(t.endpoint, "http://127.0.0.1:4318/v1/traces");
    assert_eq!(t.headers.len(), 2);
    // Off unless the exporter is otlp.
    for off in ["", "otel_traces_exporter: none\n"] {
        let cfg = load(&format!(
            "{off}otel_exporter_otlp_endpoint: http://c:4318\n{ROUTE}"
        ))
        .unwrap();
        assert!(cfg.config.tracing.is_none());
    }
}

#[test]
fn otel_mistakes_are_errors_at_their_key() {
    for (text, expected) in [
        (
            "otel_traces_exporter: jaeger\n",
            "c.yaml:1:23: otel_traces_exporter `jaeger` must be `otlp` or `none`",
        ),
        (
            "otel_traces_exporter: otlp\notel_exporter_otlp_endpoint: collector:4317\n",
            "c.yaml:2:30: the OTLP endpoint must be a URL like `http://localhost:4318` (http or https)",
        ),
        (
            "otel_traces_exporter: otlp\notel_exporter_otlp_endpoint: http://user:pw@c:4318\n",
            "c.yaml:2:30: the OTLP endpoint must not hold credentials",
        ),
        (
            "otel_traces_exporter: otlp\notel_exporter_otlp_endpoint: http://c:1\notel_exporter_otlp_protocol: http/json\n",
            "c.yaml:3:30: the OTLP protocol `http/json` must be `grpc` or `http/protobuf`",
        ),
        (
            "otel_traces_exporter: otlp\notel_exporter_otlp_endpoint: http://c:1\notel_exporter_otlp_headers: [no-equals-secret]\n",
            "c.yaml:3:29: otel_exporter_otlp_headers: entry 1 must be written `name=value`",
        ),
        (
            "otel_traces_exporter: otlp\notel_exporter_otlp_endpoint: http://c:1\notel_exporter_otlp_headers: ['bad name=v']\n",
            "c.yaml:3:29: otel_exporter_otlp_headers: an entry is not a valid header",
        ),
        (
            "otel_traces_exporter: otlp\notel_exporter_otlp_endpoint: http://c:1\notel_exporter_otlp_timeout: 0\n",
            "c.yaml:3:29: the OTLP export timeout must be greater than 0",
        ),
        (
            "otel_traces_exporter: otlp\notel_exporter_otlp_endpoint: http://c:1\notel_bsp_schedule_delay: soon\n",
            "c.yaml:3:26: ",
        ),
    ] {
        let e = errors(&format!("{text}{ROUTE}"));
        assert!(e.iter().any(|m| m.starts_with(expected)), "{text}: {e:?}");
        // Credentials are never echoed.
        for secret in ["no-equals-secret", "pw@", "bad name"] {
            assert!(!e.join("\n").contains(secret), "{e:?}");
        }
    }
    // A header value with spaces, from the environment (commas separate).
    let env = |k: &str| match k {
        "OTEL_TRACES_EXPORTER" => Some("otlp".to_string()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4318".to_string()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("Authorization=Bearer s3cr3t, x-b=2".to_string()),
        _ => None,
    };
    let t = load_str(ROUTE, "c.yaml", Path::new("."), &env)
        .unwrap()
        .config
        .tracing
        .unwrap();
    assert_eq!(t.headers[0].1, "Bearer s3cr3t");
    assert_eq!(t.headers[1].1, "2");
    // Without an endpoint: the OTLP default, said.
    let cfg = load(&format!("otel_traces_exporter: otlp\n{ROUTE}")).unwrap();
    assert!(
        cfg.warnings[0]
            .to_string()
            .contains("http://localhost:4318")
    );
}

#[test]
fn misshapen_group_filters_and_health_checks_are_errors_not_defaults() {
    for (text, expected) in [
        (
            format!("{ROUTE}    jwt_groups_filter: {{groups: {{a: b}}}}\n"),
            "`jwt_groups_filter`: groups must be a list of group names",
        ),
        (
            format!(
                "{ROUTE}    health_checks: [{{interval: 2s, timeout: 1s, http_health_check: /healthz}}]\n"
            ),
            "http_health_check must be a mapping",
        ),
        (
            format!(
                "{ROUTE}    health_checks: [{{interval: 2s, timeout: 1s, tcp_health_check: yes}}]\n"
            ),
            "tcp_health_check must be a mapping",
        ),
        (
            format!(
                "{ROUTE}    health_checks: [{{interval: 2s, timeout: 1s, tcp_health_check: {{sned: x}}}}]\n"
            ),
            "unknown tcp_health_check option `sned`",
        ),
    ] {
        let e = errors(&text);
        assert!(e.iter().any(|m| m.contains(expected)), "{text}: {e:?}");
    }
    let loaded = load(&format!(
        "{ROUTE}    health_checks: [{{interval: 2s, timeout: 1s, tcp_health_check: {{send: {{text: '00'}}, receive: [{{text: '01'}}]}}}}]\n"
    ))
    .unwrap();
    let w: Vec<String> = loaded.warnings.iter().map(|d| d.to_string()).collect();
    assert!(
        w.iter()
            .any(|m| m.contains("tcp_health_check.send has no effect")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|m| m.contains("tcp_health_check.receive has no effect")),
        "{w:?}"
    );
}

#[test]
fn autocert_settings_are_read_as_pomerium_reads_them() {
    let wild = "  - from: https://*.apps.example.com\n    to: http://127.0.0.1:1\n    allow_any_authenticated_user: true\n";
    let loaded = load(&format!(
        "autocert: true\nautocert_dir: /var/lib/gh\nautocert_email: ops@example.com\nautocert_use_staging: true\nautocert_eab_key_id: kid\nautocert_eab_mac_key: c2VjcmV0LW1hYw\nauthenticate_service_url: https://auth.example.com\n{ROUTE}{wild}"
    ))
    .unwrap();
    let a = loaded.config.autocert.as_ref().unwrap();
    assert_eq!(a.dir, std::path::PathBuf::from("/var/lib/gh"));
    assert!(a.directory_url.contains("acme-staging-v02"));
    assert_eq!(a.email.as_deref(), Some("ops@example.com"));
    assert_eq!(a.eab, Some(("kid".to_string(), b"secret-mac".to_vec())));
    assert!(!a.http01);
    assert_eq!(a.hosts, ["a.example.com", "auth.example.com"]);
    // A wildcard cannot be proved over HTTP or TLS: said.
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.message.contains("`*.apps.example.com`")),
        "{:?}",
        loaded.warnings
    );
    // The MAC key is not in the debug form.
    assert!(!format!("{a:?}").contains("secret"));
    // Off unless true; the default CA is Let's Encrypt's.
    assert!(load(ROUTE).unwrap().config.autocert.is_none());
    let a = load(&format!("autocert: true\n{ROUTE}"))
        .unwrap()
        .config
        .autocert
        .unwrap();
    assert_eq!(
        a.directory_url,
        "https://acme-v02.api.letsencrypt.org/directory"
    );
    for (text, expected) in [
        (
            "autocert: true\ninsecure_server: true\n",
            "autocert needs a TLS listener",
        ),
        (
            "autocert: true\nautocert_ca: http://ca.example.com/dir\n",
            "autocert_ca must be the https URL",
        ),
        ("autocert: true\nautocert_eab_key_id: kid\n", "go together"),
        (
            "autocert: true\nautocert_eab_key_id: kid\nautocert_eab_mac_key: '!!not base64!!'\n",
            "autocert_eab_mac_key must be base64url",
        ),
    ] {
        let e = errors(&format!("{text}{ROUTE}"));
        assert!(e.iter().any(|m| m.contains(expected)), "{text}: {e:?}");
        assert!(
            !e.join("\n").contains("not base64"),
            "the key echoed: {e:?}"
        );
    }
}

#[test]
fn every_mistake_is_reported_in_one_pass() {
    // A value of the wrong type no longer hides the mistakes after it.
    let all = errors(
        "routes:\n  - from: example.com\n    to: 10.0.0.5:8080\n    allow_public_unauthenticated_access: true\n  - from: https://b.example.com:99999\n    to: http://x\n    timeout: 5 parsecs\n",
    );
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(
        all.iter()
            .any(|e| e.contains("it needs a scheme, like `http://10.0.0.5:8080`")),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|e| e.contains("invalid duration `5 parsecs`")),
        "{all:?}"
    );
    assert!(
        !all.iter()
            .any(|e| e.contains("relative URL without a base")),
        "{all:?}"
    );
}

//! `gatehouse check` and `gatehouse run` on good and broken files.

mod common;

use std::process::Command;

use common::*;

#[test]
fn check_accepts_a_valid_file() {
    let (code, out) = check(
        "address: :8443\nroutes:\n  - from: https://app.example.com\n    to: http://127.0.0.1:8080\n    allow_public_unauthenticated_access: true\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("configuration OK (1 route, 0 warnings); 5 keys in force, 0 without effect"),
        "{out}"
    );
}

#[test]
fn check_counts_the_keys_that_do_nothing() {
    let (code, out) = check(
        "address: :8443\ndebug_address: :9901\nroutes:\n  - from: https://app.example.com\n    to: http://127.0.0.1:8080\n    allow_public_unauthenticated_access: true\n    tls_upstream_allow_renegotiation: true\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(":2:1: warning: `debug_address` is not supported and is ignored; harmless: no debug listener is opened"),
        "{out}"
    );
    assert!(
        out.contains("configuration OK (1 route, 2 warnings); 5 keys in force, 2 without effect"),
        "{out}"
    );
}

#[test]
fn check_prints_every_error_with_its_position() {
    let yaml = "\
routes:
  - from: https://a.example.com/path
    to: http://127.0.0.1:1
  - from: gopher://b.example.com
    to: http://127.0.0.1:1
  - from: https://c.example.com
    to: ['http://127.0.0.1:1,0']
  - from: https://d.example.com
    to: 'http//missing-colon'
  - from: https://e.example.com
    to: http://127.0.0.1:1
    prefix_rewrite: /x
    regex_rewrite_pattern: ^/y
    regex_rewrite_substitution: /z
  - from: https://f.example.com
    to: http://127.0.0.1:1
  - from: https://f.example.com
    to: http://127.0.0.1:2
certificate_file: /nonexistent/gatehouse.crt
certificate_key_file: /nonexistent/gatehouse.key
";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (code, out) = check_file(&path);
    assert_eq!(code, 1, "{out}");
    let f = path.display().to_string();
    for expected in [
        format!("{f}:2:11: `from` must not have a path"),
        format!("{f}:4:11: unknown `from` scheme `gopher`"),
        format!("{f}:7:9: weight 0"),
        format!("{f}:9:9: invalid `to` URL `http//missing-colon`"),
        format!("{f}:13:28: conflicting rewrites"),
        format!(
            "{f}:17:11: duplicate route: `https://f.example.com` is already defined at line 15"
        ),
        format!("{f}:19:19: cannot read server certificate file `/nonexistent/gatehouse.crt`"),
    ] {
        assert!(out.contains(&expected), "missing `{expected}` in:\n{out}");
    }
    assert!(out.contains(": 8 errors"), "{out}");
}

#[test]
fn unknown_keys_are_warnings_not_errors() {
    let (code, out) = check(
        "adress: :443\nroutes:\n  - from: https://a.example.com\n    to: http://127.0.0.1:1\n    allow_public_unauthenticated_access: true\n    alow_websockets: true\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(":1:1: warning: unknown config option `adress`"),
        "{out}"
    );
    assert!(
        out.contains(":6:5: warning: unknown config option `alow_websockets`"),
        "{out}"
    );
}

#[test]
fn syntax_errors_have_positions() {
    let (code, out) = check("routes:\n  - from: https://a.example.com\n    to: [http://x\n");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("config.yaml:") && out.contains("invalid YAML"),
        "{out}"
    );
}

#[test]
fn check_rejects_a_key_that_does_not_match_its_certificate() {
    install_crypto();
    let ca = TestCa::new();
    let (cert, _, _) = ca.leaf(&["a.localhost"]);
    let (_, other_key, _) = ca.leaf(&["b.localhost"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), cert).unwrap();
    std::fs::write(dir.path().join("k.pem"), other_key).unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "certificate_file: c.pem\ncertificate_key_file: k.pem\n",
    )
    .unwrap();
    let (code, out) = check_file(&config);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not match"), "{out}");
}

#[test]
fn run_refuses_an_invalid_file_with_the_same_messages() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "routes:\n  - from: https://a.example.com/x\n    to: http://127.0.0.1:1\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2:11: `from` must not have a path",
            config.display()
        )),
        "{err}"
    );
    assert!(err.contains("refusing to start"), "{err}");
    // `run` is the default subcommand.
    let out = Command::new(BIN).arg("-c").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("gatehouse "));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "check", "--config", "Examples"] {
        assert!(help.contains(word), "{help}");
    }
}

/// Settings gatehouse does not implement: harmless ones warn with the
/// reason, ones that protect something are errors naming what would happen.
#[test]
fn unimplemented_settings_warn_with_a_reason_or_are_refused() {
    let route = "routes:\n  - from: https://a.example.com\n    to: http://127.0.0.1:1\n    allow_public_unauthenticated_access: true\n";
    let (code, out) = check(&format!("otel_log_level: debug\n{route}"));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(":1:1: warning: `otel_log_level` is not supported and is ignored; harmless: "),
        "{out}"
    );
    let (code, out) = check(&format!("{route}    idp_client_id: another-client\n"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(":5:20: a route's own idp_client_id / idp_client_secret needs an OpenID Connect idp_provider"),
        "{out}"
    );
    // Rules gatehouse cannot run are refused, never dropped.
    let (code, out) = check(&format!(
        "{route}    sub_policies: [{{id: deny-contractors, rego: ['package pomerium.policy']}}]\n"
    ));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("`rego` is not run by gatehouse"), "{out}");
}

/// A misspelt key says which key it was likely meant to be; `--strict`
/// (check and run) makes unknown keys errors, so a default never applies
/// silently in their place.
#[test]
fn misspelt_keys_are_named_and_strict_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "adress: 127.0.0.1:1\ninsecure_server: true\nroutes:\n  - from: https://a.example.com\n    to: http://127.0.0.1:1\n    allow_public_unauthenticated_acces: true\n    allow_public_unauthenticated_access: true\n",
    )
    .unwrap();
    let (code, out) = check_file(&config);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("unknown config option `adress` (ignored); did you mean `address`?"),
        "{out}"
    );
    assert!(
        out.contains("did you mean `allow_public_unauthenticated_access`?"),
        "{out}"
    );
    let strict = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["check", "--strict", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&strict.stdout);
    assert_eq!(strict.status.code(), Some(1), "{text}");
    assert!(text.contains("config.yaml: 2 errors\n"), "{text}");
    assert!(
        text.contains("unknown config option `adress` (--strict); did you mean `address`?"),
        "{text}"
    );
    // `run --strict` does not start.
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["run", "--strict", "--log-format", "json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(
        said.contains("unknown config option `adress` (--strict)"),
        "{said}"
    );
    assert!(said.contains("refusing to start"), "{said}");
}

/// Policy mistakes are reported beside every other kind (a wrong type
/// elsewhere does not hide them), misspelt criteria get a suggestion, an
/// unreadable secret file is named once (not also as a missing secret),
/// and messages carry no system error numbers.
#[test]
fn check_reports_policy_mistakes_beside_the_others_in_users_words() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "insecure_server: true
idp_provider: oidc
idp_provider_url: https://idp.example.com
idp_client_id: gatehouse
idp_client_secret_file: secrets/missing
timeout_read: 10 parsecs
routes:
  - from: grafana.example.com
    to: http://127.0.0.1:3000
    policy:
      allow:
        or:
          - emial: {is: a@example.com}
  - from: https://b.example.com
    to: http://127.0.0.1:1
    policy:
      alow:
        xor: []
",
    )
    .unwrap();
    let (code, out) = check_file(&config);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let expected = [
        ":5:25: cannot read `idp_client_secret_file`",
        ":6:15: invalid duration `10 parsecs`: unknown unit `parsecs`",
        ":8:11: invalid `from` URL `grafana.example.com`: it needs a scheme, like `https://grafana.example.com`",
        ":13:13: route `grafana.example.com`: policy: unknown criterion `emial`; did you mean `email`?",
    ];
    for (want, line) in expected.iter().zip(&lines) {
        assert!(line.contains(want), "{want}\n{out}");
    }
    assert!(
        lines[4].contains(":17:7: route `https://b.example.com`: policy: unknown action `alow`; did you mean `allow`?"),
        "{out}"
    );
    assert!(!out.contains("needs `idp_client_secret`"), "{out}");
    assert!(!out.contains("os error"), "{out}");
    let last = lines.last().unwrap();
    assert!(last.ends_with("config.yaml: 5 errors"), "{out}");
}

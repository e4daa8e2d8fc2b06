//! Any YAML as a route's `policy`: it compiles to a policy or to positioned
//! errors, and a compiled policy evaluates any request without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

struct User;

impl gatehouse_policy::Subject for User {
    fn user_id(&self) -> &str {
        "alice"
    }
    fn email(&self) -> &str {
        "alice@example.com"
    }
    fn groups(&self) -> &[String] {
        &[]
    }
    fn claim(&self, _: &str) -> Option<&serde_json::Value> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let policy = String::from_utf8_lossy(data);
    let yaml = format!(
        "routes:\n  - from: https://app.example\n    to: http://127.0.0.1:1\n    policy:\n{}\n",
        policy
            .lines()
            .map(|l| format!("      {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let Ok(loaded) =
        gatehouse_config::load_str(&yaml, "fuzz.yaml", std::path::Path::new("."), &|_| None)
    else {
        return;
    };
    let Ok(compiled) = gatehouse_policy::compile_routes(&loaded.config.routes) else {
        return;
    };
    let cert = gatehouse_policy::CertFacts {
        fingerprint: "ab".repeat(32),
        spki_hash: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
        san_email: vec!["a@example.com".into()],
        san_dns: vec!["a.example.com".into()],
        san_uri: vec![],
    };
    for p in &compiled.policies {
        for subject in [None, Some(&User as &dyn gatehouse_policy::Subject)] {
            for client_cert in [
                gatehouse_policy::ClientCert::None,
                gatehouse_policy::ClientCert::Presented {
                    valid: true,
                    cert: &cert,
                },
                gatehouse_policy::ClientCert::Presented {
                    valid: false,
                    cert: &cert,
                },
            ] {
                let _ = p.evaluate(&gatehouse_policy::Facts {
                    subject,
                    method: "GET",
                    path: "/admin",
                    source_ip: std::net::Ipv4Addr::LOCALHOST.into(),
                    cors_preflight: false,
                    client_cert,
                    now: 1_780_000_000,
                });
            }
        }
    }
});

//! Shared by the allocation test and the benchmark: the 20-criterion policy
//! and a signed-in user it allows.

use gatehouse_policy::{Facts, Policy, Subject};
use serde_json::Value;

pub struct User {
    pub claims: serde_json::Map<String, Value>,
    pub groups: Vec<String>,
}

impl Subject for User {
    fn user_id(&self) -> &str {
        "u-alice"
    }
    fn email(&self) -> &str {
        "alice@example.com"
    }
    fn groups(&self) -> &[String] {
        &self.groups
    }
    fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }
}

pub fn user() -> User {
    User {
        claims:
            serde_json::json!({"realm_access": {"roles": ["admin", "viewer"]}, "department": "eng"})
                .as_object()
                .unwrap()
                .clone(),
        groups: vec!["staff".into(), "ops".into()],
    }
}

pub fn twenty_criteria() -> Policy {
    let text = include_str!("../data/twenty-criteria.yaml");
    let loaded = gatehouse_config::load_str(
        text,
        "twenty-criteria.yaml",
        std::path::Path::new("."),
        &|_| None,
    )
    .expect("the benchmark policy loads");
    gatehouse_policy::compile_route(&loaded.config.routes[0])
        .expect("the benchmark policy compiles")
        .0
}

/// Wednesday 2025-06-04 10:00 UTC (12:00 in Berlin): inside every window.
pub fn facts(user: &User) -> Facts<'_> {
    Facts {
        subject: Some(user),
        method: "GET",
        path: "/reports/2025",
        source_ip: "10.1.2.3".parse().unwrap(),
        cors_preflight: false,
        client_cert: gatehouse_policy::ClientCert::None,
        now: 1_749_031_200,
    }
}

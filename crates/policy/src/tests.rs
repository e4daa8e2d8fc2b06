//! Table-driven tests: every criterion and operator with both outcomes, the
//! deny-over-allow rule, NOR/NAND, time windows across midnight and DST,
//! Pomerium's documented examples, and the parser on arbitrary input.

use std::net::IpAddr;
use std::path::Path;

use serde_json::{Value, json};

use super::*;

struct User {
    id: String,
    email: String,
    groups: Vec<String>,
    claims: serde_json::Map<String, Value>,
}

impl Subject for User {
    fn user_id(&self) -> &str {
        &self.id
    }
    fn email(&self) -> &str {
        &self.email
    }
    fn groups(&self) -> &[String] {
        &self.groups
    }
    fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }
}

fn alice() -> User {
    User {
        id: "u-alice".into(),
        email: "alice@example.com".into(),
        groups: vec!["staff".into(), "ops".into()],
        claims: json!({
            "realm_access": {"roles": ["admin", "viewer"]},
            "https://example.com/roles": ["editor"],
            "department": "eng",
            "level": 3,
            "verified": true,
            "groups": ["staff", "ops"],
        })
        .as_object()
        .unwrap()
        .clone(),
    }
}

/// Compiles the policy part of a route written in YAML.
fn compile(route_yaml: &str) -> Result<Policy, String> {
    let text = format!(
        "routes:\n  - from: https://app.example.com\n    to: http://127.0.0.1:1\n{}",
        route_yaml
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let loaded = gatehouse_config::load_str(&text, "test.yaml", Path::new("."), &|_| None)
        .map_err(|r| r.to_string())?;
    compile_route(&loaded.config.routes[0])
        .map(|(p, _)| p)
        .map_err(|e| {
            e.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
}

fn policy(yaml: &str) -> Policy {
    compile(yaml).unwrap_or_else(|e| panic!("{yaml}\n{e}"))
}

#[derive(Clone)]
struct Req {
    /// The client certificate: none, or (valid, facts).
    cert: Option<(bool, CertFacts)>,
    user: bool,
    method: &'static str,
    path: &'static str,
    ip: &'static str,
    cors: bool,
    now: i64,
}

/// 2025-06-04T10:00:00Z, a Wednesday.
const WED_10_UTC: i64 = 1_749_031_200;

fn req() -> Req {
    Req {
        cert: None,
        user: true,
        method: "GET",
        path: "/",
        ip: "10.1.2.3",
        cors: false,
        now: WED_10_UTC,
    }
}

fn decide(p: &Policy, r: &Req) -> Decision {
    let user = alice();
    p.evaluate(&Facts {
        subject: if r.user { Some(&user) } else { None },
        method: r.method,
        path: r.path,
        source_ip: r.ip.parse::<IpAddr>().unwrap(),
        cors_preflight: r.cors,
        client_cert: match &r.cert {
            None => ClientCert::None,
            Some((valid, cert)) => ClientCert::Presented {
                valid: *valid,
                cert,
            },
        },
        now: r.now,
    })
}

fn allowed(yaml: &str, r: &Req) -> bool {
    matches!(decide(&policy(yaml), r), Decision::Allow(_))
}

/// (criterion YAML, allowed for the default request as alice)
#[test]
fn every_criterion_both_ways() {
    let cases: &[(&str, bool)] = &[
        ("accept: true", true),
        ("reject: true", false),
        ("authenticated_user: true", true),
        ("user: u-alice", true),
        ("user: u-bob", false),
        ("user: {is: u-alice}", true),
        ("email: alice@example.com", true),
        ("email: {is: bob@example.com}", false),
        ("email: {ends_with: '@example.com'}", true),
        ("email: {ends_with: '@example.org'}", false),
        ("email: {starts_with: alice}", true),
        ("email: {starts_with: bob}", false),
        ("email: {contains: ice@}", true),
        ("email: {contains: bob}", false),
        ("email: {in: [bob@example.com, alice@example.com]}", true),
        ("email: {in: [bob@example.com]}", false),
        ("email: {not_in: [bob@example.com]}", true),
        ("email: {not_in: [alice@example.com]}", false),
        ("email: {not: bob@example.com}", true),
        ("email: {not: alice@example.com}", false),
        ("email: {starts_with: alice, ends_with: example.com}", true),
        ("email: {starts_with: alice, ends_with: example.org}", false),
        ("domain: example.com", true),
        ("domain: {is: example.org}", false),
        ("groups: staff", true),
        ("groups: admins", false),
        ("groups: {has: ops}", true),
        ("groups: {is: ops}", false),
        ("groups: {exclude: admins}", true),
        ("groups: {exclude: staff}", false),
        ("claim/department: eng", true),
        ("claim/department: {is: eng}", true),
        ("claim/department: sales", false),
        ("claim/realm_access.roles: admin", true),
        ("claim/realm_access.roles: {has: viewer}", true),
        ("claim/realm_access.roles: owner", false),
        ("claim/realm_access.roles: {is: admin}", false),
        ("'claim/https://example.com/roles': editor", true),
        ("claim/level: '3'", true),
        ("claim/verified: 'true'", true),
        ("claim/groups: {exclude: admins}", true),
        ("claim/missing: {exclude: x}", true),
        ("claim/missing: x", false),
        ("http_method: GET", true),
        ("http_method: get", true),
        ("http_method: {in: [POST, PUT]}", false),
        ("http_path: /", true),
        ("http_path: {starts_with: /admin}", false),
        ("source_ip: 10.0.0.0/8", true),
        ("source_ip: [192.168.0.0/16, 10.1.2.3]", true),
        ("source_ip: 192.168.0.0/16", false),
        ("source_ip: '2001:db8::/32'", false),
        ("cors_preflight: true", false),
        ("date: {after: '2025-01-01T00:00:00Z'}", true),
        ("date: {after: '2025-07-01'}", false),
        ("date: {before: '2025-06-04T10:00:01Z'}", true),
        ("date: {before: '2025-06-04T10:00:00Z'}", false),
        (
            "date: {after: '2025-06-04T11:00:00+02:00', before: '2025-06-05T00:00:00Z'}",
            true,
        ),
        ("day_of_week: '*'", true),
        ("day_of_week: mon-fri", true),
        ("day_of_week: sat,sun", false),
        ("day_of_week: wednesday", true),
        ("day_of_week: fri-tue", false),
        (
            "day_of_week: {days: thu, timezone: Pacific/Kiritimati}",
            true,
        ),
        (
            "time_of_day: {timezone: UTC, after: '9:00', before: '17:00'}",
            true,
        ),
        (
            "time_of_day: {timezone: UTC, after: 9AM, before: 5PM}",
            true,
        ),
        ("time_of_day: {timezone: UTC, after: '10:00:01'}", false),
        (
            "time_of_day: {timezone: Europe/Berlin, after: '12:00', before: '12:00:01'}",
            true,
        ),
        (
            "time_of_day: {timezone: America/New_York, after: '9:00', before: '17:00'}",
            false,
        ),
    ];
    for (criterion, expected) in cases {
        let yaml = format!("policy:\n  allow:\n    and:\n      - {criterion}\n");
        assert_eq!(allowed(&yaml, &req()), *expected, "{criterion}");
    }
}

#[test]
fn operators_and_or_nor_nand() {
    let t = "accept: true";
    let f = "reject: true";
    let cases = [
        ("and", [t, t], true),
        ("and", [t, f], false),
        ("or", [t, f], true),
        ("or", [f, f], false),
        // not = NOR: true only when none holds.
        ("not", [f, f], true),
        ("not", [t, f], false),
        // nor = NAND: true unless all hold.
        ("nor", [t, f], true),
        ("nor", [t, t], false),
        ("nor", [f, f], true),
    ];
    for (op, [a, b], expected) in cases {
        let yaml = format!("policy:\n  allow:\n    {op}:\n      - {a}\n      - {b}\n");
        assert_eq!(allowed(&yaml, &req()), expected, "{op} [{a}, {b}]");
    }
    // Several blocks of one rule are OR-ed; several rules too.
    assert!(allowed(
        "policy:\n  allow:\n    and: [{reject: true}]\n    or: [{accept: true}]\n",
        &req()
    ));
    assert!(allowed(
        "policy:\n  - allow: {and: [{reject: true}]}\n  - allow: {or: [{accept: true}]}\n",
        &req()
    ));
}

#[test]
fn deny_wins_over_allow() {
    let p = policy(
        "policy:\n  - allow: {or: [{domain: example.com}]}\n  - deny: {or: [{http_path: {starts_with: /admin}}]}\n",
    );
    assert!(matches!(decide(&p, &req()), Decision::Allow(r) if r.contains(Reason::DomainOk)));
    let admin = Req {
        path: "/admin/users",
        ..req()
    };
    match decide(&p, &admin) {
        Decision::Deny(r) => assert_eq!(r.to_string(), "http-path-ok"),
        other => panic!("{other:?}"),
    }
    // Allow rules alone never outweigh a deny rule, even `accept`.
    let p = policy(
        "policy:\n  - allow: {or: [{accept: true}]}\n  - deny: {or: [{source_ip: 10.0.0.0/8}]}\n",
    );
    assert!(matches!(decide(&p, &req()), Decision::Deny(_)));
}

#[test]
fn reasons_are_pomeriums() {
    let p = policy(
        "policy:\n  allow:\n    or:\n      - email: bob@example.com\n      - domain: example.org\n",
    );
    match decide(&p, &req()) {
        Decision::Deny(r) => assert_eq!(r.to_string(), "email-unauthorized,domain-unauthorized"),
        other => panic!("{other:?}"),
    }
    let p = policy(
        "policy:\n  allow:\n    and:\n      - email: alice@example.com\n      - groups: staff\n",
    );
    match decide(&p, &req()) {
        Decision::Allow(r) => assert_eq!(r.to_string(), "email-ok,groups-ok"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_session_asks_for_sign_in_only_when_a_user_is_needed() {
    let anon = Req {
        user: false,
        ..req()
    };
    let p = policy("policy:\n  allow:\n    or:\n      - domain: example.com\n");
    assert_eq!(
        decide(&p, &anon),
        Decision::SignIn(Reasons::one(Reason::UserUnauthenticated))
    );
    // Allowed without a user: no sign-in.
    let p =
        policy("policy:\n  allow:\n    or:\n      - accept: true\n      - email: x@example.com\n");
    assert!(matches!(decide(&p, &anon), Decision::Allow(_)));
    // A deny rule about the user needs the user first.
    let p = policy(
        "policy:\n  - allow: {or: [{accept: true}]}\n  - deny: {or: [{email: mallory@example.com}]}\n",
    );
    assert!(matches!(decide(&p, &anon), Decision::SignIn(_)));
    // As Pomerium, sign-in comes before a deny when the allow needs a user;
    // on a public route, a path deny is a plain 403.
    let p = policy(
        "policy:\n  - allow: {or: [{authenticated_user: true}]}\n  - deny: {or: [{http_path: /admin}]}\n",
    );
    assert!(matches!(
        decide(
            &p,
            &Req {
                path: "/admin",
                ..anon.clone()
            }
        ),
        Decision::SignIn(_)
    ));
    assert!(matches!(
        decide(
            &p,
            &Req {
                path: "/admin",
                ..req()
            }
        ),
        Decision::Deny(_)
    ));
    let p = policy(
        "policy:\n  - allow: {or: [{accept: true}]}\n  - deny: {or: [{http_path: /admin}]}\n",
    );
    assert!(matches!(
        decide(
            &p,
            &Req {
                path: "/admin",
                ..anon.clone()
            }
        ),
        Decision::Deny(_)
    ));
}

#[test]
fn route_shorthands_become_ppl() {
    let anon = Req {
        user: false,
        ..req()
    };
    let p = policy("allow_public_unauthenticated_access: true");
    assert!(matches!(decide(&p, &anon), Decision::Allow(r) if r.contains(Reason::Accept)));
    assert!(!p.uses_subject());
    let p = policy("allow_any_authenticated_user: true");
    assert!(matches!(decide(&p, &req()), Decision::Allow(_)));
    assert!(matches!(decide(&p, &anon), Decision::SignIn(_)));
    assert!(allowed("allowed_users: [alice@example.com]", &req()));
    assert!(allowed("allowed_users: [u-alice]", &req()));
    assert!(!allowed("allowed_users: [bob@example.com]", &req()));
    assert!(allowed(
        "allowed_domains: [example.org, example.com]",
        &req()
    ));
    assert!(!allowed("allowed_domains: [example.org]", &req()));
    assert!(allowed(
        "allowed_idp_claims: {department: [sales, eng]}",
        &req()
    ));
    assert!(!allowed("allowed_idp_claims: {department: sales}", &req()));
    // cors_allow_preflight lets preflights through without a session.
    let p = policy("cors_allow_preflight: true\nallowed_domains: [example.com]");
    let preflight = Req {
        user: false,
        method: "OPTIONS",
        cors: true,
        ..req()
    };
    assert!(
        matches!(decide(&p, &preflight), Decision::Allow(r) if r.contains(Reason::CorsRequest))
    );
    // Shorthands and PPL together: OR-ed allows, deny still wins.
    let p = policy("allowed_domains: [example.org]\npolicy:\n  allow: {or: [{groups: staff}]}");
    assert!(matches!(decide(&p, &req()), Decision::Allow(_)));
}

#[test]
fn a_route_without_any_rule_denies_everyone_with_a_warning() {
    let text = "routes:\n  - from: https://app.example.com\n    to: http://127.0.0.1:1\n";
    let loaded = gatehouse_config::load_str(text, "t.yaml", Path::new("."), &|_| None).unwrap();
    let (p, warnings) = compile_route(&loaded.config.routes[0]).unwrap();
    assert!(
        warnings[0].to_string().contains("denies everyone"),
        "{}",
        warnings[0]
    );
    assert!(matches!(decide(&p, &req()), Decision::Deny(r) if r.contains(Reason::NoPolicy)));
    let only_deny = compile("policy:\n  deny: {or: [{reject: true}]}");
    assert!(matches!(
        decide(&only_deny.unwrap(), &req()),
        Decision::Deny(_)
    ));
}

#[test]
fn time_of_day_windows_cross_midnight_and_follow_dst() {
    let night = "policy:\n  allow:\n    and:\n      - time_of_day: {timezone: Europe/Berlin, after: '22:00', before: '06:00'}\n";
    // 2025-01-15 (CET, UTC+1): 21:30Z = 22:30 local (in), 05:30Z = 06:30 (out), 04:30Z = 05:30 (in), 20:30Z = 21:30 (out).
    let at = |s: &str| jiff::Timestamp::from_str_checked(s);
    for (utc, expected) in [
        ("2025-01-15T21:30:00Z", true),
        ("2025-01-16T04:30:00Z", true),
        ("2025-01-16T05:30:00Z", false),
        ("2025-01-15T20:30:00Z", false),
    ] {
        let r = Req {
            now: at(utc),
            ..req()
        };
        assert_eq!(allowed(night, &r), expected, "{utc}");
    }
    // Office hours 09:00-17:00 in New York across the 2025-03-09 DST change
    // (UTC-5 before, UTC-4 after): 13:30Z is 08:30 before and 09:30 after.
    let office = "policy:\n  allow:\n    and:\n      - day_of_week: {days: mon-fri, timezone: America/New_York}\n      - time_of_day: {timezone: America/New_York, after: '9:00', before: '17:00'}\n";
    assert!(
        !allowed(
            office,
            &Req {
                now: at("2025-03-07T13:30:00Z"),
                ..req()
            }
        ),
        "Friday 08:30 EST"
    );
    assert!(
        allowed(
            office,
            &Req {
                now: at("2025-03-10T13:30:00Z"),
                ..req()
            }
        ),
        "Monday 09:30 EDT"
    );
    assert!(
        !allowed(
            office,
            &Req {
                now: at("2025-03-08T15:00:00Z"),
                ..req()
            }
        ),
        "Saturday"
    );
    // Late Friday in New York is Saturday in UTC: the zone decides the day.
    assert!(allowed(
        "policy:\n  allow:\n    and:\n      - day_of_week: {days: fri, timezone: America/New_York}\n",
        &Req {
            now: at("2025-03-08T02:00:00Z"),
            ..req()
        }
    ));
}

trait FromStrChecked {
    fn from_str_checked(s: &str) -> i64;
}

impl FromStrChecked for jiff::Timestamp {
    fn from_str_checked(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_second()
    }
}

/// The examples from Pomerium's documentation that use core and time
/// criteria, as they are written there.
#[test]
fn pomerium_documentation_examples() {
    // Jenkins guide (allow or: domain / user), as it appears in the wild.
    let jenkins = "policy:\n  - allow:\n      or:\n        - domain:\n            is: example.com\n        - user:\n            is: u-bob\n";
    assert!(allowed(jenkins, &req()));
    // PPL reference: allow and: domain, deny or: email.
    let reference = "policy:\n  - allow:\n      and:\n        - domain:\n            is: example.com\n  - deny:\n      or:\n        - email:\n            is: user1@example.com\n";
    assert!(allowed(reference, &req()));
    // Groups with a claim (core uses claim/groups).
    let groups = "policy:\n  allow:\n    or:\n      - claim/groups: staff\n";
    assert!(allowed(groups, &req()));
    // Method-based read-only access for one group.
    let read_only = "policy:\n  - allow:\n      and:\n        - groups:\n            has: ops\n        - http_method:\n            in: [GET, HEAD]\n";
    assert!(allowed(read_only, &req()));
    assert!(!allowed(
        read_only,
        &Req {
            method: "POST",
            ..req()
        }
    ));
    // Time-based (Enterprise in Pomerium, open here).
    let hours = "policy:\n  allow:\n    and:\n      - domain:\n          is: example.com\n      - day_of_week: mon-fri\n      - time_of_day:\n          timezone: UTC\n          after: '8:00'\n          before: '18:00'\n      - date:\n          after: '2025-01-01T00:00:00Z'\n";
    assert!(allowed(hours, &req()));
}

#[test]
fn mistakes_are_errors_with_positions_never_open_routes() {
    let cases: &[(&str, &str)] = &[
        (
            "policy:\n  allow:\n    or:\n      - emial: x",
            "unknown criterion `emial`",
        ),
        (
            "policy:\n  allow:\n    xor:\n      - accept: true",
            "unknown operator `xor`",
        ),
        (
            "policy:\n  permit:\n    or:\n      - accept: true",
            "unknown action `permit`",
        ),
        (
            "policy:\n  allow:\n    or:\n      - email: {matches: x}",
            "unknown string matcher `matches`",
        ),
        (
            "policy:\n  allow:\n    or:\n      - groups: {contains: x}",
            "unknown list matcher `contains`",
        ),
        (
            "policy:\n  allow:\n    or:\n      - email: [a, b]",
            "`email` takes a string",
        ),
        (
            "policy:\n  allow:\n    or:\n      - email: {in: x}",
            "takes a list of strings",
        ),
        (
            "policy:\n  allow:\n    or:\n      - source_ip: 10.0.0.0/33",
            "not an IP address or CIDR",
        ),
        (
            "policy:\n  allow:\n    or:\n      - time_of_day: {after: '9:00'}",
            "needs a `timezone`",
        ),
        (
            "policy:\n  allow:\n    or:\n      - time_of_day: {timezone: Mars/Olympus, after: '9:00'}",
            "unknown time zone `Mars/Olympus`",
        ),
        (
            "policy:\n  allow:\n    or:\n      - time_of_day: {timezone: UTC, after: '25:00'}",
            "not a time of day",
        ),
        (
            "policy:\n  allow:\n    or:\n      - day_of_week: funday",
            "not a day",
        ),
        (
            "policy:\n  allow:\n    or:\n      - date: {after: yesterday}",
            "not a date",
        ),
        (
            "policy:\n  allow:\n    or:\n      - claim: x",
            "needs the claim's name",
        ),
        (
            "policy:\n  allow:\n    or:\n      - email/x: a",
            "takes no sub-path",
        ),
        (
            "policy:\n  allow:\n    or:\n      - {email: a, domain: b}",
            "exactly one key",
        ),
        (
            "policy:\n  allow:\n    or:\n      - and: [{accept: true}]",
            "unknown criterion `and`",
        ),
        ("policy:\n  allow:\n    or: []", "has no criteria"),
        (
            "policy:\n  allow:\n    or: {accept: true}",
            "takes a list of criteria",
        ),
        ("policy:\n  allow: {}", "empty rule"),
        ("policy: yes", "expected a rule"),
        (
            "policy:\n  allow:\n    or:\n      - client_certificate: {fingerprint: ab}",
            "is not a SHA-256 fingerprint",
        ),
    ];
    for (yaml, needle) in cases {
        let err = compile(yaml).expect_err(yaml);
        assert!(err.contains(needle), "{yaml}\n→ {err}");
        assert!(err.contains("route `https://app.example.com`"), "{err}");
        // FILE:LINE:COL, with a real line.
        let pos = err.split(": ").next().unwrap();
        let mut parts = pos.split(':');
        assert_eq!(parts.next(), Some("test.yaml"), "{err}");
        assert!(parts.next().unwrap().parse::<u32>().unwrap() >= 4, "{err}");
    }
}

/// Arbitrary YAML in `policy:` never panics: it compiles or it is refused
/// with positioned errors.
#[test]
fn arbitrary_policy_text_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x9e37_79b9);
    let atoms = [
        "allow",
        "deny",
        "and",
        "or",
        "not",
        "nor",
        "email",
        "claim/x.y",
        "groups",
        "is",
        "has",
        "in",
        "not_in",
        "exclude",
        "starts_with",
        "source_ip",
        "10.0.0.0/8",
        "::1/129",
        "time_of_day",
        "timezone",
        "UTC",
        "after",
        "before",
        "9:00",
        "25:61",
        "day_of_week",
        "mon-fri",
        "date",
        "2025-01-01",
        "accept",
        "reject",
        "true",
        "~",
        "[]",
        "{}",
        "-",
        ":",
        "[a, b]",
        "{is: x}",
        "'quoted'",
        "\"x\"",
        "&a",
        "*a",
        "<<",
        "!!str",
        "%",
        "\t",
    ];
    let mut checked = 0;
    for _ in 0..3000 {
        let mut yaml = String::from("policy:\n");
        let lines = rng.random_range(1..8);
        for _ in 0..lines {
            let indent = rng.random_range(1..5) * 2;
            yaml.push_str(&" ".repeat(indent));
            if rng.random_bool(0.4) {
                yaml.push_str("- ");
            }
            for _ in 0..rng.random_range(1..4) {
                yaml.push_str(atoms[rng.random_range(0..atoms.len())]);
                yaml.push_str(if rng.random_bool(0.5) { ": " } else { " " });
            }
            yaml.push('\n');
        }
        let text = format!(
            "routes:\n  - from: https://app.example.com\n    to: http://127.0.0.1:1\n    {}",
            yaml.replace('\n', "\n    ")
        );
        if let Ok(loaded) =
            gatehouse_config::load_str(&text, "fuzz.yaml", Path::new("."), &|_| None)
        {
            checked += 1;
            if let Err(errors) = compile_route(&loaded.config.routes[0]) {
                assert!(
                    errors.iter().all(|e| e.is_error() && e.mark.line > 0),
                    "{text}"
                );
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} inputs reached the policy compiler"
    );
}

fn alice_cert() -> CertFacts {
    CertFacts {
        fingerprint: "ab".repeat(32),
        spki_hash: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
        san_email: vec!["alice@example.com".into()],
        san_dns: vec!["alice.example.com".into(), "a.example.com".into()],
        san_uri: vec!["spiffe://example.com/alice".into()],
    }
}

#[test]
fn client_certificate_criteria() {
    let with = |valid: bool| Req {
        cert: Some((valid, alice_cert())),
        ..req()
    };
    let upper_colons: String = (0..32).map(|_| "AB").collect::<Vec<_>>().join(":");
    for (yaml, want) in [
        (format!("client_certificate: {{fingerprint: '{}'}}", "ab".repeat(32)), true),
        (format!("client_certificate: {{fingerprint: '{upper_colons}'}}"), true),
        (format!("client_certificate: {{fingerprint: ['{}', '{}']}}", "cd".repeat(32), "ab".repeat(32)), true),
        (format!("client_certificate: {{fingerprint: '{}'}}", "cd".repeat(32)), false),
        ("client_certificate: {spki_hash: '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='}".into(), true),
        ("client_certificate: {san_email: alice@example.com}".into(), true),
        ("client_certificate: {san_dns: {ends_with: .example.com}}".into(), true),
        ("client_certificate: {san_uri: {starts_with: 'spiffe://example.com/'}, san_email: bob@example.com}".into(), false),
        ("client_certificate: {san_dns: b.example.com}".into(), false),
    ] {
        let yaml = format!("policy:\n  allow:\n    and:\n      - {yaml}\n");
        assert_eq!(allowed(&yaml, &with(true)), want, "{yaml}");
        // Matchers look at the certificate, not at its validity.
        assert_eq!(allowed(&yaml, &with(false)), want, "{yaml}");
        assert!(!allowed(&yaml, &req()), "no certificate: {yaml}");
    }
    // invalid_client_certificate: missing and invalid are distinct reasons.
    let p = policy(
        "policy:\n  allow:\n    and:\n      - accept: true\n  deny:\n    or:\n      - invalid_client_certificate: true\n",
    );
    assert!(matches!(decide(&p, &with(true)), Decision::Allow(_)));
    let d = decide(&p, &req());
    assert!(
        matches!(d, Decision::Deny(r) if r.contains(Reason::ClientCertificateRequired)),
        "{d:?}"
    );
    let d = decide(&p, &with(false));
    assert!(
        matches!(d, Decision::Deny(r) if r.contains(Reason::InvalidClientCertificate)),
        "{d:?}"
    );
    // The certificate is answered before sign-in: a user-needing policy
    // without a session still gets the certificate refusal first.
    let p = policy("allow_any_authenticated_user: true").with_default_client_cert_deny();
    let anonymous = Req {
        user: false,
        ..req()
    };
    assert!(
        matches!(decide(&p, &anonymous), Decision::Deny(r) if r.contains(Reason::ClientCertificateRequired))
    );
    let anonymous_valid = Req {
        user: false,
        cert: Some((true, alice_cert())),
        ..req()
    };
    assert!(matches!(decide(&p, &anonymous_valid), Decision::SignIn(_)));
    assert!(p.uses_client_cert());
    // A route without any rule still answers 495 first.
    let p = Policy::deny_all().with_default_client_cert_deny();
    assert!(
        matches!(decide(&p, &req()), Decision::Deny(r) if r.contains(Reason::ClientCertificateRequired))
    );
    assert!(matches!(decide(&p, &with(true)), Decision::Deny(r) if r.contains(Reason::NoPolicy)));
}

#[test]
fn client_certificate_matchers_are_checked_when_compiled() {
    for (yaml, want) in [
        (
            "client_certificate: {fingerprint: abc}",
            "is not a SHA-256 fingerprint",
        ),
        (
            "client_certificate: {spki_hash: 'not base64'}",
            "is not the base64 of a SHA-256 hash",
        ),
        (
            "client_certificate: {subject: CN=alice}",
            "unsupported certificate matcher condition `subject`",
        ),
        ("client_certificate: {}", "no condition given"),
        ("client_certificate: yes", "takes a map"),
    ] {
        let all = compile(&format!("policy:\n  allow:\n    and:\n      - {yaml}\n")).unwrap_err();
        assert!(all.contains(want), "{yaml}: {all}");
    }
}

/// `sub_policies`: their allow lists widen the route's, their `source_ppl`
/// rules (allow and deny) join its policy.
#[test]
fn sub_policies_join_the_route_s_rules() {
    let p = policy(
        "allowed_users: [nobody]
sub_policies:
  - id: staff
    allowed_domains: [example.com]
  - id: no-admin
    source_ppl: '{deny: {or: [{http_path: {starts_with: /admin}}]}}'
",
    );
    assert!(matches!(decide(&p, &req()), Decision::Allow(_)));
    let admin = Req {
        path: "/admin/x",
        ..req()
    };
    assert!(matches!(decide(&p, &admin), Decision::Deny(_)));
    // The PPL written out as a mapping counts the same (never dropped).
    let p = policy(
        "allow_any_authenticated_user: true
sub_policies:
  - id: no-admin
    source_ppl: {deny: {or: [{http_path: {starts_with: /admin}}]}}
",
    );
    assert!(matches!(decide(&p, &admin), Decision::Deny(_)));
    // Rego without the PPL it was made from: refused, never ignored.
    let e = compile("allow_any_authenticated_user: true\nsub_policies:\n  - {id: r, rego: ['package pomerium.policy']}\n").unwrap_err();
    assert!(e.contains("`rego` is not run by gatehouse"), "{e}");
}

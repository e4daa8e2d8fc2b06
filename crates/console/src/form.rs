//! The route form: HTML fields to Pomerium route options and back. Keys
//! the form does not show (set through the API or an import, such as
//! `redirect`) are kept as they are.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use crate::state::FieldError;

/// Policy presets, as on Pomerium's route form.
pub const PRESETS: &[(&str, &str)] = &[
    ("public", "Public (no sign-in)"),
    ("any", "Any authenticated user"),
    ("domain", "Email domain"),
    ("users", "Users"),
    ("groups", "Groups"),
    ("ppl", "Policy (PPL YAML)"),
];

/// Route keys the form writes; all others are carried over untouched.
const FORM_KEYS: &[&str] = &[
    "name",
    "from",
    "prefix",
    "path",
    "regex",
    "to",
    "allow_public_unauthenticated_access",
    "allow_any_authenticated_user",
    "allowed_users",
    "allowed_domains",
    "policy",
    "pass_identity_headers",
    "jwt_claims_headers",
    "set_request_headers",
    "remove_request_headers",
    "set_response_headers",
    "host_rewrite",
    "preserve_host_header",
    "timeout",
    "idle_timeout",
    "allow_websockets",
    "tls_skip_verify",
    "tls_server_name",
    "tls_custom_ca",
    "frame_ancestors",
    "cookie_same_site",
];

/// The form field that shows a route key's errors; a policy error goes to
/// the input of the chosen preset.
pub fn field_for(key: &str, preset: &str) -> String {
    match key {
        "prefix" | "path" | "regex" => "path_value".into(),
        "allow_public_unauthenticated_access"
        | "allow_any_authenticated_user"
        | "allowed_users"
        | "allowed_domains"
        | "allowed_idp_claims"
        | "policy" => match preset {
            p @ ("domain" | "users" | "groups" | "ppl") => format!("policy_{p}"),
            _ => "policy".into(),
        },
        k => k.into(),
    }
}

/// Field values for the form, from a route's options.
pub fn values(options: &Map<String, Json>, new: bool) -> HashMap<String, String> {
    let mut v = HashMap::new();
    let s = |k: &str| options.get(k).map(text).unwrap_or_default();
    for k in [
        "name",
        "from",
        "host_rewrite",
        "timeout",
        "idle_timeout",
        "tls_server_name",
        "tls_custom_ca",
        "cookie_same_site",
    ] {
        v.insert(k.to_string(), s(k));
    }
    let (kind, value) = ["prefix", "path", "regex"]
        .iter()
        .find_map(|k| options.get(*k).map(|p| (k.to_string(), text(p))))
        .unwrap_or(("any".into(), String::new()));
    v.insert("path_kind".into(), kind);
    v.insert("path_value".into(), value);
    v.insert("to".into(), list(options.get("to")).join("\n"));
    for k in [
        "jwt_claims_headers",
        "remove_request_headers",
        "frame_ancestors",
    ] {
        v.insert(k.to_string(), list(options.get(k)).join(", "));
    }
    for k in ["set_request_headers", "set_response_headers"] {
        let lines: Vec<String> = match options.get(k) {
            Some(Json::Object(m)) => m
                .iter()
                .map(|(n, val)| format!("{n}: {}", text(val)))
                .collect(),
            _ => Vec::new(),
        };
        v.insert(k.to_string(), lines.join("\n"));
    }
    for k in [
        "pass_identity_headers",
        "preserve_host_header",
        "allow_websockets",
        "tls_skip_verify",
    ] {
        if options.get(k) == Some(&Json::Bool(true)) {
            v.insert(k.to_string(), "on".into());
        }
    }
    if new {
        v.insert("pass_identity_headers".into(), "on".into());
    }
    let (preset, items, ppl) = preset_of(options, new);
    v.insert("policy_preset".into(), preset.into());
    v.insert(format!("policy_{preset}"), items.join(", "));
    v.insert("policy_ppl".into(), ppl);
    v
}

/// Which preset a route's authorization is, with its values, and the PPL
/// as YAML.
fn preset_of(options: &Map<String, Json>, new: bool) -> (&'static str, Vec<String>, String) {
    let ppl = options
        .get("policy")
        .map(|p| {
            gatehouse_config::yaml::emit(&gatehouse_config::overlay::json_to_node(
                p,
                &gatehouse_config::overlay::route_mark("", ""),
            ))
        })
        .unwrap_or_default();
    if options.get("allow_public_unauthenticated_access") == Some(&Json::Bool(true)) {
        return ("public", vec![], ppl);
    }
    if options.get("allow_any_authenticated_user") == Some(&Json::Bool(true)) {
        return ("any", vec![], ppl);
    }
    let shorthand =
        options.contains_key("allowed_users") || options.contains_key("allowed_domains");
    if let (Some(policy), false) = (options.get("policy"), shorthand) {
        for (preset, criterion, op) in [
            ("domain", "domain", "is"),
            ("users", "email", "is"),
            ("groups", "groups", "has"),
        ] {
            if let Some(items) = simple_or(policy, criterion, op) {
                return (preset, items, ppl);
            }
        }
        return ("ppl", vec![], ppl);
    }
    if !shorthand && new {
        return ("any", vec![], ppl);
    }
    ("ppl", vec![], ppl)
}

/// `{allow: {or: [{<criterion>: {<op>: X}}, ...]}}` → the X values.
fn simple_or(policy: &Json, criterion: &str, op: &str) -> Option<Vec<String>> {
    let obj = policy.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let or = obj.get("allow")?.as_object()?;
    if or.len() != 1 {
        return None;
    }
    let items = or.get("or")?.as_array()?;
    if items.is_empty() {
        return None;
    }
    items
        .iter()
        .map(|i| {
            let c = i.as_object().filter(|c| c.len() == 1)?.get(criterion)?;
            let o = c.as_object().filter(|o| o.len() == 1)?.get(op)?;
            o.as_str().map(str::to_string)
        })
        .collect()
}

fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

fn list(v: Option<&Json>) -> Vec<String> {
    match v {
        Some(Json::Array(items)) => items.iter().map(text).collect(),
        Some(Json::String(s)) => split_list(s),
        Some(Json::Object(m)) => m.iter().map(|(k, v)| format!("{k}={}", text(v))).collect(),
        _ => Vec::new(),
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// The route options a submitted form gives, starting from `existing`.
pub fn options(
    existing: &Map<String, Json>,
    form: &[(String, String)],
) -> Result<Map<String, Json>, Vec<FieldError>> {
    let get = |k: &str| -> &str {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let mut out: Map<String, Json> = existing
        .iter()
        .filter(|(k, _)| !FORM_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut errors = Vec::new();
    let set_str = |out: &mut Map<String, Json>, key: &str, value: &str| {
        let value = value.trim();
        if !value.is_empty() {
            out.insert(key.to_string(), Json::String(value.to_string()));
        }
    };
    set_str(&mut out, "name", get("name"));
    set_str(&mut out, "from", get("from"));
    if let k @ ("prefix" | "path" | "regex") = get("path_kind") {
        if get("path_value").trim().is_empty() {
            errors.push(FieldError {
                field: "path_value".into(),
                message: format!("enter the {k} to match, or match any path"),
            });
        }
        set_str(&mut out, k, get("path_value"));
    }
    let to: Vec<Json> = get("to")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| Json::String(l.to_string()))
        .collect();
    if !to.is_empty() {
        out.insert("to".into(), Json::Array(to));
    } else if !existing.contains_key("redirect") && !existing.contains_key("response") {
        errors.push(FieldError {
            field: "to".into(),
            message: "enter at least one upstream URL, e.g. http://127.0.0.1:3000".into(),
        });
    }
    match get("policy_preset") {
        "public" => {
            out.insert(
                "allow_public_unauthenticated_access".into(),
                Json::Bool(true),
            );
        }
        "any" => {
            out.insert("allow_any_authenticated_user".into(), Json::Bool(true));
        }
        p @ ("domain" | "users" | "groups") => {
            let items = split_list(get(&format!("policy_{p}")));
            if items.is_empty() {
                errors.push(FieldError {
                    field: format!("policy_{p}"),
                    message: "enter at least one value".into(),
                });
            }
            let (criterion, op) = match p {
                "domain" => ("domain", "is"),
                "users" => ("email", "is"),
                _ => ("groups", "has"),
            };
            let or: Vec<Json> = items
                .into_iter()
                .map(|i| serde_json::json!({ criterion: { op: i } }))
                .collect();
            out.insert(
                "policy".into(),
                serde_json::json!({ "allow": { "or": or } }),
            );
        }
        _ => {
            let text = get("policy_ppl");
            if !text.trim().is_empty() {
                match gatehouse_config::yaml::parse(text, "policy") {
                    Ok(node) => {
                        out.insert(
                            "policy".into(),
                            gatehouse_config::overlay::node_to_json(&node),
                        );
                    }
                    Err(e) => errors.push(FieldError {
                        field: "policy_ppl".into(),
                        message: format!("line {}: {}", e.mark.line, e.message),
                    }),
                }
            }
        }
    }
    out.insert(
        "pass_identity_headers".into(),
        Json::Bool(get("pass_identity_headers") == "on"),
    );
    for k in [
        "preserve_host_header",
        "allow_websockets",
        "tls_skip_verify",
    ] {
        if get(k) == "on" {
            out.insert(k.into(), Json::Bool(true));
        }
    }
    for k in [
        "jwt_claims_headers",
        "remove_request_headers",
        "frame_ancestors",
    ] {
        let items = split_list(get(k));
        if !items.is_empty() {
            out.insert(
                k.into(),
                Json::Array(items.into_iter().map(Json::String).collect()),
            );
        }
    }
    for k in ["set_request_headers", "set_response_headers"] {
        let mut map = Map::new();
        for line in get(k).lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line.split_once(':') {
                Some((n, v)) if !n.trim().is_empty() => {
                    map.insert(n.trim().to_string(), Json::String(v.trim().to_string()));
                }
                _ => errors.push(FieldError {
                    field: k.into(),
                    message: format!("`{line}`: write one header per line as `Name: value`"),
                }),
            }
        }
        if !map.is_empty() {
            out.insert(k.into(), Json::Object(map));
        }
    }
    for k in [
        "host_rewrite",
        "timeout",
        "idle_timeout",
        "tls_server_name",
        "tls_custom_ca",
        "cookie_same_site",
    ] {
        set_str(&mut out, k, get(k));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_guide_route() {
        let o = options(
            &Map::new(),
            &form(&[
                ("name", "Verify"),
                ("from", "https://verify.localhost"),
                ("path_kind", "any"),
                ("to", "http://127.0.0.1:9000\nhttp://127.0.0.1:9001,2\n"),
                ("policy_preset", "any"),
                ("pass_identity_headers", "on"),
                ("set_request_headers", "X-Team: blue\n"),
            ]),
        )
        .unwrap();
        assert_eq!(
            Json::Object(o.clone()),
            serde_json::json!({
                "name": "Verify",
                "from": "https://verify.localhost",
                "to": ["http://127.0.0.1:9000", "http://127.0.0.1:9001,2"],
                "allow_any_authenticated_user": true,
                "pass_identity_headers": true,
                "set_request_headers": {"X-Team": "blue"},
            })
        );
        let v = values(&o, false);
        assert_eq!(v["policy_preset"], "any");
        assert_eq!(v["pass_identity_headers"], "on");
        assert_eq!(v["set_request_headers"], "X-Team: blue");
    }

    #[test]
    fn presets_round_trip_and_other_keys_stay() {
        let existing =
            serde_json::json!({"redirect": {"https_redirect": true}, "regex_priority_order": 3});
        let o = options(
            existing.as_object().unwrap(),
            &form(&[
                ("from", "https://a.localhost"),
                ("policy_preset", "groups"),
                ("policy_groups", "admins, ops"),
            ]),
        )
        .unwrap();
        assert_eq!(o["redirect"], serde_json::json!({"https_redirect": true}));
        assert_eq!(o["regex_priority_order"], serde_json::json!(3));
        let v = values(&o, false);
        assert_eq!(v["policy_preset"], "groups");
        assert_eq!(v["policy_groups"], "admins, ops");
    }

    #[test]
    fn form_mistakes_name_their_field() {
        let errors = options(
            &Map::new(),
            &form(&[
                ("from", "https://a.localhost"),
                ("path_kind", "prefix"),
                ("policy_preset", "ppl"),
                ("policy_ppl", "allow: [unclosed"),
                ("set_response_headers", "no colon here"),
            ]),
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["path_value", "to", "policy_ppl", "set_response_headers"]
        );
    }
}

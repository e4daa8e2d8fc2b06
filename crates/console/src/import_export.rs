//! The console's state as a configuration file and back: the export (the
//! file with the console's changes merged in) and the import (a Pomerium
//! `config.yaml` as console state).

use std::path::PathBuf;

use gatehouse_config::overlay;
use gatehouse_config::yaml::Value;
use gatehouse_proxy::runtime::Runtime;
use serde_json::{Map, Value as Json};

use crate::state::{ChangeError, FieldError, State, new_id, parse_route};

/// The configuration file as YAML with the console's routes and settings
/// merged in; secrets are left out.
pub(crate) fn export(rt: &Runtime, state: &State) -> Result<String, String> {
    let path: &PathBuf = &rt.config.source;
    let bytes =
        gatehouse_config::read_limited(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))?;
    let mut root = gatehouse_config::yaml::parse(&text, &path.display().to_string())
        .map_err(|e| format!("{}: {}", e.mark, e.message))?;
    state.overlay().merge_into(&mut root);
    let mut omitted = Vec::new();
    if let Value::Map(entries) = &mut root.value {
        entries.retain(|(k, _)| {
            let key = k.as_str().unwrap_or_default();
            let secret = gatehouse_config::SECRET_KEYS.iter().any(|(k, _)| *k == key);
            if secret {
                omitted.push(key.to_string());
            }
            !secret
        });
        // The routes' own secrets (a route's idp client, its upstream key).
        for (k, routes) in entries.iter_mut() {
            if !matches!(k.as_str(), Some("routes" | "policy")) {
                continue;
            }
            let Value::Seq(routes) = &mut routes.value else {
                continue;
            };
            for route in routes {
                if let Value::Map(opts) = &mut route.value {
                    opts.retain(|(k, _)| {
                        let key = k.as_str().unwrap_or_default();
                        let secret = gatehouse_config::ROUTE_SECRET_KEYS.contains(&key);
                        if secret && !omitted.iter().any(|o| o == &format!("routes[].{key}")) {
                            omitted.push(format!("routes[].{key}"));
                        }
                        !secret
                    });
                }
            }
        }
    }
    let mut out = String::from(
        "# gatehouse configuration: the configuration file with the console's routes and\n# settings merged in. Pomerium-compatible.\n",
    );
    if !omitted.is_empty() {
        out.push_str(&format!(
            "# Left out (secrets; copy them from the running configuration): {}\n",
            omitted.join(", ")
        ));
    }
    out.push_str(&gatehouse_config::yaml::emit(&root));
    Ok(out)
}

/// A Pomerium `config.yaml` as console state: its routes (except those the
/// file already has, by `from` and path) and its live settings.
pub(crate) fn parse_import(rt: &Runtime, text: &str) -> Result<State, ChangeError> {
    let invalid = |m: String| {
        ChangeError::Invalid(vec![FieldError {
            field: String::new(),
            message: m,
        }])
    };
    let root = gatehouse_config::yaml::parse(text, "import")
        .map_err(|e| invalid(format!("{}: {}", e.mark, e.message)))?;
    let json = overlay::node_to_json(&root);
    let Json::Object(map) = json else {
        return Err(invalid("a configuration is a mapping of options".into()));
    };
    let in_file: Vec<(String, String)> = rt
        .config
        .routes
        .iter()
        .filter(|r| r.console_id().is_none())
        .map(|r| (r.from.to_string(), r.path_match.to_string()))
        .collect();
    let mut state = State::default();
    for key in ["policy", "routes"] {
        let Some(Json::Array(items)) = map.get(key) else {
            continue;
        };
        for item in items {
            let route = parse_route(&new_id(), item.clone())?;
            let key = (normalize_from(route.str("from")), path_of(&route.options));
            if !in_file.contains(&key) {
                state.routes.push(route);
            }
        }
    }
    for key in overlay::LIVE_SETTINGS {
        if let Some(v) = map.get(*key) {
            state.settings.insert(key.to_string(), v.clone());
        }
    }
    Ok(state)
}

fn normalize_from(from: &str) -> String {
    from.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// The path match as [`gatehouse_config::PathMatch`] displays it.
pub(crate) fn path_of(options: &Map<String, Json>) -> String {
    for (key, label) in [("path", "path"), ("prefix", "prefix"), ("regex", "regex")] {
        if let Some(v) = options.get(key).and_then(Json::as_str)
            && !(key == "prefix" && v == "/")
        {
            return format!(" {label} {v}");
        }
    }
    String::new()
}

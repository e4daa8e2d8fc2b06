//! Changes made in the console, laid over the configuration file: extra
//! routes and a few global settings, kept as JSON documents with Pomerium's
//! key names. They go through exactly the same reading and validation as
//! the file (they are merged into its tree before anything is checked), and
//! every value they contribute is marked with where it came from
//! (`console:routes/<id>/<key>`, `console:settings/<key>`) so a diagnostic
//! can be shown next to the form field that caused it.

use std::path::Path;

use serde_json::Value as Json;

use crate::load::{Loaded, Rejected, load_file_inner};
use crate::origin::setting_mark;
pub use crate::origin::{Target, route_mark, target};
use crate::yaml::{Mark, Node, Scalar, Value};

/// Global options the console may change while gatehouse runs: each takes
/// effect on the next request without touching listeners, certificates or
/// the session store.
pub const LIVE_SETTINGS: &[&str] = &[
    "jwt_claims_headers",
    "jwt_issuer_format",
    "pass_identity_headers",
    "cookie_expire",
    "default_upstream_timeout",
    "set_response_headers",
];

/// Console routes (in order) and settings, as JSON objects of Pomerium keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overlay {
    /// `(id, route)`: `route` is a JSON object with route keys (`from`, `to`...).
    pub routes: Vec<(String, Json)>,
    /// `(key, value)` for keys in [`LIVE_SETTINGS`].
    pub settings: Vec<(String, Json)>,
}

/// A JSON value as a marked YAML node. Strings stay strings (`"true"` is
/// not a boolean); numbers, booleans and null are plain scalars.
pub fn json_to_node(v: &Json, mark: &Mark) -> Node {
    let value = match v {
        Json::Null => Value::Scalar(Scalar {
            text: String::new(),
            quoted: false,
        }),
        Json::Bool(b) => Value::Scalar(Scalar {
            text: b.to_string(),
            quoted: false,
        }),
        Json::Number(n) => Value::Scalar(Scalar {
            text: n.to_string(),
            quoted: false,
        }),
        Json::String(s) => Value::Scalar(Scalar {
            text: s.clone(),
            quoted: true,
        }),
        Json::Array(items) => Value::Seq(items.iter().map(|i| json_to_node(i, mark)).collect()),
        Json::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| (Node::scalar(k.clone(), mark.clone()), json_to_node(v, mark)))
                .collect(),
        ),
    };
    Node {
        value,
        mark: mark.clone(),
    }
}

/// A YAML node as JSON, reading plain scalars as YAML 1.2 core types
/// (`true`, `12`, `1.5`, `null`); quoted scalars are strings.
pub fn node_to_json(node: &Node) -> Json {
    match &node.value {
        Value::Scalar(s) if s.quoted => Json::String(s.text.clone()),
        Value::Scalar(_) if node.is_null() => Json::Null,
        Value::Scalar(s) => match s.text.as_str() {
            "true" | "True" | "TRUE" => Json::Bool(true),
            "false" | "False" | "FALSE" => Json::Bool(false),
            t => {
                if let Ok(i) = t.parse::<i64>() {
                    Json::from(i)
                } else if let Some(f) = t
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && t.contains('.'))
                {
                    Json::from(f)
                } else {
                    Json::String(t.to_string())
                }
            }
        },
        Value::Seq(items) => Json::Array(items.iter().map(node_to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), node_to_json(v)))
                .collect(),
        ),
    }
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.settings.is_empty()
    }

    /// Lays the overlay over the file's tree: routes are appended to
    /// `routes`, settings replace the file's (and the environment's) value.
    pub fn merge_into(&self, root: &mut Node) {
        let Value::Map(entries) = &mut root.value else {
            return;
        };
        for (key, value) in &self.settings {
            let mark = setting_mark(key);
            let node = json_to_node(value, &mark);
            match entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
                Some(entry) => entry.1 = node,
                None => entries.push((Node::scalar(key.clone(), mark), node)),
            }
        }
        if self.routes.is_empty() {
            return;
        }
        let nodes = self.routes.iter().map(|(id, route)| route_node(id, route));
        match entries
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some("routes"))
        {
            Some((_, list)) => {
                // `routes: ~` is an empty list; any other bad value keeps
                // the file's own error.
                if list.is_null() {
                    list.value = Value::Seq(Vec::new());
                }
                if let Value::Seq(items) = &mut list.value {
                    items.extend(nodes);
                }
            }
            None => entries.push((
                Node::scalar("routes", route_mark("", "")),
                Node {
                    value: Value::Seq(nodes.collect()),
                    mark: route_mark("", ""),
                },
            )),
        }
    }
}

/// One console route as a node: each key's value is marked with the key.
fn route_node(id: &str, route: &Json) -> Node {
    let whole = route_mark(id, "");
    let Json::Object(map) = route else {
        return json_to_node(route, &whole);
    };
    Node {
        value: Value::Map(
            map.iter()
                .filter(|(k, _)| k.as_str() != "id")
                .map(|(k, v)| {
                    let mark = route_mark(id, k);
                    (
                        Node::scalar(k.clone(), mark.clone()),
                        json_to_node(v, &mark),
                    )
                })
                .collect(),
        ),
        mark: whole,
    }
}

/// Loads the configuration file with the console's overlay on top, through
/// the same checks as the file alone.
pub fn load_file_with_overlay(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    overlay: &Overlay,
) -> Result<Loaded, Rejected> {
    load_file_inner(path, env, Some(&|root: &mut Node| overlay.merge_into(root)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_yaml_round_trip() {
        let j: Json = serde_json::json!({
            "from": "https://a.localhost",
            "to": ["http://127.0.0.1:1", "http://127.0.0.1:2,3"],
            "allow_any_authenticated_user": true,
            "timeout": "30s",
            "weight": 3,
            "text": "true",
            "none": null,
        });
        let node = json_to_node(&j, &route_mark("x", "k"));
        assert_eq!(node_to_json(&node), j);
    }

    #[test]
    fn marks_name_the_console_value() {
        assert_eq!(
            target(&route_mark("ab12", "to")),
            Some(Target::Route("ab12", Some("to")))
        );
        assert_eq!(
            target(&route_mark("ab12", "")),
            Some(Target::Route("ab12", None))
        );
        assert_eq!(
            target(&setting_mark("cookie_expire")),
            Some(Target::Setting("cookie_expire"))
        );
        assert_eq!(target(&Mark::env("X")), None);
    }
}

//! What the console manages and its changes: the state (routes and
//! settings), a change asked for and its record, and the errors a change
//! can meet, with the helpers that read and check them.

use gatehouse_config::Diagnostic;
use gatehouse_config::overlay::{self, Overlay, Target};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// What the console manages: its routes (in order) and settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub routes: Vec<ConsoleRoute>,
    #[serde(default)]
    pub settings: Map<String, Json>,
}

/// A route made in the console: Pomerium's route keys plus an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsoleRoute {
    pub id: String,
    #[serde(flatten)]
    pub options: Map<String, Json>,
}

impl ConsoleRoute {
    pub(crate) fn str(&self, key: &str) -> &str {
        self.options
            .get(key)
            .and_then(Json::as_str)
            .unwrap_or_default()
    }
}

impl State {
    pub(crate) fn overlay(&self) -> Overlay {
        Overlay {
            routes: self
                .routes
                .iter()
                .map(|r| (r.id.clone(), Json::Object(r.options.clone())))
                .collect(),
            settings: self
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    pub(crate) fn route(&self, id: &str) -> Option<&ConsoleRoute> {
        self.routes.iter().find(|r| r.id == id)
    }
}

/// One recorded change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub version: u64,
    /// Unix seconds.
    pub at: u64,
    /// Who made it (email, else subject).
    pub who: String,
    /// `create`, `update`, `delete`, `settings`, `import` or `revert`.
    pub action: String,
    /// `route:<id>`, `settings` or `all`.
    pub target: String,
    /// One line for the history list.
    pub summary: String,
    /// The target before and after (`null`: did not exist).
    pub before: Json,
    pub after: Json,
}

/// A change asked for.
#[derive(Debug)]
pub enum Edit {
    /// Create (id unknown) or replace a route.
    PutRoute(ConsoleRoute),
    DeleteRoute(String),
    /// Replace the console's settings.
    Settings(Map<String, Json>),
    /// Replace everything (import).
    Import(State),
    /// Undo a recorded change.
    Revert(u64),
}

/// A problem with a change, for the field it concerns (`""`: the change
/// as a whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
pub enum ChangeError {
    Invalid(Vec<FieldError>),
    NotFound(String),
    /// Another admin or instance saved first.
    Conflict,
    /// The store cannot be reached, or the console is not configured.
    Unavailable(String),
}

impl ChangeError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ChangeError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ChangeError::NotFound(_) => StatusCode::NOT_FOUND,
            ChangeError::Conflict => StatusCode::CONFLICT,
            ChangeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            ChangeError::Invalid(errors) => errors
                .iter()
                .map(|e| {
                    if e.field.is_empty() {
                        e.message.clone()
                    } else {
                        format!("{}: {}", e.field, e.message)
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
            ChangeError::NotFound(what) => format!("{what} not found"),
            ChangeError::Conflict => {
                "the console changed while this edit was made (by another admin or instance); reload and try again".into()
            }
            ChangeError::Unavailable(why) => why.clone(),
        }
    }
}

pub(crate) fn unavailable(e: &dyn std::fmt::Display) -> ChangeError {
    ChangeError::Unavailable(format!("console storage: {e}"))
}

/// Diagnostics as field errors: console values by their key, anything
/// else (the file, the environment) for the change as a whole.
pub(crate) fn field_errors(diags: &[Diagnostic]) -> Vec<FieldError> {
    diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| match overlay::target(&d.mark) {
            Some(Target::Route(_, key)) => FieldError {
                field: key.unwrap_or_default().to_string(),
                message: d.message.clone(),
            },
            Some(Target::Setting(key)) => FieldError {
                field: key.to_string(),
                message: d.message.clone(),
            },
            None => FieldError {
                field: String::new(),
                message: format!("{d}"),
            },
        })
        .collect()
}

pub(crate) fn check_setting_keys(settings: &Map<String, Json>) -> Result<(), ChangeError> {
    let errors: Vec<FieldError> = settings
        .keys()
        .filter(|k| !overlay::LIVE_SETTINGS.contains(&k.as_str()))
        .map(|k| FieldError {
            field: k.clone(),
            message: format!(
                "`{k}` cannot be changed in the console (live settings: {})",
                overlay::LIVE_SETTINGS.join(", ")
            ),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ChangeError::Invalid(errors))
    }
}

/// A route as the API shows it: its id first, then its options.
pub(crate) fn route_json(r: &ConsoleRoute) -> Json {
    let mut m = Map::new();
    m.insert("id".into(), Json::String(r.id.clone()));
    m.extend(r.options.clone());
    Json::Object(m)
}

/// A route from API JSON (its `id`, if any, is replaced by `id`).
pub(crate) fn parse_route(id: &str, v: Json) -> Result<ConsoleRoute, ChangeError> {
    let Json::Object(mut options) = v else {
        return Err(ChangeError::Invalid(vec![FieldError {
            field: String::new(),
            message: "a route is a JSON object of route options".into(),
        }]));
    };
    options.remove("id");
    Ok(ConsoleRoute {
        id: id.to_string(),
        options,
    })
}

pub(crate) fn route_label(r: &ConsoleRoute) -> String {
    match r.str("name") {
        "" => format!("`{}`", r.str("from")),
        n => format!("`{n}`"),
    }
}

pub(crate) fn new_id() -> String {
    let bytes: [u8; 6] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

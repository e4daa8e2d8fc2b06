//! A change asked for, applied to the state: the state after it and the
//! change's record (before and after), a revert included.

use std::sync::Arc;

use gatehouse_identity::console_store::ConsoleStore;
use serde_json::Value as Json;

use crate::Console;
use crate::state::{
    Change, ChangeError, Edit, State, check_setting_keys, parse_route, route_json, route_label,
    unavailable,
};

impl Console {
    /// The state after `edit`, and the change record (without who/when).
    pub(crate) async fn edit(
        &self,
        store: &Arc<dyn ConsoleStore>,
        state: &State,
        edit: Edit,
    ) -> Result<(State, Change), ChangeError> {
        let mut next = state.clone();
        let record = |action: &str, target: String, summary: String, before, after| Change {
            version: 0,
            at: 0,
            who: String::new(),
            action: action.into(),
            target,
            summary,
            before,
            after,
        };
        Ok(match edit {
            Edit::PutRoute(route) => {
                let after = route_json(&route);
                let label = route_label(&route);
                match next.routes.iter_mut().find(|r| r.id == route.id) {
                    Some(existing) => {
                        let before = route_json(existing);
                        *existing = route.clone();
                        let target = format!("route:{}", route.id);
                        (
                            next,
                            record(
                                "update",
                                target,
                                format!("updated route {label}"),
                                before,
                                after,
                            ),
                        )
                    }
                    None => {
                        next.routes.push(route.clone());
                        let target = format!("route:{}", route.id);
                        (
                            next,
                            record(
                                "create",
                                target,
                                format!("created route {label}"),
                                Json::Null,
                                after,
                            ),
                        )
                    }
                }
            }
            Edit::DeleteRoute(id) => {
                let Some(i) = next.routes.iter().position(|r| r.id == id) else {
                    return Err(ChangeError::NotFound(format!("route `{id}`")));
                };
                let gone = next.routes.remove(i);
                let summary = format!("deleted route {}", route_label(&gone));
                (
                    next,
                    record(
                        "delete",
                        format!("route:{id}"),
                        summary,
                        route_json(&gone),
                        Json::Null,
                    ),
                )
            }
            Edit::Settings(settings) => {
                check_setting_keys(&settings)?;
                let before = Json::Object(next.settings.clone());
                next.settings = settings.clone();
                let keys: Vec<&str> = settings.keys().map(String::as_str).collect();
                let summary = if keys.is_empty() {
                    "settings: all from the configuration file".to_string()
                } else {
                    format!("settings: {}", keys.join(", "))
                };
                (
                    next,
                    record(
                        "settings",
                        "settings".into(),
                        summary,
                        before,
                        Json::Object(settings),
                    ),
                )
            }
            Edit::Import(imported) => {
                check_setting_keys(&imported.settings)?;
                let before = serde_json::to_value(state).unwrap_or_default();
                let after = serde_json::to_value(&imported).unwrap_or_default();
                let summary = format!(
                    "imported {} route(s), {} setting(s)",
                    imported.routes.len(),
                    imported.settings.len()
                );
                (
                    imported,
                    record("import", "all".into(), summary, before, after),
                )
            }
            Edit::Revert(version) => {
                let bytes = store
                    .change(version)
                    .await
                    .map_err(|e| unavailable(&e))?
                    .ok_or_else(|| ChangeError::NotFound(format!("change {version}")))?;
                let old: Change = serde_json::from_slice(&bytes).map_err(|e| unavailable(&e))?;
                let summary = format!("reverted change {version} ({})", old.summary);
                let (target, before_now, after) = match old.target.split_once(':') {
                    Some(("route", id)) => {
                        let before_now = next.route(id).map(route_json).unwrap_or(Json::Null);
                        match &old.before {
                            Json::Null => next.routes.retain(|r| r.id != id),
                            b => {
                                let restored = parse_route(id, b.clone())?;
                                match next.routes.iter_mut().find(|r| r.id == id) {
                                    Some(r) => *r = restored,
                                    None => next.routes.push(restored),
                                }
                            }
                        }
                        (old.target.clone(), before_now, old.before.clone())
                    }
                    _ if old.target == "settings" => {
                        let before_now = Json::Object(next.settings.clone());
                        next.settings = old.before.as_object().cloned().unwrap_or_default();
                        (old.target.clone(), before_now, old.before.clone())
                    }
                    _ => {
                        let before_now = serde_json::to_value(state).unwrap_or_default();
                        next = serde_json::from_value(old.before.clone()).unwrap_or_default();
                        (old.target.clone(), before_now, old.before.clone())
                    }
                };
                (next, record("revert", target, summary, before_now, after))
            }
        })
    }
}

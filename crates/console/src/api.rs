//! The console's JSON API, `/api/v1/...` on the console host: the same
//! changes as the pages, the same validation, the same admin policy. Use it
//! with `Authorization: Pomerium <token>` from a programmatic login. The
//! OpenAPI document is `/api/v1/openapi.json`.

use gatehouse_identity::Session;
use gatehouse_proxy::Proxy;
use gatehouse_proxy::body::{Body, RequestBody};
use gatehouse_proxy::runtime::Runtime;
use http::{Method, Request, Response, StatusCode, header};
use serde_json::{Value as Json, json};

use crate::Console;
use crate::common::{listed, not_in_force, read_body, respond, who};
use crate::import_export::export;
use crate::state::{ChangeError, Edit, FieldError, new_id, parse_route, route_json};

const OPENAPI: &str = include_str!("openapi.json");

pub(super) async fn serve(
    console: &Console,
    proxy: &Proxy,
    rt: &Runtime,
    req: Request<RequestBody>,
    path: &str,
    session: &Session,
) -> Response<Body> {
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let user = who(session);
    match (method, segments.as_slice()) {
        (Method::GET, ["openapi.json"]) => respond(StatusCode::OK, "application/json", OPENAPI),
        (Method::GET, ["routes"]) => {
            let (version, state) = console.state();
            let mut routes: Vec<Json> = listed(console, rt)
                .iter()
                .map(|l| {
                    let counts = json!({
                        "requests": l.counts.requests,
                        "allowed": l.counts.allowed,
                        "denied": l.counts.denied,
                        "sign_in": l.counts.sign_in,
                        "server_errors": l.counts.server_errors,
                        "requests_per_minute": l.per_minute,
                    });
                    match l.route.console_id().and_then(|id| state.route(id)) {
                        Some(r) => json!({"source": "console", "read_only": false, "in_force": true, "route": route_json(r), "metrics": counts}),
                        None => json!({
                            "source": "file",
                            "read_only": true,
                            "in_force": true,
                            "location": l.route.mark.to_string(),
                            "route": {"name": l.route.name, "from": format!("{}{}", l.route.from, l.route.path_match)},
                            "metrics": counts,
                        }),
                    }
                })
                .collect();
            // Console routes left out because they no longer fit the file.
            for r in not_in_force(&state, rt) {
                routes.push(json!({"source": "console", "read_only": false, "in_force": false, "route": route_json(r)}));
            }
            ok(json!({"version": version, "routes": routes, "problem": console.problem()}))
        }
        (Method::POST, ["routes"]) => {
            let body = match json_body(req).await {
                Ok(b) => b,
                Err(e) => return change_error(e),
            };
            let route = match parse_route(&new_id(), body) {
                Ok(r) => r,
                Err(e) => return change_error(e),
            };
            match console.change(proxy, &user, Edit::PutRoute(route)).await {
                Ok((version, change)) => {
                    let mut resp = json_response(
                        StatusCode::CREATED,
                        &json!({"version": version, "route": change.after}),
                    );
                    if let Some(id) = change.target.strip_prefix("route:")
                        && let Ok(v) = http::HeaderValue::from_str(&format!("/api/v1/routes/{id}"))
                    {
                        resp.headers_mut().insert(header::LOCATION, v);
                    }
                    resp
                }
                Err(e) => change_error(e),
            }
        }
        (Method::GET, ["routes", id]) => {
            let (version, state) = console.state();
            match state.route(id) {
                Some(r) => ok(json!({"version": version, "route": route_json(r)})),
                None => change_error(ChangeError::NotFound(format!("route `{id}`"))),
            }
        }
        (Method::PUT, ["routes", id]) => {
            let (_, state) = console.state();
            if state.route(id).is_none() {
                return change_error(ChangeError::NotFound(format!("route `{id}`")));
            }
            let body = match json_body(req).await {
                Ok(b) => b,
                Err(e) => return change_error(e),
            };
            let route = match parse_route(id, body) {
                Ok(r) => r,
                Err(e) => return change_error(e),
            };
            match console.change(proxy, &user, Edit::PutRoute(route)).await {
                Ok((version, change)) => ok(json!({"version": version, "route": change.after})),
                Err(e) => change_error(e),
            }
        }
        (Method::DELETE, ["routes", id]) => {
            match console
                .change(proxy, &user, Edit::DeleteRoute(id.to_string()))
                .await
            {
                Ok((version, _)) => ok(json!({"version": version})),
                Err(e) => change_error(e),
            }
        }
        (Method::GET, ["settings"]) => {
            let (version, state) = console.state();
            ok(json!({
                "version": version,
                "settings": state.settings,
                "live_settings": gatehouse_config::overlay::LIVE_SETTINGS,
            }))
        }
        (Method::PUT, ["settings"]) => {
            let body = match json_body(req).await {
                Ok(b) => b,
                Err(e) => return change_error(e),
            };
            let Json::Object(settings) = body else {
                return change_error(invalid(
                    "settings are a JSON object of option names to values",
                ));
            };
            match console.change(proxy, &user, Edit::Settings(settings)).await {
                Ok((version, change)) => ok(json!({"version": version, "settings": change.after})),
                Err(e) => change_error(e),
            }
        }
        (Method::GET, ["history"]) => {
            let limit = req
                .uri()
                .query()
                .and_then(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "limit")
                        .and_then(|(_, v)| v.parse::<usize>().ok())
                })
                .unwrap_or(100)
                .clamp(1, 1000);
            match console.history(proxy, limit).await {
                Ok(changes) => ok(json!({"changes": changes})),
                Err(e) => change_error(e),
            }
        }
        (Method::GET, ["history", v]) => match v.parse() {
            Ok(v) => match console.change_record(proxy, v).await {
                Ok(c) => ok(json!({"change": c})),
                Err(e) => change_error(e),
            },
            Err(_) => change_error(ChangeError::NotFound(format!("change `{v}`"))),
        },
        (Method::POST, ["history", v, "revert"]) => match v.parse() {
            Ok(v) => match console.change(proxy, &user, Edit::Revert(v)).await {
                Ok((version, change)) => ok(json!({"version": version, "change": change})),
                Err(e) => change_error(e),
            },
            Err(_) => change_error(ChangeError::NotFound(format!("change `{v}`"))),
        },
        (Method::GET, ["export"]) => {
            let (_, state) = console.state();
            match export(rt, &state) {
                Ok(yaml) => respond(StatusCode::OK, "application/yaml; charset=utf-8", yaml),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "export_failed", &e),
            }
        }
        (Method::POST, ["import"]) => {
            let text = match read_body(req).await {
                Ok(b) => match String::from_utf8(b.to_vec()) {
                    Ok(t) => t,
                    Err(_) => return change_error(invalid("the configuration is not UTF-8")),
                },
                Err(e) => return change_error(e),
            };
            match console.import(proxy, &user, rt, &text).await {
                Ok((version, _)) => {
                    let (_, state) = console.state();
                    ok(
                        json!({"version": version, "routes": state.routes.len(), "settings": state.settings.len()}),
                    )
                }
                Err(e) => change_error(e),
            }
        }
        (_, ["openapi.json" | "routes" | "settings" | "history" | "export" | "import"])
        | (_, ["routes" | "history", _])
        | (_, ["history", _, "revert"]) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed here; see /api/v1/openapi.json",
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such API endpoint; see /api/v1/openapi.json",
        ),
    }
}

async fn json_body(req: Request<RequestBody>) -> Result<Json, ChangeError> {
    let bytes = read_body(req).await?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(&format!("the body is not valid JSON: {e}")))
}

fn invalid(message: &str) -> ChangeError {
    ChangeError::Invalid(vec![FieldError {
        field: String::new(),
        message: message.to_string(),
    }])
}

fn json_response(status: StatusCode, body: &Json) -> Response<Body> {
    let mut text = serde_json::to_vec(body).unwrap_or_default();
    text.push(b'\n');
    respond(status, "application/json", text)
}

fn ok(body: Json) -> Response<Body> {
    json_response(StatusCode::OK, &body)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_response(status, &json!({"error": code, "message": message}))
}

/// A cookie-authenticated write from another origin (see `csrf`).
pub(super) fn cross_origin() -> Response<Body> {
    error(
        StatusCode::FORBIDDEN,
        "cross_origin",
        "a write with the session cookie must come from the console's own origin (Origin header); API clients authenticate with `Authorization: Pomerium <token>` and send no cookie. Nothing was changed.",
    )
}

fn change_error(e: ChangeError) -> Response<Body> {
    let code = match &e {
        ChangeError::Invalid(_) => "invalid",
        ChangeError::NotFound(_) => "not_found",
        ChangeError::Conflict => "conflict",
        ChangeError::Unavailable(_) => "unavailable",
    };
    let mut body = json!({"error": code, "message": e.message()});
    if let ChangeError::Invalid(errors) = &e {
        body["errors"] = json!(errors);
    }
    json_response(e.status(), &body)
}

//! The console's pages: plain HTML forms, one small inline stylesheet, no
//! script and nothing from elsewhere (works offline). Tabs are radio
//! buttons, so they work with the keyboard and without JavaScript.
//!
//! One file per page: the route list (`routes`), a route's form (`route`),
//! the settings (`settings`), the history and a change's diff (`history`),
//! the import (`import`); the frame and stylesheet every page shares
//! (`frame`) and the form controls (`controls`). Requests are routed here.

mod controls;
mod frame;
mod history;
mod import;
mod route;
mod routes;
mod settings;

use std::collections::HashMap;

use gatehouse_identity::Session;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::Map;

use gatehouse_proxy::Proxy;
use gatehouse_proxy::answers::html_escape as esc;
use gatehouse_proxy::body::{Body, RequestBody};
use gatehouse_proxy::runtime::Runtime;

use crate::common::{respond, who};
use crate::import_export::export;
use crate::state::{ChangeError, Edit};
use crate::{Console, form};
pub(crate) use frame::cross_origin;
use frame::{done, error_page, field, not_found, page, read_form};
use history::{change_page, history_page};
use import::import_page;
use route::{route_page, save_route};
use routes::routes_page;
use settings::{save_settings, settings_page, settings_values};

pub(super) async fn serve(
    console: &Console,
    proxy: &Proxy,
    rt: &Runtime,
    req: Request<RequestBody>,
    path: &str,
    session: &Session,
) -> Response<Body> {
    let method = req.method().clone();
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (Method::GET | Method::HEAD, [""]) => routes_page(console, rt, session, &query),
        (Method::GET | Method::HEAD, ["routes", "new"]) => {
            let values = form::values(&Map::new(), true);
            route_page(console, rt, session, None, &values, &[], StatusCode::OK)
        }
        (Method::GET | Method::HEAD, ["routes", id]) => {
            let (_, state) = console.state();
            match state.route(id) {
                Some(r) => {
                    let values = form::values(&r.options, false);
                    route_page(console, rt, session, Some(r), &values, &[], StatusCode::OK)
                }
                None => not_found(console, session),
            }
        }
        (Method::POST, ["routes", id]) => save_route(console, proxy, rt, req, session, id).await,
        (Method::POST, ["routes", id, "delete"]) => {
            let result = console
                .change(proxy, &who(session), Edit::DeleteRoute(id.to_string()))
                .await;
            done(console, session, result)
        }
        (Method::GET | Method::HEAD, ["settings"]) => {
            let (_, state) = console.state();
            settings_page(
                console,
                rt,
                session,
                &settings_values(&state.settings),
                &[],
                StatusCode::OK,
            )
        }
        (Method::POST, ["settings"]) => save_settings(console, proxy, rt, req, session).await,
        (Method::GET | Method::HEAD, ["history"]) => history_page(console, proxy, session).await,
        (Method::GET | Method::HEAD, ["history", v]) => match v.parse() {
            Ok(v) => change_page(console, proxy, session, v).await,
            Err(_) => not_found(console, session),
        },
        (Method::POST, ["history", v, "revert"]) => match v.parse() {
            Ok(v) => {
                let result = console.change(proxy, &who(session), Edit::Revert(v)).await;
                done(console, session, result)
            }
            Err(_) => not_found(console, session),
        },
        (Method::GET | Method::HEAD, ["export"]) => {
            let (_, state) = console.state();
            match export(rt, &state) {
                Ok(yaml) => {
                    let mut resp = respond(StatusCode::OK, "application/yaml; charset=utf-8", yaml);
                    resp.headers_mut().insert(
                        header::CONTENT_DISPOSITION,
                        HeaderValue::from_static("attachment; filename=\"config.yaml\""),
                    );
                    resp
                }
                Err(e) => page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Export failed",
                    &format!("<h1>Export failed</h1><p class=error>{}</p>", esc(&e)),
                    session,
                    console,
                ),
            }
        }
        (Method::GET | Method::HEAD, ["import"]) => {
            import_page(console, session, "", &[], StatusCode::OK)
        }
        (Method::POST, ["import"]) => {
            let text = match read_form(req).await {
                Ok(f) => field(&f, "config").to_string(),
                Err(e) => return error_page(console, session, e),
            };
            match console.import(proxy, &who(session), rt, &text).await {
                Err(ChangeError::Invalid(errors)) => import_page(
                    console,
                    session,
                    &text,
                    &errors,
                    StatusCode::UNPROCESSABLE_ENTITY,
                ),
                other => done(console, session, other),
            }
        }
        _ => not_found(console, session),
    }
}

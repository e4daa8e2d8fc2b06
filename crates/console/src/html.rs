//! The console's pages: plain HTML forms, one small inline stylesheet, no
//! script and nothing from elsewhere (works offline). Tabs are radio
//! buttons, so they work with the keyboard and without JavaScript.

use std::collections::HashMap;
use std::fmt::Write as _;

use gatehouse_identity::Session;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Map, Value as Json};

use super::{
    ChangeError, Console, ConsoleRoute, Edit, FieldError, form, listed, new_id, read_body, respond,
    who,
};
use gatehouse_proxy::Proxy;
use gatehouse_proxy::body::Body;
use gatehouse_proxy::pages::html_escape as esc;
use gatehouse_proxy::runtime::Runtime;

pub(super) async fn serve(
    console: &Console,
    proxy: &Proxy,
    rt: &Runtime,
    req: Request<Incoming>,
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
            match super::export(rt, &state) {
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
                    &format!("<p class=error>{}</p>", esc(&e)),
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

/// A cookie-authenticated write from another origin (see `csrf`).
pub(super) fn cross_origin(console: &Console, session: &Session) -> Response<Body> {
    page(
        StatusCode::FORBIDDEN,
        "Refused",
        "<p>This change did not come from the console's own pages (its <code>Origin</code> is another site, or it has none). Nothing was changed.</p>",
        session,
        console,
    )
}

async fn read_form(req: Request<Incoming>) -> Result<Vec<(String, String)>, ChangeError> {
    let bytes = read_body(req).await?;
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

async fn save_route(
    console: &Console,
    proxy: &Proxy,
    rt: &Runtime,
    req: Request<Incoming>,
    session: &Session,
    id: &str,
) -> Response<Body> {
    let submitted = match read_form(req).await {
        Ok(f) => f,
        Err(e) => return error_page(console, session, e),
    };
    let (_, state) = console.state();
    let existing = if id == "new" {
        None
    } else {
        match state.route(id) {
            Some(r) => Some(r.clone()),
            None => return not_found(console, session),
        }
    };
    let base = existing
        .as_ref()
        .map(|r| r.options.clone())
        .unwrap_or_default();
    let values: HashMap<String, String> = submitted.iter().cloned().collect();
    // Problems found by the form itself, or by the configuration's checks
    // (shown on the form field that holds the route key).
    let errors = match form::options(&base, &submitted) {
        Err(errors) => errors,
        Ok(options) => {
            let route = ConsoleRoute {
                id: existing.as_ref().map_or_else(new_id, |r| r.id.clone()),
                options,
            };
            match console
                .change(proxy, &who(session), Edit::PutRoute(route))
                .await
            {
                Err(ChangeError::Invalid(errors)) => {
                    let preset = field(&submitted, "policy_preset");
                    errors
                        .into_iter()
                        .map(|e| FieldError {
                            field: form::field_for(&e.field, preset),
                            message: e.message,
                        })
                        .collect()
                }
                other => return done(console, session, other),
            }
        }
    };
    route_page(
        console,
        rt,
        session,
        existing.as_ref(),
        &values,
        &errors,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}

async fn save_settings(
    console: &Console,
    proxy: &Proxy,
    rt: &Runtime,
    req: Request<Incoming>,
    session: &Session,
) -> Response<Body> {
    let submitted = match read_form(req).await {
        Ok(f) => f,
        Err(e) => return error_page(console, session, e),
    };
    let values: HashMap<String, String> = submitted.iter().cloned().collect();
    let mut settings = Map::new();
    for key in gatehouse_config::overlay::LIVE_SETTINGS {
        let v = field(&submitted, key).trim();
        if v.is_empty() {
            continue;
        }
        let value = match *key {
            "pass_identity_headers" => Json::Bool(v == "true"),
            "set_response_headers" => {
                let mut m = Map::new();
                for line in v.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    if let Some((n, val)) = line.split_once(':') {
                        m.insert(n.trim().into(), Json::String(val.trim().into()));
                    } else {
                        let errors = [FieldError {
                            field: key.to_string(),
                            message: format!(
                                "`{line}`: write one header per line as `Name: value`"
                            ),
                        }];
                        return settings_page(
                            console,
                            rt,
                            session,
                            &values,
                            &errors,
                            StatusCode::UNPROCESSABLE_ENTITY,
                        );
                    }
                }
                Json::Object(m)
            }
            _ => Json::String(v.to_string()),
        };
        settings.insert(key.to_string(), value);
    }
    match console
        .change(proxy, &who(session), Edit::Settings(settings))
        .await
    {
        Err(ChangeError::Invalid(errors)) => settings_page(
            console,
            rt,
            session,
            &values,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        other => done(console, session, other),
    }
}

fn settings_values(settings: &Map<String, Json>) -> HashMap<String, String> {
    settings
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Json::String(s) => s.clone(),
                Json::Object(m) => m
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("\n"),
                Json::Array(a) => a
                    .iter()
                    .map(|i| i.as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// After a change: back to the list with a notice, or the error.
fn done(
    console: &Console,
    session: &Session,
    result: Result<(u64, super::Change), ChangeError>,
) -> Response<Body> {
    match result {
        Ok((version, _)) => {
            let mut resp = respond(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
            if let Ok(v) = HeaderValue::from_str(&format!("/?applied={version}")) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        Err(e) => error_page(console, session, e),
    }
}

fn error_page(console: &Console, session: &Session, e: ChangeError) -> Response<Body> {
    let body = format!(
        "<p class=error role=alert>{}</p><p>Nothing was changed. <a href=\"/\">Back to the routes</a></p>",
        esc(&e.message())
    );
    page(e.status(), "Not changed", &body, session, console)
}

fn not_found(console: &Console, session: &Session) -> Response<Body> {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "<p>There is nothing here. <a href=\"/\">Back to the routes</a></p>",
        session,
        console,
    )
}

const STYLE: &str = "*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f5f6f8;color:#1f2430}\
a{color:#2457c5}header{background:#1f2430;color:#fff;padding:.6rem 1.25rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:center}\
header strong{margin-right:1rem}header nav{display:flex;flex-wrap:wrap;gap:.25rem}header nav a{color:#dfe3ea;text-decoration:none;padding:.3rem .6rem;border-radius:6px}\
header nav a[aria-current]{background:#3a4150;color:#fff}header .who{margin-left:auto;font-size:.85rem;color:#b9c0cc}\
main{max-width:64rem;margin:1.5rem auto;padding:0 1.25rem}h1{font-size:1.4rem;margin:.25rem 0 1rem}\
.card{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:1.25rem;margin-bottom:1rem}\
table{width:100%;border-collapse:collapse;font-size:.9rem}th,td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid #e6e8ee;vertical-align:top}\
th{font-weight:600;color:#5b6170}td.num{text-align:right;font-variant-numeric:tabular-nums}code{font-family:ui-monospace,Menlo,monospace;font-size:.85em}\
.tag{display:inline-block;font-size:.75rem;padding:0 .45rem;border-radius:9px;background:#e8ecf4;color:#3a4150}.tag.file{background:#f1ede4;color:#6b5a2e}\
.bar{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center;margin-bottom:1rem}.bar form{display:flex;gap:.5rem;flex:1}\
input[type=text],input[type=search],textarea,select{width:100%;font:inherit;padding:.45rem .55rem;border:1px solid #c9ced8;border-radius:6px;background:#fff;color:inherit}\
textarea{font-family:ui-monospace,Menlo,monospace;font-size:.85rem;min-height:5.5rem}\
button,.button{font:inherit;border:0;border-radius:6px;padding:.45rem .9rem;background:#2457c5;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}\
button.secondary,.button.secondary{background:#e8ecf4;color:#1f2430}button.danger{background:#b42318}\
:focus-visible{outline:3px solid #f5a524;outline-offset:2px}\
.field{margin:0 0 1rem}.field label,.field legend{display:block;font-weight:600;margin-bottom:.2rem}.hint{color:#5b6170;font-size:.85rem;margin:.15rem 0 0}\
.check label{display:inline;font-weight:600}.error{color:#b42318;font-weight:600;margin:.25rem 0 0}[aria-invalid=true]{border-color:#b42318;box-shadow:0 0 0 1px #b42318}\
.notice{background:#e7f6ec;color:#14532d;padding:.6rem .9rem;border-radius:8px;margin-bottom:1rem}.problem{background:#fdecea;color:#7a1d14;padding:.6rem .9rem;border-radius:8px;margin-bottom:1rem}\
fieldset{border:0;padding:0;margin:0 0 1rem}.presets{display:flex;flex-wrap:wrap;gap:.25rem 1rem}.presets label{font-weight:400;display:inline}\
.tabs{display:flex;flex-wrap:wrap}.tabs>input{position:absolute;opacity:0;width:1px;height:1px}.tabs>label{padding:.5rem .9rem;border-bottom:2px solid transparent;cursor:pointer;color:#5b6170;font-weight:600}\
.tabs>input:checked+label{border-color:#2457c5;color:#1f2430}.tabs>input:focus-visible+label{outline:3px solid #f5a524}\
.panel{display:none;width:100%;padding-top:1rem;border-top:1px solid #e6e8ee}\
#tab-general:checked~#panel-general,#tab-headers:checked~#panel-headers,#tab-timeouts:checked~#panel-timeouts,#tab-tls:checked~#panel-tls,#tab-embedding:checked~#panel-embedding{display:block}\
.diff{font-family:ui-monospace,Menlo,monospace;font-size:.82rem;white-space:pre-wrap;margin:0;background:#fafbfc;border-radius:6px;padding:.5rem}.diff .add{background:#e6f4ea;display:block}.diff .del{background:#fdecea;display:block}\
.actions{display:flex;gap:.5rem;flex-wrap:wrap;margin-top:1rem}footer{color:#8a909c;font-size:.8rem;margin:2rem 0}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(14rem,1fr));gap:0 1rem}\
@media (max-width:40rem){th.opt,td.opt{display:none}}\
@media (prefers-color-scheme:dark){body{background:#15171c;color:#e6e8ee}.card{background:#1f2229;box-shadow:none}th,td{border-color:#333846}\
input[type=text],input[type=search],textarea,select{background:#15171c;border-color:#3a4150}.hint,th{color:#a3a9b6}a{color:#8ab4ff}.diff{background:#15171c}\
.diff .add{background:#143d24}.diff .del{background:#4a1a16}.tag{background:#333846;color:#e6e8ee}.tabs>input:checked+label{color:#e6e8ee}}";

/// The common frame of every console page.
fn page(
    status: StatusCode,
    title: &str,
    body: &str,
    session: &Session,
    console: &Console,
) -> Response<Body> {
    let current = |t: &str| if t == title { " aria-current=page" } else { "" };
    let problem = console
        .problem()
        .map(|p| {
            format!(
                "<p class=problem role=alert>Console changes are not in force: they do not fit the configuration file: {}</p>",
                esc(&p)
            )
        })
        .unwrap_or_default();
    let (version, _) = console.state();
    let storage = console
        .store
        .get()
        .map(|s| s.describe())
        .unwrap_or_default();
    let html = format!(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\">\
<title>{t} · gatehouse console</title><style>{STYLE}</style></head><body>\
<header><strong>gatehouse console</strong><nav aria-label=Console>\
<a href=\"/\"{r}>Routes</a><a href=\"/settings\"{s}>Settings</a><a href=\"/history\"{h}>History</a><a href=\"/import\"{i}>Import</a><a href=\"/export\">Export</a><a href=\"/api/v1/openapi.json\">API</a></nav>\
<span class=who>{who} · <a href=\"/.pomerium/sign_out\" style=\"color:inherit\">Sign out</a></span></header>\
<main>{problem}{body}<footer>Version {version} · stored in {storage}</footer></main></body></html>\n",
        t = esc(title),
        r = current("Routes"),
        s = current("Settings"),
        h = current("History"),
        i = current("Import"),
        who = esc(&who(session)),
        storage = esc(&storage),
    );
    let mut resp = respond(status, "text/html; charset=utf-8", html);
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    resp
}

fn routes_page(
    console: &Console,
    rt: &Runtime,
    session: &Session,
    query: &HashMap<String, String>,
) -> Response<Body> {
    let q = query
        .get("q")
        .map(|q| q.trim().to_lowercase())
        .unwrap_or_default();
    let (_, state) = console.state();
    let mut rows = String::new();
    let mut shown = 0;
    let all = listed(console, rt);
    for l in &all {
        let r = l.route;
        let label = r.label().to_string();
        let to = match &r.action {
            gatehouse_config::RouteAction::Forward(t) => t
                .iter()
                .map(|t| t.url.clone())
                .collect::<Vec<_>>()
                .join(", "),
            gatehouse_config::RouteAction::Redirect(_) => "redirect".into(),
            gatehouse_config::RouteAction::Respond { status, .. } => {
                format!("response {}", status.as_u16())
            }
            gatehouse_config::RouteAction::Console => "console".into(),
        };
        let from = format!("{}{}", r.from, r.path_match);
        let policy = policy_summary(&r.authorization);
        let haystack = format!("{label} {from} {to} {policy}").to_lowercase();
        if !q.is_empty() && !haystack.contains(&q) {
            continue;
        }
        shown += 1;
        let (name_cell, source) = match r.console_id() {
            Some(id) => (
                format!("<a href=\"/routes/{}\">{}</a>", esc(id), esc(&label)),
                "<span class=tag>console</span>".to_string(),
            ),
            None => (
                esc(&label),
                format!(
                    "<span class=\"tag file\" title=\"Defined in the configuration file; edit it there\">file · read-only</span> <small>line {}</small>",
                    r.mark.line
                ),
            ),
        };
        let rate = l
            .per_minute
            .map(|r| format!("{r:.1}"))
            .unwrap_or_else(|| "–".into());
        let _ = write!(
            rows,
            "<tr><td>{name_cell}</td><td><code>{}</code></td><td class=opt><code>{}</code></td><td class=opt>{}</td><td>{source}</td>\
<td class=num>{rate}</td><td class=num>{}</td><td class=num>{}</td></tr>",
            esc(&from),
            esc(&to),
            esc(&policy),
            l.counts.allowed,
            l.counts.denied,
        );
    }
    for r in super::not_in_force(&state, rt) {
        let label = match r.str("name") {
            "" => r.str("from").to_string(),
            n => n.to_string(),
        };
        shown += 1;
        let _ = write!(
            rows,
            "<tr><td><a href=\"/routes/{id}\">{label}</a></td><td><code>{from}</code></td><td class=opt></td><td class=opt></td>\
<td><span class=\"tag file\">console · not in force</span></td><td class=num>–</td><td class=num>–</td><td class=num>–</td></tr>",
            id = esc(&r.id),
            label = esc(&label),
            from = esc(r.str("from")),
        );
    }
    let notice = query
        .get("applied")
        .map(|v| {
            format!(
                "<p class=notice role=status>Saved and applied (version {}). It is in force on this instance now.</p>",
                esc(v)
            )
        })
        .unwrap_or_default();
    let console_routes = state.routes.len();
    let body = format!(
        "{notice}<h1>Routes</h1><div class=bar><form method=get action=\"/\" role=search><label for=q class=visually-hidden style=\"position:absolute;left:-9999px\">Search routes</label>\
<input type=search id=q name=q value=\"{qv}\" placeholder=\"Search by name, host, upstream or policy\"><button class=secondary>Search</button></form>\
<a class=button href=\"/routes/new\">New route</a></div>\
<div class=card><table><caption style=\"text-align:left;color:#5b6170;font-size:.85rem;padding-bottom:.5rem\">{shown} of {total} routes ({console_routes} from the console). Requests per minute over the last minute; allowed and denied since start.</caption>\
<thead><tr><th scope=col>Name</th><th scope=col>From</th><th scope=col class=opt>To</th><th scope=col class=opt>Policy</th><th scope=col>Source</th><th scope=col class=num>Req/min</th><th scope=col class=num>Allowed</th><th scope=col class=num>Denied</th></tr></thead>\
<tbody>{rows}</tbody></table></div>",
        qv = esc(&q),
        total = all.len(),
    );
    page(StatusCode::OK, "Routes", &body, session, console)
}

fn policy_summary(a: &gatehouse_config::Authorization) -> String {
    let mut parts = Vec::new();
    if a.public.is_some() {
        parts.push("public".to_string());
    }
    if a.any_authenticated_user.is_some() {
        parts.push("any authenticated user".into());
    }
    if let Some(u) = &a.allowed_users {
        parts.push(format!("users {}", u.value.join(", ")));
    }
    if let Some(d) = &a.allowed_domains {
        parts.push(format!("domains {}", d.value.join(", ")));
    }
    if a.policy.is_some() {
        parts.push("PPL policy".into());
    }
    if parts.is_empty() {
        "nobody".into()
    } else {
        parts.join("; ")
    }
}

/// Renders form controls with their label, hint and error, and remembers
/// which fields it showed: errors for any other field go in the summary.
struct Form<'a> {
    values: &'a HashMap<String, String>,
    errors: &'a [FieldError],
    shown: std::cell::RefCell<Vec<String>>,
}

impl<'a> Form<'a> {
    fn new(values: &'a HashMap<String, String>, errors: &'a [FieldError]) -> Self {
        Form {
            values,
            errors,
            shown: Default::default(),
        }
    }

    fn v(&self, name: &str) -> String {
        esc(self
            .values
            .get(name)
            .map(String::as_str)
            .unwrap_or_default())
    }

    /// The attributes for `name`'s control and its error message (empty
    /// when it has none).
    fn error(&self, name: &str) -> (String, String) {
        self.shown.borrow_mut().push(name.to_string());
        let messages: Vec<&str> = self
            .errors
            .iter()
            .filter(|e| e.field == name)
            .map(|e| e.message.as_str())
            .collect();
        if messages.is_empty() {
            return (String::new(), String::new());
        }
        (
            format!(" aria-invalid=true aria-describedby=\"err-{name}\""),
            format!(
                "<p class=error id=\"err-{name}\">{}</p>",
                esc(&messages.join("; "))
            ),
        )
    }

    /// A labelled control: `control` gets the attributes to add to it.
    fn field(
        &self,
        name: &str,
        label: &str,
        hint: &str,
        control: impl FnOnce(&str) -> String,
    ) -> String {
        let (attrs, err) = self.error(name);
        format!(
            "<div class=field><label for=\"f-{name}\">{label}</label>{}{}{err}</div>",
            control(&attrs),
            hint_html(hint),
        )
    }

    fn text(&self, name: &str, label: &str, hint: &str, placeholder: &str) -> String {
        self.field(name, label, hint, |attrs| {
            format!(
                "<input type=text id=\"f-{name}\" name=\"{name}\" value=\"{}\" placeholder=\"{}\"{attrs}>",
                self.v(name),
                esc(placeholder)
            )
        })
    }

    fn area(&self, name: &str, label: &str, hint: &str, placeholder: &str) -> String {
        self.field(name, label, hint, |attrs| {
            format!(
                "<textarea id=\"f-{name}\" name=\"{name}\" placeholder=\"{}\"{attrs}>{}</textarea>",
                esc(placeholder),
                self.v(name)
            )
        })
    }

    fn check(&self, name: &str, label: &str, hint: &str) -> String {
        let (attrs, err) = self.error(name);
        let checked = if self.values.get(name).is_some_and(|v| v == "on") {
            " checked"
        } else {
            ""
        };
        format!(
            "<div class=\"field check\"><input type=checkbox id=\"f-{name}\" name=\"{name}\"{checked}{attrs}> <label for=\"f-{name}\">{label}</label>{h}{err}</div>",
            h = hint_html(hint),
        )
    }

    fn select(&self, name: &str, label: &str, options: &[(&str, &str)], hint: &str) -> String {
        let current = self
            .values
            .get(name)
            .map(String::as_str)
            .unwrap_or_default();
        let opts: String = options
            .iter()
            .map(|(v, l)| {
                let sel = if *v == current { " selected" } else { "" };
                format!("<option value=\"{v}\"{sel}>{l}</option>")
            })
            .collect();
        self.field(name, label, hint, |attrs| {
            format!("<select id=\"f-{name}\" name=\"{name}\"{attrs}>{opts}</select>")
        })
    }

    /// "Not saved" with the count, and the errors no field showed (the
    /// file's, a key set through the API). Call after rendering the fields.
    fn summary(&self) -> String {
        if self.errors.is_empty() {
            return String::new();
        }
        let shown = self.shown.borrow();
        let others: String = self
            .errors
            .iter()
            .filter(|e| !shown.contains(&e.field))
            .map(|e| {
                if e.field.is_empty() {
                    format!("<li>{}</li>", esc(&e.message))
                } else {
                    format!(
                        "<li><code>{}</code>: {}</li>",
                        esc(&e.field),
                        esc(&e.message)
                    )
                }
            })
            .collect();
        let others = if others.is_empty() {
            String::new()
        } else {
            format!("<ul>{others}</ul>")
        };
        format!(
            "<div class=problem role=alert><strong>Not saved: {} problem(s).</strong> Nothing was changed; the fields below say what to fix.{others}</div>",
            self.errors.len()
        )
    }
}

fn hint_html(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("<p class=hint>{hint}</p>")
    }
}

/// Which tab holds a form field (the first error's tab opens).
fn tab_of(field: &str) -> &'static str {
    match field {
        "pass_identity_headers"
        | "jwt_claims_headers"
        | "set_request_headers"
        | "remove_request_headers"
        | "set_response_headers"
        | "host_rewrite"
        | "preserve_host_header" => "headers",
        "timeout" | "idle_timeout" | "allow_websockets" => "timeouts",
        "tls_skip_verify" | "tls_server_name" | "tls_custom_ca" => "tls",
        "frame_ancestors" | "cookie_same_site" => "embedding",
        _ => "general",
    }
}

fn route_page(
    console: &Console,
    rt: &Runtime,
    session: &Session,
    existing: Option<&ConsoleRoute>,
    values: &HashMap<String, String>,
    errors: &[FieldError],
    status: StatusCode,
) -> Response<Body> {
    let f = Form::new(values, errors);
    let open_tab = errors
        .first()
        .map(|e| tab_of(&e.field))
        .unwrap_or("general");
    let tab = |id: &str, label: &str| {
        let checked = if id == open_tab { " checked" } else { "" };
        format!(
            "<input type=radio name=tab id=\"tab-{id}\" value=\"{id}\"{checked}><label for=\"tab-{id}\">{label}</label>"
        )
    };
    let preset = values
        .get("policy_preset")
        .map(String::as_str)
        .unwrap_or("any");
    let presets: String = form::PRESETS
        .iter()
        .map(|(v, l)| {
            let checked = if *v == preset { " checked" } else { "" };
            format!("<span><input type=radio name=policy_preset id=\"preset-{v}\" value=\"{v}\"{checked}> <label for=\"preset-{v}\">{l}</label></span>")
        })
        .collect();
    let (policy_attrs, policy_err) = f.error("policy");
    let path_kinds = [
        ("any", "Any path"),
        ("prefix", "Prefix"),
        ("path", "Exact path"),
        ("regex", "Regular expression"),
    ];
    let (action, title, heading) = match existing {
        Some(r) => (
            format!("/routes/{}", esc(&r.id)),
            "Edit route",
            format!("Edit route {}", esc(&super::route_label(r))),
        ),
        None => (
            "/routes/new".to_string(),
            "New route",
            "New route".to_string(),
        ),
    };
    let global_claims = rt
        .config
        .options
        .jwt_claims_headers
        .as_ref()
        .map(|c| {
            c.value
                .0
                .iter()
                .map(|(_, c)| c.clone())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let general = format!(
        "{name}{from}<div class=grid>{kind}{pathv}</div>{to}\
<fieldset><legend>Policy</legend><div class=presets role=radiogroup aria-label=\"Who may use this route\"{policy_attrs}>{presets}</div>{policy_err}\
<div class=grid>{dom}{users}{groups}</div>{ppl}</fieldset>",
        name = f.text("name", "Name", "Shown in lists and logs.", "Grafana"),
        from = f.text("from", "From", "The address people use: <code>https://</code> and a host.", "https://app.example.com"),
        kind = f.select("path_kind", "Match", &path_kinds, ""),
        pathv = f.text("path_value", "Path", "For a prefix, exact path or regular expression.", "/api/"),
        to = f.area("to", "To", "One upstream URL per line; add <code>,weight</code> to share load unevenly (<code>http://10.0.0.2:3000,2</code>).", "http://127.0.0.1:3000"),
        dom = f.text("policy_domain", "Email domains", "For “Email domain”: comma-separated.", "example.com"),
        users = f.text("policy_users", "Users (emails)", "For “Users”: comma-separated.", "alice@example.com"),
        groups = f.text("policy_groups", "Groups", "For “Groups”: comma-separated.", "admins"),
        ppl = f.area("policy_ppl", "Policy (PPL YAML)", "For “Policy”: Pomerium Policy Language, e.g. <code>allow: {and: [{email: {is: alice@example.com}}]}</code>.", "allow:\n  or:\n    - groups: {has: admins}"),
    );
    let headers = format!(
        "{pass}{claims}{set}{remove}{resp}{host}{preserve}",
        pass = f.check("pass_identity_headers", "Pass identity headers", "Send the signed identity JWT (<code>X-Pomerium-Jwt-Assertion</code>) and the claim headers to the upstream."),
        claims = f.text("jwt_claims_headers", "Claim headers", &format!("Claims sent as <code>X-Pomerium-Claim-*</code> headers, comma-separated (global: {}).", if global_claims.is_empty() { "none".to_string() } else { esc(&global_claims) }), "email, groups"),
        set = f.area("set_request_headers", "Set request headers", "One per line, <code>Name: value</code>; <code>${pomerium.email}</code> and friends work.", "X-Team: blue"),
        remove = f.text("remove_request_headers", "Remove request headers", "Comma-separated names.", "X-Debug"),
        resp = f.area("set_response_headers", "Set response headers", "One per line, <code>Name: value</code>.", "X-Frame-Options: DENY"),
        host = f.text("host_rewrite", "Host rewrite", "The <code>Host</code> the upstream sees.", "internal.example.com"),
        preserve = f.check("preserve_host_header", "Preserve the Host header", "Send the client's <code>Host</code> to the upstream."),
    );
    let timeouts = format!(
        "<div class=grid>{t}{i}</div>{ws}",
        t = f.text(
            "timeout",
            "Timeout",
            "Time for the upstream to answer (default 30s; <code>0</code>: none).",
            "30s"
        ),
        i = f.text(
            "idle_timeout",
            "Idle timeout",
            "Longest silence in a streaming response.",
            "5m"
        ),
        ws = f.check(
            "allow_websockets",
            "Allow websockets",
            "Upgrade connections (websockets, no overall timeout)."
        ),
    );
    let tls = format!(
        "{skip}{sni}{ca}",
        skip = f.check(
            "tls_skip_verify",
            "Skip upstream certificate verification",
            "Only for upstreams you trust on a private network."
        ),
        sni = f.text(
            "tls_server_name",
            "Server name",
            "The name to verify the upstream's certificate against.",
            "internal.example.com"
        ),
        ca = f.area(
            "tls_custom_ca",
            "Custom CA",
            "Base64-encoded PEM of the CA that signed the upstream's certificate.",
            ""
        ),
    );
    let same_site = [
        ("", "Global setting"),
        ("lax", "Lax"),
        ("strict", "Strict"),
        ("none", "None (embedded in other sites)"),
    ];
    let embedding = format!(
        "{fa}{ss}",
        fa = f.text("frame_ancestors", "Frame ancestors", "Origins allowed to show this route in a frame, comma-separated (replaces <code>X-Frame-Options</code>).", "https://portal.example.com"),
        ss = f.select("cookie_same_site", "Session cookie SameSite", &same_site, "<code>None</code> is needed when another site embeds this one."),
    );
    let delete = match existing {
        Some(r) => format!(
            "<form method=post action=\"/routes/{}/delete\" class=card><p>Delete this route? Requests to it get 404 at once; the history keeps it for a revert.</p><button class=danger>Delete route</button></form>",
            esc(&r.id)
        ),
        None => String::new(),
    };
    let summary = f.summary();
    let body = format!(
        "<h1>{heading}</h1>{summary}<form method=post action=\"{action}\" class=card novalidate>\
<div class=tabs role=group aria-label=\"Route settings\">{t1}{t2}{t3}{t4}{t5}\
<section class=panel id=panel-general aria-labelledby=tab-general>{general}</section>\
<section class=panel id=panel-headers>{headers}</section>\
<section class=panel id=panel-timeouts>{timeouts}</section>\
<section class=panel id=panel-tls>{tls}</section>\
<section class=panel id=panel-embedding>{embedding}</section></div>\
<div class=actions><button type=submit>Save and apply</button><a class=\"button secondary\" href=\"/\">Cancel</a></div></form>{delete}",
        t1 = tab("general", "General"),
        t2 = tab("headers", "Headers"),
        t3 = tab("timeouts", "Timeouts &amp; websockets"),
        t4 = tab("tls", "Upstream TLS"),
        t5 = tab("embedding", "Embedding"),
    );
    page(status, title, &body, session, console)
}

fn settings_page(
    console: &Console,
    rt: &Runtime,
    session: &Session,
    values: &HashMap<String, String>,
    errors: &[FieldError],
    status: StatusCode,
) -> Response<Body> {
    let f = Form::new(values, errors);
    let o = &rt.config.options;
    let file = |v: Option<String>| match v {
        Some(v) if !v.is_empty() => format!(
            "Configuration file: <code>{}</code>. Empty: use it.",
            esc(&v)
        ),
        _ => "Not set in the configuration file. Empty: the default.".into(),
    };
    let span = |s: &Option<gatehouse_config::de::Spanned<gatehouse_config::model::GoDuration>>| {
        s.as_ref().map(|d| format!("{:?}", d.value.0))
    };
    let pass = [
        ("", "From the configuration file"),
        ("true", "Yes"),
        ("false", "No"),
    ];
    let issuer = [
        ("", "From the configuration file"),
        ("hostOnly", "Host only (app.example.com)"),
        ("uri", "URI (https://app.example.com/)"),
    ];
    let fields = format!(
        "{claims}{issuer}{pass}{cookie}{timeout}{headers}",
        claims = f.text("jwt_claims_headers", "JWT claim headers", &file(o.jwt_claims_headers.as_ref().map(|c| c.value.0.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>().join(", "))), "email, groups, name"),
        issuer = f.select("jwt_issuer_format", "JWT issuer format", &issuer, &file(o.jwt_issuer_format.as_ref().map(|v| v.value.clone()))),
        pass = f.select("pass_identity_headers", "Pass identity headers (routes that do not say)", &pass, &file(o.pass_identity_headers.map(|b| b.to_string()))),
        cookie = f.text("cookie_expire", "Session lifetime (cookie_expire)", &file(span(&o.cookie_expire)), "14h"),
        timeout = f.text("default_upstream_timeout", "Default upstream timeout", &file(span(&o.default_upstream_timeout)), "30s"),
        headers = f.area("set_response_headers", "Response headers (every route)", "One per line, <code>Name: value</code>. Replaces the defaults (<code>X-Frame-Options</code>...).", ""),
    );
    let body = format!(
        "<h1>Settings</h1><p>Settings that are safe to change while gatehouse runs. A value here overrides the configuration file (and the environment); clear it to go back to the file.</p>{summary}\
<form method=post action=\"/settings\" class=card novalidate>{fields}\
<div class=actions><button type=submit>Save and apply</button></div></form>",
        summary = f.summary(),
    );
    page(status, "Settings", &body, session, console)
}

async fn history_page(console: &Console, proxy: &Proxy, session: &Session) -> Response<Body> {
    let changes = match console.history(proxy, 200).await {
        Ok(c) => c,
        Err(e) => return error_page(console, session, e),
    };
    let rows: String = changes
        .iter()
        .map(|c| {
            format!(
                "<tr><td class=num><a href=\"/history/{v}\">{v}</a></td><td>{at}</td><td>{who}</td><td>{action}</td><td>{summary}</td></tr>",
                v = c.version,
                at = esc(&when(c.at)),
                who = esc(&c.who),
                action = esc(&c.action),
                summary = esc(&c.summary),
            )
        })
        .collect();
    let body = if changes.is_empty() {
        "<h1>History</h1><div class=card><p>No changes yet.</p></div>".to_string()
    } else {
        format!(
            "<h1>History</h1><div class=card><table><thead><tr><th scope=col class=num>Version</th><th scope=col>When (UTC)</th><th scope=col>Who</th><th scope=col>Action</th><th scope=col>Change</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    };
    page(StatusCode::OK, "History", &body, session, console)
}

async fn change_page(
    console: &Console,
    proxy: &Proxy,
    session: &Session,
    version: u64,
) -> Response<Body> {
    let c = match console.change_record(proxy, version).await {
        Ok(c) => c,
        Err(e) => return error_page(console, session, e),
    };
    let yaml = |v: &Json| match v {
        Json::Null => String::new(),
        v => gatehouse_config::yaml::emit(&gatehouse_config::overlay::json_to_node(
            v,
            &gatehouse_config::overlay::route_mark("", ""),
        )),
    };
    let (before, after) = (yaml(&c.before), yaml(&c.after));
    let mut diff = String::new();
    for line in super::diff::lines(&before, &after) {
        match line {
            super::diff::Line::Same(l) => {
                let _ = writeln!(diff, "  {}", esc(l));
            }
            super::diff::Line::Removed(l) => {
                let _ = write!(diff, "<span class=del>- {}</span>", esc(l));
            }
            super::diff::Line::Added(l) => {
                let _ = write!(diff, "<span class=add>+ {}</span>", esc(l));
            }
        }
    }
    let body = format!(
        "<h1>Change {v}</h1><div class=card><p><strong>{summary}</strong></p><p>{who} · {at} UTC · <code>{target}</code></p>\
<pre class=diff aria-label=\"Before and after\">{diff}</pre>\
<form method=post action=\"/history/{v}/revert\"><p class=hint>Revert puts back what this change replaced, as a new change (validated like any other).</p><button>Revert this change</button></form></div>",
        v = c.version,
        summary = esc(&c.summary),
        who = esc(&c.who),
        at = esc(&when(c.at)),
        target = esc(&c.target),
    );
    page(StatusCode::OK, "History", &body, session, console)
}

fn import_page(
    console: &Console,
    session: &Session,
    text: &str,
    errors: &[FieldError],
    status: StatusCode,
) -> Response<Body> {
    let err = if errors.is_empty() {
        String::new()
    } else {
        format!(
            "<div class=problem role=alert id=err-config><strong>Not imported.</strong> Nothing was changed.<ul>{}</ul></div>",
            errors
                .iter()
                .map(|e| if e.field.is_empty() {
                    format!("<li>{}</li>", esc(&e.message))
                } else {
                    format!(
                        "<li><code>{}</code>: {}</li>",
                        esc(&e.field),
                        esc(&e.message)
                    )
                })
                .collect::<String>()
        )
    };
    let invalid = if errors.is_empty() {
        ""
    } else {
        " aria-invalid=true aria-describedby=err-config"
    };
    let body = format!(
        "<h1>Import</h1>{err}<form method=post action=\"/import\" class=card novalidate><div class=field><label for=f-config>Pomerium <code>config.yaml</code></label>\
<textarea id=f-config name=config rows=16{invalid}>{t}</textarea><p class=hint>Its routes replace the console's routes (routes the configuration file already has, by <code>from</code> and path, are skipped); its live settings replace the console's settings. Everything else in it is ignored. One change in the history: revert undoes it.</p></div>\
<div class=actions><button>Import and apply</button></div></form>",
        t = esc(text),
    );
    page(status, "Import", &body, session, console)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC).
fn when(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_no_field_showed_are_in_the_summary() {
        let values = HashMap::new();
        let errors = [
            FieldError {
                field: "to".into(),
                message: "bad to".into(),
            },
            FieldError {
                field: "redirect".into(),
                message: "bad redirect".into(),
            },
            FieldError {
                field: String::new(),
                message: "the file".into(),
            },
        ];
        let f = Form::new(&values, &errors);
        let to = f.area("to", "To", "", "");
        assert!(
            to.contains("aria-invalid=true") && to.contains("bad to"),
            "{to}"
        );
        let summary = f.summary();
        assert!(summary.contains("3 problem(s)"), "{summary}");
        assert!(
            summary.contains("<code>redirect</code>: bad redirect"),
            "{summary}"
        );
        assert!(summary.contains("<li>the file</li>"), "{summary}");
        assert!(!summary.contains("bad to"), "shown by its field: {summary}");
    }

    #[test]
    fn dates() {
        assert_eq!(when(0), "1970-01-01 00:00:00");
        assert_eq!(when(1_795_000_000), "2026-11-18 11:06:40");
    }
}

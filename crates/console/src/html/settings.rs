//! The settings form: the live settings the console may override.

use std::collections::HashMap;

use gatehouse_identity::Session;
use gatehouse_proxy::Proxy;
use gatehouse_proxy::answers::html_escape as esc;
use gatehouse_proxy::body::{Body, RequestBody};
use gatehouse_proxy::runtime::Runtime;
use http::{Request, Response, StatusCode};
use serde_json::{Map, Value as Json};

use crate::Console;
use crate::common::who;
use crate::state::{ChangeError, Edit, FieldError};

use super::controls::Form;
use super::frame::{done, error_page, field, page, read_form};

pub(super) async fn save_settings(
    console: &Console,
    proxy: &Proxy,
    rt: &Runtime,
    req: Request<RequestBody>,
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

pub(super) fn settings_values(settings: &Map<String, Json>) -> HashMap<String, String> {
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

pub(super) fn settings_page(
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

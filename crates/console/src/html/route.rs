//! A route's form: a new route or a console route, saved (and applied)
//! or shown again with its errors on their fields.

use std::collections::HashMap;

use gatehouse_identity::Session;
use gatehouse_proxy::Proxy;
use gatehouse_proxy::answers::html_escape as esc;
use gatehouse_proxy::body::{Body, RequestBody};
use gatehouse_proxy::runtime::Runtime;
use http::{Request, Response, StatusCode};

use crate::common::who;
use crate::state::{ChangeError, ConsoleRoute, Edit, FieldError, new_id};
use crate::{Console, form};

use super::controls::Form;
use super::frame::{done, error_page, field, not_found, page, read_form};

pub(super) async fn save_route(
    console: &Console,
    proxy: &Proxy,
    rt: &Runtime,
    req: Request<RequestBody>,
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

pub(super) fn route_page(
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
    let (policy_attrs, policy_err) = f.error("policy", "Policy");
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
            format!("Edit route {}", esc(&crate::state::route_label(r))),
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
<fieldset class=policy><legend>Policy</legend><div class=presets id=f-policy role=radiogroup aria-label=\"Who may use this route\"{policy_attrs}>{presets}</div>{policy_err}\
<div class=grid><div class=\"for for-domain\">{dom}</div><div class=\"for for-users\">{users}</div><div class=\"for for-groups\">{groups}</div></div>\
<div class=\"for for-ppl\">{ppl}</div></fieldset>",
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

//! The route list: the file's routes and the console's, with their
//! policy, source and counters, and a search.

use std::collections::HashMap;
use std::fmt::Write as _;

use gatehouse_identity::Session;
use gatehouse_proxy::answers::html_escape as esc;
use gatehouse_proxy::body::Body;
use gatehouse_proxy::runtime::Runtime;
use http::{Response, StatusCode};

use crate::Console;
use crate::common::{listed, not_in_force};

use super::frame::page;

pub(super) fn routes_page(
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
        // An unnamed route is listed by the name the routes portal gives
        // it (from its host), marked as made up, rather than its From again.
        let name = match r.name.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => esc(n),
            None => format!(
                "<span class=derived>{}</span><span class=visually-hidden> (no name set)</span>",
                esc(&gatehouse_proxy::portal::name(r))
            ),
        };
        let haystack = format!(
            "{label} {} {from} {to} {policy}",
            gatehouse_proxy::portal::name(r)
        )
        .to_lowercase();
        if !q.is_empty() && !haystack.contains(&q) {
            continue;
        }
        shown += 1;
        let (name_cell, source) = match r.console_id() {
            Some(id) => (
                format!("<a href=\"/routes/{}\">{name}</a>", esc(id)),
                "<span class=tag>console</span>".to_string(),
            ),
            None => (
                name,
                format!(
                    "<span class=\"tag file\" title=\"Defined in the configuration file; edit it there\">file · read-only</span> <small class=muted>line&nbsp;{}</small>",
                    r.mark.line
                ),
            ),
        };
        let recent = l
            .last_minute
            .map(|n| n.to_string())
            .unwrap_or_else(|| "–".into());
        let _ = write!(
            rows,
            "<tr><td data-label=Name><span>{name_cell}</span></td><td data-label=From><span><code>{}</code></span></td><td data-label=To><span><code>{}</code></span></td>\
<td data-label=Policy><span>{}</span></td><td data-label=Source><span>{source}</span></td>\
<td class=num data-label=\"Requests, last minute\"><span>{recent}</span></td><td class=num data-label=\"Allowed, since start\"><span>{}</span></td>\
<td class=num data-label=\"Denied, since start\"><span>{}</span></td></tr>",
            esc(&from),
            esc(&to),
            esc(&policy),
            l.counts.allowed,
            l.counts.denied,
        );
    }
    for r in not_in_force(&state, rt) {
        let label = match r.str("name") {
            "" => r.str("from").to_string(),
            n => n.to_string(),
        };
        shown += 1;
        let _ = write!(
            rows,
            "<tr><td data-label=Name><span><a href=\"/routes/{id}\">{label}</a></span></td><td data-label=From><span><code>{from}</code></span></td><td data-label=To></td><td data-label=Policy></td>\
<td data-label=Source><span><span class=\"tag file\">console · not in force</span></span></td><td class=num data-label=\"Requests, last minute\"><span>–</span></td>\
<td class=num data-label=\"Allowed, since start\"><span>–</span></td><td class=num data-label=\"Denied, since start\"><span>–</span></td></tr>",
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
        "{notice}<h1>Routes</h1><div class=bar><form method=get action=\"/\" role=search><label for=q class=visually-hidden>Search routes</label>\
<input type=search id=q name=q value=\"{qv}\" placeholder=\"Search by name, host, upstream or policy\"><button class=secondary>Search</button></form>\
<a class=button href=\"/routes/new\">New route</a></div>\
<div class=card><div class=scroll role=region aria-labelledby=routes-caption tabindex=0><table class=cards><caption id=routes-caption>{shown} of {total} routes ({console_routes} from the console). \
Requests: how many in the last minute. Allowed and denied: since gatehouse started. Names in italics are made from the host (the route has no name).</caption>\
<thead><tr><th scope=col>Name</th><th scope=col>From</th><th scope=col>To</th><th scope=col>Policy</th><th scope=col>Source</th>\
<th scope=col class=num>Requests<small>last minute</small></th><th scope=col class=num>Allowed<small>since start</small></th><th scope=col class=num>Denied<small>since start</small></th></tr></thead>\
<tbody>{rows}</tbody></table></div></div>",
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

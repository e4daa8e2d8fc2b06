//! The frame every console page shares: header and navigation, the
//! banner when the console's changes are not in force, the footer, and
//! the helpers every page uses; the shell and stylesheet are
//! `gatehouse_proxy::answers`'.

use gatehouse_identity::Session;
use gatehouse_proxy::answers::html_escape as esc;
use gatehouse_proxy::answers::{Layout, shell};
use gatehouse_proxy::body::{Body, RequestBody};
use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::Console;
use crate::common::{read_body, respond, who};
use crate::state::{Change, ChangeError};

/// The common frame of every console page.
pub(crate) fn page(
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
    let content = format!(
        "<header><strong>gatehouse console</strong><nav aria-label=Console>\
<a href=\"/\"{r}>Routes</a><a href=\"/settings\"{s}>Settings</a><a href=\"/history\"{h}>History</a><a href=\"/import\"{i}>Import</a><a href=\"/export\">Export</a><a href=\"/api/v1/openapi.json\">API</a></nav>\
<span class=who>{who} · <a href=\"/.pomerium/sign_out\">Sign out</a></span></header>\
<main>{problem}{body}<footer>Version {version} · stored in {storage}</footer></main>",
        r = current("Routes"),
        s = current("Settings"),
        h = current("History"),
        i = current("Import"),
        who = esc(&who(session)),
        storage = esc(&storage),
    );
    let html = shell(
        Layout::App,
        &format!("{title} · gatehouse console"),
        &content,
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

/// A cookie-authenticated write from another origin (see `csrf`).
pub(crate) fn cross_origin(console: &Console, session: &Session) -> Response<Body> {
    page(
        StatusCode::FORBIDDEN,
        "Refused",
        "<h1>Refused</h1><p>This change did not come from the console's own pages (its <code>Origin</code> is another site, or it has none). Nothing was changed.</p>",
        session,
        console,
    )
}

pub(super) async fn read_form(
    req: Request<RequestBody>,
) -> Result<Vec<(String, String)>, ChangeError> {
    let bytes = read_body(req).await?;
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

pub(super) fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// After a change: back to the list with a notice, or the error.
pub(super) fn done(
    console: &Console,
    session: &Session,
    result: Result<(u64, Change), ChangeError>,
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

pub(super) fn error_page(console: &Console, session: &Session, e: ChangeError) -> Response<Body> {
    let body = format!(
        "<h1>Not changed</h1><p class=error role=alert>{}</p><p>Nothing was changed. <a href=\"/\">Back to the routes</a></p>",
        esc(&e.message())
    );
    page(e.status(), "Not changed", &body, session, console)
}

pub(super) fn not_found(console: &Console, session: &Session) -> Response<Body> {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "<h1>Not found</h1><p>There is nothing here. <a href=\"/\">Back to the routes</a></p>",
        session,
        console,
    )
}

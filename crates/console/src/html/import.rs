//! The import form: a Pomerium `config.yaml` pasted in.

use gatehouse_identity::Session;
use gatehouse_proxy::answers::html_escape as esc;
use gatehouse_proxy::body::Body;
use http::{Response, StatusCode};

use crate::Console;
use crate::state::FieldError;

use super::controls::error_summary;
use super::frame::page;

pub(super) fn import_page(
    console: &Console,
    session: &Session,
    text: &str,
    errors: &[FieldError],
    status: StatusCode,
) -> Response<Body> {
    let items: String = errors
        .iter()
        .map(|e| {
            let field = if e.field.is_empty() {
                String::new()
            } else {
                format!("<code>{}</code>: ", esc(&e.field))
            };
            format!(
                "<li><a href=\"#f-config\">{field}{}</a></li>",
                super::controls::message(&e.message)
            )
        })
        .collect();
    let err = error_summary(
        "Not imported",
        "Nothing was changed; fix the configuration and import again.",
        &items,
    );
    let invalid = if errors.is_empty() {
        ""
    } else {
        " aria-invalid=true aria-describedby=error-summary"
    };
    let body = format!(
        "<h1>Import</h1>{err}<form method=post action=\"/import\" class=card novalidate><div class=field><label for=f-config>Pomerium <code>config.yaml</code></label>\
<textarea id=f-config name=config rows=16{invalid}>{t}</textarea><p class=hint>Its routes replace the console's routes (routes the configuration file already has, by <code>from</code> and path, are skipped); its live settings replace the console's settings. Everything else in it is ignored. One change in the history: revert undoes it.</p></div>\
<div class=actions><button>Import and apply</button></div></form>",
        t = esc(text),
    );
    page(status, "Import", &body, session, console)
}

//! The import form: a Pomerium `config.yaml` pasted in.

use gatehouse_identity::Session;
use gatehouse_proxy::answers::html_escape as esc;
use gatehouse_proxy::body::Body;
use http::{Response, StatusCode};

use crate::Console;
use crate::state::FieldError;

use super::frame::page;

pub(super) fn import_page(
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

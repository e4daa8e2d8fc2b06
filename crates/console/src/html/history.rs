//! The history: the recorded changes, newest first, and one change as a
//! diff of before and after, with its revert.

use std::fmt::Write as _;

use gatehouse_identity::Session;
use gatehouse_proxy::Proxy;
use gatehouse_proxy::answers::html_escape as esc;
use gatehouse_proxy::body::Body;
use http::{Response, StatusCode};
use serde_json::Value as Json;

use crate::{Console, diff};

use super::frame::{error_page, page};

pub(super) async fn history_page(
    console: &Console,
    proxy: &Proxy,
    session: &Session,
) -> Response<Body> {
    let changes = match console.history(proxy, 200).await {
        Ok(c) => c,
        Err(e) => return error_page(console, session, e),
    };
    let rows: String = changes
        .iter()
        .map(|c| {
            format!(
                "<tr><td class=num data-label=Version><span><a href=\"/history/{v}\">{v}</a></span></td><td data-label=\"When (UTC)\"><span>{at}</span></td>\
<td data-label=Who><span>{who}</span></td><td data-label=Action><span>{action}</span></td><td data-label=Change><span>{summary}</span></td></tr>",
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
            "<h1>History</h1><div class=card><div class=scroll role=region aria-label=Changes tabindex=0><table class=cards><thead><tr><th scope=col class=num>Version</th><th scope=col>When (UTC)</th><th scope=col>Who</th><th scope=col>Action</th><th scope=col>Change</th></tr></thead><tbody>{rows}</tbody></table></div></div>"
        )
    };
    page(StatusCode::OK, "History", &body, session, console)
}

pub(super) async fn change_page(
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
    for line in diff::lines(&before, &after) {
        match line {
            diff::Line::Same(l) => {
                let _ = writeln!(diff, "  {}", esc(l));
            }
            diff::Line::Removed(l) => {
                let _ = write!(diff, "<span class=del>- {}</span>", esc(l));
            }
            diff::Line::Added(l) => {
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
    fn dates() {
        assert_eq!(when(0), "1970-01-01 00:00:00");
        assert_eq!(when(1_795_000_000), "2026-11-18 11:06:40");
    }
}

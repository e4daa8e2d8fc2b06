//! The frame every console page shares: header and navigation, the
//! banner when the console's changes are not in force, the footer, and
//! the one inline stylesheet.

use gatehouse_identity::Session;
use gatehouse_proxy::body::Body;
use gatehouse_proxy::pages::html_escape as esc;
use http::{HeaderValue, Response, StatusCode, header};

use crate::Console;
use crate::serve::{respond, who};

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
pub(super) fn page(
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

//! The authenticate service's pages (login form, who am I, sign out), in
//! the one shell of [`crate::answers`].

use gatehouse_identity::codec;
use gatehouse_identity::session::{Session, unix_now};

use crate::answers::{self, Layout, html_escape};

use super::forms::{enc, form_token};
use super::state::{Auth, FORM_SECS, Host};

pub(super) fn user_json(s: &Session) -> serde_json::Value {
    let id = &s.identity;
    let mut v = serde_json::json!({
        "sub": id.sub,
        "user": id.sub,
        "email": id.email,
        "groups": id.groups,
        "name": id.name,
        "sid": s.id.to_hex(),
        "idp": id.idp,
        "expires_at": s.expires_at,
    });
    if let serde_json::Value::Object(map) = &mut v {
        for (k, val) in &id.claims {
            map.entry(k.clone()).or_insert(val.clone());
        }
    }
    v
}

/// A card page in the one shell, titled "… · gatehouse".
pub(super) fn page_shell(title: &str, content: &str) -> String {
    answers::shell(Layout::Card, &format!("{title} · gatehouse"), content)
}

pub(super) fn login_form(
    auth: &Auth,
    target: &str,
    binding: Option<&str>,
    error: Option<&str>,
    username: &str,
) -> String {
    let token =
        codec::seal_login_form(&auth.cookie_sealer, target, binding, unix_now() + FORM_SECS);
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", html_escape(e)))
        .unwrap_or_default();
    page_shell(
        "Sign in",
        &format!(
            "<h1>Sign in</h1>{error}<form method=\"post\" action=\"/.pomerium/sign_in\">\
<input type=\"hidden\" name=\"token\" value=\"{token}\">\
<label for=\"username\">Username or email</label>\
<input id=\"username\" name=\"username\" value=\"{username}\" autocomplete=\"username\" {focus_user} required>\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" {focus_password} required>\
<button type=\"submit\">Sign in</button></form>",
            username = html_escape(username),
            focus_user = if username.is_empty() { "autofocus" } else { "" },
            focus_password = if username.is_empty() { "" } else { "autofocus" },
        ),
    )
}

pub(super) fn user_page(auth: &Auth, s: Option<&Session>, host: &Host<'_>) -> String {
    let Some(s) = s else {
        let link = format!(
            "/.pomerium/sign_in?pomerium_redirect_uri={}",
            enc(&format!("{}/.pomerium/", host.origin))
        );
        let sign_in = if auth.can_sign_in() && auth.authenticate.is_none() {
            format!(
                "<p><a class=\"button\" href=\"{}\">Sign in</a></p>",
                html_escape(&link)
            )
        } else {
            String::new()
        };
        return page_shell(
            "Not signed in",
            &format!("<h1>You are not signed in</h1>{sign_in}"),
        );
    };
    let id = &s.identity;
    let groups = if id.groups.is_empty() {
        "none".to_string()
    } else {
        id.groups.join(", ")
    };
    let claims = serde_json::to_string_pretty(&user_json(s)).unwrap_or_default();
    let remaining = s.expires_at.saturating_sub(unix_now());
    page_shell(
        "Who am I",
        &format!(
            "<h1>{name}</h1><dl><dt>User</dt><dd>{sub}</dd><dt>Email</dt><dd>{email}</dd><dt>Groups</dt><dd>{groups}</dd>\
<dt>Signed in with</dt><dd>{idp}</dd><dt>Session ends in</dt><dd>{h} h {m} min</dd></dl>\
<details><summary>All claims</summary><pre>{claims}</pre></details>\
<form method=\"post\" action=\"/.pomerium/sign_out\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
<button type=\"submit\">Sign out</button></form>",
            name = html_escape(&id.name),
            sub = html_escape(&id.sub),
            email = html_escape(&id.email),
            groups = html_escape(&groups),
            idp = html_escape(&id.idp),
            h = remaining / 3600,
            m = remaining % 3600 / 60,
            claims = html_escape(&claims),
            token = form_token(auth, "sign-out", &s.id.to_hex()),
        ),
    )
}

pub(super) fn sign_out_page(auth: &Auth, s: Option<&Session>) -> String {
    match s {
        None => page_shell("Sign out", "<h1>You are not signed in</h1>"),
        Some(s) => {
            let token = form_token(auth, "sign-out", &s.id.to_hex());
            page_shell(
                "Sign out",
                &format!(
                    "<h1>Sign out?</h1><p>You are signed in as {}.</p><form method=\"post\" action=\"/.pomerium/sign_out\">\
<input type=\"hidden\" name=\"token\" value=\"{token}\"><button type=\"submit\">Sign out</button></form>\
<p class=\"id\">Or use this <a href=\"/.pomerium/sign_out?token={token}\" rel=\"nofollow\">sign-out link</a> (valid 30 minutes, for this session only).</p>",
                    html_escape(&s.identity.email),
                ),
            )
        }
    }
}

//! Query and form helpers: parameters, sealed form tokens, the
//! same-origin check of form posts, reading a bounded form body.

use gatehouse_identity::codec;
use gatehouse_identity::session::unix_now;
use http::Request;
use http::header::HeaderMap;

use crate::body::{self, RequestBody};

use super::state::{Auth, FORM_SECS, MAX_FORM};

pub(super) fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

pub(super) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A form token of `purpose`, good for [`FORM_SECS`].
pub(super) fn form_token(auth: &Auth, purpose: &str, payload: &str) -> String {
    codec::seal_form_token(
        &auth.cookie_sealer,
        purpose,
        payload,
        unix_now() + FORM_SECS,
    )
}

pub(super) fn open_form_token(auth: &Auth, purpose: &str, token: &str) -> Option<String> {
    codec::open_form_token(&auth.cookie_sealer, purpose, token, unix_now())
}

/// A form post from another site is refused: the one CSRF rule
/// ([`crate::csrf::same_origin`]), against this host's origin.
pub(super) fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    url::Url::parse(origin)
        .ok()
        .is_some_and(|u| crate::csrf::same_origin(headers, &u.origin()))
}

/// One field of a form read by [`read_form`]; empty when absent.
pub(super) fn form_field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

pub(super) async fn read_form(req: Request<RequestBody>) -> Option<Vec<(String, String)>> {
    let bytes = body::collect_limited(req.into_body(), MAX_FORM).await?;
    Some(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

//! HTTP headers as the options give them: names, values, response header
//! lists (`set_response_headers`) and request header templates.

use http::{HeaderName, HeaderValue};

use super::Compiler;
use super::parse::parse_template;
use crate::compiled::HeaderTemplate;
use crate::de::Spanned;
use crate::model::StringMap;
use crate::yaml::Mark;

impl Compiler<'_> {
    pub(super) fn header_name(&mut self, name: &str, mark: &Mark) -> Option<HeaderName> {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.error(mark, format!("`{name}` is not a valid HTTP header name"));
                None
            }
        }
    }

    pub(super) fn header_value(&mut self, value: &str, mark: &Mark) -> Option<HeaderValue> {
        match HeaderValue::from_str(value) {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(mark, format!("`{value}` is not a valid HTTP header value"));
                None
            }
        }
    }

    /// `set_response_headers` to a header list; `None` for `disable: true`.
    pub(super) fn response_headers(
        &mut self,
        map: &Spanned<StringMap>,
    ) -> Option<Vec<(HeaderName, HeaderValue)>> {
        if map
            .value
            .0
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("disable") && v == "true")
        {
            return None;
        }
        let mut out = Vec::new();
        for (k, v) in &map.value.0 {
            if let (Some(n), Some(v)) = (
                self.header_name(k, &map.mark),
                self.header_value(v, &map.mark),
            ) {
                out.push((n, v));
            }
        }
        Some(out)
    }

    pub(super) fn template(&mut self, value: &str, mark: &Mark) -> Option<HeaderTemplate> {
        match parse_template(value) {
            Ok(parts) => Some(HeaderTemplate { parts }),
            Err(e) => {
                self.error(mark, e);
                None
            }
        }
    }
}

//! HTTP headers as the options give them: names, values, response header
//! lists (`set_response_headers`) and request header templates.

use http::{HeaderName, HeaderValue};

use super::Compiler;
use super::parse::parse_template;
use crate::compiled::{GroupsFilter, HeaderTemplate, RewriteHeader};
use crate::de::Spanned;
use crate::model::StringMap;
use crate::yaml::{Mark, Node, Value};

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

    /// `jwt_groups_filter`: a list (or comma-separated string) of groups,
    /// or `{groups: [...], infer_from_ppl: true}`. `None` when empty.
    pub(super) fn groups_filter(&mut self, node: &Node) -> Option<GroupsFilter> {
        let list = |c: &mut Self, n: &Node| -> Vec<String> {
            match &n.value {
                Value::Seq(items) => items
                    .iter()
                    .filter_map(|i| match i.as_str() {
                        Some(g) => Some(g.trim().to_string()),
                        None => {
                            c.error(&i.mark, "`jwt_groups_filter`: each group must be a string");
                            None
                        }
                    })
                    .filter(|g| !g.is_empty())
                    .collect(),
                _ => match n.as_str() {
                    Some(text) => text
                        .split(',')
                        .map(|g| g.trim().to_string())
                        .filter(|g| !g.is_empty())
                        .collect(),
                    None => {
                        c.error(
                            &n.mark,
                            "`jwt_groups_filter`: groups must be a list of group names (or one comma-separated string)",
                        );
                        Vec::new()
                    }
                },
            }
        };
        let filter = match &node.value {
            Value::Map(entries) => {
                let mut f = GroupsFilter::default();
                for (k, v) in entries {
                    match k.as_str().unwrap_or_default() {
                        "groups" => f.groups = list(self, v),
                        "infer_from_ppl" => match v.as_str() {
                            Some("true") => f.infer_from_ppl = true,
                            Some("false") => {}
                            _ => self.error(&v.mark, "`infer_from_ppl` must be true or false"),
                        },
                        other => self.error(
                            &k.mark,
                            format!("unknown `jwt_groups_filter` option `{other}` (groups, infer_from_ppl)"),
                        ),
                    }
                }
                f
            }
            _ if node.is_null() => return None,
            _ => GroupsFilter {
                groups: list(self, node),
                infer_from_ppl: false,
            },
        };
        (!filter.groups.is_empty() || filter.infer_from_ppl).then_some(filter)
    }

    /// `rewrite_response_headers`: a list of `{header, prefix, value}`.
    pub(super) fn rewrite_headers(&mut self, node: &Node) -> Vec<RewriteHeader> {
        let mut out = Vec::new();
        let items = match &node.value {
            Value::Seq(items) => items,
            _ if node.is_null() => return out,
            _ => {
                self.error(
                    &node.mark,
                    "`rewrite_response_headers` must be a list of `{header, prefix, value}`",
                );
                return out;
            }
        };
        for item in items {
            let Value::Map(entries) = &item.value else {
                self.error(
                    &item.mark,
                    "each `rewrite_response_headers` entry must be a mapping with `header`, `prefix` and `value`",
                );
                continue;
            };
            let (mut name, mut prefix, mut value) = (None, String::new(), String::new());
            for (k, v) in entries {
                let Some(text) = v.as_str() else {
                    self.error(&v.mark, "must be a string");
                    continue;
                };
                match k.as_str().unwrap_or_default() {
                    "header" => name = self.header_name(text, &v.mark),
                    "prefix" => prefix = text.to_string(),
                    "value" => {
                        // What it writes must itself be a valid value.
                        if self.header_value(text, &v.mark).is_some() {
                            value = text.to_string();
                        }
                    }
                    other => self.error(
                        &k.mark,
                        format!("unknown `rewrite_response_headers` option `{other}` (header, prefix, value)"),
                    ),
                }
            }
            match name {
                Some(name) => out.push(RewriteHeader {
                    name,
                    prefix,
                    value,
                }),
                None if !entries.iter().any(|(k, _)| k.as_str() == Some("header")) => {
                    self.error(
                        &item.mark,
                        "`rewrite_response_headers` entry needs `header`",
                    );
                }
                None => {}
            }
        }
        out
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

//! What a route does with a request: forward it to its upstreams (with
//! which Host header), or answer with a redirect or a fixed response.

use http::StatusCode;

use super::Compiler;
use super::parse::{go_substitution, parse_upstream};
use crate::compiled::{HostHeader, Redirect, RouteAction, UpstreamTarget};
use crate::de::Spanned;
use crate::model::RouteOptions;
use crate::yaml::{Mark, Node, Value};

impl Compiler<'_> {
    pub(super) fn upstreams(
        &mut self,
        to: &Spanned<crate::model::StringList>,
    ) -> Option<Vec<UpstreamTarget>> {
        if to.value.0.is_empty() {
            self.error(&to.mark, "`to` is empty");
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for entry in &to.value.0 {
            match parse_upstream(entry) {
                Ok(t) => out.push(t),
                Err(e) => {
                    self.error(&to.mark, e);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    pub(super) fn redirect(&mut self, node: &Node) -> Option<Redirect> {
        let mut r = Redirect {
            response_code: 301,
            ..Redirect::default()
        };
        let Value::Map(entries) = &node.value else {
            self.error(&node.mark, "`redirect` must be a mapping");
            return None;
        };
        for (k, v) in entries {
            let text = v.as_str().unwrap_or_default().to_string();
            match k.as_str().unwrap_or_default() {
                "https_redirect" => r.https_redirect = text == "true",
                "scheme_redirect" => r.scheme_redirect = Some(text),
                "host_redirect" => r.host_redirect = Some(text),
                "port_redirect" => match text.parse() {
                    Ok(p) => r.port_redirect = Some(p),
                    Err(_) => self.error(&v.mark, "port_redirect must be a port number"),
                },
                "path_redirect" => r.path_redirect = Some(text),
                "prefix_rewrite" => r.prefix_rewrite = Some(text),
                "strip_query" => r.strip_query = text == "true",
                "response_code" => match text.parse::<u16>() {
                    Ok(c @ (301 | 302 | 303 | 307 | 308)) => r.response_code = c,
                    _ => self.error(&v.mark, "response_code must be 301, 302, 303, 307 or 308"),
                },
                other => self.warn(&k.mark, format!("unknown redirect option `{other}`")),
            }
        }
        Some(r)
    }

    pub(super) fn response(&mut self, node: &Node) -> Option<RouteAction> {
        let status = node.get("status").and_then(Node::as_str).unwrap_or("200");
        let body = node
            .get("body")
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_string();
        match status
            .parse::<u16>()
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
        {
            Some(status) => Some(RouteAction::Respond { status, body }),
            None => {
                self.error(&node.mark, format!("invalid response status `{status}`"));
                None
            }
        }
    }

    pub(super) fn host_header(&mut self, o: &RouteOptions) -> HostHeader {
        let mut chosen: Vec<(&str, &Mark)> = Vec::new();
        if let Some(true) = o.preserve_host_header {
            chosen.push(("preserve_host_header", &self.file_mark));
        }
        if let Some(h) = &o.host_rewrite {
            chosen.push(("host_rewrite", &h.mark));
        }
        if let Some(h) = &o.host_rewrite_header {
            chosen.push(("host_rewrite_header", &h.mark));
        }
        if let Some(h) = &o.host_path_regex_rewrite_pattern {
            chosen.push(("host_path_regex_rewrite_pattern", &h.mark));
        }
        if chosen.len() > 1 {
            let names: Vec<&str> = chosen.iter().map(|c| c.0).collect();
            let mark = chosen
                .iter()
                .map(|c| c.1)
                .find(|m| m.line > 0)
                .unwrap_or(chosen[0].1)
                .clone();
            self.error(
                &mark,
                format!(
                    "conflicting host rewrites: only one of {} may be set",
                    names.join(", ")
                ),
            );
            return HostHeader::Upstream;
        }
        if o.preserve_host_header == Some(true) {
            return HostHeader::Preserve;
        }
        if let Some(h) = &o.host_rewrite {
            return match self.header_value(&h.value, &h.mark) {
                Some(v) => HostHeader::Literal(v),
                None => HostHeader::Upstream,
            };
        }
        if let Some(h) = &o.host_rewrite_header {
            return match self.header_name(&h.value, &h.mark) {
                Some(n) => HostHeader::FromHeader(n),
                None => HostHeader::Upstream,
            };
        }
        if let Some(p) = &o.host_path_regex_rewrite_pattern {
            let Some(sub) = &o.host_path_regex_rewrite_substitution else {
                self.error(
                    &p.mark,
                    "host_path_regex_rewrite_pattern needs host_path_regex_rewrite_substitution",
                );
                return HostHeader::Upstream;
            };
            if let Some(pattern) = self.regex(p, "host_path_regex_rewrite_pattern") {
                return HostHeader::PathRegex {
                    pattern,
                    substitution: go_substitution(&sub.value),
                };
            }
        }
        HostHeader::Upstream
    }
}

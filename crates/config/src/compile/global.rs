//! Server-wide settings: listen addresses, the request rules (Envoy's
//! connection manager options), access log fields, IP address lists, and
//! the keys gatehouse refuses.

use super::Compiler;
use super::parse::pomerium_enum;
use crate::compiled::{AccessField, EscapedSlashes, RequestRules, UnderscoreHeaders};
use crate::de::Spanned;
use crate::model::Options;
use crate::yaml::Mark;

impl Compiler<'_> {
    /// Envoy's connection manager options, read as Pomerium reads enum
    /// values (any case, with or without the enum's common prefix).
    pub(super) fn request_rules(&mut self, opts: &Options) -> RequestRules {
        let mut rules = RequestRules {
            merge_slashes: opts.merge_slashes.unwrap_or(true),
            xff_num_trusted_hops: opts.xff_num_trusted_hops.as_ref().map_or(0, |v| v.value),
            skip_xff_append: opts.skip_xff_append.unwrap_or(false),
            ..RequestRules::default()
        };
        if let Some(v) = &opts.normalize_path
            && !v.value
        {
            self.error(
                    &v.mark,
                    "normalize_path: false is not supported: gatehouse always resolves `.` and `..` segments, or a policy on a path could be walked around",
                );
        }
        if let Some(v) = &opts.xff_num_trusted_hops
            && v.value > 16
        {
            self.error(&v.mark, "xff_num_trusted_hops must be at most 16");
        }
        if let Some(v) = &opts.path_with_escaped_slashes_action {
            const NAMES: &[(&str, Option<EscapedSlashes>)] = &[
                ("unknown", None),
                ("implementation_specific_default", None),
                ("keep_unchanged", Some(EscapedSlashes::KeepUnchanged)),
                ("reject_request", Some(EscapedSlashes::Reject)),
                (
                    "unescape_and_redirect",
                    Some(EscapedSlashes::UnescapeAndRedirect),
                ),
                (
                    "unescape_and_forward",
                    Some(EscapedSlashes::UnescapeAndForward),
                ),
            ];
            match pomerium_enum(&v.value, "path_with_escaped_slashes_action_", NAMES) {
                Some(choice) => rules.escaped_slashes = choice.unwrap_or(EscapedSlashes::Reject),
                None => self.error(
                    &v.mark,
                    format!(
                        "path_with_escaped_slashes_action `{}` must be keep_unchanged, reject_request, unescape_and_redirect or unescape_and_forward",
                        v.value
                    ),
                ),
            }
        }
        if let Some(v) = &opts.headers_with_underscores_action {
            const NAMES: &[(&str, Option<UnderscoreHeaders>)] = &[
                ("unknown", None),
                ("allow", Some(UnderscoreHeaders::Allow)),
                ("reject_request", Some(UnderscoreHeaders::Reject)),
                ("drop_header", Some(UnderscoreHeaders::Drop)),
            ];
            match pomerium_enum(&v.value, "headers_with_underscores_action_", NAMES) {
                Some(choice) => rules.underscore_headers = choice.unwrap_or(UnderscoreHeaders::Reject),
                None => self.error(
                    &v.mark,
                    format!(
                        "headers_with_underscores_action `{}` must be allow, reject_request or drop_header",
                        v.value
                    ),
                ),
            }
        }
        rules
    }

    /// `access_log_fields`: Pomerium's names; one it does not know is a
    /// warning (a newer Pomerium field must not stop the proxy).
    pub(super) fn access_log_fields(
        &mut self,
        v: Option<&Spanned<crate::model::StringList>>,
    ) -> Vec<AccessField> {
        let Some(v) = v else {
            return AccessField::defaults();
        };
        let mut fields = Vec::new();
        for name in &v.value.0 {
            match AccessField::parse(name.trim()) {
                Some(f) if !fields.contains(&f) => fields.push(f),
                Some(_) => {}
                None if name.trim() == "cluster-stat-name" => {
                    self.warn(&v.mark, format!("access_log_fields: `{name}` is not logged by gatehouse"));
                }
                None => self.warn(
                    &v.mark,
                    format!("access_log_fields: unknown field `{name}` (authority, duration, forwarded-for, ip, method, path, query, referer, request-id, response-code, response-code-details, size, upstream-cluster, user-agent, client-certificate, upstream, user, email, headers.<Name>)"),
                ),
            }
        }
        fields
    }

    /// `authorize_log_fields` (Pomerium's names; its default set when unset).
    pub(super) fn authorize_log_fields(
        &mut self,
        v: Option<&Spanned<crate::model::StringList>>,
    ) -> Vec<crate::compiled::AuthorizeField> {
        use crate::compiled::AuthorizeField;
        let Some(v) = v else {
            return AuthorizeField::defaults();
        };
        let mut fields = Vec::new();
        for name in &v.value.0 {
            let name = name.trim();
            match AuthorizeField::parse(name) {
                Some(Some(f)) if !fields.contains(&f) => fields.push(f),
                Some(Some(_)) => {}
                Some(None) => self.warn(
                    &v.mark,
                    format!("authorize_log_fields: `{name}` has no value in gatehouse and is left out"),
                ),
                None => self.warn(
                    &v.mark,
                    format!("authorize_log_fields: unknown field `{name}` (request-id, method, path, query, host, ip, session-id, user, email, route-id, removed-groups-count, headers, headers.<Name>)"),
                ),
            }
        }
        fields
    }

    /// A list of IP addresses and CIDR blocks (`10.0.0.0/8`, `::1`).
    pub(super) fn ip_nets(
        &mut self,
        v: Option<&Spanned<crate::model::StringList>>,
    ) -> Vec<ipnet::IpNet> {
        let Some(v) = v else { return Vec::new() };
        let mut nets = Vec::new();
        for item in &v.value.0 {
            let item = item.trim();
            let parsed = item
                .parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(n) => nets.push(n.trunc()),
                Err(_) => self.error(
                    &v.mark,
                    format!("`{item}` is not an IP address or CIDR block (e.g. 10.0.0.0/8, ::1)"),
                ),
            }
        }
        nets
    }

    /// `:443` → `0.0.0.0:443`; `localhost:8443` stays as written.
    pub(super) fn listen_address(&mut self, addr: &str, mark: Option<&Mark>) -> String {
        let full = if addr.starts_with(':') {
            format!("0.0.0.0{addr}")
        } else {
            addr.to_string()
        };
        let port_ok = full
            .rsplit_once(':')
            .map(|(_, p)| p.parse::<u16>().is_ok())
            .unwrap_or(false);
        if !port_ok {
            let mark = mark.cloned().unwrap_or_else(|| self.file_mark.clone());
            self.error(
                &mark,
                format!("invalid listen address `{addr}`: expected `host:port` or `:port`"),
            );
        }
        full
    }

    /// Keys Pomerium removed are errors there too; features not built yet
    /// fail loudly rather than being silently ignored.
    pub(super) fn removed_and_unsupported(&mut self, opts: &Options) {
        if let Some(t) = &opts.codec_type
            && !matches!(t.value.as_str(), "auto" | "http1" | "http2" | "")
        {
            self.error(
                &t.mark,
                format!(
                    "codec_type `{}` is not supported (use auto, http1 or http2)",
                    t.value
                ),
            );
        }
    }
}

//! Routes: each [`Route`] (and the console's) from its options: its `from`,
//! path match and rewrites, authorization, and the identity it passes on.

use http::{HeaderName, HeaderValue};
use regex::Regex;

use super::parse::{go_substitution, split_host_port};
use super::{Compiler, RouteDefaults, dur};
use crate::compiled::UpstreamScheme;
use crate::compiled::{
    Authorization, BearerTokenFormat, From, HostPattern, PathMatch, PathRewrite, Route, RouteAction,
};
use crate::de::Spanned;
use crate::model::RouteOptions;
use crate::yaml::Mark;

impl Compiler<'_> {
    /// The console as a route of its own: its host, its policy, and
    /// gatehouse answering.
    pub(super) fn console_route(
        &mut self,
        index: usize,
        c: &Spanned<crate::model::ConsoleOptions>,
        defaults: &RouteDefaults<'_>,
    ) -> Option<Route> {
        let Some(from) = &c.value.from else {
            self.error(&c.mark, "console: `from` is required (the host it is served on, e.g. `https://console.example.com`)");
            return None;
        };
        let Some(policy) = &c.value.policy else {
            self.error(&c.mark, "console: `policy` is required: say who may manage routes (e.g. `allow: {and: [{groups: {has: admins}}]}`)");
            return None;
        };
        let options = Spanned {
            value: RouteOptions {
                name: Some(Spanned {
                    value: "console".to_string(),
                    mark: c.mark.clone(),
                }),
                from: Some(from.clone()),
                policy: Some(policy.clone()),
                pass_identity_headers: Some(false),
                ..RouteOptions::default()
            },
            mark: c.mark.clone(),
        };
        self.route_with(index, &options, defaults, Some(RouteAction::Console))
    }

    pub(super) fn route(
        &mut self,
        index: usize,
        r: &Spanned<RouteOptions>,
        defaults: &RouteDefaults<'_>,
    ) -> Option<Route> {
        self.route_with(index, r, defaults, None)
    }

    /// A route; `answered_by` is set for routes gatehouse answers itself
    /// (the console), which have no `to`, `redirect` or `response`.
    fn route_with(
        &mut self,
        index: usize,
        r: &Spanned<RouteOptions>,
        defaults: &RouteDefaults<'_>,
        answered_by: Option<RouteAction>,
    ) -> Option<Route> {
        let default_timeout = defaults.timeout;
        let global_headers = defaults.response_headers;
        let pass_identity_default = defaults.pass_identity_headers;
        let global_issuer_format = defaults.jwt_issuer_format;
        let global_claims_headers = defaults.jwt_claims_headers;
        // Only this route's diagnostics are looked at (a file may hold
        // many thousands of routes and of warnings).
        let before = self.diags.len();
        let o = &r.value;
        let Some(from_opt) = &o.from else {
            self.error(&r.mark, "route has no `from`");
            return None;
        };
        let from = self.from(from_opt);

        let path_match = self.path_match(o, &r.mark);

        let action = match (&o.to, &o.redirect, &o.response) {
            _ if answered_by.is_some() => answered_by,
            (Some(to), None, None) => self.upstreams(to).map(RouteAction::Forward),
            (None, Some(redirect), None) => self.redirect(&redirect.0).map(RouteAction::Redirect),
            (None, None, Some(response)) => self.response(&response.0),
            (None, None, None) => {
                self.error(&r.mark, "route needs one of `to`, `redirect` or `response`");
                None
            }
            _ => {
                self.error(
                    &r.mark,
                    "route may have only one of `to`, `redirect` or `response`",
                );
                None
            }
        };

        // A TCP tunnel: `tcp://` targets, no paths; an HTTP route: no
        // `tcp://` targets.
        if let (Some(f), Some(action)) = (&from, &action) {
            let tcp_targets = match action {
                RouteAction::Forward(t) => Some(t.iter().all(|t| t.scheme == UpstreamScheme::Tcp)),
                _ => None,
            };
            let any_tcp = matches!(action, RouteAction::Forward(t) if t.iter().any(|t| t.scheme == UpstreamScheme::Tcp));
            if f.tcp && tcp_targets != Some(true) {
                self.error(
                    &r.mark,
                    "a tcp+https route forwards to `tcp://host:port` targets only",
                );
            } else if !f.tcp && any_tcp {
                self.error(
                    &r.mark,
                    "`tcp://` targets need a `from: tcp+https://host:port` route",
                );
            }
            if f.tcp && !matches!(path_match, Some(PathMatch::Any) | None) {
                self.error(
                    &r.mark,
                    "a tcp+https route has no paths (`path`, `prefix`, `regex`)",
                );
            }
        }

        // Path rewriting.
        let matched_prefix = match &path_match {
            Some(PathMatch::Prefix(p)) | Some(PathMatch::Exact(p)) => p.clone(),
            _ => "/".to_string(),
        };
        let to_path =
            o.to.as_ref()
                .and_then(|to| to.value.0.first())
                .and_then(|first| url::Url::parse(first.split(',').next().unwrap_or_default()).ok())
                .map(|u| u.path().to_string())
                .filter(|p| !p.is_empty() && p != "/");
        let rewrite = match (
            &o.prefix_rewrite,
            &o.regex_rewrite_pattern,
            &o.regex_rewrite_substitution,
        ) {
            (Some(p), Some(rx), _) => {
                self.error(
                    &rx.mark,
                    format!("conflicting rewrites: regex_rewrite_pattern cannot be combined with prefix_rewrite (line {})", p.mark.line),
                );
                PathRewrite::None
            }
            (Some(p), None, sub) => {
                if let Some(sub) = sub {
                    self.error(
                        &sub.mark,
                        "regex_rewrite_substitution needs regex_rewrite_pattern",
                    );
                }
                PathRewrite::Prefix {
                    matched: matched_prefix,
                    replacement: p.value.clone(),
                }
            }
            (None, Some(rx), sub) => {
                let pattern = self.regex(rx, "regex_rewrite_pattern");
                match (pattern, sub) {
                    (Some(pattern), Some(sub)) => PathRewrite::Regex {
                        pattern,
                        substitution: go_substitution(&sub.value),
                    },
                    (_, None) => {
                        self.error(
                            &rx.mark,
                            "regex_rewrite_pattern needs regex_rewrite_substitution",
                        );
                        PathRewrite::None
                    }
                    _ => PathRewrite::None,
                }
            }
            (None, None, Some(sub)) => {
                self.error(
                    &sub.mark,
                    "regex_rewrite_substitution needs regex_rewrite_pattern",
                );
                PathRewrite::None
            }
            (None, None, None) => match to_path {
                // A path in `to` keeps the segment boundary of the match:
                // `to: http://x/root` serves `/a` as `/root/a`.
                Some(mut p) => {
                    if matched_prefix.ends_with('/') && !p.ends_with('/') {
                        p.push('/');
                    }
                    PathRewrite::Prefix {
                        matched: matched_prefix,
                        replacement: p,
                    }
                }
                None => PathRewrite::None,
            },
        };

        let host = self.host_header(o);

        let allow_websockets = o.allow_websockets.unwrap_or(false);
        let idle_timeout = dur(&o.idle_timeout).filter(|d| !d.is_zero());
        // As Pomerium: websocket routes, and routes with only an idle
        // timeout, have no overall timeout unless one is set.
        let timeout = match dur(&o.timeout) {
            Some(t) if t.is_zero() => None,
            Some(t) => Some(t),
            None if allow_websockets || idle_timeout.is_some() => None,
            None => Some(default_timeout),
        };

        let tls = self.upstream_tls(o);

        let mut set_request_headers = Vec::new();
        if let Some(map) = &o.set_request_headers {
            for (k, v) in &map.value.0 {
                let name = self.header_name(k, &map.mark);
                let template = self.template(v, &map.mark);
                if let (Some(n), Some(t)) = (name, template) {
                    if let Some(lit) = t.as_literal() {
                        self.header_value(lit, &map.mark);
                    }
                    set_request_headers.push((n, t));
                }
            }
        }
        let mut remove_request_headers = Vec::new();
        if let Some(list) = &o.remove_request_headers {
            for k in &list.value.0 {
                if let Some(n) = self.header_name(k, &list.mark) {
                    remove_request_headers.push(n);
                }
            }
        }
        let mut response_headers = global_headers.to_vec();
        if let Some(map) = &o.set_response_headers {
            match self.response_headers(map) {
                None => response_headers.clear(),
                Some(own) => {
                    for (n, v) in own {
                        response_headers.retain(|(e, _)| *e != n);
                        response_headers.push((n, v));
                    }
                }
            }
        }

        if o.regex_priority_order.is_some() && o.regex.is_none() {
            self.warn(
                &r.mark,
                "`regex_priority_order` orders `regex` routes; this route has no `regex`, so it has no effect",
            );
        }
        // The console keeps no secrets (its store, history and export
        // would show them): a console route takes them from nowhere.
        // (`crate::ROUTE_SECRET_KEYS` names them for the export.)
        for secret in [&o.idp_client_secret, &o.tls_client_key]
            .into_iter()
            .flatten()
        {
            if crate::origin::target(&secret.mark).is_some() {
                self.error(
                    &secret.mark,
                    "the console keeps no secrets (its history and export would show them): set this route's secrets in the configuration file, or give a file (`*_file`)",
                );
            }
        }
        let client_ca = self.route_client_ca(o);
        let groups_filter = o
            .jwt_groups_filter
            .as_ref()
            .and_then(|n| self.groups_filter(&n.0));
        let rewrite_response_headers = o
            .rewrite_response_headers
            .as_ref()
            .map(|n| self.rewrite_headers(&n.0))
            .unwrap_or_default();

        let authorization = self.authorization(o);
        self.policies.push(crate::RoutePolicy {
            label: match &o.name {
                Some(n) => n.value.clone(),
                None => from_opt.value.clone(),
            },
            mark: r.mark.clone(),
            authorization: authorization.clone(),
        });

        let bearer_token_format = self.bearer_format(
            o.bearer_token_format
                .as_ref()
                .or(defaults.bearer_token_format),
            defaults,
        );
        let mut identity_providers = Vec::new();
        if let Some(names) = &o.identity_providers {
            for n in &names.value.0 {
                if defaults.identity_providers.iter().any(|p| p.name == *n) {
                    identity_providers.push(n.clone());
                } else {
                    let known: Vec<&str> = defaults
                        .identity_providers
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect();
                    self.error(
                        &names.mark,
                        format!(
                            "identity_providers: `{n}` is not in the global identity_providers ({})",
                            if known.is_empty() { "none configured".to_string() } else { known.join(", ") }
                        ),
                    );
                }
            }
        }
        let idp_access_token_audiences = o
            .idp_access_token_allowed_audiences
            .as_ref()
            .or(defaults.idp_access_token_allowed_audiences)
            .map(|l| l.value.0.clone())
            .unwrap_or_default();
        let cookie_same_site = self.same_site(o.cookie_same_site.as_ref());
        let frame_ancestors = self.frame_ancestors(o.frame_ancestors.as_ref());
        if let Some(fa) = &frame_ancestors {
            response_headers.retain(|(n, _)| n != "x-frame-options");
            let value = format!("frame-ancestors {}", fa.join(" "));
            if let Ok(v) = HeaderValue::from_str(&value) {
                response_headers.retain(|(n, _)| n != "content-security-policy");
                response_headers.push((HeaderName::from_static("content-security-policy"), v));
            }
        }

        let load_balancing = self.load_balancing(o.load_balancing_policy.as_ref());
        let outlier_detection = o
            .outlier_detection
            .as_ref()
            .and_then(|n| self.outlier_detection(&n.0));
        let health_checks = o
            .health_checks
            .as_ref()
            .map(|n| self.health_checks(&n.0))
            .unwrap_or_default();

        if self.diags[before..].iter().any(crate::Diagnostic::is_error) {
            return None;
        }
        Some(Route {
            index,
            name: o.name.as_ref().map(|n| n.value.clone()),
            description: o
                .description
                .as_ref()
                .map(|d| d.value.clone())
                .filter(|d| !d.is_empty()),
            logo_url: o
                .logo_url
                .as_ref()
                .map(|d| d.value.clone())
                .filter(|d| !d.is_empty()),
            mark: from_opt.mark.clone(),
            from: from?,
            regex_priority: o.regex_priority_order.filter(|_| o.regex.is_some()),
            path_match: path_match?,
            action: action?,
            rewrite,
            host,
            allow_websockets,
            timeout,
            idle_timeout,
            tls,
            set_request_headers,
            remove_request_headers,
            response_headers,
            rewrite_response_headers,
            client_ca,
            client_cert_default_deny: false,
            idp_client: None,
            idp_client_written: o
                .idp_client_id
                .as_ref()
                .or(o.idp_client_secret.as_ref())
                .map(|first| {
                    (
                        first.mark.clone(),
                        o.idp_client_id.as_ref().map(|v| v.value.trim().to_string()),
                        o.idp_client_secret
                            .as_ref()
                            .map(|v| v.value.trim().to_string()),
                    )
                }),
            groups_filter,
            load_balancing,
            outlier_detection,
            health_checks,
            authorization,
            show_error_details: o.show_error_details.unwrap_or(false),
            pass_identity_headers: o.pass_identity_headers.unwrap_or(pass_identity_default),
            issuer_uri: self.issuer_uri(o.jwt_issuer_format.as_ref().or(global_issuer_format)),
            claim_headers: self
                .claim_headers(o.jwt_claims_headers.as_ref().or(global_claims_headers)),
            bearer_token_format,
            identity_providers,
            idp_access_token_audiences,
            cookie_same_site,
            frame_ancestors,
        })
    }

    /// `bearer_token_format` and what it needs.
    fn bearer_format(
        &mut self,
        v: Option<&Spanned<String>>,
        defaults: &RouteDefaults<'_>,
    ) -> BearerTokenFormat {
        let Some(v) = v else {
            return BearerTokenFormat::Default;
        };
        let format = match v.value.trim() {
            "" | "default" => BearerTokenFormat::Default,
            "idp_access_token" => BearerTokenFormat::IdpAccessToken,
            "idp_identity_token" => BearerTokenFormat::IdpIdentityToken,
            "jwt" => BearerTokenFormat::Jwt,
            other => {
                self.error(
                    &v.mark,
                    format!("bearer_token_format `{other}` must be default, idp_access_token, idp_identity_token or jwt"),
                );
                return BearerTokenFormat::Default;
            }
        };
        match format {
            BearerTokenFormat::Jwt if defaults.identity_providers.is_empty() => self.error(
                &v.mark,
                "bearer_token_format: jwt needs at least one entry in the global `identity_providers`",
            ),
            BearerTokenFormat::IdpAccessToken | BearerTokenFormat::IdpIdentityToken
                if !defaults.oidc =>
            {
                self.error(
                    &v.mark,
                    format!("bearer_token_format: {} needs `idp_provider: oidc` (the tokens are verified with its keys)", v.value.trim()),
                )
            }
            _ => {}
        }
        format
    }

    /// `frame_ancestors`: CSP source expressions for who may frame a route.
    fn frame_ancestors(
        &mut self,
        v: Option<&Spanned<crate::model::StringList>>,
    ) -> Option<Vec<String>> {
        let v = v?;
        let mut out = Vec::new();
        for item in &v.value.0 {
            let item = item.trim();
            let ok = match item {
                "'self'" | "'none'" | "self" | "none" => true,
                _ => {
                    url::Url::parse(&item.replace("*.", "wildcard-placeholder.")).is_ok_and(|u| {
                        matches!(u.scheme(), "https" | "http")
                            && u.path() == "/"
                            && u.query().is_none()
                            && !item.ends_with('/')
                            && u.username().is_empty()
                    }) && !item.contains(['"', ';', ',', ' ', '\\'])
                }
            };
            if !ok {
                self.error(
                    &v.mark,
                    format!("frame_ancestors: `{item}` must be an origin like https://parent.example.com (no path), https://*.example.com, 'self' or 'none'"),
                );
                continue;
            }
            out.push(match item {
                "self" => "'self'".to_string(),
                "none" => "'none'".to_string(),
                other => other.to_string(),
            });
        }
        if out.len() > 1 && out.iter().any(|o| o == "'none'") {
            self.error(
                &v.mark,
                "frame_ancestors: 'none' cannot be combined with other sources",
            );
        }
        Some(out)
    }

    fn claim_headers(
        &mut self,
        v: Option<&Spanned<crate::model::ClaimsHeaders>>,
    ) -> Vec<(HeaderName, String)> {
        let Some(v) = v else { return Vec::new() };
        let mut out = Vec::new();
        for (header, claim) in &v.value.0 {
            if let Some(name) = self.header_name(header, &v.mark) {
                out.push((name, claim.clone()));
            }
        }
        out
    }

    /// `hostOnly` (default) or `uri`; like Pomerium, any case and the
    /// `Issuer` prefix are accepted (`IssuerURI`).
    fn issuer_uri(&mut self, v: Option<&Spanned<String>>) -> bool {
        let Some(v) = v else { return false };
        let norm = v.value.to_ascii_lowercase();
        match norm.strip_prefix("issuer").unwrap_or(&norm) {
            "" | "hostonly" => false,
            "uri" => true,
            _ => {
                self.error(
                    &v.mark,
                    format!("jwt_issuer_format `{}` must be hostOnly or uri", v.value),
                );
                false
            }
        }
    }

    pub(super) fn from(&mut self, from: &Spanned<String>) -> Option<From> {
        let raw = from.value.trim();
        let Some((scheme, rest)) = raw.split_once("://") else {
            self.error(
                &from.mark,
                format!(
                    "invalid `from` URL `{raw}`: it needs a scheme, like `https://{}`",
                    if raw.is_empty() || raw.contains(char::is_whitespace) {
                        "app.example.com"
                    } else {
                        raw
                    }
                ),
            );
            return None;
        };
        let mut tcp = false;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "tcp+https" => {
                tcp = true;
                true
            }
            "http" => {
                self.warn(
                    &from.mark,
                    format!("`from` uses http: `{raw}`; traffic to this route is not encrypted"),
                );
                false
            }
            "udp+https" | "ssh" => {
                self.error(
                    &from.mark,
                    format!("`from` scheme `{scheme}` is not supported yet (HTTP and tcp+https routes only)"),
                );
                return None;
            }
            other => {
                self.error(
                    &from.mark,
                    format!("unknown `from` scheme `{other}` (expected https or http)"),
                );
                return None;
            }
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !(path.is_empty() || path == "/") {
            self.error(
                &from.mark,
                format!("`from` must not have a path, query or fragment (`{path}`): use `prefix`, `path` or `regex` to match paths"),
            );
            return None;
        }
        if authority.contains('@') {
            self.error(&from.mark, "`from` must not contain user information");
            return None;
        }
        let (host, port) = split_host_port(authority);
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    self.error(&from.mark, format!("invalid port `{p}` in `from`"));
                    return None;
                }
            },
        };
        let host = host.to_ascii_lowercase();
        let check = host.strip_prefix("*.").unwrap_or(&host);
        let valid = !check.is_empty()
            && !check.contains('*')
            && check.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        let bracketed_ip = host.starts_with('[') && host.ends_with(']');
        if !valid && !bracketed_ip {
            self.error(
                &from.mark,
                format!("invalid host `{host}` in `from` (wildcards only as a leading `*.`)"),
            );
            return None;
        }
        let host = match host.strip_prefix('*') {
            Some(suffix) => HostPattern::Wildcard(suffix.to_string()),
            None => HostPattern::Exact(host),
        };
        if tcp && (port.is_none() || matches!(host, HostPattern::Wildcard(_))) {
            self.error(
                &from.mark,
                "a tcp+https route names one host and its port: `tcp+https://db.example.com:5432`",
            );
            return None;
        }
        Some(From {
            https,
            host,
            port,
            tcp,
        })
    }

    fn path_match(&mut self, o: &RouteOptions, mark: &Mark) -> Option<PathMatch> {
        let given: Vec<&str> = [
            o.path.as_ref().map(|_| "path"),
            o.prefix.as_ref().map(|_| "prefix"),
            o.regex.as_ref().map(|_| "regex"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            self.error(
                mark,
                format!(
                    "route may use only one of `path`, `prefix` and `regex` (found {})",
                    given.join(", ")
                ),
            );
            return None;
        }
        if let Some(p) = &o.path {
            if !p.value.starts_with('/') {
                self.error(
                    &p.mark,
                    format!("`path` must start with `/` (found `{}`)", p.value),
                );
                return None;
            }
            return Some(PathMatch::Exact(p.value.clone()));
        }
        if let Some(p) = &o.prefix {
            if !p.value.starts_with('/') {
                self.error(
                    &p.mark,
                    format!("`prefix` must start with `/` (found `{}`)", p.value),
                );
                return None;
            }
            if p.value == "/" {
                return Some(PathMatch::Any);
            }
            return Some(PathMatch::Prefix(p.value.clone()));
        }
        if let Some(r) = &o.regex {
            // Envoy's safe_regex matches the whole path.
            let anchored = Spanned {
                value: format!("^(?:{})$", r.value),
                mark: r.mark.clone(),
            };
            return self.regex(&anchored, "regex").map(PathMatch::Regex);
        }
        Some(PathMatch::Any)
    }

    pub(super) fn regex(&mut self, r: &Spanned<String>, what: &str) -> Option<Regex> {
        match Regex::new(&r.value) {
            Ok(rx) => Some(rx),
            Err(e) => {
                self.error(&r.mark, format!("invalid {what}: {e}"));
                None
            }
        }
    }

    fn authorization(&mut self, o: &RouteOptions) -> Authorization {
        let flag =
            |b: &Option<Spanned<bool>>| b.as_ref().filter(|b| b.value).map(|b| b.mark.clone());
        let list = |l: &Option<Spanned<crate::model::StringList>>| {
            l.as_ref().map(|l| Spanned {
                value: l.value.0.clone(),
                mark: l.mark.clone(),
            })
        };
        let authz = Authorization {
            public: flag(&o.allow_public_unauthenticated_access),
            any_authenticated_user: flag(&o.allow_any_authenticated_user),
            cors_allow_preflight: flag(&o.cors_allow_preflight),
            allowed_users: list(&o.allowed_users),
            allowed_domains: list(&o.allowed_domains),
            allowed_idp_claims: o.allowed_idp_claims.clone(),
            policy: o.policy.clone(),
            sub_policies: o
                .sub_policies
                .as_ref()
                .map(|n| self.sub_policies(&n.0))
                .unwrap_or_default(),
        };
        if let Some(mark) = &authz.public {
            // As Pomerium: public access is not combined with allow lists.
            let others: Vec<&str> = [
                authz
                    .any_authenticated_user
                    .as_ref()
                    .map(|_| "allow_any_authenticated_user"),
                authz.allowed_users.as_ref().map(|_| "allowed_users"),
                authz.allowed_domains.as_ref().map(|_| "allowed_domains"),
                authz
                    .allowed_idp_claims
                    .as_ref()
                    .map(|_| "allowed_idp_claims"),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !others.is_empty() {
                self.error(
                    mark,
                    format!(
                        "allow_public_unauthenticated_access cannot be combined with {}",
                        others.join(", ")
                    ),
                );
            }
        }
        authz
    }

    /// `sub_policies`: `{id, name, allowed_users, allowed_domains,
    /// allowed_idp_claims, source_ppl, rego, explanation, remediation}`.
    /// Rego is not run: a sub-policy with `rego` must carry the PPL it was
    /// made from (`source_ppl`, as Pomerium's console writes it).
    /// A sub-policy's text or list of text. A value that is not text is
    /// an error, never dropped (a dropped `rego` deny rule would open the
    /// route).
    fn text_list(&mut self, n: &crate::yaml::Node, key: &str) -> Vec<String> {
        let items = match &n.value {
            crate::yaml::Value::Seq(items) => items.as_slice(),
            _ if n.is_null() => &[],
            _ => std::slice::from_ref(n),
        };
        let mut out = Vec::new();
        for i in items {
            match i.as_str() {
                Some(s) => out.push(s.to_string()),
                None => self.error(
                    &i.mark,
                    format!("sub_policies: `{key}` takes text or a list of text"),
                ),
            }
        }
        out
    }

    fn sub_policies(&mut self, node: &crate::yaml::Node) -> Vec<crate::compiled::SubPolicy> {
        use crate::yaml::Value;
        let mut out = Vec::new();
        let items = match &node.value {
            Value::Seq(items) => items,
            _ if node.is_null() => return out,
            _ => {
                self.error(&node.mark, "`sub_policies` must be a list");
                return out;
            }
        };
        for item in items {
            let Value::Map(entries) = &item.value else {
                self.error(&item.mark, "each sub-policy must be a mapping");
                continue;
            };
            let mut sp = crate::compiled::SubPolicy::default();
            let mut rego = None;
            for (k, v) in entries {
                match k.as_str().unwrap_or_default() {
                    "id" => sp.id = v.as_str().unwrap_or_default().to_string(),
                    "name" | "explanation" | "remediation" => {}
                    "allowed_users" => sp.allowed_users = self.text_list(v, "allowed_users"),
                    "allowed_domains" => sp.allowed_domains = self.text_list(v, "allowed_domains"),
                    "allowed_idp_claims" => {
                        sp.allowed_idp_claims = Some(crate::de::RawNode(v.clone()))
                    }
                    "rego" => {
                        if !self
                            .text_list(v, "rego")
                            .iter()
                            .all(|r| r.trim().is_empty())
                        {
                            rego = Some(k.mark.clone());
                        }
                    }
                    // PPL as text (YAML or JSON, as the console writes it),
                    // or written out as a mapping or list; never dropped.
                    "source_ppl" => match &v.value {
                        Value::Map(_) | Value::Seq(_) => {
                            sp.ppl = Some(crate::de::RawNode(v.clone()))
                        }
                        _ if v.is_null() => {}
                        _ => match v.as_str() {
                            Some(text) if text.trim().is_empty() => {}
                            Some(text) => match crate::yaml::parse_within(
                                text,
                                &v.mark.origin,
                                self.ppl_text_budget,
                            ) {
                                Ok((mut parsed, spent)) => {
                                    self.ppl_text_budget =
                                        self.ppl_text_budget.saturating_sub(spent);
                                    parsed.relabel(&v.mark);
                                    sp.ppl = Some(crate::de::RawNode(parsed));
                                }
                                Err(e) => self.error(
                                    &v.mark,
                                    format!(
                                        "sub_policies: source_ppl is not YAML or JSON: {}",
                                        e.message
                                    ),
                                ),
                            },
                            None => self.error(&v.mark, "sub_policies: source_ppl must be PPL"),
                        },
                    },
                    other => self.error(&k.mark, format!("unknown sub-policy option `{other}`")),
                }
            }
            if let (Some(mark), None) = (&rego, &sp.ppl) {
                self.error(
                    mark,
                    "sub_policies: `rego` is not run by gatehouse (its rules would not apply): give the same rules as `source_ppl`",
                );
                continue;
            }
            out.push(sp);
        }
        out
    }
}

//! Turns [`Options`] into a [`Config`], collecting every problem as a
//! positioned [`Diagnostic`] instead of stopping at the first.
//!
//! This file owns the [`Compiler`] (its diagnostics and the files it reads)
//! and the top-level `compile`, which puts the parts together. Each concern
//! has a file of its own, adding methods to the same `Compiler`:
//!
//! - `global`: listen addresses, request rules, access log fields, IP lists;
//! - `sign_in`: identity provider, cookie, secrets, session storage, local
//!   users, and the issuers trusted for bearer tokens;
//! - `tls`: PEM values, the server's certificates, upstream TLS;
//! - `route`: each route, its match, rewrites, authorization and identity;
//! - `upstream`: what a route does: forward (and its Host), redirect, respond;
//! - `headers`: header names, values and templates;
//! - `parse`: free parsers with no diagnostics of their own.

mod autocert;
mod balance;
mod global;
mod headers;
mod parse;
mod route;
mod sign_in;
mod tls;
mod tracing;
mod upstream;

pub use parse::{parse_template, parse_upstream};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::compiled::{
    Config, ConsoleSettings, ConsoleStorage, Provider, Route, StorageKind, TrustedIssuer,
};
use crate::de::Spanned;
use crate::diagnostic::Diagnostic;
use crate::model::{GoDuration, Options};
use crate::yaml::Mark;

/// What every route inherits from the global options.
struct RouteDefaults<'a> {
    timeout: Duration,
    response_headers: &'a [(HeaderName, HeaderValue)],
    pass_identity_headers: bool,
    jwt_issuer_format: Option<&'a Spanned<String>>,
    jwt_claims_headers: Option<&'a Spanned<crate::model::ClaimsHeaders>>,
    bearer_token_format: Option<&'a Spanned<String>>,
    idp_access_token_allowed_audiences: Option<&'a Spanned<crate::model::StringList>>,
    /// Names in `identity_providers`.
    identity_providers: &'a [TrustedIssuer],
    /// The sign-in provider is OpenID Connect (its tokens can be verified).
    oidc: bool,
}

pub(crate) struct Compiler<'a> {
    pub base_dir: &'a Path,
    pub diags: Vec<Diagnostic>,
    pub watched: Vec<PathBuf>,
    pub file_mark: Mark,
    /// Tree bytes left for PPL given as text (`sub_policies.source_ppl`):
    /// one budget for the whole load, so many small strings cannot each
    /// spend a file's worth.
    pub ppl_text_budget: usize,
    /// Every route's authorization as written, kept for `check` when the
    /// configuration is refused (see [`crate::RoutePolicy`]).
    pub policies: Vec<crate::RoutePolicy>,
    /// Secrets whose `*_file` could not be read (already reported, so no
    /// "needs" message follows).
    pub unreadable_secrets: Vec<String>,
}

/// What all of a configuration's PPL text may take once parsed.
pub(crate) const PPL_TEXT_BUDGET: usize = 16 << 20;

fn dur(v: &Option<Spanned<GoDuration>>) -> Option<Duration> {
    v.as_ref().map(|d| d.value.0)
}

impl Compiler<'_> {
    fn error(&mut self, mark: &Mark, message: impl Into<String>) {
        self.diags.push(Diagnostic::error(mark.clone(), message));
    }

    fn warn(&mut self, mark: &Mark, message: impl Into<String>) {
        self.diags.push(Diagnostic::warning(mark.clone(), message));
    }

    fn resolve(&self, path: &str) -> PathBuf {
        crate::input::resolve(self.base_dir, path)
    }

    /// Reads a file named in the config, remembering it for hot reload.
    fn read_file(&mut self, path: &Spanned<String>, what: &str) -> Option<Vec<u8>> {
        let full = self.resolve(&path.value);
        match crate::input::read_limited(&full) {
            Ok(bytes) => {
                self.watched.push(full);
                Some(bytes)
            }
            Err(e) => {
                self.error(
                    &path.mark,
                    format!(
                        "cannot read {what} file `{}`: {}",
                        full.display(),
                        crate::input::io_reason(&e)
                    ),
                );
                None
            }
        }
    }

    pub fn compile(&mut self, opts: Options, source: PathBuf) -> Option<Config> {
        self.watched.push(source.clone());
        let insecure_server = opts.insecure_server.unwrap_or(false);

        let address = match &opts.address {
            None => ":443".to_string(),
            Some(a) => a.value.clone(),
        };
        let address = self.listen_address(&address, opts.address.as_ref().map(|a| &a.mark));
        let http_redirect_addr = opts
            .http_redirect_addr
            .as_ref()
            .map(|a| self.listen_address(&a.value, Some(&a.mark)));

        let certificates = self.certificates(&opts);

        let timeout_read = dur(&opts.timeout_read).unwrap_or(Duration::from_secs(30));
        let timeout_idle = dur(&opts.timeout_idle).unwrap_or(Duration::from_secs(300));
        let timeout_write = dur(&opts.timeout_write).filter(|d| !d.is_zero());
        if timeout_read.is_zero()
            && let Some(t) = &opts.timeout_read
        {
            self.error(
                &t.mark,
                "timeout_read must be greater than 0 (it protects against slow clients)",
            );
        }
        let default_upstream_timeout =
            dur(&opts.default_upstream_timeout).unwrap_or(Duration::from_secs(30));

        // Pomerium's defaults; HSTS only when real certificates are configured.
        let mut global_headers = vec![
            (
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("SAMEORIGIN"),
            ),
            (
                HeaderName::from_static("x-xss-protection"),
                HeaderValue::from_static("1; mode=block"),
            ),
        ];
        if !certificates.is_empty() && !insecure_server {
            global_headers.push((
                HeaderName::from_static("strict-transport-security"),
                HeaderValue::from_static("max-age=31536000; includeSubDomains; preload"),
            ));
        }
        if let Some(map) = &opts.set_response_headers {
            global_headers = self.response_headers(map).unwrap_or_default();
        }

        self.removed_and_unsupported(&opts);

        let sign_in = self.sign_in(&opts);
        let identity_providers = self.identity_providers(opts.identity_providers.as_ref());
        let pass_identity_default = opts.pass_identity_headers.unwrap_or(false);
        let mut routes: Vec<Route> = Vec::new();
        let all_routes = opts
            .policy
            .iter()
            .flatten()
            .chain(opts.routes.iter().flatten());
        let route_defaults = || RouteDefaults {
            timeout: default_upstream_timeout,
            response_headers: &global_headers,
            pass_identity_headers: pass_identity_default,
            jwt_issuer_format: opts.jwt_issuer_format.as_ref(),
            jwt_claims_headers: opts.jwt_claims_headers.as_ref(),
            bearer_token_format: opts.bearer_token_format.as_ref(),
            idp_access_token_allowed_audiences: opts.idp_access_token_allowed_audiences.as_ref(),
            identity_providers: &identity_providers,
            oidc: matches!(sign_in.provider, Provider::Oidc(_)),
        };
        // Where each `from` and path match is first defined: a set, as a
        // file may hold tens of thousands of routes.
        let mut defined: HashMap<(crate::compiled::From, u8, String), usize> = HashMap::new();
        for (index, r) in all_routes.enumerate() {
            let defaults = RouteDefaults {
                timeout: default_upstream_timeout,
                response_headers: &global_headers,
                pass_identity_headers: pass_identity_default,
                jwt_issuer_format: opts.jwt_issuer_format.as_ref(),
                jwt_claims_headers: opts.jwt_claims_headers.as_ref(),
                bearer_token_format: opts.bearer_token_format.as_ref(),
                idp_access_token_allowed_audiences: opts
                    .idp_access_token_allowed_audiences
                    .as_ref(),
                identity_providers: &identity_providers,
                oidc: matches!(sign_in.provider, Provider::Oidc(_)),
            };
            if let Some(route) = self.route(index, r, &defaults) {
                let (kind, text) = route.path_match.key();
                let key = (route.from.clone(), kind, text.to_owned());
                if let Some(first) = defined.get(&key).map(|&i| &routes[i]) {
                    let at = match crate::origin::target(&first.mark) {
                        Some(_) => format!("in the console (`{}`)", first.label()),
                        None => format!("at line {}", first.mark.line),
                    };
                    self.error(
                        &route.mark,
                        format!(
                            "duplicate route: `{}`{} is already defined {at}",
                            route.from, route.path_match
                        ),
                    );
                    continue;
                }
                defined.insert(key, routes.len());
                routes.push(route);
            }
        }
        let console = opts.console.as_ref().and_then(|c| {
            let route = self.console_route(routes.len(), c, &route_defaults())?;
            if let Some(other) = routes.iter().find(|r| r.from == route.from) {
                let at = match crate::origin::target(&other.mark) {
                    Some(_) => format!("the console route `{}`", other.label()),
                    None => format!("the route at line {}", other.mark.line),
                };
                self.error(
                    &route.mark,
                    format!("console: `{}` is also served by {at}; give the console a host of its own", route.from),
                );
                return None;
            }
            let storage = match (&sign_in.storage.kind, &c.value.storage_file) {
                (StorageKind::Memory, Some(f)) => ConsoleStorage::File(self.resolve(&f.value)),
                (StorageKind::Memory, None) => {
                    ConsoleStorage::File(self.resolve("gatehouse-console.redb"))
                }
                (_, Some(f)) => {
                    self.warn(&f.mark, "console: `storage_file` is not used: console changes are kept in the session store (`databroker_storage_type`)");
                    ConsoleStorage::Sessions
                }
                (_, None) => ConsoleStorage::Sessions,
            };
            let from = route.from.clone();
            routes.push(route);
            Some(ConsoleSettings { from, storage })
        });
        if routes.is_empty() && !self.diags.iter().any(Diagnostic::is_error) {
            self.warn(
                &self.file_mark.clone(),
                "no routes configured: every request will get 404",
            );
        }

        let trusted_assertion_sources = self.ip_nets(opts.trusted_assertion_sources.as_ref());
        let forward_auth_trusted_sources = match opts.forward_auth_trusted_sources.as_ref() {
            Some(v) => self.ip_nets(Some(v)),
            None => vec![
                ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(
                    std::net::Ipv4Addr::new(127, 0, 0, 0),
                    8,
                )),
                ipnet::IpNet::V6(ipnet::Ipv6Net::new_assert(
                    std::net::Ipv6Addr::LOCALHOST,
                    128,
                )),
            ],
        };
        let programmatic_redirect_domains = match &opts.programmatic_redirect_domain_whitelist {
            Some(v) => v
                .value
                .0
                .iter()
                .map(|d| d.trim().to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
            None => vec!["localhost".to_string()],
        };
        let access_log = self.access_log_fields(opts.access_log_fields.as_ref());
        let authorize_log = self.authorize_log_fields(opts.authorize_log_fields.as_ref());
        let tracing = self.tracing(&opts);
        let autocert = self.autocert(&opts, &routes, &sign_in, insecure_server);
        let request = self.request_rules(&opts);
        // The global groups filter, merged into each route's: a group either
        // names is kept (a route's list widens the global one).
        let global_groups = opts
            .jwt_groups_filter
            .as_ref()
            .and_then(|n| self.groups_filter(&n.0));
        if let Some(global) = &global_groups {
            for r in &mut routes {
                let merged = match r.groups_filter.take() {
                    None => global.clone(),
                    Some(own) => crate::compiled::GroupsFilter {
                        groups: global.groups.iter().chain(&own.groups).cloned().collect(),
                        infer_from_ppl: global.infer_from_ppl || own.infer_from_ppl,
                    },
                };
                r.groups_filter = Some(merged);
            }
        }
        let metrics_tls = self.metrics_tls(&opts);
        if metrics_tls.is_some() && opts.metrics_address.is_none() {
            self.warn(
                &self.file_mark.clone(),
                "metrics_certificate is set but metrics_address is not: no metrics listener is opened",
            );
        }
        let mut sign_in = sign_in;
        self.route_clients(&mut routes, &mut sign_in);
        let client_certs = self.client_cert_rules(opts.downstream_mtls.as_ref(), &routes);
        if let Some(rules) = &client_certs {
            let deny = rules.enforcement != crate::compiled::Enforcement::Policy;
            for r in &mut routes {
                r.client_cert_default_deny = deny;
            }
        }
        if self.diags.iter().any(Diagnostic::is_error) {
            return None;
        }
        Some(Config {
            metrics_tls,
            access_log,
            authorize_log,
            tracing,
            autocert,
            client_certs,
            source,
            address,
            insecure_server,
            http_redirect_addr,
            certificates,
            timeout_read,
            timeout_idle,
            timeout_write,
            default_upstream_timeout,
            request,
            trusted_assertion_sources,
            forward_auth_trusted_sources,
            identity_providers,
            programmatic_redirect_domains,
            routes,
            sign_in,
            console,
            watched_files: std::mem::take(&mut self.watched),
            options: opts,
        })
    }
}

//! Turns [`Options`] into a [`Config`], collecting every problem as a
//! positioned [`Diagnostic`] instead of stopping at the first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use http::{HeaderName, HeaderValue, StatusCode};
use regex::Regex;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::compiled::*;
use crate::de::Spanned;
use crate::diagnostic::Diagnostic;
use crate::model::{GoDuration, Options, RouteOptions, StringMap};
use crate::yaml::{Mark, Node, Value};

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
}

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
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
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
                    format!("cannot read {what} file `{}`: {e}", full.display()),
                );
                None
            }
        }
    }

    /// A PEM value given inline, as base64 of PEM, or (for `certificates`) as a file path.
    fn pem_value(&mut self, v: &Spanned<String>, what: &str, may_be_file: bool) -> Option<Vec<u8>> {
        let text = v.value.trim();
        if text.contains("-----BEGIN") {
            return Some(text.as_bytes().to_vec());
        }
        if may_be_file && !text.is_empty() && self.resolve(text).is_file() {
            return self.read_file(v, what);
        }
        let compact: String = text.split_whitespace().collect();
        match base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
            Ok(bytes) if bytes.starts_with(b"-----BEGIN") || bytes.first() == Some(&0x30) => {
                Some(bytes)
            }
            _ => {
                let hint = if may_be_file { "a readable file, " } else { "" };
                self.error(
                    &v.mark,
                    format!("{what} must be {hint}PEM or base64-encoded PEM"),
                );
                None
            }
        }
    }

    fn certs(
        &mut self,
        pem: &[u8],
        mark: &Mark,
        what: &str,
    ) -> Option<Vec<CertificateDer<'static>>> {
        let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
        match certs {
            Ok(c) if !c.is_empty() => Some(c),
            Ok(_) => {
                self.error(mark, format!("{what}: no PEM certificate found"));
                None
            }
            Err(e) => {
                self.error(mark, format!("{what}: invalid PEM certificate: {e}"));
                None
            }
        }
    }

    fn key(&mut self, pem: &[u8], mark: &Mark, what: &str) -> Option<PrivateKeyDer<'static>> {
        match PrivateKeyDer::from_pem_slice(pem) {
            Ok(k) => Some(k),
            Err(e) => {
                self.error(
                    mark,
                    format!("{what}: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
                );
                None
            }
        }
    }

    /// A certificate + key pair from inline/base64 values or files.
    fn cert_pair(
        &mut self,
        cert: (&Option<Spanned<String>>, &Option<Spanned<String>>),
        key: (&Option<Spanned<String>>, &Option<Spanned<String>>),
        what: &str,
        fallback: &Mark,
        may_be_file: bool,
    ) -> Option<Certificate> {
        let cert_pem = match cert {
            (Some(v), _) => (
                self.pem_value(v, &format!("{what} certificate"), may_be_file),
                v.mark.clone(),
            ),
            (None, Some(f)) => (
                self.read_file(f, &format!("{what} certificate")),
                f.mark.clone(),
            ),
            (None, None) => {
                self.error(fallback, format!("{what}: certificate missing"));
                return None;
            }
        };
        let key_pem = match key {
            (Some(v), _) => (
                self.pem_value(v, &format!("{what} key"), may_be_file),
                v.mark.clone(),
            ),
            (None, Some(f)) => (self.read_file(f, &format!("{what} key")), f.mark.clone()),
            (None, None) => {
                self.error(
                    &cert_pem.1,
                    format!("{what}: key missing for this certificate"),
                );
                return None;
            }
        };
        let chain = self.certs(&cert_pem.0?, &cert_pem.1, what)?;
        let key = self.key(&key_pem.0?, &key_pem.1, what)?;
        Some(Certificate {
            chain,
            key,
            origin: cert_pem.1.to_string(),
        })
    }

    fn header_name(&mut self, name: &str, mark: &Mark) -> Option<HeaderName> {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.error(mark, format!("`{name}` is not a valid HTTP header name"));
                None
            }
        }
    }

    fn header_value(&mut self, value: &str, mark: &Mark) -> Option<HeaderValue> {
        match HeaderValue::from_str(value) {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(mark, format!("`{value}` is not a valid HTTP header value"));
                None
            }
        }
    }

    /// `set_response_headers` to a header list; `None` for `disable: true`.
    fn response_headers(
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
        let timeout_write = dur(&opts.timeout_write).filter(|d| !d.is_zero());
        let timeout_idle = dur(&opts.timeout_idle).unwrap_or(Duration::from_secs(300));
        if timeout_read.is_zero() {
            if let Some(t) = &opts.timeout_read {
                self.error(
                    &t.mark,
                    "timeout_read must be greater than 0 (it protects against slow clients)",
                );
            }
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
                if let Some(first) = routes
                    .iter()
                    .find(|o| o.from == route.from && o.path_match == route.path_match)
                {
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
                .map(|d| d.trim().trim_start_matches("*.").to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
            None => vec!["localhost".to_string()],
        };
        let access_log = self.access_log_fields(opts.access_log_fields.as_ref());
        let request = self.request_rules(&opts);
        if self.diags.iter().any(Diagnostic::is_error) {
            return None;
        }
        Some(Config {
            access_log,
            source,
            address,
            insecure_server,
            http_redirect_addr,
            certificates,
            timeout_read,
            timeout_write,
            timeout_idle,
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

    /// Envoy's connection manager options, read as Pomerium reads enum
    /// values (any case, with or without the enum's common prefix).
    fn request_rules(&mut self, opts: &Options) -> RequestRules {
        let mut rules = RequestRules {
            merge_slashes: opts.merge_slashes.unwrap_or(true),
            xff_num_trusted_hops: opts.xff_num_trusted_hops.as_ref().map_or(0, |v| v.value),
            skip_xff_append: opts.skip_xff_append.unwrap_or(false),
            ..RequestRules::default()
        };
        if let Some(v) = &opts.normalize_path {
            if !v.value {
                self.error(
                    &v.mark,
                    "normalize_path: false is not supported: gatehouse always resolves `.` and `..` segments, or a policy on a path could be walked around",
                );
            }
        }
        if let Some(v) = &opts.xff_num_trusted_hops {
            if v.value > 16 {
                self.error(&v.mark, "xff_num_trusted_hops must be at most 16");
            }
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
    fn access_log_fields(
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
                None if name.trim() == "client-certificate" || name.trim() == "cluster-stat-name" => {
                    self.warn(&v.mark, format!("access_log_fields: `{name}` is not logged by gatehouse"));
                }
                None => self.warn(
                    &v.mark,
                    format!("access_log_fields: unknown field `{name}` (authority, duration, forwarded-for, ip, method, path, query, referer, request-id, response-code, response-code-details, size, upstream-cluster, user-agent, upstream, user, email, headers.<Name>)"),
                ),
            }
        }
        fields
    }

    /// A list of IP addresses and CIDR blocks (`10.0.0.0/8`, `::1`).
    fn ip_nets(&mut self, v: Option<&Spanned<crate::model::StringList>>) -> Vec<ipnet::IpNet> {
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

    fn secret(&mut self, v: &Option<Spanned<String>>, what: &str) -> Option<[u8; 32]> {
        let v = v.as_ref()?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v.value.trim())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.value.trim()));
        match raw.ok().and_then(|r| <[u8; 32]>::try_from(r).ok()) {
            Some(k) => Some(k),
            None => {
                self.error(&v.mark, format!("{what} must be base64 of 32 random bytes (e.g. `head -c32 /dev/urandom | base64`)"));
                None
            }
        }
    }

    fn sign_in(&mut self, opts: &Options) -> SignIn {
        let provider = match opts
            .idp_provider
            .as_ref()
            .map(|p| (p.value.to_ascii_lowercase(), p.mark.clone()))
        {
            None => {
                if let Some(u) = opts.local_users.as_ref().and_then(|u| u.first()) {
                    self.warn(
                        &u.mark,
                        "local_users are ignored unless `idp_provider: local` is set",
                    );
                }
                Provider::None
            }
            Some((p, mark)) if p == "local" => {
                let mut users: Vec<crate::model::LocalUser> = opts
                    .local_users
                    .iter()
                    .flatten()
                    .map(|u| u.value.clone())
                    .collect();
                for u in opts.local_users.iter().flatten() {
                    self.check_local_user(&u.value, &u.mark);
                }
                if let Some(file) = &opts.local_users_file {
                    users.extend(self.local_users_file(file));
                }
                if users.is_empty() {
                    self.error(&mark, "`idp_provider: local` needs users: set `local_users` or `local_users_file`");
                }
                Provider::Local(users)
            }
            Some((p, mark))
                if matches!(
                    p.as_str(),
                    "oidc" | "google" | "azure" | "okta" | "auth0" | "gitlab" | "cognito"
                ) =>
            {
                // Named providers are OpenID Connect with Pomerium's defaults.
                let default_issuer = match p.as_str() {
                    "google" => Some("https://accounts.google.com"),
                    "gitlab" => Some("https://gitlab.com"),
                    _ => None,
                };
                let mut need =
                    |v: &Option<Spanned<String>>, key: &str, default: Option<&str>| match v {
                        Some(v) if !v.value.trim().is_empty() => v.value.trim().to_string(),
                        _ => match default {
                            Some(d) => d.to_string(),
                            None => {
                                self.error(&mark, format!("`idp_provider: {p}` needs `{key}`"));
                                String::new()
                            }
                        },
                    };
                let issuer = need(&opts.idp_provider_url, "idp_provider_url", default_issuer);
                let client_id = need(&opts.idp_client_id, "idp_client_id", None);
                let client_secret = need(
                    &opts.idp_client_secret,
                    "idp_client_secret (or idp_client_secret_file)",
                    None,
                );
                if let Some(u) = &opts.idp_provider_url {
                    if url::Url::parse(u.value.trim())
                        .map(|u| !matches!(u.scheme(), "https" | "http"))
                        .unwrap_or(true)
                    {
                        self.error(
                            &u.mark,
                            format!("idp_provider_url `{}` must be an http(s) URL", u.value),
                        );
                    }
                }
                let default_scopes: &[&str] = match p.as_str() {
                    // Google refuses offline_access; it uses access_type=offline instead.
                    "google" => &["openid", "profile", "email"],
                    _ => &["openid", "profile", "email", "offline_access"],
                };
                let scopes = opts
                    .idp_scopes
                    .as_ref()
                    .map(|s| s.value.0.clone())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| default_scopes.iter().map(|s| s.to_string()).collect());
                let mut request_params: Vec<(String, String)> = opts
                    .idp_request_params
                    .as_ref()
                    .map(|m| m.value.0.clone())
                    .unwrap_or_default();
                if p == "google" {
                    for (k, v) in [
                        ("access_type", "offline"),
                        ("prompt", "select_account consent"),
                    ] {
                        if !request_params.iter().any(|(n, _)| n == k) {
                            request_params.push((k.to_string(), v.to_string()));
                        }
                    }
                }
                Provider::Oidc(OidcProvider {
                    name: p,
                    issuer,
                    client_id,
                    client_secret,
                    scopes,
                    request_params,
                })
            }
            Some((p, mark)) if p == "github" => {
                let mut need = |v: &Option<Spanned<String>>, key: &str| match v {
                    Some(v) if !v.value.trim().is_empty() => v.value.trim().to_string(),
                    _ => {
                        self.error(&mark, format!("`idp_provider: github` needs `{key}`"));
                        String::new()
                    }
                };
                let client_id = need(&opts.idp_client_id, "idp_client_id");
                let client_secret = need(
                    &opts.idp_client_secret,
                    "idp_client_secret (or idp_client_secret_file)",
                );
                let scopes = opts
                    .idp_scopes
                    .as_ref()
                    .map(|s| s.value.0.clone())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| vec!["user:email".into(), "read:org".into()]);
                Provider::GitHub(GitHubProvider {
                    url: opts
                        .idp_provider_url
                        .as_ref()
                        .map(|u| u.value.trim().to_string()),
                    client_id,
                    client_secret,
                    scopes,
                })
            }
            Some((p, mark)) => {
                const KNOWN: &[&str] = &[
                    "oidc", "google", "azure", "okta", "auth0", "gitlab", "cognito", "github",
                    "apple", "onelogin", "ping", "hosted",
                ];
                if !KNOWN.contains(&p.as_str()) {
                    self.error(&mark, format!("unknown idp_provider `{p}` (local, oidc, google, azure, okta, auth0, gitlab, cognito, github, ...)"));
                }
                Provider::NotYetSupported(p)
            }
        };
        let authenticate = opts.authenticate_service_url.as_ref().and_then(|u| {
            let from = self.from(u)?;
            match from.host {
                HostPattern::Exact(host) => Some(AuthenticateUrl {
                    https: from.https,
                    host,
                    port: from.port,
                }),
                HostPattern::Wildcard(_) => {
                    self.error(
                        &u.mark,
                        "authenticate_service_url cannot be a wildcard host",
                    );
                    None
                }
            }
        });
        let same_site = self.same_site(opts.cookie_same_site.as_ref());
        let name = opts
            .cookie_name
            .as_ref()
            .map(|n| n.value.clone())
            .unwrap_or_else(|| "_pomerium".into());
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            || name.is_empty()
        {
            let mark = opts
                .cookie_name
                .as_ref()
                .map(|n| n.mark.clone())
                .unwrap_or(self.file_mark.clone());
            self.error(
                &mark,
                format!("cookie_name `{name}` may only use letters, digits, `-`, `_` and `.`"),
            );
        }
        let throttle = LoginThrottle {
            failures: opts
                .login_throttle_failures
                .as_ref()
                .map_or(5, |f| f.value.max(1) as usize),
            window: dur(&opts.login_throttle_window).unwrap_or(Duration::from_secs(120)),
            lockout: dur(&opts.login_throttle_lockout).unwrap_or(Duration::from_secs(300)),
        };
        SignIn {
            provider,
            authenticate,
            cookie: CookieSettings {
                name,
                expire: dur(&opts.cookie_expire)
                    .filter(|d| !d.is_zero())
                    .unwrap_or(Duration::from_secs(14 * 3600)),
                domain: opts
                    .cookie_domain
                    .as_ref()
                    .map(|d| d.value.trim_start_matches('.').to_ascii_lowercase())
                    .filter(|d| !d.is_empty()),
                http_only: opts.cookie_http_only.unwrap_or(true),
                same_site,
            },
            cookie_secret: self.secret(&opts.cookie_secret, "cookie_secret"),
            shared_secret: self.secret(&opts.shared_secret, "shared_secret"),
            signout_redirect_url: opts.signout_redirect_url.as_ref().map(|u| u.value.clone()),
            storage: self.storage(opts),
            throttle,
        }
    }

    /// `databroker_storage_*`, checked here so a typo names its line.
    fn storage(&mut self, opts: &crate::model::Options) -> Storage {
        let connection = opts.databroker_storage_connection_string.as_ref();
        let kind = match &opts.databroker_storage_type {
            None => StorageKind::Memory,
            Some(t) => match t.value.to_ascii_lowercase().as_str() {
                "" | "memory" => StorageKind::Memory,
                "file" => {
                    let path = connection
                        .map(|c| c.value.strip_prefix("file://").unwrap_or(&c.value))
                        .filter(|p| !p.is_empty())
                        .unwrap_or("gatehouse-sessions.redb");
                    StorageKind::File(self.resolve(path))
                }
                "redis" => match connection {
                    None => {
                        self.error(
                            &t.mark,
                            "databroker_storage_type redis needs databroker_storage_connection_string (redis://host:6379/0, rediss://… for TLS)",
                        );
                        StorageKind::Memory
                    }
                    Some(c) => {
                        if let Err(why) = check_redis_url(&c.value) {
                            self.error(
                                &c.mark,
                                format!("databroker_storage_connection_string: {why}"),
                            );
                        }
                        StorageKind::Redis(c.value.clone())
                    }
                },
                "postgres" => {
                    self.error(
                        &t.mark,
                        "databroker_storage_type postgres is not supported by gatehouse: use redis to share sessions between instances, or file for one instance",
                    );
                    StorageKind::Memory
                }
                other => {
                    self.error(
                        &t.mark,
                        format!(
                            "unknown databroker_storage_type `{other}` (memory, file or redis)"
                        ),
                    );
                    StorageKind::Memory
                }
            },
        };
        let redis = matches!(kind, StorageKind::Redis(_));
        let pem = |c: &mut Self, v: &Option<Spanned<String>>, what: &str| {
            let v = v.as_ref()?;
            if !redis {
                c.warn(
                    &v.mark,
                    format!("{what} only applies to databroker_storage_type redis"),
                );
                return None;
            }
            c.read_file(v, what)
        };
        let ca_pem = pem(
            self,
            &opts.databroker_storage_ca_file,
            "databroker_storage_ca_file",
        );
        let cert = pem(
            self,
            &opts.databroker_storage_cert_file,
            "databroker_storage_cert_file",
        );
        let key = pem(
            self,
            &opts.databroker_storage_key_file,
            "databroker_storage_key_file",
        );
        match (
            &opts.databroker_storage_cert_file,
            &opts.databroker_storage_key_file,
        ) {
            (Some(one), None) | (None, Some(one)) => self.error(
                &one.mark,
                "databroker_storage_cert_file and databroker_storage_key_file go together",
            ),
            _ => {}
        }
        let client_pem = cert.zip(key);
        Storage {
            kind,
            ca_pem,
            client_pem,
            outage_grace: dur(&opts.databroker_storage_outage_grace)
                .unwrap_or(Duration::from_secs(300)),
        }
    }

    fn check_local_user(&mut self, u: &crate::model::LocalUser, mark: &Mark) {
        if u.username.trim().is_empty() {
            self.error(mark, "a local user needs a `username`");
        }
        if !u.password_hash.starts_with("$argon2id$") {
            self.error(
                mark,
                format!(
                    "user `{}`: password_hash must be an argon2id PHC string (`$argon2id$...`); make one with `gatehouse hash-password`",
                    u.username
                ),
            );
        }
    }

    /// `local_users_file`: a YAML/JSON list of users, or `{users: [...]}`.
    fn local_users_file(&mut self, file: &Spanned<String>) -> Vec<crate::model::LocalUser> {
        let Some(bytes) = self.read_file(file, "local_users_file") else {
            return Vec::new();
        };
        let origin = self.resolve(&file.value).display().to_string();
        let text = String::from_utf8_lossy(&bytes);
        let node = match crate::yaml::parse(&text, &origin) {
            Ok(n) => n,
            Err(e) => {
                self.diags.push(Diagnostic::error(e.mark, e.message));
                return Vec::new();
            }
        };
        let list = node.get("users").cloned().unwrap_or(node);
        let ctx = crate::de::Context::default();
        let users: Vec<Spanned<crate::model::LocalUser>> = match crate::de::from_node(&list, &ctx) {
            Ok(u) => u,
            Err(e) => {
                self.diags.push(Diagnostic::error(
                    e.mark.unwrap_or(file.mark.clone()),
                    e.message,
                ));
                return Vec::new();
            }
        };
        for (key, mark) in ctx.unknown_keys.into_inner() {
            self.warn(&mark, format!("unknown user option `{key}` (ignored)"));
        }
        for u in &users {
            self.check_local_user(&u.value, &u.mark);
        }
        users.into_iter().map(|u| u.value).collect()
    }

    /// `:443` → `0.0.0.0:443`; `localhost:8443` stays as written.
    fn listen_address(&mut self, addr: &str, mark: Option<&Mark>) -> String {
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

    fn certificates(&mut self, opts: &Options) -> Vec<Certificate> {
        let mut out = Vec::new();
        let file_mark = self.file_mark.clone();
        if opts.certificate.is_some() || opts.certificate_file.is_some() {
            let fallback = opts
                .certificate
                .as_ref()
                .or(opts.certificate_file.as_ref())
                .map(|c| c.mark.clone())
                .unwrap_or(file_mark.clone());
            if let Some(c) = self.cert_pair(
                (&opts.certificate, &opts.certificate_file),
                (&opts.certificate_key, &opts.certificate_key_file),
                "server",
                &fallback,
                false,
            ) {
                out.push(c);
            }
        } else if let Some(k) = opts
            .certificate_key
            .as_ref()
            .or(opts.certificate_key_file.as_ref())
        {
            self.error(
                &k.mark,
                "certificate key given without `certificate` or `certificate_file`",
            );
        }
        for entry in opts.certificates.iter().flatten() {
            if let Some(c) = self.cert_pair(
                (&entry.value.cert, &None),
                (&entry.value.key, &None),
                "certificates entry",
                &entry.mark,
                true,
            ) {
                out.push(c);
            }
        }
        out
    }

    /// Keys Pomerium removed are errors there too; features not built yet
    /// fail loudly rather than being silently ignored.
    fn removed_and_unsupported(&mut self, opts: &Options) {
        if let Some(t) = &opts.codec_type {
            if !matches!(t.value.as_str(), "auto" | "http1" | "http2" | "") {
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

    /// The console as a route of its own: its host, its policy, and
    /// gatehouse answering.
    fn console_route(
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

    fn route(
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
        let before = self.diags.iter().filter(|d| d.is_error()).count();
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

        let authorization = self.authorization(o);

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

        if let Some(lb) = &o.load_balancing_policy {
            if !matches!(lb.value.as_str(), "" | "round_robin") {
                self.warn(
                    &lb.mark,
                    format!(
                        "load_balancing_policy `{}` is not supported yet; using round_robin",
                        lb.value
                    ),
                );
            }
        }
        if o.allow_spdy == Some(true) {
            self.warn(
                &r.mark,
                "allow_spdy is not supported; SPDY upgrades are refused",
            );
        }

        let after = self.diags.iter().filter(|d| d.is_error()).count();
        if after > before {
            return None;
        }
        Some(Route {
            index,
            name: o.name.as_ref().map(|n| n.value.clone()),
            mark: from_opt.mark.clone(),
            from: from?,
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

    /// `cookie_same_site`: lax, strict, none, or empty (no attribute).
    fn same_site(&mut self, v: Option<&Spanned<String>>) -> Option<SameSite> {
        let v = v?;
        match v.value.to_ascii_lowercase().as_str() {
            "" => None,
            "lax" => Some(SameSite::Lax),
            "strict" => Some(SameSite::Strict),
            "none" => Some(SameSite::None),
            other => {
                self.error(
                    &v.mark,
                    format!("cookie_same_site `{other}` must be lax, strict or none"),
                );
                None
            }
        }
    }

    /// `identity_providers`: name → `{issuer, jwks_url, audiences, supported_algs}`.
    fn identity_providers(&mut self, node: Option<&crate::de::RawNode>) -> Vec<TrustedIssuer> {
        let Some(node) = node.map(|n| &n.0) else {
            return Vec::new();
        };
        if node.is_null() {
            return Vec::new();
        }
        let Value::Map(entries) = &node.value else {
            self.error(
                &node.mark,
                "identity_providers must be a mapping of name to {issuer, jwks_url, audiences, supported_algs}",
            );
            return Vec::new();
        };
        let mut out: Vec<TrustedIssuer> = Vec::new();
        for (k, v) in entries {
            let name = k.as_str().unwrap_or_default().to_string();
            let Value::Map(fields) = &v.value else {
                self.error(
                    &v.mark,
                    format!("identity_providers.{name} must be a mapping with at least `issuer`"),
                );
                continue;
            };
            let mut p = TrustedIssuer {
                name: name.clone(),
                issuer: String::new(),
                jwks_url: None,
                audiences: Vec::new(),
                supported_algs: vec!["RS256".into(), "ES256".into(), "EdDSA".into()],
            };
            let strings = |n: &Node| -> Vec<String> {
                match &n.value {
                    Value::Seq(items) => items
                        .iter()
                        .filter_map(|i| i.as_str().map(|s| s.trim().to_string()))
                        .collect(),
                    _ => n
                        .as_str()
                        .map(|s| {
                            s.split(',')
                                .map(|x| x.trim().to_string())
                                .filter(|x| !x.is_empty())
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            };
            for (fk, fv) in fields {
                match fk.as_str().unwrap_or_default() {
                    "issuer" => p.issuer = fv.as_str().unwrap_or_default().trim().to_string(),
                    "jwks_url" | "jwks_uri" => {
                        let url = fv.as_str().unwrap_or_default().trim().to_string();
                        match url::Url::parse(&url) {
                            Ok(u) if matches!(u.scheme(), "https" | "http") => {
                                p.jwks_url = Some(url)
                            }
                            _ => self.error(
                                &fv.mark,
                                format!("identity_providers.{name}.jwks_url `{url}` must be an http(s) URL"),
                            ),
                        }
                    }
                    "audiences" | "audience" => p.audiences = strings(fv),
                    "supported_algs" => {
                        let algs = strings(fv);
                        for a in &algs {
                            if a.to_ascii_uppercase().starts_with("HS")
                                || a.eq_ignore_ascii_case("none")
                            {
                                self.error(
                                    &fv.mark,
                                    format!("identity_providers.{name}.supported_algs: `{a}` is never accepted (symmetric or unsigned tokens could be forged by anyone holding the secret)"),
                                );
                            } else if !matches!(
                                a.as_str(),
                                "RS256"
                                    | "RS384"
                                    | "RS512"
                                    | "PS256"
                                    | "PS384"
                                    | "PS512"
                                    | "ES256"
                                    | "ES384"
                                    | "EdDSA"
                            ) {
                                self.error(
                                    &fv.mark,
                                    format!("identity_providers.{name}.supported_algs: unknown algorithm `{a}` (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"),
                                );
                            }
                        }
                        if algs.is_empty() {
                            self.error(
                                &fv.mark,
                                format!("identity_providers.{name}.supported_algs is empty"),
                            );
                        }
                        p.supported_algs = algs;
                    }
                    other => self.warn(
                        &fk.mark,
                        format!("unknown identity_providers.{name} option `{other}` (ignored)"),
                    ),
                }
            }
            if p.issuer.is_empty() {
                self.error(
                    &v.mark,
                    format!(
                        "identity_providers.{name} needs `issuer` (the exact `iss` of its tokens)"
                    ),
                );
                continue;
            }
            if p.issuer.starts_with("kubernetes://") {
                self.error(&v.mark, format!("identity_providers.{name}: kubernetes issuers are not supported; give the issuer URL and jwks_url"));
                continue;
            }
            if p.jwks_url.is_none()
                && url::Url::parse(&p.issuer)
                    .map_or(true, |u| !matches!(u.scheme(), "https" | "http"))
            {
                self.error(&v.mark, format!("identity_providers.{name}: issuer `{}` is not a URL, so its keys cannot be discovered: set jwks_url", p.issuer));
                continue;
            }
            if p.audiences.is_empty() {
                self.warn(&v.mark, format!("identity_providers.{name} has no audiences: tokens this issuer made for any other application are accepted too; list yours in `audiences`"));
            }
            if let Some(dup) = out.iter().find(|o| o.issuer == p.issuer) {
                self.error(&v.mark, format!("identity_providers.{name} has the same issuer as `{}`: tokens are matched to a provider by `iss`, so each issuer may appear once", dup.name));
                continue;
            }
            out.push(p);
        }
        out
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

    fn from(&mut self, from: &Spanned<String>) -> Option<From> {
        let raw = from.value.trim();
        let Some((scheme, rest)) = raw.split_once("://") else {
            self.error(
                &from.mark,
                format!("invalid `from` URL `{raw}`: expected `https://host`"),
            );
            return None;
        };
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => {
                self.warn(
                    &from.mark,
                    format!("`from` uses http: `{raw}`; traffic to this route is not encrypted"),
                );
                false
            }
            "tcp+https" | "udp+https" | "ssh" => {
                self.error(
                    &from.mark,
                    format!("`from` scheme `{scheme}` is not supported yet (HTTP routes only)"),
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
        Some(From { https, host, port })
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

    fn regex(&mut self, r: &Spanned<String>, what: &str) -> Option<Regex> {
        match Regex::new(&r.value) {
            Ok(rx) => Some(rx),
            Err(e) => {
                self.error(&r.mark, format!("invalid {what}: {e}"));
                None
            }
        }
    }

    fn upstreams(&mut self, to: &Spanned<crate::model::StringList>) -> Option<Vec<UpstreamTarget>> {
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

    fn redirect(&mut self, node: &Node) -> Option<Redirect> {
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

    fn response(&mut self, node: &Node) -> Option<RouteAction> {
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

    fn host_header(&mut self, o: &RouteOptions) -> HostHeader {
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

    fn upstream_tls(&mut self, o: &RouteOptions) -> UpstreamTls {
        let mut tls = UpstreamTls {
            skip_verify: o.tls_skip_verify.unwrap_or(false),
            server_name: o
                .tls_upstream_server_name
                .as_ref()
                .or(o.tls_server_name.as_ref())
                .map(|s| s.value.clone()),
            ..UpstreamTls::default()
        };
        let ca_pem = match (&o.tls_custom_ca, &o.tls_custom_ca_file) {
            (Some(v), _) => self
                .pem_value(v, "tls_custom_ca", false)
                .map(|p| (p, v.mark.clone())),
            (None, Some(f)) => self
                .read_file(f, "tls_custom_ca")
                .map(|p| (p, f.mark.clone())),
            (None, None) => None,
        };
        if let Some((pem, mark)) = ca_pem {
            if let Some(certs) = self.certs(&pem, &mark, "tls_custom_ca") {
                tls.custom_ca = certs;
            }
        }
        let any_client = o.tls_client_cert.is_some()
            || o.tls_client_cert_file.is_some()
            || o.tls_client_key.is_some()
            || o.tls_client_key_file.is_some();
        if any_client {
            let mark = [
                &o.tls_client_cert,
                &o.tls_client_cert_file,
                &o.tls_client_key,
                &o.tls_client_key_file,
            ]
            .into_iter()
            .flatten()
            .map(|s| s.mark.clone())
            .next()
            .unwrap_or(self.file_mark.clone());
            tls.client_cert = self.cert_pair(
                (&o.tls_client_cert, &o.tls_client_cert_file),
                (&o.tls_client_key, &o.tls_client_key_file),
                "tls_client_cert",
                &mark,
                false,
            );
        }
        tls
    }

    fn template(&mut self, value: &str, mark: &Mark) -> Option<HeaderTemplate> {
        match parse_template(value) {
            Ok(parts) => Some(HeaderTemplate { parts }),
            Err(e) => {
                self.error(mark, e);
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
}

fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        if let Some(end) = authority.find(']') {
            let (host, rest) = authority.split_at(end + 1);
            return (host, rest.strip_prefix(':'));
        }
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    }
}

/// Parses one `to` entry: `scheme://host[:port][/path][,weight]`.
pub fn parse_upstream(entry: &str) -> Result<UpstreamTarget, String> {
    let entry = entry.trim();
    let (url_text, weight) = match entry.rsplit_once(',') {
        Some((u, w)) => {
            let w: u32 = w.trim().parse().map_err(|_| {
                format!("invalid weight `{w}` in `to` entry `{entry}`: expected a positive integer")
            })?;
            if w == 0 {
                return Err(format!(
                    "weight 0 in `to` entry `{entry}`: weights must be at least 1"
                ));
            }
            (u.trim(), w)
        }
        None => (entry, 1),
    };
    let url =
        url::Url::parse(url_text).map_err(|e| format!("invalid `to` URL `{url_text}`: {e}"))?;
    let (scheme, default_port) = match url.scheme() {
        "http" => (UpstreamScheme::Http, 80),
        "https" => (UpstreamScheme::Https, 443),
        "h2c" => (UpstreamScheme::H2c, 80),
        s @ ("tcp" | "udp" | "unix") => {
            return Err(format!(
                "`to` scheme `{s}` is not supported yet (HTTP upstreams only)"
            ));
        }
        other => {
            return Err(format!(
                "unknown `to` scheme `{other}` in `{url_text}` (expected http, https or h2c)"
            ));
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("`to` URL `{url_text}` has no host"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`to` URL `{url_text}` must not have a query or fragment"
        ));
    }
    if !url.username().is_empty() {
        return Err(format!(
            "`to` URL `{url_text}` must not contain user information"
        ));
    }
    let port = url.port().unwrap_or(default_port);
    let authority = format!("{host}:{port}")
        .parse()
        .map_err(|_| format!("invalid host in `to` URL `{url_text}`"))?;
    Ok(UpstreamTarget {
        scheme,
        authority,
        url: url_text.to_string(),
        weight,
    })
}

/// Envoy/RE2 substitutions use `\1`; the regex crate uses `${1}`.
fn go_substitution(sub: &str) -> String {
    let mut out = String::with_capacity(sub.len());
    let mut chars = sub.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|n| n.is_ascii_digit()) => {
                let mut n = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    n.push(d);
                    chars.next();
                }
                out.push_str(&format!("${{{n}}}"));
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// Parses a `set_request_headers` value: `${pomerium.…}` parts and `$$`.
pub fn parse_template(value: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$$") {
            lit.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            let end = r
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in header template `{value}`"))?;
            let expr = r[..end].trim();
            let part = match expr {
                "pomerium.access_token" => TemplatePart::AccessToken,
                "pomerium.id_token" => TemplatePart::IdToken,
                "pomerium.jwt" => TemplatePart::Jwt,
                "pomerium.client_cert_fingerprint" => TemplatePart::ClientCertFingerprint,
                e => {
                    let header = e
                        .strip_prefix("pomerium.request.headers[")
                        .and_then(|h| h.strip_suffix(']'))
                        .map(|h| h.trim().trim_matches(|c| c == '"' || c == '\''));
                    match header.map(|h| HeaderName::from_bytes(h.as_bytes())) {
                        Some(Ok(h)) => TemplatePart::RequestHeader(h),
                        _ => {
                            return Err(format!(
                                "unknown template variable `${{{e}}}` in `{value}`"
                            ));
                        }
                    }
                }
            };
            if !lit.is_empty() {
                parts.push(TemplatePart::Literal(std::mem::take(&mut lit)));
            }
            parts.push(part);
            rest = &r[end + 1..];
        } else {
            lit.push('$');
            rest = &rest[1..];
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(TemplatePart::Literal(lit));
    }
    Ok(parts)
}

/// A Redis connection string gatehouse can use: `redis://`, `rediss://`
/// (TLS), `redis+unix://` or `unix://` (socket), with a host for TCP.
fn check_redis_url(s: &str) -> Result<(), String> {
    // Never echo the string: it may hold a password.
    let u =
        url::Url::parse(s).map_err(|e| format!("not a URL ({e}); write redis://host:6379/0"))?;
    match u.scheme() {
        "redis" | "rediss" => {
            if u.host_str().is_none_or(str::is_empty) {
                return Err("the Redis URL has no host (redis://host:6379/0)".into());
            }
            let db = u.path().trim_start_matches('/');
            if !db.is_empty() && db.parse::<u32>().is_err() {
                return Err(format!(
                    "`/{db}` is not a database number (redis://host:6379/0)"
                ));
            }
            Ok(())
        }
        "redis+unix" | "unix" => Ok(()),
        other => Err(format!(
            "scheme `{other}` is not supported: use redis://, rediss:// (TLS) or unix://"
        )),
    }
}

/// A protobuf enum value as Pomerium's config decoder accepts it: any case,
/// the full name or the name without the enum's common prefix, or a unique
/// suffix after `_`; empty means the enum's zero value (`None` in `names`).
/// `None` when nothing matches.
fn pomerium_enum<T: Copy>(
    value: &str,
    prefix: &str,
    names: &[(&str, Option<T>)],
) -> Option<Option<T>> {
    let v = value.trim().to_ascii_lowercase();
    if v.is_empty() {
        return Some(None);
    }
    let short = v.strip_prefix(prefix).unwrap_or(&v);
    if let Some((_, choice)) = names.iter().find(|(n, _)| *n == short) {
        return Some(*choice);
    }
    let mut suffixed = names
        .iter()
        .filter(|(n, _)| n.ends_with(&format!("_{short}")));
    match (suffixed.next(), suffixed.next()) {
        (Some((_, choice)), None) => Some(*choice),
        _ => None,
    }
}

//! Sign-in: the identity provider, the session cookie and secrets, session
//! storage, local users, and the issuers trusted for bearer tokens.

use std::time::Duration;

use base64::Engine;

use super::parse::check_redis_url;
use super::{Compiler, dur};
use crate::compiled::{
    AuthenticateUrl, CookieSettings, GitHubProvider, HostPattern, LoginThrottle, OidcProvider,
    Provider, SameSite, SignIn, Storage, StorageKind, TrustedIssuer,
};
use crate::de::Spanned;
use crate::diagnostic::Diagnostic;
use crate::model::Options;
use crate::yaml::{Mark, Node, Value};

impl Compiler<'_> {
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

    pub(super) fn sign_in(&mut self, opts: &Options) -> SignIn {
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
                            // An unreadable `*_file` is reported already.
                            None if self.unreadable_secrets.iter().any(|k| k == key) => {
                                String::new()
                            }
                            None => {
                                self.error(
                                    &mark,
                                    format!("`idp_provider: {p}` needs {}", secret_key(key)),
                                );
                                String::new()
                            }
                        },
                    };
                let issuer = need(&opts.idp_provider_url, "idp_provider_url", default_issuer);
                let client_id = need(&opts.idp_client_id, "idp_client_id", None);
                let client_secret = need(&opts.idp_client_secret, "idp_client_secret", None);
                if let Some(u) = &opts.idp_provider_url
                    && url::Url::parse(u.value.trim())
                        .map(|u| !matches!(u.scheme(), "https" | "http"))
                        .unwrap_or(true)
                {
                    self.error(
                        &u.mark,
                        format!("idp_provider_url `{}` must be an http(s) URL", u.value),
                    );
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
                    _ if self.unreadable_secrets.iter().any(|k| k == key) => String::new(),
                    _ => {
                        self.error(
                            &mark,
                            format!("`idp_provider: github` needs {}", secret_key(key)),
                        );
                        String::new()
                    }
                };
                let client_id = need(&opts.idp_client_id, "idp_client_id");
                let client_secret = need(&opts.idp_client_secret, "idp_client_secret");
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
        // `true` is what gatehouse does; `false` asks for less and is not done.
        if opts.cookie_secure == Some(false) {
            let mark = self.file_mark.clone();
            self.warn(
                &mark,
                "`cookie_secure: false` is not honoured: cookies are always Secure (browsers reach gatehouse over HTTPS; with `insecure_server`, through a TLS-terminating load balancer)",
            );
        }
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
            route_clients: Vec::new(),
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

    /// `cookie_same_site`: lax, strict, none, or empty (no attribute).
    pub(super) fn same_site(&mut self, v: Option<&Spanned<String>>) -> Option<SameSite> {
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
    pub(super) fn identity_providers(
        &mut self,
        node: Option<&crate::de::RawNode>,
    ) -> Vec<TrustedIssuer> {
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
            // `:` names a route's own client of the sign-in provider
            // (`oidc:<client id>`): a trusted issuer must not look like one.
            if name.contains(':') {
                self.error(
                    &k.mark,
                    format!("identity_providers: the name `{name}` may not contain `:`"),
                );
                continue;
            }
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

    /// Routes' own clients of the OpenID provider (`idp_client_id`,
    /// `idp_client_secret`): each route gets the key of its client; a
    /// route's id or secret alone takes the other from the global client.
    pub(super) fn route_clients(
        &mut self,
        routes: &mut [crate::compiled::Route],
        sign_in: &mut SignIn,
    ) {
        for r in routes.iter_mut() {
            let Some((mark, id, secret)) = r.idp_client_written.take() else {
                continue;
            };
            let Provider::Oidc(global) = &sign_in.provider else {
                self.error(
                    &mark,
                    "a route's own idp_client_id / idp_client_secret needs an OpenID Connect idp_provider (oidc, google, azure, okta, auth0, gitlab, cognito)",
                );
                continue;
            };
            let id = id
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| global.client_id.clone());
            let secret = secret
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| global.client_secret.clone());
            if id == global.client_id {
                if secret != global.client_secret {
                    self.error(
                        &mark,
                        "this route names the global idp_client_id with another secret: give it its own client id, or no secret",
                    );
                }
                // The global client itself.
                continue;
            }
            let key = format!("{}:{id}", global.name);
            match sign_in.route_clients.iter().find(|c| c.key == key) {
                Some(c) if c.client_secret != secret => self.error(
                    &mark,
                    format!("idp_client_id `{id}` has another secret on an earlier route"),
                ),
                Some(_) => {}
                None => sign_in.route_clients.push(crate::compiled::RouteClient {
                    key: key.clone(),
                    client_id: id,
                    client_secret: secret,
                }),
            }
            r.idp_client = Some(key);
        }
    }
}

/// A key as a message names it: a secret with its `*_file` form too.
fn secret_key(key: &str) -> String {
    if crate::load::SECRET_KEYS
        .iter()
        .any(|(k, file)| *k == key && *file)
    {
        format!("`{key}` (or `{key}_file`)")
    } else {
        format!("`{key}`")
    }
}

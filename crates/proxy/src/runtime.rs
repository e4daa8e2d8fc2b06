//! What one configuration becomes when it runs: the route table and, per
//! route, its balancer, pooled clients and prebuilt header values. Replaced
//! whole on reload; requests already running keep the one they started with.

use gatehouse_config::{Config, RouteAction};
use http::HeaderValue;

use crate::balance::Balancer;
use crate::routing::RouteTable;
use crate::upstream::{ClientCache, UpstreamClients};

pub struct Runtime {
    pub config: Config,
    pub auth: crate::authenticate::Auth,
    /// Keys for `X-Pomerium-Jwt-Assertion`, parsed once per configuration.
    pub signing: gatehouse_assertion::SigningKeys,
    /// This configuration's number in the process (assertion cache keys).
    pub generation: u64,
    /// `GATEHOUSE_ASSERTION_CACHE=off` signs every request (benchmarks).
    pub cache_assertions: bool,
    pub table: RouteTable,
    /// Same order as `config.routes`.
    pub routes: Vec<RouteState>,
    /// `access_log_fields`, ready for each request.
    pub access_log: std::sync::Arc<crate::access_log::AccessLog>,
    /// Bearer-token verifiers, when some route accepts bearer tokens.
    pub bearer: Option<crate::bearer::Bearer>,
    /// Header names only gatehouse may write, removed from every request.
    pub owned_headers: crate::identity_headers::OwnedHeaders,
    /// Client certificates (downstream mTLS), when a CA is configured.
    pub client_auth: Option<std::sync::Arc<crate::client_cert::ClientAuth>>,
    /// Request tracing (`otel_*`), when configured.
    pub tracer: Option<crate::trace::Tracer>,
}

pub struct RouteState {
    /// The route's compiled policy (shorthands and PPL).
    pub policy: gatehouse_policy::Policy,
    /// Picks the target; shared with the route's health checks.
    pub balancer: std::sync::Arc<Balancer>,
    pub clients: UpstreamClients,
    /// Per target: its authority as a `Host` value, built once.
    pub target_hosts: Vec<HeaderValue>,
    /// This route's request counters (kept across reloads by label).
    pub metrics: std::sync::Arc<crate::metrics::RouteMetrics>,
    /// `jwt_groups_filter` with the groups inferred from the policy: the
    /// only groups the assertion and group headers carry. `None`: all.
    pub groups_filter: Option<Vec<String>>,
    /// Who judges client certificates here (`None`: no CA applies, any
    /// certificate presented is valid).
    pub client_judge: Option<std::sync::Arc<crate::client_cert::Judge>>,
}

impl RouteState {
    /// A connection's certificate as this route's policy sees it: judged
    /// only where the policy looks at it; without a CA for the route, any
    /// certificate presented is valid (as Pomerium).
    pub fn client_cert<'a>(
        &self,
        cert: Option<&'a crate::client_cert::PeerCert>,
    ) -> gatehouse_policy::ClientCert<'a> {
        match cert {
            Some(cert) if self.policy.uses_client_cert() => {
                gatehouse_policy::ClientCert::Presented {
                    valid: self.client_judge.as_ref().is_none_or(|j| j.valid(cert)),
                    cert: &cert.facts,
                }
            }
            _ => gatehouse_policy::ClientCert::None,
        }
    }

    /// Whether gatehouse vouches for `cert` upstream on this route
    /// (`${pomerium.client_cert_*}`): only when a CA of the route accepts
    /// it, stricter than the policy's view.
    pub fn vouches_for(&self, cert: &crate::client_cert::PeerCert) -> bool {
        self.client_judge.as_ref().is_some_and(|j| j.valid(cert))
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error("route `{route}`: upstream TLS settings rejected: {source}")]
    UpstreamTls {
        route: String,
        source: rustls::Error,
    },
    #[error(transparent)]
    Auth(#[from] crate::authenticate::AuthError),
    #[error("{0}")]
    Bearer(String),
    #[error(transparent)]
    SigningKey(#[from] gatehouse_assertion::KeyError),
    #[error(transparent)]
    ClientCert(#[from] crate::client_cert::ClientCertError),
    /// Every policy mistake, one `FILE:LINE:COL: message` per line.
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Policy(Vec<gatehouse_config::Diagnostic>),
}

/// The state a runtime is built with, which outlives it (owned by the proxy).
pub struct Lasting<'a> {
    pub clients: &'a ClientCache,
    pub identity: &'a crate::authenticate::IdentityState,
    pub metrics: &'a crate::metrics::Metrics,
    pub assertions: &'a gatehouse_assertion::Cache<HeaderValue>,
}

impl Runtime {
    pub fn build(
        config: Config,
        lasting: &Lasting<'_>,
    ) -> Result<(Runtime, Vec<String>), RuntimeError> {
        let Lasting {
            clients,
            identity,
            metrics,
            assertions,
        } = *lasting;
        let mut auth = crate::authenticate::Auth::new(&config.sign_in, identity)?;
        auth.set_route_cookies(&config.routes);
        auth.programmatic_domains = config.programmatic_redirect_domains.clone();
        let bearer = crate::bearer::Bearer::new(&config).map_err(RuntimeError::Bearer)?;
        let signing = match &config.options.signing_key {
            Some(key) => gatehouse_assertion::SigningKeys::from_pem(&key.value)?,
            None => {
                let secret = config
                    .sign_in
                    .shared_secret
                    .unwrap_or_else(|| identity.shared_key());
                tracing::info!(
                    "no signing_key configured: assertions are signed with a key derived from shared_secret"
                );
                gatehouse_assertion::SigningKeys::derive(&secret)
            }
        };
        let compiled =
            gatehouse_policy::compile_routes(&config.routes).map_err(RuntimeError::Policy)?;
        for w in &compiled.warnings {
            tracing::warn!("{w}");
        }
        let client_auth = match &config.client_certs {
            Some(rules) => Some(std::sync::Arc::new(crate::client_cert::ClientAuth::new(
                rules,
            )?)),
            None => None,
        };
        let mut policies = compiled.policies.into_iter();
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut pool_keys = Vec::new();
        for r in &config.routes {
            let targets = match &r.action {
                RouteAction::Forward(t) => t.as_slice(),
                _ => &[],
            };
            let c = clients
                .get(&r.tls)
                .map_err(|source| RuntimeError::UpstreamTls {
                    route: r.label().to_string(),
                    source,
                })?;
            pool_keys.push(r.tls.pool_key());
            let client_judge = match &client_auth {
                Some(a) => a.judge_for(&r.client_ca)?,
                None => None,
            };
            let policy = policies
                .next()
                .unwrap_or_else(gatehouse_policy::Policy::deny_all);
            let balancer = std::sync::Arc::new(Balancer::new(
                &r.label().to_string(),
                targets,
                r.load_balancing,
                r.outlier_detection.clone(),
                !r.health_checks.is_empty(),
            ));
            if !r.health_checks.is_empty() && targets.len() > 1 {
                crate::balance::spawn_health_checks(
                    &balancer,
                    targets,
                    &r.health_checks,
                    c.auto.clone(),
                );
            }
            let groups_filter = r.groups_filter.as_ref().map(|f| {
                let mut groups = f.groups.clone();
                if f.infer_from_ppl {
                    groups.extend(policy.referenced_groups());
                }
                groups.sort();
                groups.dedup();
                groups
            });
            routes.push(RouteState {
                client_judge,
                groups_filter,
                policy,
                metrics: metrics.route(&r.label().to_string()),
                balancer,
                clients: c,
                target_hosts: targets
                    .iter()
                    .map(|t| {
                        // Default ports are left out of Host, as browsers do.
                        let host = match (t.scheme, t.authority.port_u16()) {
                            (gatehouse_config::UpstreamScheme::Https, Some(443))
                            | (gatehouse_config::UpstreamScheme::Http, Some(80))
                            | (gatehouse_config::UpstreamScheme::H2c, Some(80)) => {
                                t.authority.host()
                            }
                            _ => t.authority.as_str(),
                        };
                        HeaderValue::from_str(host)
                            .unwrap_or_else(|_| HeaderValue::from_static("localhost"))
                    })
                    .collect(),
            });
        }
        if !auth.can_sign_in() {
            for (r, state) in config.routes.iter().zip(&routes) {
                if state.policy.uses_subject() {
                    tracing::warn!(route = %r.label(), at = %r.mark, "route's policy needs a signed-in user but no supported idp_provider is configured: its requests get 401");
                }
            }
        }
        let labels: Vec<String> = config
            .routes
            .iter()
            .map(|r| r.label().to_string())
            .collect();
        metrics.retain_routes(&labels);
        let table = RouteTable::new(&config.routes);
        let generation = assertions.next_generation();
        let owned_headers = crate::identity_headers::OwnedHeaders::new(&config);
        let tracer = config
            .tracing
            .as_ref()
            .map(|t| crate::trace::Tracer::new(t, crate::otlp::start(t, metrics.spans.clone())));
        Ok((
            Runtime {
                access_log: std::sync::Arc::new(crate::access_log::AccessLog::new(
                    &config.access_log,
                )),
                config,
                auth,
                signing,
                generation,
                cache_assertions: std::env::var("GATEHOUSE_ASSERTION_CACHE")
                    .map_or(true, |v| v != "off"),
                table,
                routes,
                bearer,
                owned_headers,
                client_auth,
                tracer,
            },
            pool_keys,
        ))
    }
}

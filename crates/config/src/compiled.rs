//! The validated, typed configuration the data plane runs on. Everything the
//! hot path needs is parsed here once (URLs, header names and values,
//! regexes, certificates), never per request.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use regex::Regex;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::model::Options;
use crate::yaml::Mark;

/// A running configuration.
#[derive(Debug)]
pub struct Config {
    /// The file this configuration was loaded from.
    pub source: PathBuf,
    /// Socket address to listen on (`:443` becomes `0.0.0.0:443`).
    pub address: String,
    pub insecure_server: bool,
    pub http_redirect_addr: Option<String>,
    /// Server certificates; empty means a self-signed one is generated
    /// (unless `insecure_server`).
    pub certificates: Vec<Certificate>,
    /// Downstream: time allowed to receive request headers (and the TLS handshake).
    pub timeout_read: Duration,
    /// Downstream: idle keep-alive connections are closed after this.
    pub timeout_idle: Duration,
    /// `timeout_write` (Envoy's `max_stream_duration`): the most one
    /// request may take, from its arrival to its response's last byte.
    /// `None`: no limit (Pomerium's default, so streams may run).
    pub timeout_write: Option<Duration>,
    pub default_upstream_timeout: Duration,
    /// How a request's path, headers and client address are made canonical
    /// before routing.
    pub request: RequestRules,
    /// Peers whose assertion is chained as `X-Pomerium-Jwt-Assertion-For`.
    pub trusted_assertion_sources: Vec<ipnet::IpNet>,
    /// Peers whose forward-auth requests (`X-Original-URL`,
    /// `X-Forwarded-Host`...) are believed: the proxy in front. Default:
    /// loopback.
    pub forward_auth_trusted_sources: Vec<ipnet::IpNet>,
    /// `identity_providers`: issuers whose JWTs routes with
    /// `bearer_token_format: jwt` accept.
    pub identity_providers: Vec<TrustedIssuer>,
    /// `programmatic_redirect_domain_whitelist`: hosts a programmatic login
    /// may return its token to (default `localhost`), as Pomerium matches
    /// them: the exact host name; `localhost` also stands for any loopback
    /// address; `*.example.com` (gatehouse's) for its subdomains.
    pub programmatic_redirect_domains: Vec<String>,
    /// `downstream_mtls` and the routes' `tls_downstream_client_ca`: how
    /// client certificates are asked for and judged. `None` when no CA is
    /// configured anywhere: no certificate is asked for.
    pub client_certs: Option<ClientCertRules>,
    /// `metrics_certificate*` and `metrics_client_ca*`: the metrics
    /// listener serves TLS, and with a CA asks scrapers for certificates.
    pub metrics_tls: Option<MetricsTls>,
    /// `access_log_fields`: what each request's `http-request` line holds.
    pub access_log: Vec<AccessField>,
    /// `authorize_log_fields`: what each `authorize check` line holds.
    pub authorize_log: Vec<AuthorizeField>,
    /// `autocert`: certificates obtained over ACME for the hosts no
    /// configured certificate covers.
    pub autocert: Option<Autocert>,
    /// `otel_*`: where request spans are exported (`None`: tracing off,
    /// `traceparent` passes through untouched).
    pub tracing: Option<Tracing>,
    pub routes: Vec<Route>,
    pub sign_in: SignIn,
    /// `console:`: the console's host (its route is the last of `routes`)
    /// and where its changes are kept.
    pub console: Option<ConsoleSettings>,
    /// Files whose change should trigger a reload (config and referenced files).
    pub watched_files: Vec<PathBuf>,
    /// Everything as written, for options that later layers interpret.
    pub options: Options,
}

impl Config {
    /// The OpenID client a route signs in with: its provider name as
    /// sessions carry it (`oidc`, or a route client's `oidc:<id>`) and the
    /// client id. `None` without an OpenID Connect `idp_provider`.
    pub fn oidc_client_of<'a>(&'a self, route: &'a Route) -> Option<(&'a str, &'a str)> {
        let Provider::Oidc(main) = &self.sign_in.provider else {
            return None;
        };
        match &route.idp_client {
            Some(key) => self
                .sign_in
                .route_clients
                .iter()
                .find(|c| c.key == *key)
                .map(|c| (c.key.as_str(), c.client_id.as_str())),
            None => Some((main.name.as_str(), main.client_id.as_str())),
        }
    }
}

/// `autocert`: certificates from an ACME CA (Let's Encrypt by default).
#[derive(Clone, PartialEq)]
pub struct Autocert {
    /// Where the account and certificates are kept (`autocert_dir`).
    pub dir: PathBuf,
    /// The CA's directory URL (`autocert_ca`, or Let's Encrypt's
    /// production or staging one).
    pub directory_url: String,
    /// `autocert_email`: the account's contact.
    pub email: Option<String>,
    /// `autocert_eab_key_id` and the decoded `autocert_eab_mac_key`.
    pub eab: Option<(String, Vec<u8>)>,
    /// `autocert_trusted_ca(_file)`: CAs trusted for the ACME server's own
    /// TLS, beside the system's.
    pub trusted_ca: Vec<CertificateDer<'static>>,
    /// The hosts to obtain certificates for: every route host and the
    /// authenticate host (the proxy leaves out those a configured
    /// certificate covers).
    pub hosts: Vec<String>,
    /// HTTP-01 can be answered (`http_redirect_addr` is set).
    pub http01: bool,
}

impl fmt::Debug for Autocert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Autocert")
            .field("dir", &self.dir)
            .field("directory_url", &self.directory_url)
            .field("hosts", &self.hosts)
            .field("eab", &self.eab.as_ref().map(|(id, _)| id))
            .finish_non_exhaustive()
    }
}

/// OpenTelemetry tracing (`otel_*`): a span per request with its
/// authorize and upstream phases, exported over OTLP.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracing {
    /// Where spans are sent: the full URL (`…/v1/traces` for
    /// `http/protobuf`; the gRPC service's method path for `grpc`).
    pub endpoint: http::Uri,
    pub protocol: OtlpProtocol,
    /// `otel_exporter_otlp_(traces_)headers`: sent with every export
    /// (often a collector's credentials: never logged or exported).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The most one export may take (default 10s).
    pub timeout: Duration,
    /// `otel_traces_sampler_arg`: the share of new traces sampled (0 to 1,
    /// default 1); a client's `traceparent` decides for its own traces.
    pub sampler_ratio: f64,
    /// `otel_resource_attributes`, after `service.name=gatehouse`.
    pub resource: Vec<(String, String)>,
    /// `otel_attribute_value_length_limit`: text attributes are cut to
    /// this many bytes (64 to 32768, default 256, as Envoy's path tag).
    pub attribute_value_limit: usize,
    /// `otel_bsp_schedule_delay`: how long a span waits for its batch
    /// (default 5s, at least 100ms).
    pub schedule_delay: Duration,
    /// `otel_bsp_max_export_batch_size` (default 512, at most
    /// [`Tracing::QUEUE`]).
    pub max_batch: usize,
}

impl Tracing {
    /// Spans waiting for export; more are dropped (and counted).
    pub const QUEUE: usize = 2048;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf`: `POST …/v1/traces`, `application/x-protobuf`.
    HttpProtobuf,
    /// `grpc`: the OTLP trace service over HTTP/2 (h2c for `http://`).
    Grpc,
}

/// TLS on the metrics listener.
#[derive(Debug, Clone)]
pub struct MetricsTls {
    pub certificate: Certificate,
    /// Scrapers must present a certificate issued by one of these
    /// (empty: none asked for).
    pub client_ca: Vec<CertificateDer<'static>>,
}

/// Client certificates (downstream mTLS), as Pomerium's `downstream_mtls`.
#[derive(Debug, Clone)]
pub struct ClientCertRules {
    /// `downstream_mtls.ca`: the CAs a client certificate must chain to on
    /// routes without a CA of their own; empty: such routes need none.
    pub ca: Vec<CertificateDer<'static>>,
    /// `crl`: revocation lists; a revoked leaf is invalid (only the leaf's
    /// revocation is checked, as Envoy's `only_verify_leaf_cert_crl`).
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    pub enforcement: Enforcement,
    /// `match_subject_alt_names`: a valid certificate has some SAN matching
    /// one of these (none: no SAN is required).
    pub match_subject_alt_names: Vec<SanMatcher>,
    /// `max_verify_depth` (default 1: the leaf is issued by a trusted CA
    /// itself); 0: unlimited.
    pub max_verify_depth: u32,
    /// Every CA of the configuration (global and routes'), for the TLS
    /// handshake: the names offered to clients, and what
    /// `reject_connection` verifies against.
    pub all_cas: Vec<CertificateDer<'static>>,
}

/// `downstream_mtls.enforcement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// Every route denies a missing or invalid certificate (495), whatever
    /// its policy says.
    PolicyWithDefaultDeny,
    /// Only policies that say so (`invalid_client_certificate`,
    /// `client_certificate`) look at certificates.
    Policy,
    /// A missing or invalid certificate fails the TLS handshake; routes
    /// then judge as with `policy_with_default_deny`.
    RejectConnection,
}

/// One `match_subject_alt_names` entry: a SAN type and a pattern the whole
/// name must match.
#[derive(Debug, Clone)]
pub struct SanMatcher {
    pub kind: SanKind,
    pub pattern: Regex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanKind {
    Dns,
    Email,
    Uri,
    IpAddress,
    UserPrincipalName,
}

/// How requests are made canonical before routing: Envoy's HTTP connection
/// manager options, with the defaults Pomerium gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRules {
    /// `merge_slashes` (default true): `a//b` is `a/b`.
    pub merge_slashes: bool,
    /// `path_with_escaped_slashes_action` (default `reject_request`).
    pub escaped_slashes: EscapedSlashes,
    /// `headers_with_underscores_action` (default `reject_request`).
    pub underscore_headers: UnderscoreHeaders,
    /// `xff_num_trusted_hops` (default 0): how many proxies in front are
    /// trusted to append the client to `X-Forwarded-For`.
    pub xff_num_trusted_hops: u32,
    /// `skip_xff_append`: forward `X-Forwarded-For` as received.
    pub skip_xff_append: bool,
}

impl Default for RequestRules {
    fn default() -> Self {
        RequestRules {
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Reject,
            underscore_headers: UnderscoreHeaders::Reject,
            xff_num_trusted_hops: 0,
            skip_xff_append: false,
        }
    }
}

/// What to do with `%2F` and `%5C` (an encoded `/` or `\`) in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// Refuse the request (400).
    Reject,
    /// Keep them encoded; route, policy and upstream see `%2F`. Only safe
    /// when the upstream does not decode them either.
    KeepUnchanged,
    /// Decode them to `/` and answer 307 with the result.
    UnescapeAndRedirect,
    /// Decode them to `/` and serve the result.
    UnescapeAndForward,
}

/// What to do with a request header whose name contains `_`, which CGI,
/// WSGI and PHP read as `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnderscoreHeaders {
    /// Refuse the request (400).
    Reject,
    /// Remove such headers.
    Drop,
    /// Pass them on (identity headers gatehouse owns are still removed in
    /// every spelling).
    Allow,
}

/// The console, when configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// Where it is served.
    pub from: From,
    /// Where console changes are kept.
    pub storage: ConsoleStorage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleStorage {
    /// In the session store (`databroker_storage_type: file` or `redis`).
    Sessions,
    /// In their own embedded database (sessions are in memory).
    File(PathBuf),
}

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct Certificate {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Where it was configured, for log lines.
    pub origin: String,
}

impl Clone for Certificate {
    fn clone(&self) -> Self {
        Certificate {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            origin: self.origin.clone(),
        }
    }
}

/// `jwt_groups_filter`: the groups kept in the assertion (and the group
/// headers), plus, with `infer_from_ppl`, those the route's policy names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupsFilter {
    pub groups: Vec<String>,
    pub infer_from_ppl: bool,
}

/// `load_balancing_policy`: how a route picks among its `to` targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadBalancing {
    /// Weighted round robin (the default).
    #[default]
    RoundRobin,
    /// The fewer requests in flight (of two picked at random, weighted).
    LeastRequest,
    /// Weighted random.
    Random,
    /// Consistent hashing of the client address (the same client reaches
    /// the same target while the set of healthy targets stays the same).
    RingHash,
    Maglev,
}

/// `outlier_detection`: targets that fail in a row are taken out of
/// rotation for a while (passive health checking, as Envoy's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierDetection {
    /// Consecutive 5xx answers (and connection failures) that eject.
    pub consecutive_5xx: u32,
    /// Consecutive 502/503/504 (and connection failures) that eject.
    pub consecutive_gateway_failure: u32,
    /// How long an ejected target stays out, times its ejections so far.
    pub base_ejection_time: Duration,
    /// The longest an ejection lasts (Envoy's default: 300 s), at least
    /// `base_ejection_time`.
    pub max_ejection_time: Duration,
    /// The most targets out at once, in percent (at least one is allowed).
    pub max_ejection_percent: u32,
}

/// One active health check (`health_checks` entry, Envoy's shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub timeout: Duration,
    pub interval: Duration,
    /// Successes in a row that bring a target back.
    pub healthy_threshold: u32,
    /// Failures in a row that take it out.
    pub unhealthy_threshold: u32,
    pub kind: HealthCheckKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// `http_health_check`: a GET of `path` (with `host`), healthy when the
    /// status is in one of the ranges (`[start, end)`; default 200-299).
    Http {
        path: String,
        host: Option<String>,
        expected: Vec<(u16, u16)>,
    },
    /// `tcp_health_check`: a TCP connection opens.
    Tcp,
}

/// One `rewrite_response_headers` rule: in each value of the upstream's
/// `name` header that starts with `prefix` (byte for byte), that prefix is
/// replaced with `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteHeader {
    pub name: HeaderName,
    pub prefix: String,
    pub value: String,
}

#[derive(Debug)]
pub struct Route {
    /// Position in the file's route list (0-based), stable for logs.
    pub index: usize,
    pub name: Option<String>,
    /// `description` and `logo_url`: shown in the routes portal.
    pub description: Option<String>,
    pub logo_url: Option<String>,
    /// Where the route was written.
    pub mark: Mark,
    pub from: From,
    pub path_match: PathMatch,
    /// `regex_priority_order`: among the `regex` routes of one host, higher
    /// is tried first, routes without it last (file order among equals).
    pub regex_priority: Option<i64>,
    pub action: RouteAction,
    pub rewrite: PathRewrite,
    pub host: HostHeader,
    pub allow_websockets: bool,
    /// Time allowed for the upstream to answer with response headers; `None` = unlimited.
    pub timeout: Option<Duration>,
    /// Time a streaming body may stay silent; `None` = unlimited.
    pub idle_timeout: Option<Duration>,
    pub tls: UpstreamTls,
    pub set_request_headers: Vec<(HeaderName, HeaderTemplate)>,
    pub remove_request_headers: Vec<HeaderName>,
    /// Global response headers merged with the route's own.
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
    /// `load_balancing_policy`.
    pub load_balancing: LoadBalancing,
    /// `outlier_detection`: `None` = none (as Envoy without it).
    pub outlier_detection: Option<OutlierDetection>,
    /// `health_checks`: active checks of each target.
    pub health_checks: Vec<HealthCheck>,
    /// `idp_client_id` / `idp_client_secret` on the route: the key of its
    /// own client (`SignIn::route_clients`); `None`: the global one.
    pub idp_client: Option<String>,
    /// What the route wrote (where, client id, client secret), resolved
    /// against the global client into `idp_client` by the compiler.
    #[doc(hidden)]
    pub idp_client_written: Option<(Mark, Option<String>, Option<String>)>,
    /// `jwt_groups_filter` (the global one and the route's, merged): which
    /// groups the assertion and the group headers may carry. `None`: all.
    pub groups_filter: Option<GroupsFilter>,
    /// `tls_downstream_client_ca`: the CAs client certificates must chain
    /// to on this route, instead of `downstream_mtls.ca`.
    pub client_ca: Vec<CertificateDer<'static>>,
    /// Deny a missing or invalid client certificate whatever the policy
    /// says (a CA is configured and the enforcement is not `policy`).
    pub client_cert_default_deny: bool,
    /// `rewrite_response_headers`: prefixes of upstream response header
    /// values replaced, in order.
    pub rewrite_response_headers: Vec<RewriteHeader>,
    pub authorization: Authorization,
    pub show_error_details: bool,
    /// Route value, or the global default.
    pub pass_identity_headers: bool,
    /// `jwt_issuer_format: uri` (route value, or the global one): the
    /// assertion's `iss` is `https://host/` instead of the host.
    pub issuer_uri: bool,
    /// `jwt_claims_headers` (route value, or the global one): header and
    /// the claim it carries. The headers are removed from client requests on
    /// every route; they are set only with `pass_identity_headers`.
    pub claim_headers: Vec<(HeaderName, String)>,
    /// `bearer_token_format` (route value, or the global one).
    pub bearer_token_format: BearerTokenFormat,
    /// `identity_providers` (names): the issuers this route accepts bearer
    /// JWTs from; empty means every configured one.
    pub identity_providers: Vec<String>,
    /// `idp_access_token_allowed_audiences` (route value, or the global one).
    pub idp_access_token_audiences: Vec<String>,
    /// `cookie_same_site` on the route: the SameSite of this host's session
    /// cookie (gatehouse extension; the global value otherwise).
    pub cookie_same_site: Option<SameSite>,
    /// `frame_ancestors` (gatehouse extension): origins allowed to embed this
    /// route in a frame. Replaces `X-Frame-Options` with
    /// `Content-Security-Policy: frame-ancestors ...`.
    pub frame_ancestors: Option<Vec<String>>,
}

/// How a route treats `Authorization: Bearer` (Pomerium's `bearer_token_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BearerTokenFormat {
    /// Passed upstream untouched; never an identity.
    #[default]
    Default,
    /// An access token of the sign-in identity provider (a JWT).
    IdpAccessToken,
    /// An ID token of the sign-in identity provider.
    IdpIdentityToken,
    /// A JWT from one of `identity_providers`.
    Jwt,
}

/// One entry of `identity_providers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    pub name: String,
    /// The exact `iss` its tokens carry.
    pub issuer: String,
    /// Where its keys are; `None`: found by OpenID discovery of `issuer`.
    pub jwks_url: Option<String>,
    /// Accepted `aud` values; empty: any audience (with a load warning).
    pub audiences: Vec<String>,
    /// Accepted algorithms (`RS256`, `ES256`, `EdDSA` by default).
    pub supported_algs: Vec<String>,
}

impl Route {
    /// A human label for logs and pages: the name, else `from` + path.
    /// Borrowed and formatted on demand: logging it per request allocates
    /// nothing.
    pub fn label(&self) -> RouteLabel<'_> {
        RouteLabel(self)
    }

    /// The console route's id, for routes made in the console.
    pub fn console_id(&self) -> Option<&str> {
        match crate::origin::target(&self.mark) {
            Some(crate::origin::Target::Route(id, _)) => Some(id),
            _ => None,
        }
    }
}

/// A route's label for logs and pages (see [`Route::label`]).
pub struct RouteLabel<'a>(&'a Route);

impl fmt::Display for RouteLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.name {
            Some(n) => f.write_str(n),
            None => write!(f, "{}{}", self.0.from, self.0.path_match),
        }
    }
}

/// Who may use a route, as written: the shorthands and the PPL `policy`.
/// The policy crate compiles this into the rules that run; nothing here is
/// a decision.
#[derive(Debug, Clone, Default)]
pub struct Authorization {
    /// `allow_public_unauthenticated_access: true` (where it was written).
    pub public: Option<Mark>,
    /// `allow_any_authenticated_user: true`.
    pub any_authenticated_user: Option<Mark>,
    /// `cors_allow_preflight: true`.
    pub cors_allow_preflight: Option<Mark>,
    pub allowed_users: Option<crate::de::Spanned<Vec<String>>>,
    pub allowed_domains: Option<crate::de::Spanned<Vec<String>>>,
    pub allowed_idp_claims: Option<crate::de::RawNode>,
    pub policy: Option<crate::de::RawNode>,
    /// `sub_policies`, each with its allow lists and PPL.
    pub sub_policies: Vec<SubPolicy>,
}

/// One entry of `sub_policies`.
#[derive(Debug, Clone, Default)]
pub struct SubPolicy {
    pub id: String,
    pub allowed_users: Vec<String>,
    pub allowed_domains: Vec<String>,
    pub allowed_idp_claims: Option<crate::de::RawNode>,
    /// `source_ppl`, parsed (YAML or JSON): rules added to the route's.
    pub ppl: Option<crate::de::RawNode>,
}

impl Authorization {
    /// True when nothing at all was written: the route denies everyone.
    pub fn is_empty(&self) -> bool {
        self.public.is_none()
            && self.any_authenticated_user.is_none()
            && self.cors_allow_preflight.is_none()
            && self.allowed_users.is_none()
            && self.allowed_domains.is_none()
            && self.allowed_idp_claims.is_none()
            && self.policy.is_none()
            && self.sub_policies.is_empty()
    }
}

/// How users sign in and how sessions are kept.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub provider: Provider,
    /// `authenticate_service_url`: the host that runs sign-in for every
    /// route host; `None` means each route host signs users in itself.
    pub authenticate: Option<AuthenticateUrl>,
    pub cookie: CookieSettings,
    /// `cookie_secret` (32 bytes): seals the session cookie.
    pub cookie_secret: Option<[u8; 32]>,
    /// `shared_secret` (32 bytes): seals the hand-off between hosts.
    pub shared_secret: Option<[u8; 32]>,
    pub signout_redirect_url: Option<String>,
    /// `databroker_storage_*`: where sessions and one-time tokens live.
    pub storage: Storage,
    pub throttle: LoginThrottle,
    /// Routes' own clients of the OpenID provider (`idp_client_id` and
    /// `idp_client_secret` on a route), each once.
    pub route_clients: Vec<RouteClient>,
}

/// A route's own client of the global OpenID provider. Sessions it makes
/// carry `key` as their `idp`, and are good only on routes with this
/// client.
#[derive(Clone, PartialEq, Eq)]
pub struct RouteClient {
    /// `<idp_provider>:<client id>`.
    pub key: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for RouteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteClient")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The session store (`databroker_storage_type`). Opened once at start:
/// a reload that changes it applies after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    pub kind: StorageKind,
    /// `databroker_storage_ca_file`: PEM roots for `rediss://`.
    pub ca_pem: Option<Vec<u8>>,
    /// `databroker_storage_cert_file` + `_key_file`: PEM client certificate
    /// and key for mutual TLS.
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// `databroker_storage_outage_grace` (default 5m): how long a session an
    /// instance has seen keeps working while Redis is unreachable.
    pub outage_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageKind {
    /// Sessions end with the process.
    Memory,
    /// An embedded database file (one instance).
    File(std::path::PathBuf),
    /// Redis, shared by every instance: the connection string as written
    /// (`redis://`, `rediss://`, `redis+unix://`, `unix://`); it may hold a
    /// password, so it is never logged — see [`Storage::describe`].
    Redis(String),
}

impl Storage {
    /// The store for messages: no password, no query.
    pub fn describe(&self) -> String {
        match &self.kind {
            StorageKind::Memory => "memory".into(),
            StorageKind::File(p) => format!("file {}", p.display()),
            StorageKind::Redis(url) => match url::Url::parse(url) {
                Ok(u) => format!(
                    "redis {}://{}{}{}",
                    u.scheme(),
                    u.host_str().unwrap_or_default(),
                    u.port().map(|p| format!(":{p}")).unwrap_or_default(),
                    u.path()
                ),
                Err(_) => "redis".into(),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub enum Provider {
    /// No `idp_provider`: only public routes work.
    None,
    /// `idp_provider: local` with its users.
    Local(Vec<crate::model::LocalUser>),
    /// `idp_provider: oidc`: any OpenID Connect provider by discovery.
    Oidc(OidcProvider),
    /// `idp_provider: github`: OAuth2 and GitHub's API (github.com or
    /// Enterprise at `idp_provider_url`).
    GitHub(GitHubProvider),
    /// A provider gatehouse does not implement yet (name kept for messages).
    NotYetSupported(String),
}

#[derive(Clone)]
pub struct OidcProvider {
    pub name: String,
    /// `idp_provider_url`: the issuer.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub request_params: Vec<(String, String)>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct GitHubProvider {
    pub url: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for GitHubProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubProvider")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticateUrl {
    pub https: bool,
    /// Lower-case host name.
    pub host: String,
    pub port: Option<u16>,
}

impl AuthenticateUrl {
    /// `https://host[:port]`
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        match self.port {
            Some(p) => format!("{scheme}://{}:{p}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CookieSettings {
    pub name: String,
    pub expire: Duration,
    pub domain: Option<String>,
    pub http_only: bool,
    /// `None`: no SameSite attribute (browsers treat it as Lax).
    pub same_site: Option<SameSite>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

/// After `failures` wrong passwords within `window` for one user or one
/// address, sign-in waits `lockout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    pub failures: usize,
    pub window: Duration,
    pub lockout: Duration,
}

/// `from`: scheme, host pattern and optional port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct From {
    pub https: bool,
    pub host: HostPattern,
    pub port: Option<u16>,
    /// `tcp+https://host:port`: a TCP tunnel, opened with `CONNECT
    /// host:port` (the port is required, the host exact).
    pub tcp: bool,
}

impl std::fmt::Display for From {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match (self.tcp, self.https) {
            (true, _) => "tcp+https",
            (false, true) => "https",
            (false, false) => "http",
        };
        match (&self.host, self.port) {
            (HostPattern::Exact(h), None) => write!(f, "{scheme}://{h}"),
            (HostPattern::Exact(h), Some(p)) => write!(f, "{scheme}://{h}:{p}"),
            (HostPattern::Wildcard(s), None) => write!(f, "{scheme}://*{s}"),
            (HostPattern::Wildcard(s), Some(p)) => write!(f, "{scheme}://*{s}:{p}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Lower-case host name.
    Exact(String),
    /// `*.example.com` stored as the suffix `.example.com`.
    Wildcard(String),
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    Any,
    Prefix(String),
    Exact(String),
    Regex(Regex),
}

impl PartialEq for PathMatch {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl PathMatch {
    /// The kind and text of this match, what `==` compares: a key for a set
    /// (the compiled regex itself cannot be one).
    pub(crate) fn key(&self) -> (u8, &str) {
        match self {
            PathMatch::Any => (0, ""),
            PathMatch::Prefix(s) => (1, s),
            PathMatch::Exact(s) => (2, s),
            PathMatch::Regex(r) => (3, r.as_str()),
        }
    }
}

impl std::fmt::Display for PathMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathMatch::Any => Ok(()),
            PathMatch::Prefix(p) => write!(f, " prefix {p}"),
            PathMatch::Exact(p) => write!(f, " path {p}"),
            PathMatch::Regex(r) => write!(f, " regex {}", r.as_str()),
        }
    }
}

/// What a matched route does.
#[derive(Debug)]
pub enum RouteAction {
    /// Proxy to one of these upstreams (weighted round-robin).
    Forward(Vec<UpstreamTarget>),
    /// Answer directly (`response: {status, body}`).
    Respond { status: StatusCode, body: String },
    /// Answer with a redirect (`redirect:`).
    Redirect(Redirect),
    /// The console (`console:`), served by gatehouse itself.
    Console,
}

#[derive(Debug, Clone, Default)]
pub struct Redirect {
    pub https_redirect: bool,
    pub scheme_redirect: Option<String>,
    pub host_redirect: Option<String>,
    pub port_redirect: Option<u16>,
    pub path_redirect: Option<String>,
    pub prefix_rewrite: Option<String>,
    pub response_code: u16,
    pub strip_query: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamScheme {
    Http,
    Https,
    /// HTTP/2 with prior knowledge over cleartext.
    H2c,
    /// `tcp://host:port`: the other end of a TCP tunnel route.
    Tcp,
}

#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub scheme: UpstreamScheme,
    /// `host:port` (port filled in from the scheme when absent).
    pub authority: http::uri::Authority,
    /// The `to` as written, for logs.
    pub url: String,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub enum PathRewrite {
    None,
    /// Replace the matched prefix (or `/` for host-only routes) with this.
    Prefix {
        matched: String,
        replacement: String,
    },
    /// Replace every match of `pattern` with `substitution` (`\1` groups).
    Regex {
        pattern: Regex,
        substitution: String,
    },
}

/// The `Host` header the upstream sees.
#[derive(Debug, Clone)]
pub enum HostHeader {
    /// The upstream's own authority (Pomerium's default).
    Upstream,
    /// The client's `Host` (`preserve_host_header`).
    Preserve,
    /// A literal value (`host_rewrite`).
    Literal(HeaderValue),
    /// Taken from a request header (`host_rewrite_header`).
    FromHeader(HeaderName),
    /// Derived from the path (`host_path_regex_rewrite_*`).
    PathRegex {
        pattern: Regex,
        substitution: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    pub skip_verify: bool,
    /// Extra roots; empty means the system roots.
    pub custom_ca: Vec<CertificateDer<'static>>,
    pub server_name: Option<String>,
    pub client_cert: Option<Certificate>,
}

impl UpstreamTls {
    /// A key identifying equal TLS settings, so routes can share a client pool.
    pub fn pool_key(&self) -> String {
        let mut key = format!("skip={};sni={:?};", self.skip_verify, self.server_name);
        for ca in &self.custom_ca {
            key.push_str(&format!("ca={};", fingerprint(ca.as_ref())));
        }
        if let Some(c) = &self.client_cert {
            for cert in &c.chain {
                key.push_str(&format!("client={};", fingerprint(cert.as_ref())));
            }
        }
        key
    }
}

fn fingerprint(bytes: &[u8]) -> u64 {
    // FNV-1a: only used to tell configurations apart, not for security.
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// A `set_request_headers` value: literal text and `${pomerium.*}` parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTemplate {
    pub parts: Vec<TemplatePart>,
}

impl HeaderTemplate {
    /// The value when it has no identity-dependent parts.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [TemplatePart::Literal(s)] => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    AccessToken,
    IdToken,
    Jwt,
    ClientCertFingerprint,
    /// The client certificate's DNS names, comma-separated.
    ClientCertSanDns,
    /// The client certificate's email addresses, comma-separated.
    ClientCertSanEmail,
    RequestHeader(HeaderName),
}

/// One field of the authorize log (`authorize_log_fields`, Pomerium's
/// names). Every line also has `result`, `reasons` and `route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeField {
    RequestId,
    Method,
    Path,
    /// The query string, with secret-looking values replaced.
    Query,
    Host,
    /// The client address the policy saw.
    Ip,
    /// The session's id (as the assertion's `sid`).
    SessionId,
    User,
    Email,
    /// The route (its label).
    RouteId,
    /// Groups `jwt_groups_filter` kept out of the assertion.
    RemovedGroupsCount,
    /// Every request header but credentials, or one.
    Headers,
    Header(HeaderName),
}

impl AuthorizeField {
    /// Pomerium's default set, in its order, as far as gatehouse has them.
    pub fn defaults() -> Vec<AuthorizeField> {
        use AuthorizeField::*;
        vec![
            RequestId,
            Method,
            Path,
            Host,
            Ip,
            SessionId,
            RemovedGroupsCount,
            User,
            Email,
            RouteId,
        ]
    }

    /// `Some(None)`: a Pomerium field gatehouse has no value for; `None`:
    /// not a field.
    pub fn parse(name: &str) -> Option<Option<AuthorizeField>> {
        use AuthorizeField::*;
        if let Some(h) = name.strip_prefix("headers.") {
            return HeaderName::from_bytes(h.as_bytes())
                .ok()
                .map(|h| Some(Header(h)));
        }
        Some(Some(match name {
            "request-id" => RequestId,
            "method" => Method,
            "path" => Path,
            "query" => Query,
            "host" => Host,
            "ip" => Ip,
            "session-id" => SessionId,
            "user" => User,
            "email" => Email,
            "route-id" => RouteId,
            "removed-groups-count" => RemovedGroupsCount,
            "headers" => Headers,
            "check-request-id"
            | "cluster-stat-name"
            | "envoy-route-checksum"
            | "envoy-route-id"
            | "route-checksum"
            | "impersonate-email"
            | "impersonate-session-id"
            | "impersonate-user-id"
            | "service-account-id"
            | "mcp-method"
            | "mcp-tool"
            | "mcp-tool-parameters"
            | "body"
            | "id-token"
            | "id-token-claims" => return Some(None),
            _ => return None,
        }))
    }
}

/// One field of the access log (`access_log_fields`, Pomerium's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessField {
    Authority,
    Duration,
    ForwardedFor,
    Ip,
    Method,
    Path,
    /// The query string, with the values of secret-looking parameters
    /// (`code`, `state`, `*token*`, ...) replaced.
    Query,
    Referer,
    RequestId,
    ResponseCode,
    ResponseCodeDetails,
    Size,
    /// The route (Pomerium: its Envoy cluster).
    UpstreamCluster,
    UserAgent,
    /// gatehouse: the upstream address the request went to.
    Upstream,
    /// gatehouse: the signed-in user's id and email.
    User,
    Email,
    /// The client certificate: issuer, subject and subject alt names.
    ClientCertificate,
    /// `headers.<Name>`; credentials (`Authorization`, `Cookie`, ...) are
    /// never written.
    Header(http::HeaderName),
}

impl AccessField {
    /// Pomerium's default set, plus the user (a gatehouse addition).
    pub fn defaults() -> Vec<AccessField> {
        use AccessField::*;
        vec![
            UpstreamCluster,
            Method,
            Authority,
            Path,
            UserAgent,
            Referer,
            ForwardedFor,
            RequestId,
            Duration,
            Size,
            ResponseCode,
            ResponseCodeDetails,
            User,
        ]
    }

    pub fn parse(name: &str) -> Option<AccessField> {
        use AccessField::*;
        if let Some(h) = name.strip_prefix("headers.") {
            return http::HeaderName::from_bytes(h.as_bytes()).ok().map(Header);
        }
        Some(match name {
            "authority" => Authority,
            "duration" => Duration,
            "forwarded-for" => ForwardedFor,
            "ip" => Ip,
            "method" => Method,
            "path" => Path,
            "query" => Query,
            "referer" => Referer,
            "request-id" => RequestId,
            "response-code" => ResponseCode,
            "response-code-details" => ResponseCodeDetails,
            "size" => Size,
            "upstream-cluster" => UpstreamCluster,
            "user-agent" => UserAgent,
            "client-certificate" => ClientCertificate,
            "upstream" => Upstream,
            "user" => User,
            "email" => Email,
            _ => return None,
        })
    }
}

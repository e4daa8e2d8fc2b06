//! The Pomerium Policy Language (PPL): compiled once per configuration,
//! evaluated per request.
//!
//! Owns: turning a route's authorization options (the shorthands and the
//! `policy:` tree, as written) into a [`Policy`], and deciding allow / deny /
//! sign-in with Pomerium's reasons. Must stay pure: no I/O, no async, no
//! clock reads; the time and the request facts are arguments, and the
//! evaluation of a compiled policy allocates nothing.
//!
//! Semantics (as Pomerium): a rule is `allow` or `deny` with operator blocks
//! `and` (all), `or` (any), `not` (none: NOR), `nor` (not all: NAND); blocks
//! of one rule and rules of one action are OR-ed; a request is allowed only
//! if some allow matches and no deny matches. Any criterion that needs a
//! user, evaluated without one, yields `user-unauthenticated`, which asks for
//! sign-in instead of a 403.
#![forbid(unsafe_code)]

mod compile;
mod time;

use std::net::IpAddr;

pub use compile::{Compiled, compile_authorization, compile_route, compile_routes, policy_errors};

/// The identity a criterion sees: implemented by the proxy's session type
/// (and, later, by bearer-token identities).
pub trait Subject {
    /// The IdP subject (`user` criterion).
    fn user_id(&self) -> &str;
    fn email(&self) -> &str;
    /// Group names or ids from the identity provider (`groups` criterion).
    fn groups(&self) -> &[String];
    /// A claim by its exact name (`claim/<name>`), top level.
    fn claim(&self, name: &str) -> Option<&serde_json::Value>;
}

/// What one request looks like to the policy.
pub struct Facts<'a> {
    /// The signed-in user; `None` when there is no (valid) session.
    pub subject: Option<&'a dyn Subject>,
    pub method: &'a str,
    /// The normalized path, exactly as the upstream will see it before
    /// rewriting (see `docs/policy.md`).
    pub path: &'a str,
    pub source_ip: IpAddr,
    /// `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    pub cors_preflight: bool,
    /// The client certificate of the connection, as this route judges it.
    pub client_cert: ClientCert<'a>,
    /// Unix seconds.
    pub now: i64,
}

/// The client certificate (downstream mTLS) a request came with.
#[derive(Debug, Clone, Copy, Default)]
pub enum ClientCert<'a> {
    /// None presented.
    #[default]
    None,
    /// Presented; `valid` when it chains to the route's CA and passes the
    /// revocation, depth and name checks.
    Presented { valid: bool, cert: &'a CertFacts },
}

/// What criteria see of a certificate (its leaf).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertFacts {
    /// Lowercase hex SHA-256 of the DER.
    pub fingerprint: String,
    /// Standard base64 of the SHA-256 of the SubjectPublicKeyInfo.
    pub spki_hash: String,
    pub san_email: Vec<String>,
    pub san_dns: Vec<String>,
    pub san_uri: Vec<String>,
}

/// Pomerium's reason strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    Accept,
    Reject,
    UserOk,
    UserUnauthorized,
    UserUnauthenticated,
    EmailOk,
    EmailUnauthorized,
    DomainOk,
    DomainUnauthorized,
    GroupsOk,
    GroupsUnauthorized,
    ClaimOk,
    ClaimUnauthorized,
    HttpMethodOk,
    HttpMethodUnauthorized,
    HttpPathOk,
    HttpPathUnauthorized,
    SourceIpOk,
    SourceIpUnauthorized,
    CorsRequest,
    NonCorsRequest,
    DateOk,
    DateUnauthorized,
    DayOfWeekOk,
    DayOfWeekUnauthorized,
    TimeOfDayOk,
    TimeOfDayUnauthorized,
    /// A route with no rule at all.
    NoPolicy,
    ClientCertificateOk,
    ClientCertificateUnauthorized,
    ValidClientCertificate,
    /// No client certificate where one is needed (495).
    ClientCertificateRequired,
    /// A client certificate that is not valid for the route (495).
    InvalidClientCertificate,
}

pub const ALL_REASONS: [Reason; 33] = [
    Reason::Accept,
    Reason::Reject,
    Reason::UserOk,
    Reason::UserUnauthorized,
    Reason::UserUnauthenticated,
    Reason::EmailOk,
    Reason::EmailUnauthorized,
    Reason::DomainOk,
    Reason::DomainUnauthorized,
    Reason::GroupsOk,
    Reason::GroupsUnauthorized,
    Reason::ClaimOk,
    Reason::ClaimUnauthorized,
    Reason::HttpMethodOk,
    Reason::HttpMethodUnauthorized,
    Reason::HttpPathOk,
    Reason::HttpPathUnauthorized,
    Reason::SourceIpOk,
    Reason::SourceIpUnauthorized,
    Reason::CorsRequest,
    Reason::NonCorsRequest,
    Reason::DateOk,
    Reason::DateUnauthorized,
    Reason::DayOfWeekOk,
    Reason::DayOfWeekUnauthorized,
    Reason::TimeOfDayOk,
    Reason::TimeOfDayUnauthorized,
    Reason::NoPolicy,
    Reason::ClientCertificateOk,
    Reason::ClientCertificateUnauthorized,
    Reason::ValidClientCertificate,
    Reason::ClientCertificateRequired,
    Reason::InvalidClientCertificate,
];

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Accept => "accept",
            Reason::Reject => "reject",
            Reason::UserOk => "user-ok",
            Reason::UserUnauthorized => "user-unauthorized",
            Reason::UserUnauthenticated => "user-unauthenticated",
            Reason::EmailOk => "email-ok",
            Reason::EmailUnauthorized => "email-unauthorized",
            Reason::DomainOk => "domain-ok",
            Reason::DomainUnauthorized => "domain-unauthorized",
            Reason::GroupsOk => "groups-ok",
            Reason::GroupsUnauthorized => "groups-unauthorized",
            Reason::ClaimOk => "claim-ok",
            Reason::ClaimUnauthorized => "claim-unauthorized",
            Reason::HttpMethodOk => "http-method-ok",
            Reason::HttpMethodUnauthorized => "http-method-unauthorized",
            Reason::HttpPathOk => "http-path-ok",
            Reason::HttpPathUnauthorized => "http-path-unauthorized",
            Reason::SourceIpOk => "source-ip-ok",
            Reason::SourceIpUnauthorized => "source-ip-unauthorized",
            Reason::CorsRequest => "cors-request",
            Reason::NonCorsRequest => "non-cors-request",
            Reason::DateOk => "date-ok",
            Reason::DateUnauthorized => "date-unauthorized",
            Reason::DayOfWeekOk => "day-of-week-ok",
            Reason::DayOfWeekUnauthorized => "day-of-week-unauthorized",
            Reason::TimeOfDayOk => "time-of-day-ok",
            Reason::TimeOfDayUnauthorized => "time-of-day-unauthorized",
            Reason::NoPolicy => "no-policy",
            Reason::ClientCertificateOk => "client-certificate-ok",
            Reason::ClientCertificateUnauthorized => "client-certificate-unauthorized",
            Reason::ValidClientCertificate => "valid-client-certificate",
            Reason::ClientCertificateRequired => "client-certificate-required",
            Reason::InvalidClientCertificate => "invalid-client-certificate",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of reasons (a bit set: no allocation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reasons(u64);

impl Reasons {
    pub fn one(r: Reason) -> Reasons {
        Reasons(1 << r as u8)
    }

    pub fn contains(self, r: Reason) -> bool {
        self.0 & (1 << r as u8) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn union(self, other: Reasons) -> Reasons {
        Reasons(self.0 | other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Reason> {
        ALL_REASONS.into_iter().filter(move |r| self.contains(*r))
    }
}

impl std::fmt::Display for Reasons {
    /// Comma-separated, in a stable order.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(r.as_str())?;
        }
        Ok(())
    }
}

/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow(Reasons),
    /// 403, with the reasons of the deny rule (or of the failed allow).
    Deny(Reasons),
    /// No session, and the policy needs one: sign in (302 or 401).
    SignIn(Reasons),
}

impl Decision {
    pub fn reasons(self) -> Reasons {
        match self {
            Decision::Allow(r) | Decision::Deny(r) | Decision::SignIn(r) => r,
        }
    }
}

/// A route's compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    allow: Vec<Block>,
    deny: Vec<Block>,
    /// Some criterion can only be decided with a user (the proxy looks the
    /// session up only when this is true or the session is needed anyway).
    uses_subject: bool,
    /// Some criterion looks at the client address (`source_ip`).
    uses_source_ip: bool,
    /// Some criterion looks at the client certificate.
    uses_client_cert: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    And,
    Or,
    Not,
    Nor,
}

/// One operator block; a rule's blocks and an action's rules are all OR-ed,
/// so a policy keeps one flat list of blocks per action.
#[derive(Debug, Clone)]
struct Block {
    op: Op,
    criteria: Vec<Criterion>,
}

#[derive(Debug, Clone)]
enum Criterion {
    Accept,
    Reject,
    AuthenticatedUser,
    User(StrMatch),
    Email(StrMatch),
    Domain(StrMatch),
    Groups(ListMatch),
    Claim(Claim),
    HttpMethod(StrMatch),
    HttpPath(StrMatch),
    SourceIp(Vec<ipnet::IpNet>),
    CorsPreflight,
    Date(time::DateWindow),
    DayOfWeek(time::Days),
    TimeOfDay(time::TimeWindow),
    ClientCertificate(CertMatch),
    InvalidClientCertificate,
}

/// `client_certificate`: every condition given must hold for the leaf.
#[derive(Debug, Clone, Default)]
struct CertMatch {
    /// Any of these (lowercase hex).
    fingerprints: Vec<String>,
    /// Any of these (standard base64).
    spki_hashes: Vec<String>,
    /// Some SAN of the kind matches.
    san_email: Option<StrMatch>,
    san_dns: Option<StrMatch>,
    san_uri: Option<StrMatch>,
}

impl CertMatch {
    fn matches(&self, cert: &CertFacts) -> bool {
        let any = |m: &Option<StrMatch>, names: &[String]| {
            m.as_ref()
                .is_none_or(|m| names.iter().any(|n| m.matches(n)))
        };
        (self.fingerprints.is_empty() || self.fingerprints.contains(&cert.fingerprint))
            && (self.spki_hashes.is_empty() || self.spki_hashes.contains(&cert.spki_hash))
            && any(&self.san_email, &cert.san_email)
            && any(&self.san_dns, &cert.san_dns)
            && any(&self.san_uri, &cert.san_uri)
    }
}

#[derive(Debug, Clone)]
struct Claim {
    /// The name after `claim/`, looked up as is first.
    name: String,
    /// The same name split on `.`, for nested claims
    /// (`realm_access.roles`), tried when the exact name is absent.
    path: Vec<String>,
    matcher: ListMatch,
}

/// String matcher: every operator must hold.
#[derive(Debug, Clone)]
struct StrMatch(Vec<StrOp>);

#[derive(Debug, Clone)]
enum StrOp {
    Is(String),
    Not(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    In(Vec<String>),
    NotIn(Vec<String>),
}

impl StrMatch {
    /// The same matcher with every compared value transformed.
    fn map_values(self, f: impl Fn(&str) -> String) -> StrMatch {
        let list = |l: Vec<String>| l.iter().map(|s| f(s)).collect();
        StrMatch(
            self.0
                .into_iter()
                .map(|op| match op {
                    StrOp::Is(s) => StrOp::Is(f(&s)),
                    StrOp::Not(s) => StrOp::Not(f(&s)),
                    StrOp::StartsWith(s) => StrOp::StartsWith(f(&s)),
                    StrOp::EndsWith(s) => StrOp::EndsWith(f(&s)),
                    StrOp::Contains(s) => StrOp::Contains(f(&s)),
                    StrOp::In(l) => StrOp::In(list(l)),
                    StrOp::NotIn(l) => StrOp::NotIn(list(l)),
                })
                .collect(),
        )
    }

    fn matches(&self, value: &str) -> bool {
        self.0.iter().all(|op| match op {
            StrOp::Is(s) => value == s,
            StrOp::Not(s) => value != s,
            StrOp::StartsWith(s) => value.starts_with(s.as_str()),
            StrOp::EndsWith(s) => value.ends_with(s.as_str()),
            StrOp::Contains(s) => value.contains(s.as_str()),
            StrOp::In(list) => list.iter().any(|s| s == value),
            StrOp::NotIn(list) => !list.iter().any(|s| s == value),
        })
    }
}

/// String-list matcher: every operator must hold.
#[derive(Debug, Clone)]
struct ListMatch(Vec<ListOp>);

#[derive(Debug, Clone)]
enum ListOp {
    Has(String),
    Is(String),
    Exclude(String),
}

/// A list of values as a criterion sees it, without copying.
#[derive(Clone, Copy)]
enum Values<'a> {
    Strings(&'a [String]),
    Json(&'a serde_json::Value),
    None,
}

impl Values<'_> {
    fn count(self) -> usize {
        match self {
            Values::Strings(s) => s.len(),
            Values::Json(serde_json::Value::Array(a)) => a.len(),
            Values::Json(serde_json::Value::Null) | Values::None => 0,
            Values::Json(_) => 1,
        }
    }

    fn any(self, wanted: &str) -> bool {
        match self {
            Values::Strings(s) => s.iter().any(|v| v == wanted),
            Values::Json(serde_json::Value::Array(a)) => a.iter().any(|v| json_eq(v, wanted)),
            Values::Json(v) => json_eq(v, wanted),
            Values::None => false,
        }
    }
}

/// A claim value compared as Pomerium does: as its string form.
fn json_eq(v: &serde_json::Value, wanted: &str) -> bool {
    match v {
        serde_json::Value::String(s) => s == wanted,
        serde_json::Value::Bool(b) => wanted == if *b { "true" } else { "false" },
        serde_json::Value::Number(n) => {
            // Rare: numbers in claims; formatting allocates only here.
            n.to_string() == wanted
        }
        _ => false,
    }
}

impl ListMatch {
    fn matches(&self, values: Values<'_>) -> bool {
        self.0.iter().all(|op| match op {
            ListOp::Has(s) => values.any(s),
            ListOp::Is(s) => values.count() == 1 && values.any(s),
            ListOp::Exclude(s) => !values.any(s),
        })
    }
}

impl Claim {
    fn lookup<'a>(&self, subject: &'a dyn Subject) -> Values<'a> {
        if let Some(v) = subject.claim(&self.name) {
            return Values::Json(v);
        }
        if self.path.len() > 1 {
            let mut current = subject.claim(&self.path[0]);
            for part in &self.path[1..] {
                current = current.and_then(|v| v.get(part.as_str()));
            }
            if let Some(v) = current {
                return Values::Json(v);
            }
        }
        // The base identity, for claims the session keeps as fields.
        match self.name.as_str() {
            "groups" => Values::Strings(subject.groups()),
            _ => Values::None,
        }
    }
}

/// (result, reasons) of one criterion.
fn criterion(c: &Criterion, facts: &Facts<'_>) -> (bool, Reason) {
    use Reason as R;
    let verdict = |ok: bool, yes: Reason, no: Reason| (ok, if ok { yes } else { no });
    let user = |f: &dyn Fn(&dyn Subject) -> bool, yes: Reason, no: Reason| match facts.subject {
        None => (false, R::UserUnauthenticated),
        Some(s) => verdict(f(s), yes, no),
    };
    match c {
        Criterion::Accept => (true, R::Accept),
        Criterion::Reject => (false, R::Reject),
        Criterion::AuthenticatedUser => match facts.subject {
            Some(_) => (true, R::UserOk),
            None => (false, R::UserUnauthenticated),
        },
        Criterion::User(m) => user(&|s| m.matches(s.user_id()), R::UserOk, R::UserUnauthorized),
        Criterion::Email(m) => user(&|s| m.matches(s.email()), R::EmailOk, R::EmailUnauthorized),
        Criterion::Domain(m) => user(
            &|s| {
                let email = s.email();
                email
                    .rsplit_once('@')
                    .is_some_and(|(_, domain)| m.matches(domain))
            },
            R::DomainOk,
            R::DomainUnauthorized,
        ),
        Criterion::Groups(m) => user(
            &|s| m.matches(Values::Strings(s.groups())),
            R::GroupsOk,
            R::GroupsUnauthorized,
        ),
        Criterion::Claim(c) => user(
            &|s| c.matcher.matches(c.lookup(s)),
            R::ClaimOk,
            R::ClaimUnauthorized,
        ),
        Criterion::HttpMethod(m) => verdict(
            m.matches(facts.method),
            R::HttpMethodOk,
            R::HttpMethodUnauthorized,
        ),
        Criterion::HttpPath(m) => verdict(
            m.matches(facts.path),
            R::HttpPathOk,
            R::HttpPathUnauthorized,
        ),
        Criterion::SourceIp(nets) => {
            let ip = match facts.source_ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(facts.source_ip, IpAddr::V4),
                v4 => v4,
            };
            verdict(
                nets.iter().any(|n| n.contains(&ip)),
                R::SourceIpOk,
                R::SourceIpUnauthorized,
            )
        }
        Criterion::CorsPreflight => {
            verdict(facts.cors_preflight, R::CorsRequest, R::NonCorsRequest)
        }
        Criterion::Date(w) => verdict(w.contains(facts.now), R::DateOk, R::DateUnauthorized),
        Criterion::DayOfWeek(d) => verdict(
            d.contains(facts.now),
            R::DayOfWeekOk,
            R::DayOfWeekUnauthorized,
        ),
        Criterion::TimeOfDay(w) => verdict(
            w.contains(facts.now),
            R::TimeOfDayOk,
            R::TimeOfDayUnauthorized,
        ),
        Criterion::ClientCertificate(m) => verdict(
            match facts.client_cert {
                ClientCert::Presented { cert, .. } => m.matches(cert),
                ClientCert::None => false,
            },
            R::ClientCertificateOk,
            R::ClientCertificateUnauthorized,
        ),
        Criterion::InvalidClientCertificate => match facts.client_cert {
            ClientCert::Presented { valid: true, .. } => (false, R::ValidClientCertificate),
            ClientCert::None => (true, R::ClientCertificateRequired),
            ClientCert::Presented { valid: false, .. } => (true, R::InvalidClientCertificate),
        },
    }
}

impl Block {
    /// (result, reasons): the reasons of the criteria that decided it.
    fn eval(&self, facts: &Facts<'_>) -> (bool, Reasons) {
        let mut yes = Reasons::default();
        let mut no = Reasons::default();
        let mut all = true;
        let mut any = false;
        for c in &self.criteria {
            let (ok, why) = criterion(c, facts);
            if ok {
                any = true;
                yes = yes.union(Reasons::one(why));
            } else {
                all = false;
                no = no.union(Reasons::one(why));
            }
        }
        match self.op {
            Op::And if all => (true, yes),
            Op::And => (false, no),
            Op::Or if any => (true, yes),
            Op::Or => (false, no),
            // NOR: true when none holds (the failed criteria's reasons).
            Op::Not if !any => (true, no),
            Op::Not => (false, yes),
            // NAND: true when not all hold.
            Op::Nor if !all => (true, no),
            Op::Nor => (false, yes),
        }
    }
}

/// OR over blocks: (any matched, reasons of the matching blocks, or of all).
fn any_block(blocks: &[Block], facts: &Facts<'_>) -> (bool, Reasons) {
    let mut yes = Reasons::default();
    let mut no = Reasons::default();
    let mut matched = false;
    for b in blocks {
        let (ok, why) = b.eval(facts);
        if ok {
            matched = true;
            yes = yes.union(why);
        } else {
            no = no.union(why);
        }
    }
    if matched { (true, yes) } else { (false, no) }
}

impl Policy {
    /// A policy that denies everyone (a route with no rule).
    pub fn deny_all() -> Policy {
        Policy {
            allow: Vec::new(),
            deny: Vec::new(),
            uses_subject: false,
            uses_source_ip: false,
            uses_client_cert: false,
        }
    }

    /// The same policy with Pomerium's default client-certificate rule
    /// added: `deny: {or: [invalid_client_certificate]}`.
    pub fn with_default_client_cert_deny(mut self) -> Policy {
        self.deny.push(Block {
            op: Op::Or,
            criteria: vec![Criterion::InvalidClientCertificate],
        });
        self.uses_client_cert = true;
        self
    }

    /// The groups the policy grants on (`groups` and `claim/groups` with
    /// `has` or `is`), for `jwt_groups_filter: {infer_from_ppl: true}`.
    pub fn referenced_groups(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in self
            .allow
            .iter()
            .chain(&self.deny)
            .flat_map(|b| &b.criteria)
        {
            let m = match c {
                Criterion::Groups(m) => m,
                Criterion::Claim(claim) if claim.name == "groups" => &claim.matcher,
                _ => continue,
            };
            for op in &m.0 {
                if let ListOp::Has(g) | ListOp::Is(g) = op
                    && !out.contains(g)
                {
                    out.push(g.clone());
                }
            }
        }
        out
    }

    /// True when some criterion looks at the client certificate: the
    /// caller must judge it for this route.
    pub fn uses_client_cert(&self) -> bool {
        self.uses_client_cert
    }

    /// True when some criterion looks at the user: the caller should look
    /// the session up before evaluating.
    pub fn uses_subject(&self) -> bool {
        self.uses_subject
    }

    /// True when some criterion looks at the client address: the caller
    /// must know it (a forward-auth question must then say it).
    pub fn uses_source_ip(&self) -> bool {
        self.uses_source_ip
    }

    /// Decides one request. Pure: the same facts give the same decision.
    pub fn evaluate(&self, facts: &Facts<'_>) -> Decision {
        if self.allow.is_empty() && self.deny.is_empty() {
            return Decision::Deny(Reasons::one(Reason::NoPolicy));
        }
        let (denied, deny_why) = any_block(&self.deny, facts);
        // A missing or invalid client certificate is answered first, before
        // any sign-in (as Pomerium: 495, never a login page).
        if denied
            && (deny_why.contains(Reason::ClientCertificateRequired)
                || deny_why.contains(Reason::InvalidClientCertificate))
        {
            return Decision::Deny(deny_why);
        }
        if self.allow.is_empty() && !denied {
            return Decision::Deny(Reasons::one(Reason::NoPolicy));
        }
        let (allowed, allow_why) = any_block(&self.allow, facts);
        // Who the user is must be known before a deny rule or a failed
        // allow can be trusted: ask for sign-in first (as Pomerium).
        if facts.subject.is_none()
            && (deny_why.contains(Reason::UserUnauthenticated)
                || (!allowed && allow_why.contains(Reason::UserUnauthenticated)))
        {
            return Decision::SignIn(Reasons::one(Reason::UserUnauthenticated));
        }
        if denied {
            Decision::Deny(deny_why)
        } else if allowed {
            Decision::Allow(allow_why)
        } else {
            Decision::Deny(allow_why)
        }
    }
}

#[cfg(test)]
mod tests;

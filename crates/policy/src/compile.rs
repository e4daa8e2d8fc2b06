//! From a route's authorization options (shorthands and the `policy` tree,
//! with positions) to a [`Policy`]. Every mistake is an error naming the
//! file, line, column and route; nothing is ever skipped, so a broken policy
//! cannot open a route.

use gatehouse_config::yaml::{Node, Value};
use gatehouse_config::{Diagnostic, Mark, Route};

use crate::{
    Block, CertMatch, Claim, Criterion, ListMatch, ListOp, Op, Policy, StrMatch, StrOp, time,
};

/// Every route's policy, in route order, and the warnings worth logging.
#[derive(Debug)]
pub struct Compiled {
    pub policies: Vec<Policy>,
    pub warnings: Vec<Diagnostic>,
}

/// Compiles every route; all errors of all routes are reported at once.
pub fn compile_routes(routes: &[Route]) -> Result<Compiled, Vec<Diagnostic>> {
    let mut policies = Vec::with_capacity(routes.len());
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for route in routes {
        match compile_route(route) {
            Ok((p, w)) => {
                policies.push(p);
                warnings.extend(w);
            }
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(Compiled { policies, warnings })
    } else {
        Err(errors)
    }
}

/// Compiles one route: its shorthands become one `allow` rule with an `or`
/// block (as Pomerium's `ToPPL`), then its `policy` rules follow.
pub fn compile_route(route: &Route) -> Result<(Policy, Vec<Diagnostic>), Vec<Diagnostic>> {
    compile_authorization(
        &route.label().to_string(),
        &route.mark,
        &route.authorization,
        route.client_cert_default_deny,
    )
}

/// The policy's mistakes, for a route the configuration refused for other
/// reasons (so `check` names every mistake in one pass).
pub fn policy_errors(p: &gatehouse_config::RoutePolicy) -> Vec<Diagnostic> {
    compile_authorization(&p.label, &p.mark, &p.authorization, false)
        .err()
        .unwrap_or_default()
}

/// Compiles a route's authorization (`label` and `mark` name the route in
/// messages).
pub fn compile_authorization(
    label: &str,
    mark: &gatehouse_config::Mark,
    authz: &gatehouse_config::Authorization,
    client_cert_default_deny: bool,
) -> Result<(Policy, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut c = Compiler {
        route: label.to_string(),
        errors: Vec::new(),
    };
    let mut warnings = Vec::new();
    if authz.is_empty() {
        warnings.push(Diagnostic::warning(
            mark.clone(),
            format!(
                "route `{}` has no policy and no allow_* option: it denies everyone",
                c.route
            ),
        ));
        let policy = Policy::deny_all();
        return Ok((
            if client_cert_default_deny {
                policy.with_default_client_cert_deny()
            } else {
                policy
            },
            warnings,
        ));
    }
    let mut shorthand = Vec::new();
    if authz.public.is_some() {
        shorthand.push(Criterion::Accept);
    }
    if authz.any_authenticated_user.is_some() {
        shorthand.push(Criterion::AuthenticatedUser);
    }
    if authz.cors_allow_preflight.is_some() {
        shorthand.push(Criterion::CorsPreflight);
    }
    if let Some(users) = &authz.allowed_users {
        for u in &users.value {
            shorthand.push(Criterion::User(StrMatch(vec![StrOp::Is(u.clone())])));
            shorthand.push(Criterion::Email(StrMatch(vec![StrOp::Is(u.clone())])));
        }
    }
    if let Some(domains) = &authz.allowed_domains {
        for d in &domains.value {
            shorthand.push(Criterion::Domain(StrMatch(vec![StrOp::Is(d.clone())])));
        }
    }
    if let Some(claims) = &authz.allowed_idp_claims {
        c.idp_claims(&claims.0, &mut shorthand);
    }
    // Sub-policies' allow lists join the route's (Pomerium's `All*`).
    for sp in &authz.sub_policies {
        for u in &sp.allowed_users {
            shorthand.push(Criterion::User(StrMatch(vec![StrOp::Is(u.clone())])));
            shorthand.push(Criterion::Email(StrMatch(vec![StrOp::Is(u.clone())])));
        }
        for d in &sp.allowed_domains {
            shorthand.push(Criterion::Domain(StrMatch(vec![StrOp::Is(d.clone())])));
        }
        if let Some(claims) = &sp.allowed_idp_claims {
            c.idp_claims(&claims.0, &mut shorthand);
        }
    }
    let mut policy = Policy {
        allow: Vec::new(),
        deny: Vec::new(),
        uses_subject: false,
        uses_source_ip: false,
        uses_client_cert: false,
    };
    if !shorthand.is_empty() {
        policy.allow.push(Block {
            op: Op::Or,
            criteria: shorthand,
        });
    }
    if let Some(tree) = &authz.policy {
        c.policy(&tree.0, &mut policy);
    }
    // Their rules too: allows and denies join the route's (Pomerium ORs
    // the results of every query).
    for sp in &authz.sub_policies {
        if let Some(tree) = &sp.ppl {
            c.policy(&tree.0, &mut policy);
        }
    }
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    if policy.allow.is_empty() {
        warnings.push(Diagnostic::warning(
            mark.clone(),
            format!(
                "route `{}` has only deny rules: nothing allows a request, it denies everyone",
                c.route
            ),
        ));
    }
    let uses = |f: fn(&Criterion) -> bool| {
        policy
            .allow
            .iter()
            .chain(&policy.deny)
            .flat_map(|b| &b.criteria)
            .any(f)
    };
    let uses_subject = uses(|c| {
        matches!(
            c,
            Criterion::AuthenticatedUser
                | Criterion::User(_)
                | Criterion::Email(_)
                | Criterion::Domain(_)
                | Criterion::Groups(_)
                | Criterion::Claim(_)
        )
    });
    let uses_source_ip = uses(|c| matches!(c, Criterion::SourceIp(_)));
    let uses_client_cert = uses(|c| {
        matches!(
            c,
            Criterion::ClientCertificate(_) | Criterion::InvalidClientCertificate
        )
    });
    policy.uses_subject = uses_subject;
    policy.uses_source_ip = uses_source_ip;
    policy.uses_client_cert = uses_client_cert;
    if client_cert_default_deny {
        policy = policy.with_default_client_cert_deny();
    }
    Ok((policy, warnings))
}

struct Compiler {
    route: String,
    errors: Vec<Diagnostic>,
}

const CRITERIA: &str = "accept, reject, authenticated_user, user, email, domain, groups, claim/<name>, http_method, http_path, source_ip, cors_preflight, date, day_of_week, time_of_day, client_certificate, invalid_client_certificate";

fn scalar(node: &Node) -> Option<&str> {
    match &node.value {
        Value::Scalar(s) => Some(s.text.as_str()),
        _ => None,
    }
}

fn kind(node: &Node) -> &'static str {
    match &node.value {
        Value::Scalar(_) => "a value",
        Value::Seq(_) => "a list",
        Value::Map(_) => "a map",
    }
}

impl Compiler {
    fn error(&mut self, mark: &Mark, message: impl std::fmt::Display) {
        self.errors.push(Diagnostic::error(
            mark.clone(),
            format!("route `{}`: policy: {message}", self.route),
        ));
    }

    /// `allowed_idp_claims: {name: value | [values]}`.
    fn idp_claims(&mut self, node: &Node, out: &mut Vec<Criterion>) {
        let Value::Map(entries) = &node.value else {
            self.error(
                &node.mark,
                "allowed_idp_claims must be a map of claim name to value(s)",
            );
            return;
        };
        for (k, v) in entries {
            let Some(name) = scalar(k) else {
                self.error(&k.mark, "claim names must be strings");
                continue;
            };
            let values: Vec<&Node> = match &v.value {
                Value::Seq(items) => items.iter().collect(),
                _ => vec![v],
            };
            for item in values {
                match scalar(item) {
                    Some(value) => out.push(Criterion::Claim(claim(
                        name,
                        ListMatch(vec![ListOp::Has(value.to_string())]),
                    ))),
                    None => self.error(
                        &item.mark,
                        format!("claim `{name}`: expected a value, found {}", kind(item)),
                    ),
                }
            }
        }
    }

    /// `policy:` — one rule or a list of rules.
    fn policy(&mut self, node: &Node, policy: &mut Policy) {
        match &node.value {
            Value::Seq(rules) => {
                for r in rules {
                    self.rule(r, policy);
                }
            }
            Value::Map(_) => self.rule(node, policy),
            Value::Scalar(_) => self.error(
                &node.mark,
                "expected a rule ({allow: {or: [...]}}) or a list of rules",
            ),
        }
    }

    fn rule(&mut self, node: &Node, policy: &mut Policy) {
        let Value::Map(entries) = &node.value else {
            self.error(
                &node.mark,
                format!(
                    "a rule is a map with `allow` or `deny`, found {}",
                    kind(node)
                ),
            );
            return;
        };
        if entries.is_empty() {
            self.error(&node.mark, "empty rule: expected `allow` or `deny`");
        }
        for (k, v) in entries {
            let action = scalar(k).unwrap_or("");
            let target = match action {
                "allow" => &mut policy.allow,
                "deny" => &mut policy.deny,
                other => {
                    self.error(
                        &k.mark,
                        format!(
                            "unknown action `{other}`{} (expected allow or deny)",
                            gatehouse_config::did_you_mean_hint(other, ["allow", "deny"])
                        ),
                    );
                    continue;
                }
            };
            let mut blocks = Vec::new();
            self.action(v, &mut blocks);
            target.extend(blocks);
        }
    }

    /// `{and|or|not|nor: [criteria]}`; several blocks are OR-ed.
    fn action(&mut self, node: &Node, blocks: &mut Vec<Block>) {
        let Value::Map(entries) = &node.value else {
            self.error(
                &node.mark,
                format!(
                    "expected operators (and, or, not, nor) with lists of criteria, found {}",
                    kind(node)
                ),
            );
            return;
        };
        if entries.is_empty() {
            self.error(&node.mark, "empty rule: expected and, or, not or nor");
        }
        for (k, v) in entries {
            let name = scalar(k).unwrap_or("");
            let op = match name {
                "and" => Op::And,
                "or" => Op::Or,
                "not" => Op::Not,
                "nor" => Op::Nor,
                // Pomerium ignores `action` inside a rule.
                "action" => continue,
                other => {
                    self.error(
                        &k.mark,
                        format!(
                            "unknown operator `{other}`{} (expected and, or, not, nor)",
                            gatehouse_config::did_you_mean_hint(other, ["and", "or", "not", "nor"])
                        ),
                    );
                    continue;
                }
            };
            let Value::Seq(items) = &v.value else {
                self.error(
                    &v.mark,
                    format!("`{name}` takes a list of criteria, found {}", kind(v)),
                );
                continue;
            };
            if items.is_empty() {
                self.error(&v.mark, format!("`{name}` has no criteria"));
                continue;
            }
            let criteria: Vec<Criterion> = items.iter().filter_map(|c| self.criterion(c)).collect();
            if criteria.len() == items.len() {
                blocks.push(Block { op, criteria });
            }
        }
    }

    fn criterion(&mut self, node: &Node) -> Option<Criterion> {
        let entries = match &node.value {
            Value::Map(e) if e.len() == 1 => e,
            Value::Map(e) => {
                self.error(
                    &node.mark,
                    format!(
                        "a criterion has exactly one key, this one has {} (write each criterion as its own list item)",
                        e.len()
                    ),
                );
                return None;
            }
            _ => {
                self.error(
                    &node.mark,
                    format!(
                        "a criterion is a map like `email: {{is: a@example.com}}`, found {}",
                        kind(node)
                    ),
                );
                return None;
            }
        };
        let (key, data) = &entries[0];
        let full = scalar(key).unwrap_or("");
        let (name, sub) = match full.split_once('/') {
            Some((n, s)) => (n, Some(s)),
            None => (full, None),
        };
        if name != "claim" && sub.is_some() {
            self.error(
                &key.mark,
                format!("criterion `{name}` takes no sub-path (`{full}`)"),
            );
            return None;
        }
        let parsed = match name {
            "accept" => Ok(Criterion::Accept),
            "reject" => Ok(Criterion::Reject),
            "authenticated_user" => Ok(Criterion::AuthenticatedUser),
            "cors_preflight" => Ok(Criterion::CorsPreflight),
            "user" => self.str_match(name, data).map(Criterion::User),
            "email" => self.str_match(name, data).map(Criterion::Email),
            "domain" => self.str_match(name, data).map(Criterion::Domain),
            "http_path" => self.str_match(name, data).map(Criterion::HttpPath),
            // Methods are upper case on the wire; `get` means GET.
            "http_method" => self
                .str_match(name, data)
                .map(|m| Criterion::HttpMethod(m.map_values(|v| v.to_ascii_uppercase()))),
            "groups" => self.list_match(name, data).map(Criterion::Groups),
            "claim" => match sub.filter(|s| !s.is_empty()) {
                Some(claim_name) => self
                    .list_match(full, data)
                    .map(|m| Criterion::Claim(claim(claim_name, m))),
                None => Err((
                    key.mark.clone(),
                    "`claim` needs the claim's name: claim/<name> (for example claim/groups or claim/realm_access.roles)".to_string(),
                )),
            },
            "source_ip" => self.source_ip(data).map(Criterion::SourceIp),
            "date" => self.date(data).map(Criterion::Date),
            "day_of_week" => self.day_of_week(data).map(Criterion::DayOfWeek),
            "time_of_day" => self.time_of_day(data).map(Criterion::TimeOfDay),
            "invalid_client_certificate" => Ok(Criterion::InvalidClientCertificate),
            "client_certificate" => self.cert_match(data).map(Criterion::ClientCertificate),
            "device" | "record" | "mcp_tool" | "ssh_username" | "ssh_username_matches_email"
            | "ssh_username_matches_claim" | "ssh_publickey" | "ssh_ca" | "pomerium_routes" => Err((
                key.mark.clone(),
                format!("criterion `{name}` is not supported by gatehouse"),
            )),
            other => Err((
                key.mark.clone(),
                format!(
                    "unknown criterion `{other}`{} (known: {CRITERIA})",
                    gatehouse_config::did_you_mean_hint(
                        other,
                        CRITERIA.split(", ").filter(|c| !c.contains('<'))
                    )
                ),
            )),
        };
        match parsed {
            Ok(c) => Some(c),
            Err((mark, message)) => {
                self.error(&mark, message);
                None
            }
        }
    }

    /// A bare value means `is`; a map AND-s its operators.
    fn str_match(&mut self, name: &str, data: &Node) -> Result<StrMatch, (Mark, String)> {
        let entries = match written(
            name,
            data,
            "a string or a map of is, not, starts_with, ends_with, contains, in, not_in",
        )? {
            Written::Bare(v) => return Ok(StrMatch(vec![StrOp::Is(v.to_string())])),
            Written::Map(entries) => entries,
        };
        let mut ops = Vec::new();
        for (k, v) in entries {
            let op = scalar(k).unwrap_or("");
            let text = || {
                scalar(v).map(str::to_string).ok_or_else(|| {
                    (
                        v.mark.clone(),
                        format!("`{name}: {op}` takes a string, found {}", kind(v)),
                    )
                })
            };
            let list = || match &v.value {
                Value::Seq(items) => items
                    .iter()
                    .map(|i| {
                        scalar(i).map(str::to_string).ok_or_else(|| {
                            (
                                i.mark.clone(),
                                format!("`{name}: {op}` takes a list of strings"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>(),
                _ => Err((
                    v.mark.clone(),
                    format!("`{name}: {op}` takes a list of strings, found {}", kind(v)),
                )),
            };
            ops.push(match op {
                "is" => StrOp::Is(text()?),
                "not" => StrOp::Not(text()?),
                "starts_with" => StrOp::StartsWith(text()?),
                "ends_with" => StrOp::EndsWith(text()?),
                "contains" => StrOp::Contains(text()?),
                "in" => StrOp::In(list()?),
                "not_in" => StrOp::NotIn(list()?),
                other => {
                    return Err((
                        k.mark.clone(),
                        format!(
                            "`{name}`: unknown string matcher `{other}` (is, not, starts_with, ends_with, contains, in, not_in)"
                        ),
                    ));
                }
            });
        }
        Ok(StrMatch(ops))
    }

    /// A bare value means `has`; a map AND-s `has`, `is`, `exclude`.
    fn list_match(&mut self, name: &str, data: &Node) -> Result<ListMatch, (Mark, String)> {
        let entries = match written(
            name,
            data,
            "a value (meaning has) or a map of has, is, exclude (for any of several values, use `or` with one criterion each)",
        )? {
            Written::Bare(v) => return Ok(ListMatch(vec![ListOp::Has(v.to_string())])),
            Written::Map(entries) => entries,
        };
        let mut ops = Vec::new();
        for (k, v) in entries {
            let op = scalar(k).unwrap_or("");
            let Some(value) = scalar(v) else {
                return Err((
                    v.mark.clone(),
                    format!("`{name}: {op}` takes a value, found {}", kind(v)),
                ));
            };
            ops.push(match op {
                "has" => ListOp::Has(value.to_string()),
                "is" => ListOp::Is(value.to_string()),
                "exclude" => ListOp::Exclude(value.to_string()),
                other => {
                    return Err((
                        k.mark.clone(),
                        format!("`{name}`: unknown list matcher `{other}` (has, is, exclude)"),
                    ));
                }
            });
        }
        Ok(ListMatch(ops))
    }

    /// `client_certificate: {fingerprint, spki_hash, san_email, san_dns, san_uri}`.
    fn cert_match(&mut self, data: &Node) -> Result<CertMatch, (Mark, String)> {
        let Value::Map(entries) = &data.value else {
            return Err((
                data.mark.clone(),
                "`client_certificate` takes a map of fingerprint, spki_hash, san_email, san_dns, san_uri".into(),
            ));
        };
        if entries.is_empty() {
            return Err((
                data.mark.clone(),
                "`client_certificate`: no condition given".into(),
            ));
        }
        let mut m = CertMatch::default();
        for (k, v) in entries {
            let strings = |what: &str| -> Result<Vec<(String, Mark)>, (Mark, String)> {
                match &v.value {
                    Value::Seq(items) if !items.is_empty() => items
                        .iter()
                        .map(|i| {
                            scalar(i)
                                .map(|t| (t.to_string(), i.mark.clone()))
                                .ok_or_else(|| {
                                    (
                                        i.mark.clone(),
                                        format!("`{what}` takes a string or a list of strings"),
                                    )
                                })
                        })
                        .collect(),
                    _ => scalar(v)
                        .map(|t| vec![(t.to_string(), v.mark.clone())])
                        .ok_or_else(|| {
                            (
                                v.mark.clone(),
                                format!("`{what}` takes a string or a list of strings"),
                            )
                        }),
                }
            };
            match scalar(k).unwrap_or("") {
                "fingerprint" => {
                    for (f, mark) in strings("fingerprint")? {
                        // 64 hex digits, or 32 colon-separated bytes.
                        let hex: String = f
                            .chars()
                            .filter(|c| *c != ':')
                            .collect::<String>()
                            .to_ascii_lowercase();
                        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                            return Err((
                                mark,
                                format!(
                                    "`fingerprint`: `{f}` is not a SHA-256 fingerprint (64 hex digits, or 32 bytes separated by colons)"
                                ),
                            ));
                        }
                        m.fingerprints.push(hex);
                    }
                }
                "spki_hash" => {
                    use base64::Engine;
                    for (h, mark) in strings("spki_hash")? {
                        match base64::engine::general_purpose::STANDARD.decode(h.as_bytes()) {
                            Ok(b) if b.len() == 32 => m.spki_hashes.push(h),
                            _ => {
                                return Err((
                                    mark,
                                    format!(
                                        "`spki_hash`: `{h}` is not the base64 of a SHA-256 hash"
                                    ),
                                ));
                            }
                        }
                    }
                }
                "san_email" => m.san_email = Some(self.str_match("san_email", v)?),
                "san_dns" => m.san_dns = Some(self.str_match("san_dns", v)?),
                "san_uri" => m.san_uri = Some(self.str_match("san_uri", v)?),
                other => {
                    return Err((
                        k.mark.clone(),
                        format!(
                            "unsupported certificate matcher condition `{other}` (fingerprint, spki_hash, san_email, san_dns, san_uri)"
                        ),
                    ));
                }
            }
        }
        Ok(m)
    }

    fn source_ip(&mut self, data: &Node) -> Result<Vec<ipnet::IpNet>, (Mark, String)> {
        let items: Vec<&Node> = match &data.value {
            Value::Seq(items) if !items.is_empty() => items.iter().collect(),
            Value::Seq(_) => return Err((data.mark.clone(), "`source_ip`: empty list".into())),
            Value::Scalar(_) => vec![data],
            Value::Map(_) => {
                return Err((
                    data.mark.clone(),
                    "`source_ip` takes an IP, a CIDR block or a list of them".into(),
                ));
            }
        };
        items
            .into_iter()
            .map(|n| {
                let text = scalar(n).unwrap_or("").trim();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        (
                            n.mark.clone(),
                            format!("`source_ip`: `{text}` is not an IP address or CIDR block (10.0.0.0/8, 2001:db8::/32)"),
                        )
                    })
            })
            .collect()
    }

    /// Reads `{key: value}` maps with a fixed set of keys.
    fn fields<'n>(
        &mut self,
        name: &str,
        data: &'n Node,
        allowed: &[&str],
    ) -> Result<Vec<(&'n str, &'n Node)>, (Mark, String)> {
        let Value::Map(entries) = &data.value else {
            return Err((
                data.mark.clone(),
                format!(
                    "`{name}` takes a map of {}, found {}",
                    allowed.join(", "),
                    kind(data)
                ),
            ));
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let key = scalar(k).unwrap_or("");
            if !allowed.contains(&key) {
                return Err((
                    k.mark.clone(),
                    format!(
                        "`{name}`: unknown key `{key}` (expected {})",
                        allowed.join(", ")
                    ),
                ));
            }
            if scalar(v).is_none() {
                return Err((v.mark.clone(), format!("`{name}: {key}` takes a value")));
            }
            out.push((key, v));
        }
        Ok(out)
    }

    fn date(&mut self, data: &Node) -> Result<time::DateWindow, (Mark, String)> {
        let mut w = time::DateWindow {
            after: None,
            before: None,
        };
        for (key, v) in self.fields("date", data, &["after", "before"])? {
            let t = time::instant(scalar(v).unwrap_or(""))
                .map_err(|e| (v.mark.clone(), format!("`date`: {e}")))?;
            match key {
                "after" => w.after = Some(t),
                _ => w.before = Some(t),
            }
        }
        if w.after.is_none() && w.before.is_none() {
            return Err((
                data.mark.clone(),
                "`date` needs `after`, `before` or both".into(),
            ));
        }
        Ok(w)
    }

    /// `day_of_week: mon-fri` (UTC), or `{days: mon-fri, timezone: Europe/Berlin}`.
    fn day_of_week(&mut self, data: &Node) -> Result<time::Days, (Mark, String)> {
        if let Some(text) = scalar(data) {
            let mask =
                time::days(text).map_err(|e| (data.mark.clone(), format!("`day_of_week`: {e}")))?;
            return Ok(time::Days {
                mask,
                tz: jiff::tz::TimeZone::UTC,
            });
        }
        let mut mask = None;
        let mut tz = jiff::tz::TimeZone::UTC;
        for (key, v) in self.fields("day_of_week", data, &["days", "timezone"])? {
            let text = scalar(v).unwrap_or("");
            match key {
                "days" => {
                    mask = Some(
                        time::days(text)
                            .map_err(|e| (v.mark.clone(), format!("`day_of_week`: {e}")))?,
                    )
                }
                _ => {
                    tz = time::zone(text)
                        .map_err(|e| (v.mark.clone(), format!("`day_of_week`: {e}")))?
                }
            }
        }
        let mask =
            mask.ok_or_else(|| (data.mark.clone(), "`day_of_week` needs `days`".to_string()))?;
        Ok(time::Days { mask, tz })
    }

    fn time_of_day(&mut self, data: &Node) -> Result<time::TimeWindow, (Mark, String)> {
        let mut after = None;
        let mut before = None;
        let mut tz = None;
        for (key, v) in self.fields("time_of_day", data, &["timezone", "after", "before"])? {
            let text = scalar(v).unwrap_or("");
            let err = |e: String| (v.mark.clone(), format!("`time_of_day`: {e}"));
            match key {
                "timezone" => tz = Some(time::zone(text).map_err(err)?),
                "after" => after = Some(time::time_of_day(text).map_err(err)?),
                _ => before = Some(time::time_of_day(text).map_err(err)?),
            }
        }
        let tz = tz.ok_or_else(|| {
            (
                data.mark.clone(),
                "`time_of_day` needs a `timezone` (an IANA name such as Europe/Berlin, or UTC)"
                    .to_string(),
            )
        })?;
        if after.is_none() && before.is_none() {
            return Err((
                data.mark.clone(),
                "`time_of_day` needs `after`, `before` or both".into(),
            ));
        }
        Ok(time::TimeWindow { after, before, tz })
    }
}

/// A matcher as written: a bare value, or a non-empty map of operators.
enum Written<'n> {
    Bare(&'n str),
    Map(&'n [(Node, Node)]),
}

fn written<'n>(name: &str, data: &'n Node, expected: &str) -> Result<Written<'n>, (Mark, String)> {
    match &data.value {
        Value::Scalar(s) => Ok(Written::Bare(&s.text)),
        Value::Map(entries) if !entries.is_empty() => Ok(Written::Map(entries)),
        Value::Map(_) => Err((data.mark.clone(), format!("`{name}`: empty matcher"))),
        Value::Seq(_) => Err((
            data.mark.clone(),
            format!("`{name}` takes {expected}; found {}", kind(data)),
        )),
    }
}

fn claim(name: &str, matcher: ListMatch) -> Claim {
    Claim {
        name: name.to_string(),
        path: name.split('.').map(str::to_string).collect(),
        matcher,
    }
}

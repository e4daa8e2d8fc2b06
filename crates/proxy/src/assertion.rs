//! The identity assertion sent upstream (`X-Pomerium-Jwt-Assertion`):
//! minted per user and route, cached, and chained from a trusted gatehouse
//! in front (`X-Pomerium-Jwt-Assertion-For`); claim values for claim headers.

use gatehouse_config::Route;
use http::HeaderMap;
use http::header::HeaderValue;

use crate::metrics::Metrics;
use crate::request::ConnInfo;
use crate::runtime::Runtime;

/// Signed assertions reused until a minute before they expire, across
/// configurations (keys carry the configuration generation). Outlives
/// reloads; owned by the proxy.
pub type Assertions = gatehouse_assertion::Cache<HeaderValue>;

/// The proxy's assertion cache, sized for 100,000 (user, route, host).
pub fn new_cache() -> Assertions {
    gatehouse_assertion::Cache::new(100_000)
}

/// The assertion to chain as `X-Pomerium-Jwt-Assertion-For`: only from a
/// peer listed in `trusted_assertion_sources`, only on routes that pass
/// identity headers. The first hop's assertion wins (an incoming `-For`
/// before an incoming assertion), as Pomerium chains them.
pub(crate) fn chained_assertion(
    rt: &Runtime,
    route: &Route,
    conn: &ConnInfo,
    headers: &HeaderMap,
) -> Option<HeaderValue> {
    let trusted = &rt.config.trusted_assertion_sources;
    if !route.pass_identity_headers || trusted.is_empty() {
        return None;
    }
    let peer = conn.peer.ip().to_canonical();
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return None;
    }
    headers
        .get("x-pomerium-jwt-assertion-for")
        .or_else(|| headers.get("x-pomerium-jwt-assertion"))
        .cloned()
}

/// The signed identity for the upstream (empty identity on public routes,
/// as Pomerium).
pub(crate) fn assertion(
    rt: &Runtime,
    cache: &Assertions,
    metrics: &Metrics,
    host: &str,
    route: &Route,
    session: Option<&gatehouse_identity::Session>,
) -> Option<HeaderValue> {
    let now = gatehouse_identity::session::unix_now();
    if !rt.cache_assertions {
        return mint_assertion(rt, host, route, session, now);
    }
    let key = gatehouse_assertion::CacheKey {
        session: session.map_or([0; 16], |s| s.id.0),
        generation: rt.generation,
        route: route.index,
        host,
    };
    let mut minted = false;
    let value = cache.get_or_mint(key, now, || {
        minted = true;
        let value = mint_assertion(rt, host, route, session, now)?;
        Some((value, now + gatehouse_assertion::LIFETIME_SECS))
    });
    metrics.assertion_cache(!minted);
    value
}

fn mint_assertion(
    rt: &Runtime,
    host: &str,
    route: &Route,
    session: Option<&gatehouse_identity::Session>,
    now: u64,
) -> Option<HeaderValue> {
    let no_groups = Vec::new();
    let sid = session.map(|s| s.id.to_hex()).unwrap_or_default();
    let filter = rt.routes[route.index].groups_filter.as_deref();
    let groups = session.map(|s| visible_groups(&s.identity.groups, filter));
    let subject = match (session, &groups) {
        (Some(s), Some(groups)) => gatehouse_assertion::Subject {
            user: &s.identity.sub,
            email: &s.identity.email,
            name: &s.identity.name,
            groups,
            sid: &sid,
        },
        _ => gatehouse_assertion::Subject {
            user: "",
            email: "",
            name: "",
            groups: &no_groups,
            sid: "",
        },
    };
    let mut claims = gatehouse_assertion::claims(host, route.issuer_uri, &subject, now);
    // Claims named in jwt_claims_headers that are not base claims join the JWT.
    if let (Some(map), Some(s)) = (claims.as_object_mut(), session) {
        for (_, claim) in &route.claim_headers {
            if !map.contains_key(claim) {
                map.insert(
                    claim.clone(),
                    serde_json::Value::String(claim_value(s, claim, filter)),
                );
            }
        }
    }
    HeaderValue::from_str(&rt.signing.sign(&claims)).ok()
}

/// The groups a route lets upstreams see (`jwt_groups_filter`): those in
/// `filter`, in the user's order; all without one.
pub(crate) fn visible_groups<'a>(
    groups: &'a [String],
    filter: Option<&[String]>,
) -> std::borrow::Cow<'a, [String]> {
    match filter {
        None => std::borrow::Cow::Borrowed(groups),
        Some(keep) => groups
            .iter()
            .filter(|g| keep.binary_search(g).is_ok())
            .cloned()
            .collect::<Vec<_>>()
            .into(),
    }
}

/// A claim as a header value: base claims first, then the IdP's; lists are
/// comma-joined; a missing claim is empty (as Pomerium). `groups` (the
/// base claim, or the IdP's) passes through the route's groups filter.
pub(crate) fn claim_value(
    s: &gatehouse_identity::Session,
    claim: &str,
    groups_filter: Option<&[String]>,
) -> String {
    let id = &s.identity;
    match claim {
        "sub" | "user" => id.sub.clone(),
        "email" => id.email.clone(),
        "name" => id.name.clone(),
        "groups" => visible_groups(&id.groups, groups_filter).join(","),
        "sid" => s.id.to_hex(),
        other => match id.claims.get(other) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(v)) => v.clone(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    serde_json::Value::String(v) => v.clone(),
                    v => v.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            Some(v) => v.to_string(),
        },
    }
}

//! The route table: which configured route serves a request.
//!
//! Order (documented in `docs/routing.md`):
//! 1. host: an exact `from` host wins over wildcards; among wildcards the
//!    longest suffix wins (`*.a.example.com` before `*.example.com`). The
//!    chosen host owns all its paths: there is no fall-through to a wildcard
//!    (a host whose routes all name other ports is not chosen).
//! 2. within a host: `path` (exact) > `regex` (higher
//!    `regex_priority_order` first, then file order) > `prefix` (longest
//!    first) > host-only routes.
//! 3. a `from` with a port only matches requests for that port.
//!
//! Lookup cost depends on the number of labels in the request host and on
//! the routes of that one host, never on routes of other hosts.

use gatehouse_config::{HostPattern, PathMatch, Route};

/// The host maps: looked up on every request with the client's host. Only
/// configured hosts are ever inserted (a lookup's cost depends on the
/// table, not on the key asked for), so a fast seeded hash serves; SipHash
/// cost ~470 instructions per request for the two lookups.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<Box<str>, HostRoutes>,
    wildcard: HashMap<Box<str>, HostRoutes>,
    /// `tcp+https` routes by host and port: reached only by `CONNECT`,
    /// never by a request's path.
    tunnels: HashMap<(Box<str>, u16), usize>,
}

/// The routes of one host, in match order.
#[derive(Debug, Default)]
struct HostRoutes {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    port: Option<u16>,
    /// Sort class: 0 exact path, 1 regex, 2 prefix, 3 host-only.
    class: u8,
    /// Prefix length, to put longer prefixes first; for regexes, their
    /// `regex_priority_order` (unset: after every set one).
    len: i128,
    route: usize,
}

/// Why [`RouteTable::resolve`] found no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    NoRoute,
    /// The servlet reading of the path picks another route.
    Ambiguous,
}

impl RouteTable {
    pub fn new(routes: &[Route]) -> RouteTable {
        let mut table = RouteTable::default();
        for (i, r) in routes.iter().enumerate() {
            if r.from.tcp {
                if let (HostPattern::Exact(h), Some(port)) = (&r.from.host, r.from.port) {
                    table.tunnels.entry((h.as_str().into(), port)).or_insert(i);
                }
                continue;
            }
            let (class, len) = match &r.path_match {
                PathMatch::Exact(p) => (0, p.len() as i128),
                PathMatch::Regex(_) => (1, r.regex_priority.map_or(i128::MIN, i128::from)),
                PathMatch::Prefix(p) => (2, p.len() as i128),
                PathMatch::Any => (3, 0),
            };
            let map = match &r.from.host {
                HostPattern::Exact(h) => table.exact.entry(h.as_str().into()).or_default(),
                HostPattern::Wildcard(s) => table.wildcard.entry(s.as_str().into()).or_default(),
            };
            map.entries.push(Entry {
                port: r.from.port,
                class,
                len,
                route: i,
            });
        }
        for hr in table.exact.values_mut().chain(table.wildcard.values_mut()) {
            // Stable: file order among equals (regexes of one priority).
            hr.entries
                .sort_by(|a, b| a.class.cmp(&b.class).then(b.len.cmp(&a.len)));
        }
        table
    }

    /// Finds the route for `host` (lower-case, without port), the port the
    /// request came in on, and the normalized path.
    pub fn find(&self, routes: &[Route], host: &str, port: u16, path: &str) -> Option<usize> {
        if let Some(hr) = self.exact.get(host).filter(|hr| hr.serves_port(port)) {
            return hr.find(routes, port, path);
        }
        // `a.b.example.com` tries `.b.example.com`, then `.example.com`, then `.com`.
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            let suffix = &rest[dot..];
            if let Some(hr) = self.wildcard.get(suffix).filter(|hr| hr.serves_port(port)) {
                return hr.find(routes, port, path);
            }
            rest = &rest[dot + 1..];
        }
        None
    }

    /// The first `tcp+https` route of `host` (its sign-in client serves a
    /// programmatic login there).
    pub fn tunnel_of_host(&self, host: &str) -> Option<usize> {
        self.tunnels
            .iter()
            .filter(|((h, _), _)| &**h == host)
            .map(|(_, i)| *i)
            .min()
    }

    /// The `tcp+https` route a `CONNECT host:port` opens.
    pub fn tunnel(&self, host: &str, port: u16) -> Option<usize> {
        self.tunnels.get(&(Box::from(host), port)).copied()
    }

    /// The route for a request, as every lookup must make it: [`find`](Self::find)
    /// on the canonical path, and the servlet reading of that path
    /// (`;parameters` cut, as Jetty and Tomcat read it) must pick the same
    /// route, or the request is ambiguous.
    pub fn resolve(
        &self,
        routes: &[Route],
        host: &str,
        port: u16,
        path: &str,
    ) -> Result<usize, Unresolved> {
        let index = self
            .find(routes, host, port, path)
            .ok_or(Unresolved::NoRoute)?;
        if let Some(cut) = crate::request::without_parameters(path)
            && self.find(routes, host, port, &cut) != Some(index)
        {
            return Err(Unresolved::Ambiguous);
        }
        Ok(index)
    }

    /// True when some route serves this host (any path) on this port.
    pub fn serves_host(&self, host: &str, port: u16) -> bool {
        if self.exact.get(host).is_some_and(|hr| hr.serves_port(port)) {
            return true;
        }
        // A tunnel's host, on any port: its clients sign in there
        // (`/.pomerium/api/v1/login`).
        if self.tunnels.keys().any(|(h, _)| &**h == host) {
            return true;
        }
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            if self
                .wildcard
                .get(&rest[dot..])
                .is_some_and(|hr| hr.serves_port(port))
            {
                return true;
            }
            rest = &rest[dot + 1..];
        }
        false
    }
}

impl HostRoutes {
    fn serves_port(&self, port: u16) -> bool {
        self.entries
            .iter()
            .any(|e| e.port.is_none_or(|p| p == port))
    }

    fn find(&self, routes: &[Route], port: u16, path: &str) -> Option<usize> {
        self.entries
            .iter()
            .filter(|e| e.port.is_none_or(|p| p == port))
            .find(|e| match &routes[e.route].path_match {
                PathMatch::Any => true,
                PathMatch::Exact(p) => path == p,
                PathMatch::Prefix(p) => path.starts_with(p.as_str()),
                PathMatch::Regex(rx) => rx.is_match(path),
            })
            .map(|e| e.route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(yaml: &str) -> Vec<Route> {
        gatehouse_config::load_str(yaml, "t.yaml", std::path::Path::new("."), &|_| None)
            .unwrap()
            .config
            .routes
    }

    /// Every lookup (proxied requests, forward-auth, the token sign-in's
    /// target) goes through `resolve`: the servlet reading of a path must
    /// pick the same route.
    #[test]
    fn resolve_refuses_paths_the_servlet_reading_routes_elsewhere() {
        let r = routes(
            "routes:
  - {from: 'https://a.example', path: /secret, to: 'http://u', allow_any_authenticated_user: true}
  - {from: 'https://a.example', prefix: /, to: 'http://u', allow_public_unauthenticated_access: true}
",
        );
        let t = RouteTable::new(&r);
        assert_eq!(t.resolve(&r, "a.example", 443, "/secret"), Ok(0));
        assert_eq!(t.resolve(&r, "a.example", 443, "/other;x"), Ok(1));
        assert_eq!(
            t.resolve(&r, "a.example", 443, "/secret;x"),
            Err(Unresolved::Ambiguous)
        );
        assert_eq!(
            t.resolve(&r, "b.example", 443, "/"),
            Err(Unresolved::NoRoute)
        );
    }

    #[test]
    fn specificity_order_within_a_host() {
        let r = routes(
            "routes:
  - {from: 'https://a.example.com', to: 'http://any'}
  - {from: 'https://a.example.com', to: 'http://p', prefix: /api}
  - {from: 'https://a.example.com', to: 'http://pl', prefix: /api/v2}
  - {from: 'https://a.example.com', to: 'http://rx', regex: '/api/v[0-9]+/x'}
  - {from: 'https://a.example.com', to: 'http://exact', path: /api/v2/x}
  - {from: 'https://*.example.com', to: 'http://wild'}
  - {from: 'https://*.b.example.com', to: 'http://wild-b'}
  - {from: 'https://c.example.com:8443', to: 'http://port'}
",
        );
        let t = RouteTable::new(&r);
        let f = |h: &str, port: u16, p: &str| t.find(&r, h, port, p);
        assert_eq!(f("a.example.com", 443, "/api/v2/x"), Some(4));
        assert_eq!(f("a.example.com", 443, "/api/v3/x"), Some(3));
        assert_eq!(f("a.example.com", 443, "/api/v2/y"), Some(2));
        assert_eq!(f("a.example.com", 443, "/api/y"), Some(1));
        assert_eq!(f("a.example.com", 443, "/"), Some(0));
        assert_eq!(f("z.example.com", 443, "/"), Some(5));
        assert_eq!(f("x.y.example.com", 443, "/"), Some(5));
        assert_eq!(f("z.b.example.com", 443, "/"), Some(6));
        assert_eq!(f("c.example.com", 8443, "/"), Some(7));
        assert_eq!(
            f("c.example.com", 443, "/"),
            Some(5),
            "wrong port falls to the wildcard"
        );
        assert_eq!(f("example.com", 443, "/"), None);
        assert_eq!(f("other.org", 443, "/"), None);
    }

    #[test]
    fn regex_priority_order_decides_among_regexes_then_file_order() {
        let r = routes(
            "routes:
  - {from: 'https://a.example.com', to: 'http://first', regex: '/api/.*'}
  - {from: 'https://a.example.com', to: 'http://low', regex: '/api/a.*', regex_priority_order: -5}
  - {from: 'https://a.example.com', to: 'http://high', regex: '/api/admin/.*', regex_priority_order: 10}
  - {from: 'https://a.example.com', to: 'http://mid', regex: '/api/admin/x', regex_priority_order: 3}
  - {from: 'https://a.example.com', to: 'http://exact', path: '/api/admin/x'}
",
        );
        let t = RouteTable::new(&r);
        // Exact paths still come first; then priority 10, 3, -5, unset.
        assert_eq!(t.find(&r, "a.example.com", 443, "/api/admin/x"), Some(4));
        assert_eq!(t.find(&r, "a.example.com", 443, "/api/admin/y"), Some(2));
        assert_eq!(t.find(&r, "a.example.com", 443, "/api/apps"), Some(1));
        assert_eq!(t.find(&r, "a.example.com", 443, "/api/other"), Some(0));
        // Without priorities: file order.
        let r = routes(
            "routes:
  - {from: 'https://a.example.com', to: 'http://first', regex: '/api/.*'}
  - {from: 'https://a.example.com', to: 'http://second', regex: '/api/admin/.*'}
",
        );
        let t = RouteTable::new(&r);
        assert_eq!(t.find(&r, "a.example.com", 443, "/api/admin/y"), Some(0));
    }

    #[test]
    fn regex_matches_the_whole_path() {
        let r = routes(
            "routes:\n  - {from: 'https://a.example.com', to: 'http://x', regex: '/v[0-9]'}\n",
        );
        let t = RouteTable::new(&r);
        assert_eq!(t.find(&r, "a.example.com", 443, "/v1"), Some(0));
        assert_eq!(t.find(&r, "a.example.com", 443, "/v1/more"), None);
    }
}

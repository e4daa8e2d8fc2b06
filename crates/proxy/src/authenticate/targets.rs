//! Where a sign-in may return to: only origins gatehouse serves (no open
//! redirects).

use super::state::Auth;

/// Where sign-in may send a browser: origins gatehouse serves.
pub(crate) struct Targets<'a> {
    pub(super) auth: &'a Auth,
    /// The route table's answer for a host and port.
    pub(super) allowed: &'a (dyn Fn(&str, Option<u16>) -> bool + Sync),
    /// The port gatehouse listens on: what a `from` without a port serves,
    /// besides its scheme's default port (behind a load balancer).
    pub(super) local_port: u16,
}

impl Targets<'_> {
    fn serves_origin(&self, url: &url::Url) -> bool {
        serves_origin(
            url,
            self.auth.authenticate.as_ref(),
            &self.auth.route_origins,
            self.local_port,
        ) && url
            .host_str()
            .is_some_and(|h| (self.allowed)(&h.to_ascii_lowercase(), url.port_or_known_default()))
    }
}

/// True when a route's `from` (or the authenticate service) serves `url`'s
/// exact origin: its host, its port, and https unless that `from` is plain
/// http by configuration. A `from` without a port serves the port gatehouse
/// listens on, and the scheme's default port (behind a load balancer).
pub(super) fn serves_origin(
    url: &url::Url,
    authenticate: Option<&gatehouse_config::AuthenticateUrl>,
    routes: &[gatehouse_config::From],
    local_port: u16,
) -> bool {
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return false,
    };
    let Some(port) = url.port_or_known_default() else {
        return false;
    };
    let serves = |from_https: bool, from_port: Option<u16>| {
        (https || !from_https)
            && match from_port {
                Some(p) => p == port,
                None => url.port().is_none() || port == local_port,
            }
    };
    if let Some(a) = authenticate.filter(|a| a.host == host) {
        return serves(a.https, a.port);
    }
    routes.iter().any(|f| {
        let host_matches = match &f.host {
            gatehouse_config::HostPattern::Exact(h) => *h == host,
            gatehouse_config::HostPattern::Wildcard(suffix) => host.ends_with(suffix.as_str()),
        };
        host_matches && serves(f.https, f.port)
    })
}

/// Checks a `pomerium_redirect_uri`: an absolute URL on an origin gatehouse
/// serves (see [`Targets::serves_origin`]), without credentials.
pub(super) fn checked_redirect(target: &str, allowed: &Targets<'_>) -> Option<url::Url> {
    let url = url::Url::parse(target).ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    allowed.serves_origin(&url).then_some(url)
}

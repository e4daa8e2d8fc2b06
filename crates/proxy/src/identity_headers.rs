//! The request headers only gatehouse may write: the assertion, the claim
//! headers of every route and the global list, the forward-auth answer's
//! `X-Auth-Request-*`, and `set_request_headers` whose value gatehouse
//! vouches for without a signature (`${pomerium.client_cert_fingerprint}`).
//! Also the headers that describe the request or its client
//! (`X-Original-URL`, `Forwarded`, `X-Real-IP`, ...), which gatehouse alone
//! states. A client's copies are removed on every
//! route, in every spelling (CGI, WSGI and PHP read `_` as `-`), so no
//! route, public or not, lets a forged identity reach an upstream.

use gatehouse_config::{Config, TemplatePart};
use http::HeaderMap;
use http::header::HeaderName;

/// Prefixes gatehouse owns outright (`X-Pomerium-Jwt-Assertion`,
/// `-Assertion-For`, `-Claim-*`, `X-Pomerium-Authorization`; oauth2-proxy's
/// `X-Auth-Request-*`).
const OWNED_PREFIXES: [&str; 2] = ["x-pomerium-", "x-auth-request-"];

/// Headers that describe the request or its client to the upstream, which
/// only gatehouse may state: some frameworks route on `X-Original-URL` /
/// `X-Rewrite-URL` (past the path the policy decided on), take the client
/// from `X-Real-IP` or `Forwarded`, or the host from `Forwarded: host=`.
/// `X-Forwarded-Proto` and `-Host` are set again after they are removed.
const REQUEST_DESCRIPTION: [&str; 13] = [
    "forwarded",
    "x-real-ip",
    "x-original-url",
    "x-original-uri",
    "x-original-method",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// Headers gatehouse extends rather than owns: only their `_` spellings,
/// which a CGI reader would merge with the real one, are removed.
const EXTENDED: [&str; 2] = ["x-forwarded-for", "x-request-id"];

/// The names of one configuration, built once per configuration.
#[derive(Debug)]
pub struct OwnedHeaders {
    /// Canonical spellings (lower case, `-`) of names outside the prefixes:
    /// a few, compared in a row (every request header is looked up here).
    names: Vec<Box<str>>,
    /// The first bytes (canonical) of every owned name and prefix: most of
    /// a request's names (`host`, `accept`, `user-agent`, ...) are told
    /// apart by this alone.
    first: FirstBytes,
    /// Every exact name gatehouse may write, for the blanks of a
    /// forward-auth answer (a proxy in front that copies a header the
    /// answer lacks would otherwise keep the client's copy).
    pub written: Vec<HeaderName>,
}

impl OwnedHeaders {
    pub fn new(config: &Config) -> OwnedHeaders {
        let mut written: Vec<HeaderName> = [
            "x-pomerium-jwt-assertion",
            "x-auth-request-user",
            "x-auth-request-email",
            "x-auth-request-groups",
            "x-auth-request-preferred-username",
        ]
        .into_iter()
        .map(HeaderName::from_static)
        .collect();
        let global = config
            .options
            .jwt_claims_headers
            .iter()
            .flat_map(|h| h.value.0.iter().map(|(n, _)| n))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok());
        let routes = config.routes.iter().flat_map(|r| {
            let claims = r.claim_headers.iter().map(|(n, _)| n.clone());
            let templated = r
                .set_request_headers
                .iter()
                // Tokens and `${pomerium.jwt}` carry their own signature
                // (and `Authorization` must stay the client's elsewhere);
                // a certificate fingerprint is vouched for by gatehouse alone.
                .filter(|(_, t)| {
                    t.parts.iter().any(|p| {
                        matches!(
                            p,
                            TemplatePart::ClientCertFingerprint
                                | TemplatePart::ClientCertSanDns
                                | TemplatePart::ClientCertSanEmail
                        )
                    })
                })
                .map(|(n, _)| n.clone());
            claims.chain(templated)
        });
        for name in global.chain(routes) {
            if !written.contains(&name) {
                written.push(name);
            }
        }
        // Stored in the spelling `owns` compares in: `_` read as `-` (a
        // configured `X_WEBAUTH_USER` owns `X-Webauth-User` too).
        let mut names: Vec<Box<str>> = written
            .iter()
            .map(|n| n.as_str().replace('_', "-"))
            .filter(|n| !OWNED_PREFIXES.iter().any(|p| n.starts_with(p)))
            .map(String::into_boxed_str)
            .collect();
        names.sort();
        names.dedup();
        let mut first = FirstBytes::fixed();
        for n in &names {
            first.add(n);
        }
        OwnedHeaders {
            names,
            first,
            written,
        }
    }

    /// True for a name gatehouse owns, in any spelling.
    pub fn owns(&self, name: &str) -> bool {
        if !self.first.has(name) {
            return false;
        }
        let canonical = if name.contains('_') {
            std::borrow::Cow::Owned(name.replace('_', "-"))
        } else {
            std::borrow::Cow::Borrowed(name)
        };
        OWNED_PREFIXES.iter().any(|p| canonical.starts_with(p))
            || REQUEST_DESCRIPTION.contains(&canonical.as_ref())
            || (name.contains('_') && EXTENDED.contains(&canonical.as_ref()))
            || self.names.iter().any(|n| **n == *canonical)
    }

    /// Removes every header gatehouse owns from a client's request (the
    /// caller has seen one: its one pass over the names asks
    /// [`OwnedHeaders::owns`] of each).
    pub fn strip(&self, headers: &mut HeaderMap) {
        let owned: Vec<HeaderName> = headers
            .keys()
            .filter(|n| self.owns(n.as_str()))
            .cloned()
            .collect();
        for name in owned {
            headers.remove(name);
        }
    }
}

impl Default for OwnedHeaders {
    /// The names owned whatever the configuration.
    fn default() -> OwnedHeaders {
        OwnedHeaders {
            names: Vec::new(),
            first: FirstBytes::fixed(),
            written: Vec::new(),
        }
    }
}

/// A set of bytes: the first bytes of owned names, `_` read as `-`.
#[derive(Debug, Clone, Copy)]
struct FirstBytes([u64; 4]);

impl FirstBytes {
    /// Those of the names and prefixes owned in every configuration.
    fn fixed() -> FirstBytes {
        let mut set = FirstBytes([0; 4]);
        for n in OWNED_PREFIXES
            .iter()
            .chain(&REQUEST_DESCRIPTION)
            .chain(&EXTENDED)
        {
            set.add(n);
        }
        set
    }

    fn add(&mut self, name: &str) {
        if let Some(&b) = name.as_bytes().first() {
            let b = Self::canonical(b);
            self.0[usize::from(b >> 6)] |= 1 << (b & 63);
        }
    }

    /// Whether `name`'s first byte is in the set (an empty name is not).
    fn has(&self, name: &str) -> bool {
        name.as_bytes().first().is_some_and(|&b| {
            let b = Self::canonical(b);
            self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
        })
    }

    fn canonical(b: u8) -> u8 {
        match b {
            b'_' => b'-',
            b => b.to_ascii_lowercase(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_spelling() {
        let config = gatehouse_config::load_str(
            "jwt_claims_headers: {X-Global-User: email}
routes:
  - from: https://a.example
    to: http://127.0.0.1:1
    allow_public_unauthenticated_access: true
  - from: https://a.example
    prefix: /private
    to: http://127.0.0.1:1
    jwt_claims_headers: {X-WEBAUTH-USER: email, X_Other_User: email, Remote_Email: email, _Odd-User: email}
    set_request_headers: {X-Token: '${pomerium.access_token}', X-Plain: 'v', X-Cert: '${pomerium.client_cert_fingerprint}'}
    allow_any_authenticated_user: true
",
            "t.yaml",
            std::path::Path::new("."),
            &|_| None,
        )
        .unwrap()
        .config;
        let owned = OwnedHeaders::new(&config);
        for n in [
            "x-webauth-user",
            "x_webauth_user",
            "x-webauth_user",
            "x-global-user",
            "x-cert",
            "x-other-user",
            "x_other_user",
            "x-pomerium-jwt-assertion",
            "x_pomerium_jwt_assertion",
            "x-pomerium_claim_email",
            "x-pomerium-claim-anything",
            "x-pomerium-jwt-assertion-for",
            "x-auth-request-email",
            "x_auth_request_user",
            // Configured names of any first letter, `_` read as `-`.
            "remote-email",
            "remote_email",
            "_odd-user",
            "-odd_user",
        ] {
            assert!(owned.owns(n), "{n}");
        }
        for n in [
            "x_original_url",
            "x-rewrite-url",
            "forwarded",
            "x-real-ip",
            "x_forwarded_for",
            "x_request_id",
        ] {
            assert!(owned.owns(n), "{n}");
        }
        for n in [
            "x-plain",
            "x-request-id",
            "host",
            "x-forwarded-for",
            "authorization",
            "x-webauth",
            "remote-user",
            "",
        ] {
            assert!(!owned.owns(n), "{n}");
        }
        let mut h = HeaderMap::new();
        h.insert("x_webauth_user", "ceo@example.com".parse().unwrap());
        h.insert("x-pomerium-claim-email", "ceo@example.com".parse().unwrap());
        h.insert("accept", "*/*".parse().unwrap());
        owned.strip(&mut h);
        assert_eq!(h.len(), 1);
        assert!(owned.written.iter().any(|n| n == "x-webauth-user"));
    }
}

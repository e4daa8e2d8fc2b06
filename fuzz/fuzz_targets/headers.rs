//! Request headers a client or a proxy in front controls: credentials
//! (`Authorization`, `X-Pomerium-Authorization`, cookies), the forward-auth
//! description of the original request, `Host`, `X-Forwarded-For` and
//! names with `_`: parsed without panicking, and the owned identity
//! headers never survive stripping.
#![no_main]

use gatehouse_config::RequestRules;
use gatehouse_proxy::identity_headers::OwnedHeaders;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "authorization",
    "x-pomerium-authorization",
    "cookie",
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-uri",
    "x-forwarded-proto",
    "x-forwarded-method",
    "x-original-url",
    "x-original-uri",
    "x-original-method",
    "x-pomerium-jwt-assertion",
    "x_pomerium_jwt_assertion",
    "x-pomerium_claim_email",
    "x-auth-request-email",
];

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for chunk in data.split(|&b| b == b'\n') {
        let Some((&first, value)) = chunk.split_first() else {
            continue;
        };
        let name = match NAMES.get(first as usize % (NAMES.len() + 1)) {
            Some(n) => HeaderName::from_static(n),
            None => {
                let (n, v) = value.split_at(value.iter().position(|&b| b == b':').unwrap_or(0));
                let Ok(n) = HeaderName::from_bytes(n) else {
                    continue;
                };
                let Ok(v) = HeaderValue::from_bytes(v.get(1..).unwrap_or_default()) else {
                    continue;
                };
                headers.append(n, v);
                continue;
            }
        };
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(name, v);
        }
    }
    let _ = gatehouse_proxy::bearer::credential(&headers);
    let _ = gatehouse_proxy::forward_auth::original_target(&headers);
    let peer = std::net::Ipv4Addr::LOCALHOST.into();
    for hops in [0, 1, 3] {
        let _ = gatehouse_proxy::request::client_address(peer, &headers, hops);
        let _ = gatehouse_proxy::request::forwarded_client(&headers, hops);
    }
    let rules = RequestRules::default();
    let _ = gatehouse_proxy::request::check_headers(&mut headers.clone(), None, &rules);
    let owned = OwnedHeaders::default();
    owned.strip(&mut headers);
    assert!(headers.keys().all(|n| !owned.owns(n.as_str())));
});

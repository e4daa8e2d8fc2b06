use gatehouse_identity::codec::valid_binding;
use http::header::{self, HeaderMap, HeaderValue};

use super::{
    cookies::strip_cookies,
    embedded::origin_matches,
    start::{binding_of, holds_binding_named, new_binding},
    targets::serves_origin,
};

fn cookies(h: &HeaderMap) -> Vec<&str> {
    h.get_all(header::COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[test]
fn own_cookies_are_stripped_others_kept() {
    let mut h = HeaderMap::new();
    h.append(
        header::COOKIE,
        HeaderValue::from_static("a=1; _pomerium=secret; b=2"),
    );
    h.append(header::COOKIE, HeaderValue::from_static("_pomerium_csrf=x"));
    strip_cookies(&mut h, "_pomerium");
    assert_eq!(cookies(&h), ["a=1; b=2"]);

    // However spaced; another name that merely starts the same is kept; a
    // value without gatehouse's cookies stays as it was.
    let mut h = HeaderMap::new();
    h.append(header::COOKIE, HeaderValue::from_static("x=1;y=2"));
    h.append(
        header::COOKIE,
        HeaderValue::from_static(" _pomerium =s ;_pomeriumx=1"),
    );
    strip_cookies(&mut h, "_pomerium");
    assert_eq!(cookies(&h), ["x=1;y=2", "_pomeriumx=1"]);

    // A value that is not valid text (a co-tenant's cookie with a byte
    // over 0x7f) is cleaned too, its other bytes kept.
    let mut h = HeaderMap::new();
    h.insert(
        header::COOKIE,
        HeaderValue::from_bytes(b"_pomerium=sealed; x=\xc3\xa9").unwrap(),
    );
    strip_cookies(&mut h, "_pomerium");
    let all: Vec<&[u8]> = h
        .get_all(header::COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    assert_eq!(all, [b"x=\xc3\xa9".as_slice()]);

    // Only gatehouse's: no Cookie header at all.
    let mut h = HeaderMap::new();
    h.insert(header::COOKIE, HeaderValue::from_static("_pomerium=s"));
    strip_cookies(&mut h, "_pomerium");
    assert!(h.get(header::COOKIE).is_none());

    // Empty pieces, first and last ones, a separator at either end.
    for (sent, kept) in [
        ("_pomerium=s;", None),
        (";_pomerium=s", None),
        (";a=1;;_pomerium=s;", Some("a=1")),
        ("a=1;_pomerium_csrf=t", Some("a=1")),
        ("_pomerium=s;b=2", Some("b=2")),
        ("a=1;", Some("a=1;")),
        (";", Some(";")),
    ] {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static(sent));
        strip_cookies(&mut h, "_pomerium");
        let got = h.get(header::COOKIE).map(|v| v.to_str().unwrap());
        assert_eq!(got, kept, "{sent}");
    }
}

#[test]
fn frame_ancestor_origins() {
    assert!(origin_matches(
        "https://parent.example.com",
        "https://parent.example.com"
    ));
    assert!(origin_matches(
        "https://*.example.com",
        "https://a.example.com"
    ));
    assert!(!origin_matches(
        "https://*.example.com",
        "https://example.com"
    ));
    assert!(!origin_matches(
        "https://*.example.com",
        "http://a.example.com"
    ));
    assert!(!origin_matches(
        "https://parent.example.com",
        "https://evil.example.com"
    ));
    assert!(!origin_matches("'self'", "https://a.example.com"));
}

fn from(url: &str) -> gatehouse_config::From {
    let u = url::Url::parse(url).unwrap();
    let host = u.host_str().unwrap().to_string();
    gatehouse_config::From {
        https: u.scheme() == "https",
        host: match host.strip_prefix('*') {
            Some(suffix) => gatehouse_config::HostPattern::Wildcard(suffix.into()),
            None => gatehouse_config::HostPattern::Exact(host),
        },
        port: u.port(),
        tcp: false,
    }
}

#[test]
fn redirect_targets_are_origins_gatehouse_serves() {
    let routes = [
        from("https://app.localhost"),
        from("https://pinned.localhost:9443"),
        from("http://plain.localhost"),
        from("https://*.apps.localhost"),
    ];
    let auth = gatehouse_config::AuthenticateUrl {
        https: true,
        host: "authenticate.localhost".into(),
        port: Some(8443),
    };
    let ok = |u: &str| serves_origin(&url::Url::parse(u).unwrap(), Some(&auth), &routes, 8443);
    for good in [
        "https://app.localhost:8443/x?y=1",
        "https://app.localhost/x",
        "https://pinned.localhost:9443/",
        "http://plain.localhost:8443/",
        "https://plain.localhost/",
        "https://a.apps.localhost:8443/",
        "https://authenticate.localhost:8443/.pomerium/",
    ] {
        assert!(ok(good), "{good}");
    }
    for bad in [
        "http://app.localhost:8443/",
        "http://app.localhost/",
        "https://app.localhost:9999/",
        "https://pinned.localhost:8443/",
        "https://pinned.localhost/",
        "http://plain.localhost:9999/",
        "https://authenticate.localhost/",
        "http://authenticate.localhost:8443/",
        "https://evil.example/",
        "https://apps.localhost:8443/",
        "ftp://app.localhost/",
    ] {
        assert!(!ok(bad), "{bad}");
    }
}

#[test]
fn browsers_prove_their_binding() {
    let (nonce, binding) = new_binding();
    assert!(valid_binding(&binding));
    assert_eq!(binding_of(&nonce), binding);
    assert!(!valid_binding("short") && !valid_binding(&"=".repeat(43)));
    // The sealed hand-off itself is `gatehouse_identity::codec`'s (tested there).
    // The pending cookie that proves the binding.
    let mut headers = HeaderMap::new();
    let name = format!("_pomerium_pending_{}", &binding[..10]);
    headers.insert(
        header::COOKIE,
        HeaderValue::from_str(&format!("a=1; {name}={nonce}")).unwrap(),
    );
    assert!(holds_binding_named(&headers, "_pomerium", &binding));
    let (other_nonce, _) = new_binding();
    headers.insert(
        header::COOKIE,
        HeaderValue::from_str(&format!("{name}={other_nonce}")).unwrap(),
    );
    assert!(!holds_binding_named(&headers, "_pomerium", &binding));
    assert!(!holds_binding_named(
        &HeaderMap::new(),
        "_pomerium",
        &binding
    ));
}

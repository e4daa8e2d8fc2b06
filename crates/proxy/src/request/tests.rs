use super::*;
use rand::{Rng, SeedableRng};

fn rules() -> RequestRules {
    RequestRules::default()
}

fn canon(p: &str) -> Result<String, Ambiguous> {
    canonical_path(p, &rules()).map(|c| c.path.into_owned())
}

#[test]
fn canonical_paths() {
    let ok = |p: &str, want: &str| assert_eq!(canon(p).as_deref(), Ok(want), "{p}");
    ok("/a/b", "/a/b");
    ok("/", "/");
    ok("/dir/", "/dir/");
    ok("/.well-known/x", "/.well-known/x");
    ok("/a;b=c/d", "/a;b=c/d");
    ok("/%61dmin", "/admin");
    ok("/./admin", "/admin");
    ok("//admin", "/admin");
    ok("/public/../admin", "/admin");
    ok("/public/%2e%2e/admin", "/admin");
    ok("/public/.%2E/admin", "/admin");
    ok("/../../etc", "/etc");
    ok("/a/b/..", "/a/");
    ok("/a/.", "/a/");
    ok("/a%3bb", "/a%3Bb");
    ok("/a%20b", "/a%20b");
    ok("/%25", "/%25");
    ok("/%2561dmin", "/%2561dmin");
    ok("/é/x", "/é/x");
    assert!(matches!(
        canonical_path("/a/b", &rules()).unwrap().path,
        Cow::Borrowed(_)
    ));
}

#[test]
fn ambiguous_paths_are_refused() {
    let no = |p: &str, why: Ambiguous| assert_eq!(canon(p), Err(why), "{p}");
    no("*", Ambiguous::NotOriginForm);
    no("a/b", Ambiguous::NotOriginForm);
    no("/x\\..\\admin", Ambiguous::Backslash);
    no("/x\\admin", Ambiguous::Backslash);
    no("/public/..%2fadmin", Ambiguous::EscapedSlash);
    no("/public/%2e%2e%2fadmin", Ambiguous::EscapedSlash);
    no("/%2fadmin", Ambiguous::EscapedSlash);
    no("/x%5C..%5cadmin", Ambiguous::EscapedSlash);
    no("/a%2", Ambiguous::BadEscape);
    no("/a%zz", Ambiguous::BadEscape);
    no("/100%", Ambiguous::BadEscape);
    no("/admin%00.png", Ambiguous::Nul);
    no("/public/..;/admin", Ambiguous::DotParameters);
    no("/public/.;x/admin", Ambiguous::DotParameters);
    no("/public/%2e%2e;/admin", Ambiguous::DotParameters);
    no("/;x/admin", Ambiguous::DotParameters);
    no("/public/;/admin", Ambiguous::DotParameters);
    no("/public/..%3b/admin", Ambiguous::DotParameters);
    no("/.%3B", Ambiguous::DotParameters);
}

#[test]
fn escaped_slash_actions() {
    let with = |escaped_slashes| RequestRules {
        escaped_slashes,
        ..RequestRules::default()
    };
    let keep = canonical_path("/a%2fb/../c", &with(EscapedSlashes::KeepUnchanged)).unwrap();
    assert_eq!(keep.path, "/c");
    let keep = canonical_path("/g%2fp/x", &with(EscapedSlashes::KeepUnchanged)).unwrap();
    assert_eq!(
        (keep.path.as_ref(), keep.unescaped_slashes),
        ("/g%2Fp/x", false)
    );
    let fwd = canonical_path(
        "/public/..%2fadmin",
        &with(EscapedSlashes::UnescapeAndForward),
    )
    .unwrap();
    assert_eq!((fwd.path.as_ref(), fwd.unescaped_slashes), ("/admin", true));
    let red = canonical_path(
        "/x%5C..%5Cadmin",
        &with(EscapedSlashes::UnescapeAndRedirect),
    )
    .unwrap();
    assert_eq!((red.path.as_ref(), red.unescaped_slashes), ("/admin", true));
}

#[test]
fn slashes_kept_when_asked() {
    let keep = RequestRules {
        merge_slashes: false,
        ..RequestRules::default()
    };
    let c = |p| canonical_path(p, &keep).unwrap().path.into_owned();
    assert_eq!(c("//admin"), "//admin");
    assert_eq!(c("/a//b/../c"), "/a//c");
    assert_eq!(c("/a/"), "/a/");
}

/// Canonical paths are a fixed point, hold no `//`, `.` or `..` segment,
/// and decoding them once more (as an upstream does) yields the same
/// segments: no spelling reaches a route or an upstream resource other
/// than the one its canonical form names.
#[test]
fn canonical_form_is_a_fixed_point() {
    const PARTS: &[&str] = &[
        "/", "a", ".", "..", "%2e", "%2E%2e", "%2f", "%5c", "\\", "%61", "%", "%zz", "//", "~",
        "é", ";", ";x", "%3b", "%00", "%25", "%252e", "admin",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..50_000 {
        let mut p = String::from("/");
        for _ in 0..rng.random_range(0..12) {
            p.push_str(PARTS[rng.random_range(0..PARTS.len())]);
        }
        let Ok(once) = canon(&p) else { continue };
        assert_eq!(
            canon(&once).as_deref(),
            Ok(once.as_str()),
            "not idempotent for {p:?}"
        );
        assert!(once.starts_with('/'), "{p:?} -> {once:?}");
        assert!(!once.contains("//"), "{p:?} -> {once:?}");
        let decoded = percent_decode(&once);
        for seg in once.split('/').skip(1) {
            assert!(seg != "." && seg != "..", "{p:?} -> {once:?}");
        }
        assert_eq!(
            decoded.matches('/').count(),
            once.matches('/').count(),
            "an upstream's decoding would add a segment: {p:?} -> {once:?}"
        );
        for seg in decoded.split('/').skip(1) {
            let name = seg.split([';']).next().unwrap_or("");
            assert!(
                !matches!(name, "." | ".."),
                "an upstream's decoding would add a dot segment: {p:?} -> {once:?}"
            );
        }
        assert!(
            !decoded.contains('\\') && !decoded.contains('\0'),
            "{p:?} -> {once:?}"
        );
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = (b[i + 1] as char).to_digit(16).unwrap();
            let l = (b[i + 2] as char).to_digit(16).unwrap();
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn header_rules() {
    use http::HeaderValue;
    let mut h = HeaderMap::new();
    h.append(header::HOST, HeaderValue::from_static("a.example"));
    assert_eq!(check_headers(&mut h, None, &rules()), Ok(()));
    h.append(header::HOST, HeaderValue::from_static("b.example"));
    assert_eq!(
        check_headers(&mut h, None, &rules()),
        Err(Ambiguous::DuplicateHost)
    );

    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("B.example"));
    let a: http::uri::Authority = "b.example".parse().unwrap();
    assert_eq!(check_headers(&mut h, Some(&a), &rules()), Ok(()));
    let a: http::uri::Authority = "c.example".parse().unwrap();
    assert_eq!(
        check_headers(&mut h, Some(&a), &rules()),
        Err(Ambiguous::HostMismatch)
    );

    let mut h = HeaderMap::new();
    h.insert("x_pomerium_jwt_assertion", HeaderValue::from_static("x"));
    h.insert("x-ok", HeaderValue::from_static("y"));
    assert_eq!(
        check_headers(&mut h, None, &rules()),
        Err(Ambiguous::UnderscoreHeader)
    );
    let drop = RequestRules {
        underscore_headers: UnderscoreHeaders::Drop,
        ..rules()
    };
    assert_eq!(check_headers(&mut h, None, &drop), Ok(()));
    assert_eq!(h.len(), 1);
    assert!(h.contains_key("x-ok"));
}

#[test]
fn authorities() {
    for ok in [
        "a.example",
        "a.example:8443",
        "A-b_c.x",
        "127.0.0.1:1",
        "[::1]",
        "[::1]:443",
        "[::ffff:1.2.3.4]",
    ] {
        assert!(valid_authority(ok.as_bytes()), "{ok}");
    }
    for bad in [
        "",
        "x.example.com@admin.example.com",
        "admin.example.com,x.example.com",
        "a\\b",
        "a%2eb",
        "a#b",
        "a?b",
        "a/b",
        "a:",
        "a:x",
        "a:1234567",
        "[zz]",
        "[::1",
        "a b",
        ":80",
    ] {
        assert!(!valid_authority(bad.as_bytes()), "{bad}");
    }
}

#[test]
fn client_addresses() {
    use http::HeaderValue;
    let peer: IpAddr = "192.0.2.5".parse().unwrap();
    let mut h = HeaderMap::new();
    h.append(
        "x-forwarded-for",
        HeaderValue::from_static("203.0.113.128, 203.0.113.10"),
    );
    h.append("x-forwarded-for", HeaderValue::from_static("203.0.113.1"));
    h.insert("x-real-ip", HeaderValue::from_static("198.51.100.1"));
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // Envoy's examples: no trusted hop → the peer, whatever XFF says.
    let ok = |hops| client_address(peer, &h, hops);
    assert_eq!(ok(0), Ok(peer));
    assert_eq!(ok(1), Ok(ip("203.0.113.1")));
    assert_eq!(ok(2), Ok(ip("203.0.113.10")));
    assert_eq!(ok(3), Ok(ip("203.0.113.128")));
    assert_eq!(
        ok(4),
        Err(Ambiguous::ForwardedFor),
        "too few entries: never the peer"
    );
    assert_eq!(forwarded_client(&h, 0), Ok(ip("203.0.113.1")));
    assert_eq!(forwarded_client(&h, 1), Ok(ip("203.0.113.10")));
    assert_eq!(
        forwarded_client(&HeaderMap::new(), 0),
        Err(Ambiguous::ForwardedFor),
        "X-Real-IP is never read"
    );
    let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
    assert_eq!(client_address(mapped, &h, 0), Ok(ip("10.1.2.3")));
    let mut h = HeaderMap::new();
    h.insert(
        "x-forwarded-for",
        HeaderValue::from_static("[2001:db8::1]:443, 10.0.0.1:80"),
    );
    assert_eq!(client_address(peer, &h, 1), Ok(ip("10.0.0.1")));
    assert_eq!(client_address(peer, &h, 2), Ok(ip("2001:db8::1")));
    h.insert("x-forwarded-for", HeaderValue::from_static("junk"));
    assert_eq!(client_address(peer, &h, 1), Err(Ambiguous::ForwardedFor));
    // A client's non-UTF-8 entry hides nothing the proxy appended.
    h.insert(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"\xff, 10.9.8.7").unwrap(),
    );
    assert_eq!(client_address(peer, &h, 1), Ok(ip("10.9.8.7")));
    assert_eq!(client_address(peer, &h, 2), Err(Ambiguous::ForwardedFor));
}

#[test]
fn path_parameters_cut() {
    assert_eq!(without_parameters("/a/b"), None);
    assert_eq!(without_parameters("/secret;x").as_deref(), Some("/secret"));
    assert_eq!(
        without_parameters("/a;x=1/b;y/c").as_deref(),
        Some("/a/b/c")
    );
    assert_eq!(without_parameters("/a%3Bx/b").as_deref(), Some("/a/b"));
    assert_eq!(without_parameters("/a/").as_deref(), None);
}

#[test]
fn an_unescaping_redirect_never_leaves_the_host() {
    let rules = RequestRules {
        escaped_slashes: EscapedSlashes::UnescapeAndRedirect,
        merge_slashes: false,
        ..RequestRules::default()
    };
    let req = |p: &str| http::Request::get(p).body(()).unwrap();
    for p in [
        "/%2F%2Fevil.example",
        "/%2f/evil.example/x",
        "/%5C%5Cevil.example",
    ] {
        assert!(
            matches!(canonicalize(req(p), &rules), Err(Ambiguous::EscapedSlash)),
            "{p}"
        );
    }
    match canonicalize(req("/a%2Fb?x=1"), &rules) {
        Ok(Canonical::Redirect(l)) => assert_eq!(l, "/a/b?x=1"),
        _ => panic!("a plain unescaping redirect"),
    }
}

//! Any request path, under every escaped-slash action: the canonical path
//! is a fixed point with no `.`/`..` segment and no `//` (when merged), and
//! (unless `%2F` is kept on purpose) decoding it once more, as an upstream
//! does, adds no segment.
#![no_main]

use gatehouse_config::{EscapedSlashes, RequestRules};
use gatehouse_proxy::request::canonical_path;
use libfuzzer_sys::fuzz_target;

fn decoded_slashes(p: &str) -> usize {
    let b = p.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1] == b'2'
            && b[i + 2].eq_ignore_ascii_case(&b'f')
        {
            n += 1;
            i += 3;
            continue;
        }
        if matches!(b[i], b'/' | b'\\') {
            n += 1;
        }
        i += 1;
    }
    n
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    for escaped_slashes in [
        EscapedSlashes::Reject,
        EscapedSlashes::KeepUnchanged,
        EscapedSlashes::UnescapeAndForward,
        EscapedSlashes::UnescapeAndRedirect,
    ] {
        for merge_slashes in [true, false] {
            let rules = RequestRules {
                escaped_slashes,
                merge_slashes,
                ..RequestRules::default()
            };
            let Ok(once) = canonical_path(path, &rules) else {
                continue;
            };
            let once = once.path.into_owned();
            let twice = canonical_path(&once, &rules).map(|c| c.path.into_owned());
            assert_eq!(
                twice.as_deref(),
                Ok(once.as_str()),
                "not a fixed point: {path:?}"
            );
            assert!(once.starts_with('/'));
            assert!(!once.contains('\\'));
            for seg in once.split('/').skip(1) {
                assert!(seg != "." && seg != "..", "{path:?} -> {once:?}");
            }
            if merge_slashes {
                assert!(!once.contains("//"), "{path:?} -> {once:?}");
            }
            if escaped_slashes != EscapedSlashes::KeepUnchanged {
                assert_eq!(
                    decoded_slashes(&once),
                    once.matches('/').count(),
                    "{path:?} -> {once:?}"
                );
            }
        }
    }
});

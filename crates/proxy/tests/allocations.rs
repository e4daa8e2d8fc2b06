//! Heap allocations per request on the dispatcher's path, counted by a
//! global allocator: a public route answered by gatehouse itself (the
//! phases without an upstream). The bound is today's count, so a change
//! that adds per-request allocations fails here and has to say why; lower
//! it when work is taken off the path.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use gatehouse_proxy::Proxy;
use gatehouse_proxy::body::RequestBody;
use gatehouse_proxy::request::ConnInfo;
use http::Request;
use http_body_util::BodyExt;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations of one public request through the dispatcher, its answer
/// read whole (building the test's request and reading the body included):
/// 13 when this test was written, 12 once bodies stopped being boxed,
/// 11 once `Accept` was read without lower-casing copies.
const PUBLIC_REQUEST_BOUND: usize = 11;

#[tokio::test(flavor = "current_thread")]
async fn a_public_request_allocates_within_its_bound() {
    let yaml = "address: 127.0.0.1:8443
routes:
  - from: https://public.localhost
    response: {status: 200, body: hello}
    allow_public_unauthenticated_access: true
";
    let loaded =
        gatehouse_config::load_str(yaml, "test.yaml", std::path::Path::new("."), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
    let proxy = Proxy::new(loaded.config, None).unwrap();
    let conn = ConnInfo::new("127.0.0.1:40000".parse::<SocketAddr>().unwrap(), 8443, true);
    let rt = proxy.runtime();
    let once = || async {
        let req = Request::get("https://public.localhost/x?y=1")
            .header("user-agent", "bench")
            .header("accept", "*/*")
            .body(RequestBody::empty())
            .unwrap();
        let resp = gatehouse_proxy::dispatch::handle(&proxy, &rt, req, &conn).await;
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
    };
    // Warm up lazily built state.
    for _ in 0..10 {
        once().await;
    }
    let rounds = 100;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..rounds {
        once().await;
    }
    let per_request = (ALLOCATIONS.load(Ordering::Relaxed) - before) / rounds;
    println!("allocations per public request: {per_request}");
    assert!(
        per_request <= PUBLIC_REQUEST_BOUND,
        "{per_request} allocations per request, bound {PUBLIC_REQUEST_BOUND}"
    );
}

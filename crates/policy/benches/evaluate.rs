//! `cargo bench -p gatehouse-policy`: time to evaluate the 20-criterion
//! policy in tests/data (allowed, so every allow criterion and every deny
//! criterion runs). Prints nanoseconds per evaluation; nothing asserts on it.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

fn main() {
    let policy = common::twenty_criteria();
    let user = common::user();
    let facts = common::facts(&user);
    let iterations = 2_000_000u32;
    // Warm up.
    for _ in 0..iterations / 10 {
        std::hint::black_box(policy.evaluate(std::hint::black_box(&facts)));
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(policy.evaluate(std::hint::black_box(&facts)));
        }
        best = best.min(start.elapsed().as_nanos() as f64 / iterations as f64);
    }
    println!(
        "policy evaluation, 20 criteria (12 allow AND + 8 deny OR), allowed: {best:.0} ns per request (best of 5 runs of {iterations})"
    );
}

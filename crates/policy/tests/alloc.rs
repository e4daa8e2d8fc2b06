//! Evaluating a compiled policy allocates nothing: counted with a global
//! allocator around many evaluations of the 20-criterion policy.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct CountingAllocator;

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNTING.try_with(|c| {
            if c.get() {
                ALLOCATIONS.with(|a| a.set(a.get() + 1));
            }
        });
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn evaluating_the_twenty_criterion_policy_allocates_nothing() {
    let policy = common::twenty_criteria();
    let user = common::user();
    let facts = common::facts(&user);
    assert!(matches!(
        policy.evaluate(&facts),
        gatehouse_policy::Decision::Allow(_)
    ));
    COUNTING.with(|c| c.set(true));
    for _ in 0..1000 {
        std::hint::black_box(policy.evaluate(std::hint::black_box(&facts)));
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(
        ALLOCATIONS.with(|a| a.get()),
        0,
        "allocations during evaluation"
    );
}

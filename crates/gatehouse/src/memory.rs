//! Giving freed memory back to the system.
//!
//! glibc's allocator keeps the pages of memory freed between blocks still in
//! use: after a burst (thousands of connections, HTTP/2 streams, their
//! upstream exchanges) the process keeps its peak size although much of it
//! is free. A thread looks once a second at how much the allocator holds
//! free; once that has grown by more than [`THRESHOLD`] since the last
//! trim, the free pages go back (`malloc_trim`). Only growth of what is
//! free counts: under a steady load the same memory is freed and reused
//! all the time, and trimming it would only make the next use fault the
//! pages in again; such a load trims nothing and costs one look a second.
//! Other platforms and allocators: nothing to do.

use std::time::Duration;

/// Growth of free memory (or of the resident size) worth a trim.
const THRESHOLD: usize = 4 << 20;
/// How often the allocator is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Starts the trimming thread (glibc only).
pub(crate) fn start() {
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        let _ = std::thread::Builder::new()
            .name("gatehouse-memory".into())
            .spawn(|| {
                let mut trimmer = Trimmer::default();
                loop {
                    std::thread::sleep(EVERY);
                    trimmer.tick();
                }
            });
    }
}

/// What the last trim left free.
#[derive(Debug, Default)]
struct Trimmer {
    free: usize,
}

impl Trimmer {
    /// Trims when more has been freed since the last trim than
    /// [`THRESHOLD`]; whether it did. A fall of what is free (reused)
    /// lowers the mark, so the next burst's frees count in full.
    fn tick(&mut self) -> bool {
        let Some(free) = free_bytes() else {
            return false;
        };
        if free <= self.free + THRESHOLD {
            self.free = self.free.min(free);
            return false;
        }
        trim();
        self.free = free_bytes().unwrap_or(free);
        true
    }
}

/// Bytes the allocator holds free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn free_bytes() -> Option<usize> {
    // SAFETY: mallinfo2 takes no pointers and only reads the allocator's
    // state under its locks.
    let info = unsafe { libc::mallinfo2() };
    Some(info.fordblks)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn free_bytes() -> Option<usize> {
    None
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointers; it gives whole free pages back
    // under the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// The process's resident size (`/proc/self/statm`).
    fn resident_bytes() -> Option<usize> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * 4096)
    }

    /// Memory freed between blocks still in use is given back once, and a
    /// second look with nothing new freed does nothing.
    #[test]
    fn freed_memory_between_live_blocks_goes_back() {
        let mut trimmer = Trimmer::default();
        trimmer.tick();
        // 64 MiB in 16 KiB blocks, every other one kept: the freed half
        // sits between live blocks, where free() cannot give it back.
        let mut blocks: Vec<Vec<u8>> = (0..4096).map(|_| vec![1u8; 16 << 10]).collect();
        let kept: Vec<Vec<u8>> = blocks
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, b)| std::mem::take(b))
            .collect();
        drop(blocks);
        let before = resident_bytes().unwrap();
        let started = std::time::Instant::now();
        assert!(trimmer.tick(), "32 MiB freed: worth a trim");
        let took = started.elapsed();
        let after = resident_bytes().unwrap();
        assert!(
            after + (16 << 20) < before,
            "at least 16 of the 32 MiB freed go back: {before} -> {after} bytes ({took:?})"
        );
        assert!(!trimmer.tick(), "nothing new freed: no second trim");
        drop(kept);
    }
}

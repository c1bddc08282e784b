//! The broker's global allocator: the system allocator, except that very large requests are
//! served by a lazily-backed anonymous mapping (`MAP_NORESERVE`).
//!
//! Why this exists: `kafka-protocol` 0.18 decodes an array by calling
//! `Vec::with_capacity(count)` with the element count read off the wire, before reading a
//! single element (upstream PRs bounding it by the remaining bytes are open but not
//! released). A 16-byte request claiming four billion elements then asks for hundreds of
//! gigabytes, the system allocator refuses, and Rust aborts the whole process: one client
//! kills the broker for everyone. Reserving the address space without committing memory
//! turns that request into a cheap no-op: decoding runs out of input after a few elements,
//! fails with a normal error, and the untouched reservation is unmapped. Memory is only
//! ever committed as it is written, so real large buffers behave exactly as before.
//!
//! This needs the kernel to allow overcommitted `MAP_NORESERVE` mappings (Linux's default
//! heuristic mode does); under `vm.overcommit_memory=2` or a `ulimit -v` the mapping fails
//! and the old abort remains. Remove this module once `kafka-protocol` bounds its
//! preallocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Requests at least this big take the lazy path.
const LARGE: usize = 1 << 30;
/// Mappings are page aligned; larger alignments go to the system allocator.
const PAGE: usize = 4096;

pub struct LazyLargeAlloc;

fn is_large(layout: &Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= PAGE
}

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping touches no existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every pointer handed out is either the system allocator's (and returned to it)
// or a fresh page-aligned anonymous mapping of at least `layout.size()` bytes (and
// unmapped with that same size); `is_large` decides which, from the layout alone, so
// dealloc and realloc always agree with alloc.
unsafe impl GlobalAlloc for LazyLargeAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            // Anonymous mappings are zero-filled.
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if is_large(&layout) {
            unsafe {
                libc::munmap(p.cast(), layout.size());
            }
        } else {
            unsafe { System.dealloc(p, layout) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract guarantees new_size with this alignment is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_large(&layout) && !is_large(&new_layout) {
            return unsafe { System.realloc(p, layout, new_size) };
        }
        let q = unsafe { self.alloc(new_layout) };
        if !q.is_null() {
            unsafe {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservations_cost_nothing_until_used() {
        let a = LazyLargeAlloc;
        let layout = Layout::from_size_align(200 << 30, 8).unwrap();
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null(), "200 GiB reserved lazily");
            *p = 7;
            assert_eq!(*p, 7);
            let q = a.realloc(p, layout, 16);
            assert_eq!(*q, 7);
            a.dealloc(q, Layout::from_size_align(16, 8).unwrap());
        }
    }
}

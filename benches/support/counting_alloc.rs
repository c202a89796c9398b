//! The bytes this binary holds on the heap, counted by its global allocator: per-client and
//! per-session memory figures are differences of `heap_in_use()`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static HEAP: AtomicIsize = AtomicIsize::new(0);

// The crate denies unsafe code; a counting allocator needs it, in bench binaries only.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

pub fn heap_in_use() -> isize {
    HEAP.load(Ordering::Relaxed)
}

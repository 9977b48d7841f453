//! The allocator of the loggers. A logger run allocates a few hundred bytes
//! and exits; musl's malloc sets up its heap with four system calls on the
//! first allocation, which costs about a tenth of such a run (tests/bench).
//! A static arena serves those bytes instead. It never reuses memory, so
//! whatever does not fit, or comes after the arena is used up, goes to the
//! system allocator: any allocation pattern stays correct, only slower.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

const SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Buffer(UnsafeCell<[u8; SIZE]>);

// SAFETY: the cursor hands every byte out at most once, so no two users
// ever share a byte of the buffer.
unsafe impl Sync for Buffer {}

static BUFFER: Buffer = Buffer(UnsafeCell::new([0; SIZE]));
/// Bytes of BUFFER handed out so far.
static USED: AtomicUsize = AtomicUsize::new(0);

/// Install with `#[global_allocator] static ALLOC: Arena = Arena;`.
pub struct Arena;

impl Arena {
    fn contains(ptr: *mut u8) -> bool {
        let start = BUFFER.0.get() as usize;
        (start..start + SIZE).contains(&(ptr as usize))
    }

    /// A free, aligned range of the buffer, or None if it no longer fits.
    fn claim(layout: Layout) -> Option<*mut u8> {
        let base = BUFFER.0.get().cast::<u8>();
        let mut used = USED.load(Ordering::Relaxed);
        loop {
            // Align the address: the buffer itself is aligned only to 16.
            let misalign = (base as usize + used) % layout.align();
            let start = used.checked_add((layout.align() - misalign) % layout.align())?;
            let end = start.checked_add(layout.size()).filter(|&e| e <= SIZE)?;
            // Relaxed is enough: each range goes to one caller only, and
            // its contents are ordered by however the caller shares them.
            match USED.compare_exchange_weak(used, end, Ordering::Relaxed, Ordering::Relaxed) {
                // SAFETY: start <= end <= SIZE, inside the buffer.
                Ok(_) => return Some(unsafe { base.add(start) }),
                Err(now) => used = now,
            }
        }
    }
}

// SAFETY: claim returns disjoint ranges of a static buffer that are aligned
// and large enough for the layout; everything else is System's.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match Arena::claim(layout) {
            Some(ptr) => ptr,
            None => System.alloc(layout),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Arena memory is never reused; the process exits soon.
        if !Arena::contains(ptr) {
            System.dealloc(ptr, layout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_aligned_disjoint_memory_then_falls_back_to_system() {
        let mut got = Vec::new();
        // Enough to use the whole arena up, whatever other tests took.
        for i in 0..SIZE / 8 {
            let layout = Layout::from_size_align(1 + i % 50, 1 << (i % 7)).unwrap();
            // SAFETY: a non-zero layout; freed below with the same layout.
            let ptr = unsafe { Arena.alloc(layout) };
            assert!(!ptr.is_null());
            assert_eq!(ptr as usize % layout.align(), 0, "{layout:?}");
            // SAFETY: the allocation is layout.size() bytes long.
            unsafe { ptr.write_bytes(i as u8, layout.size()) };
            got.push((ptr, layout, i as u8));
        }
        assert!(got.iter().any(|(p, ..)| Arena::contains(*p)));
        assert!(got.iter().any(|(p, ..)| !Arena::contains(*p)));
        // Had two allocations overlapped, the later fill would show here.
        for &(ptr, layout, fill) in &got {
            // SAFETY: still allocated, and filled above.
            let bytes = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            assert!(bytes.iter().all(|&b| b == fill));
            // SAFETY: allocated above with this layout.
            unsafe { Arena.dealloc(ptr, layout) };
        }
    }

    #[test]
    fn growing_out_of_the_arena_keeps_the_contents() {
        let small = Layout::from_size_align(8, 8).unwrap();
        // SAFETY: a non-zero layout, then grown with realloc and freed with
        // the grown layout.
        unsafe {
            let ptr = Arena.alloc(small);
            ptr.copy_from(b"timerapp".as_ptr(), 8);
            let grown = Arena.realloc(ptr, small, 2 * SIZE);
            assert!(!Arena::contains(grown));
            assert_eq!(std::slice::from_raw_parts(grown, 8), b"timerapp");
            Arena.dealloc(grown, Layout::from_size_align(2 * SIZE, 8).unwrap());
        }
    }
}

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

/// N bytes handed out front to back, then the system allocator.
#[repr(C, align(16))]
struct Bump<const N: usize> {
    buf: UnsafeCell<[u8; N]>,
    /// Bytes of buf handed out so far.
    used: AtomicUsize,
}

// SAFETY: the cursor hands every byte out at most once, so no two users
// ever share a byte of the buffer.
unsafe impl<const N: usize> Sync for Bump<N> {}

impl<const N: usize> Bump<N> {
    const fn new() -> Self {
        Bump {
            buf: UnsafeCell::new([0; N]),
            used: AtomicUsize::new(0),
        }
    }

    fn contains(&self, ptr: *mut u8) -> bool {
        let start = self.buf.get() as usize;
        (start..start + N).contains(&(ptr as usize))
    }

    /// A free, aligned range of the buffer, or None if it no longer fits.
    fn claim(&self, layout: Layout) -> Option<*mut u8> {
        let base = self.buf.get().cast::<u8>();
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            // Align the address: the buffer itself is aligned only to 16.
            let misalign = (base as usize + used) % layout.align();
            let start = used.checked_add((layout.align() - misalign) % layout.align())?;
            let end = start.checked_add(layout.size()).filter(|&e| e <= N)?;
            // Relaxed is enough: each range goes to one caller only, and
            // its contents are ordered by however the caller shares them.
            match self
                .used
                .compare_exchange_weak(used, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                // SAFETY: start <= end <= N, inside the buffer.
                Ok(_) => return Some(unsafe { base.add(start) }),
                Err(now) => used = now,
            }
        }
    }
}

// SAFETY: claim returns disjoint ranges of the buffer that are aligned and
// large enough for the layout; everything else is System's.
unsafe impl<const N: usize> GlobalAlloc for Bump<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.claim(layout) {
            Some(ptr) => ptr,
            None => System.alloc(layout),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Arena memory is never reused; the process exits soon.
        if !self.contains(ptr) {
            System.dealloc(ptr, layout);
        }
    }
}

static ARENA: Bump<SIZE> = Bump::new();

/// Install with `#[global_allocator] static ALLOC: Arena = Arena;`.
pub struct Arena;

// SAFETY: forwards to ARENA, a GlobalAlloc.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ARENA.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ARENA.dealloc(ptr, layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each test has an arena of its own, so what others take cannot
    /// change what it sees.
    fn fresh() -> Box<Bump<1024>> {
        Box::new(Bump::new())
    }

    #[test]
    fn serves_aligned_disjoint_memory_then_falls_back_to_system() {
        let arena = fresh();
        let mut got = Vec::new();
        for i in 0..200 {
            let layout = Layout::from_size_align(1 + i % 50, 1 << (i % 7)).unwrap();
            // SAFETY: a non-zero layout; freed below with the same layout.
            let ptr = unsafe { arena.alloc(layout) };
            assert!(!ptr.is_null());
            assert_eq!(ptr as usize % layout.align(), 0, "{layout:?}");
            // SAFETY: the allocation is layout.size() bytes long.
            unsafe { ptr.write_bytes(i as u8, layout.size()) };
            got.push((ptr, layout, i as u8));
        }
        // 200 blocks of 25 bytes on average do not all fit in 1 KiB: some
        // come from the arena, the others from the system.
        let inside = got.iter().filter(|(p, ..)| arena.contains(*p)).count();
        assert!(
            (10..190).contains(&inside),
            "{inside} of 200 allocations were served by the arena"
        );
        // Had two allocations overlapped, the later fill would show here.
        for &(ptr, layout, fill) in &got {
            // SAFETY: still allocated, and filled above.
            let bytes = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            assert!(bytes.iter().all(|&b| b == fill));
            // SAFETY: allocated above with this layout.
            unsafe { arena.dealloc(ptr, layout) };
        }
    }

    #[test]
    fn the_whole_buffer_is_used_before_falling_back() {
        let arena = fresh();
        let block = Layout::from_size_align(64, 16).unwrap();
        // SAFETY: a non-zero layout, never written; the arena keeps it.
        let ptrs: Vec<_> = (0..17).map(|_| unsafe { arena.alloc(block) }).collect();
        assert!(ptrs[..16].iter().all(|&p| arena.contains(p)));
        assert!(!arena.contains(ptrs[16]));
        // SAFETY: allocated above by the system allocator, with this layout.
        unsafe { arena.dealloc(ptrs[16], block) };
    }

    #[test]
    fn growing_out_of_the_arena_keeps_the_contents() {
        let arena = fresh();
        let small = Layout::from_size_align(8, 8).unwrap();
        // SAFETY: a non-zero layout, then grown with realloc and freed with
        // the grown layout.
        unsafe {
            let ptr = arena.alloc(small);
            assert!(arena.contains(ptr));
            ptr.copy_from(b"timerapp".as_ptr(), 8);
            let grown = arena.realloc(ptr, small, 2048);
            assert!(!arena.contains(grown));
            assert_eq!(std::slice::from_raw_parts(grown, 8), b"timerapp");
            arena.dealloc(grown, Layout::from_size_align(2048, 8).unwrap());
        }
    }
}

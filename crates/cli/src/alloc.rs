//! The process's memory allocator: the system's, except that a request of
//! [`RESERVE_FROM`] bytes or more only reserves address space (an anonymous private mapping
//! with `MAP_NORESERVE`), whose pages the kernel commits as they are first written.
//!
//! Why: the Kafka message decoder sizes each collection from the element count it reads
//! off the wire, before it decodes a single element (`Vec::with_capacity(n)`, and
//! `reserve(record_count)` for a record batch). Twenty bytes of a request can announce two
//! billion topics, and a batch header two billion records. The system allocator refuses
//! the hundreds of gigabytes that asks for, and Rust answers a refused allocation by
//! aborting the process: one malformed frame would stop the broker. A reservation costs
//! nothing until written; the decoder runs out of input at the end of the frame, fails
//! with an error, and the reservation is returned. What is written stays bounded by what
//! was actually decoded.
//!
//! A genuine allocation of that size behaves as before, except that the kernel's
//! overcommit heuristic does not weigh it up front. Under strict overcommit
//! (`vm.overcommit_memory=2`) the kernel ignores `MAP_NORESERVE` and refuses as before.
//! Elsewhere than Linux every request goes to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};

/// Requests this large (1 GiB) are reserved, not allocated: more than any buffer krust
/// means to fill (a request frame is at most `socket.request.max.bytes`, 100 MiB by
/// default).
pub const RESERVE_FROM: usize = 1 << 30;

/// The system allocator, reserving requests of [`RESERVE_FROM`] bytes or more.
pub struct Allocator;

/// Whether a block of this layout is a reservation. Only the layout decides, and Rust
/// hands `dealloc` the layout that `alloc` was given, so both agree on every block.
fn reserved(layout: &Layout) -> bool {
    // A mapping is page aligned; a stricter alignment goes to the system allocator.
    cfg!(target_os = "linux") && layout.size() >= RESERVE_FROM && layout.align() <= 4096
}

#[allow(unsafe_code)]
// SAFETY: every block comes from, and returns to, either the system allocator (with the
// same layout) or the mapping functions below (with the same size), as `reserved` says;
// reservations are page aligned, which satisfies every alignment `reserved` admits, and
// read as zeros until written.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if reserved(&layout) {
            map::reserve(layout.size())
        } else {
            // SAFETY: the caller's contract (a non-zero size) is passed on unchanged.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if reserved(&layout) {
            // Fresh anonymous pages read as zeros.
            map::reserve(layout.size())
        } else {
            // SAFETY: as in `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if reserved(&layout) {
            // SAFETY: `ptr` is a reservation of this size (`reserved` agreed at `alloc`).
            unsafe { map::release(ptr, layout.size()) }
        } else {
            // SAFETY: `ptr` came from the system allocator with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees that `new_size`, rounded up to the alignment, does
        // not overflow isize, which is all a layout needs.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (reserved(&layout), reserved(&new_layout)) {
            // SAFETY: a system block, staying one.
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            // SAFETY: a reservation of this size, growing or shrinking as one.
            (true, true) => unsafe { map::resize(ptr, layout.size(), new_size) },
            _ => {
                // SAFETY: the new block is fresh and at least `min(old, new)` long, the old
                // one is valid for that many bytes, and they do not overlap; the old block
                // is released with the layout it was made with.
                unsafe {
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod map {
    use std::ptr::null_mut;

    /// A reservation of `size` bytes, or null if the kernel refuses it.
    pub fn reserve(size: usize) -> *mut u8 {
        // SAFETY: a new anonymous mapping at an address the kernel picks; no existing
        // memory is named.
        let p = unsafe {
            libc::mmap(
                null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            null_mut()
        } else {
            p.cast()
        }
    }

    /// Returns a reservation.
    ///
    /// # Safety
    /// `ptr` and `size` are those of a live reservation, not used afterwards.
    pub unsafe fn release(ptr: *mut u8, size: usize) {
        // SAFETY: the caller's contract; nothing else refers to those pages.
        unsafe {
            libc::munmap(ptr.cast(), size);
        }
    }

    /// The reservation `ptr` of `old` bytes resized to `new`, moved if need be (pages are
    /// moved, not copied); null, leaving the old one intact, if the kernel refuses.
    ///
    /// # Safety
    /// `ptr` and `old` are those of a live reservation.
    pub unsafe fn resize(ptr: *mut u8, old: usize, new: usize) -> *mut u8 {
        // SAFETY: the caller's contract; with MREMAP_MAYMOVE the kernel either moves the
        // whole mapping or leaves it untouched.
        let p = unsafe { libc::mremap(ptr.cast(), old, new, libc::MREMAP_MAYMOVE) };
        if p == libc::MAP_FAILED {
            null_mut()
        } else {
            p.cast()
        }
    }
}

/// Never reached: `reserved` is false elsewhere than Linux.
#[cfg(not(target_os = "linux"))]
mod map {
    pub fn reserve(_size: usize) -> *mut u8 {
        std::ptr::null_mut()
    }
    pub unsafe fn release(_ptr: *mut u8, _size: usize) {}
    pub unsafe fn resize(_ptr: *mut u8, _old: usize, _new: usize) -> *mut u8 {
        std::ptr::null_mut()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The binary's tests run under this allocator too (it is the crate's global one).
    #[test]
    fn an_absurd_capacity_is_reserved_not_refused() {
        // 2^36 u64s: 512 GiB, more than this machine's memory and swap.
        let mut v: Vec<u64> = Vec::with_capacity(1 << 36);
        v.extend(0..1000);
        assert_eq!(v.iter().sum::<u64>(), 999 * 1000 / 2);
        // Growing within and beyond the reservation keeps the contents.
        v.reserve(1 << 37);
        assert_eq!(v[999], 999);
        v.shrink_to(10);
        v.truncate(10);
        v.shrink_to_fit();
        assert_eq!(v, (0..10).collect::<Vec<u64>>());
    }

    #[test]
    #[allow(unsafe_code)]
    fn blocks_move_between_the_system_and_reservations() {
        let a = Allocator;
        // SAFETY: each block is written within its size and freed with its own layout.
        unsafe {
            let small = Layout::from_size_align(4096, 8).expect("layout");
            let p = a.alloc(small);
            assert!(!p.is_null());
            p.write(7);
            p.add(4095).write(9);
            // System to reservation.
            let q = a.realloc(p, small, RESERVE_FROM * 3);
            assert!(!q.is_null());
            assert_eq!((q.read(), q.add(4095).read()), (7, 9));
            q.add(RESERVE_FROM * 3 - 1).write(5);
            let big = Layout::from_size_align(RESERVE_FROM * 3, 8).expect("layout");
            // Reservation to a larger one: the pages move, the far end comes too.
            let r = a.realloc(q, big, RESERVE_FROM * 5);
            assert!(!r.is_null());
            assert_eq!((r.read(), r.add(RESERVE_FROM * 3 - 1).read()), (7, 5));
            let bigger = Layout::from_size_align(RESERVE_FROM * 5, 8).expect("layout");
            // Reservation back to the system.
            let s = a.realloc(r, bigger, 16);
            assert!(!s.is_null());
            assert_eq!(s.read(), 7);
            a.dealloc(s, Layout::from_size_align(16, 8).expect("layout"));

            // Zeroed reservations read as zeros.
            let z = a.alloc_zeroed(big);
            assert!(!z.is_null());
            assert_eq!(z.add(RESERVE_FROM).read(), 0);
            a.dealloc(z, big);
        }
    }
}

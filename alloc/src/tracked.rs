//! [`Tracked`]: the `GlobalAlloc` wrapper.
//!
//! Every method forwards to the inner allocator's own method (so `realloc`
//! keeps in-place growth and `alloc_zeroed` keeps lazily zeroed pages), then,
//! only if the inner allocator succeeded, counts the result on the calling
//! thread (see the `thread` module for the hot path's invariants). A null from
//! the inner allocator is returned unchanged and counts nothing, so
//! `try_reserve` reports the failure and the figures stay true.
//!
//! In [`Owner`] mode each block gets a 4-byte trailer at offset
//! `layout.size()` holding the id of the scope that allocated it; a trailer
//! (not a header) keeps the block's alignment free of charge and usually fits
//! in the size class's slack. `realloc` moves the trailer to the new end.

use std::alloc::{GlobalAlloc, Layout};
use std::marker::PhantomData;

use crate::inner::Inner;
use crate::mode::{Attribution, Counting, Mode};
use crate::thread;

/// Bytes added to each block in owner mode.
pub const OWNER_TRAILER_BYTES: usize = 4;

/// A counting `GlobalAlloc` over an inner allocator `A`, with attribution mode
/// `M` ([`Counting`] by default, or [`Owner`](crate::Owner)).
///
/// ```
/// # #[cfg(feature = "mimalloc")] {
/// use memledger_alloc::{MiMalloc, Tracked};
///
/// #[global_allocator]
/// static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);
/// # }
/// ```
///
/// All `Tracked` values share one set of process-wide counters: install one
/// as the global allocator.
pub struct Tracked<A, M = Counting> {
    inner: A,
    _mode: PhantomData<M>,
}

impl<A, M> Tracked<A, M> {
    /// Wraps `inner`. `const`, so it can initialize a `static`.
    pub const fn new(inner: A) -> Self {
        Tracked {
            inner,
            _mode: PhantomData,
        }
    }

    /// The inner allocator.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

impl<A: Inner, M: Mode> Tracked<A, M> {
    /// The mode as the byte the counters record.
    const MODE: u8 = match M::ATTRIBUTION {
        Attribution::Counting => 1,
        Attribution::Owner => 2,
    };
    const OWNER: bool = matches!(M::ATTRIBUTION, Attribution::Owner);

    /// The inner layout of a block with a trailer, or `None` if it would overflow.
    #[inline(always)]
    fn with_trailer(size: usize, align: usize) -> Option<Layout> {
        let padded = size.checked_add(OWNER_TRAILER_BYTES)?;
        Layout::from_size_align(padded, align).ok()
    }

    #[inline(always)]
    unsafe fn alloc_owner(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        let Some(inner_layout) = Self::with_trailer(layout.size(), layout.align()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `inner_layout` has non-zero size and a valid alignment.
        let ptr = unsafe {
            if zeroed {
                self.inner.alloc_zeroed(inner_layout)
            } else {
                self.inner.alloc(inner_layout)
            }
        };
        if !ptr.is_null() {
            // SAFETY: `ptr` was just returned for `inner_layout`.
            let usable = unsafe { self.inner.usable_size(ptr, inner_layout) };
            let scope = thread::on_alloc(layout.size(), usable, Self::MODE);
            // SAFETY: the block has `size + 4` bytes; the trailer is its last 4.
            unsafe { ptr.add(layout.size()).cast::<u32>().write_unaligned(scope) };
        }
        ptr
    }
}

// SAFETY: every method returns exactly what the inner allocator returned for
// an equivalent request (in owner mode, a request 4 bytes larger whose extra
// bytes the caller never sees), so `A`'s guarantees carry over.
unsafe impl<A: Inner, M: Mode> GlobalAlloc for Tracked<A, M> {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::OWNER {
            // SAFETY: caller's contract passed on.
            return unsafe { self.alloc_owner(layout, false) };
        }
        // SAFETY: caller's contract passed on.
        let ptr = unsafe { self.inner.alloc(layout) };
        if !ptr.is_null() {
            // SAFETY: `ptr` was just returned for `layout`.
            let usable = unsafe { self.inner.usable_size(ptr, layout) };
            thread::on_alloc(layout.size(), usable, Self::MODE);
        }
        ptr
    }

    #[inline(always)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::OWNER {
            // SAFETY: caller's contract passed on.
            return unsafe { self.alloc_owner(layout, true) };
        }
        // SAFETY: caller's contract passed on.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if !ptr.is_null() {
            // SAFETY: `ptr` was just returned for `layout`.
            let usable = unsafe { self.inner.usable_size(ptr, layout) };
            thread::on_alloc(layout.size(), usable, Self::MODE);
        }
        ptr
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if Self::OWNER {
            // SAFETY: the block was allocated by `alloc_owner` with this
            // padded layout, which was valid then.
            unsafe {
                let inner_layout = Layout::from_size_align_unchecked(
                    layout.size() + OWNER_TRAILER_BYTES,
                    layout.align(),
                );
                let owner = ptr.add(layout.size()).cast::<u32>().read_unaligned();
                let usable = self.inner.usable_size(ptr, inner_layout);
                self.inner.dealloc(ptr, inner_layout);
                thread::on_free_owned(layout.size(), usable, owner, Self::MODE);
            }
            return;
        }
        // SAFETY: `ptr` is live for `layout` until the inner dealloc below.
        let usable = unsafe { self.inner.usable_size(ptr, layout) };
        // SAFETY: caller's contract passed on.
        unsafe { self.inner.dealloc(ptr, layout) };
        thread::on_free(layout.size(), usable, Self::MODE);
    }

    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Self::OWNER {
            let Some(new_inner) = Self::with_trailer(new_size, layout.align()) else {
                return std::ptr::null_mut();
            };
            // SAFETY: as in `dealloc`; the new padded layout was checked above.
            unsafe {
                let old_inner = Layout::from_size_align_unchecked(
                    layout.size() + OWNER_TRAILER_BYTES,
                    layout.align(),
                );
                let owner = ptr.add(layout.size()).cast::<u32>().read_unaligned();
                let old_usable = self.inner.usable_size(ptr, old_inner);
                let new_ptr = self.inner.realloc(ptr, old_inner, new_inner.size());
                if !new_ptr.is_null() {
                    let new_usable = self.inner.usable_size(new_ptr, new_inner);
                    let scope = thread::on_realloc_owned(
                        layout.size(),
                        old_usable,
                        owner,
                        new_size,
                        new_usable,
                        Self::MODE,
                    );
                    new_ptr.add(new_size).cast::<u32>().write_unaligned(scope);
                }
                return new_ptr;
            }
        }
        // SAFETY: `ptr` is live for `layout` until the inner realloc succeeds.
        let old_usable = unsafe { self.inner.usable_size(ptr, layout) };
        // SAFETY: caller's contract passed on.
        let new_ptr = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !new_ptr.is_null() {
            // SAFETY: `new_ptr` was just returned for `new_size` with `layout`'s
            // alignment, which the caller guarantees is a valid layout.
            let new_usable = unsafe {
                self.inner.usable_size(
                    new_ptr,
                    Layout::from_size_align_unchecked(new_size, layout.align()),
                )
            };
            thread::on_realloc(layout.size(), old_usable, new_size, new_usable, Self::MODE);
        }
        new_ptr
    }
}

//! [`Tracked`]: the `GlobalAlloc` wrapper.
//!
//! Every method forwards to the inner allocator's own method (so `realloc`
//! keeps in-place growth and `alloc_zeroed` keeps lazily zeroed pages), then,
//! only if the inner allocator succeeded, counts the result on the calling
//! thread (see the `thread` module for the hot path's invariants). A null from
//! the inner allocator is returned unchanged and counts nothing, so
//! `try_reserve` reports the failure and the figures stay true.
//!
//! In [`Owner`](crate::Owner) mode each block carries the id of the scope that
//! allocated it, in one of two places chosen by the layout alone (so `dealloc`
//! and `realloc` find it again):
//!
//! - blocks of at least [`OWNER_HEADER_MIN`] bytes with alignment up to 8
//!   get an 8-byte **header** in front: the inner allocator already touches
//!   a block's first cache line when it allocates and frees it, so reading
//!   and writing the tag there costs no extra cache miss (a trailer at the
//!   far end of a large block would cost one on each side);
//! - smaller or over-aligned blocks get a 4-byte **trailer** at offset
//!   `layout.size()`: it keeps any alignment free of charge and usually
//!   fits in the size class's slack.
//!
//! `realloc` keeps the tag with the block, moving it between the two forms
//! when the new size crosses [`OWNER_HEADER_MIN`].

use std::alloc::{GlobalAlloc, Layout};
use std::marker::PhantomData;

use crate::inner::Inner;
use crate::mode::{Attribution, Counting, Mode};
use crate::thread;

/// Bytes added at the end of each small or over-aligned block in owner mode.
pub const OWNER_TRAILER_BYTES: usize = 4;
/// Bytes added in front of each large block in owner mode.
pub const OWNER_HEADER_BYTES: usize = 8;
/// Owner-mode blocks of at least this size (with alignment up to 8) carry
/// their tag in a header rather than a trailer.
pub const OWNER_HEADER_MIN: usize = 256;

/// Where an owner-mode block keeps its scope id.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Header,
    Trailer,
}

impl Tag {
    #[inline(always)]
    fn of(size: usize, align: usize) -> Tag {
        if size >= OWNER_HEADER_MIN && align <= 8 {
            Tag::Header
        } else {
            Tag::Trailer
        }
    }

    /// The inner layout for a user block of `size` bytes, or `None` on overflow.
    #[inline(always)]
    fn inner_layout(self, size: usize, align: usize) -> Option<Layout> {
        let extra = match self {
            Tag::Header => OWNER_HEADER_BYTES,
            Tag::Trailer => OWNER_TRAILER_BYTES,
        };
        Layout::from_size_align(size.checked_add(extra)?, align).ok()
    }

    /// The inner block of the user pointer `user`.
    #[inline(always)]
    fn inner_ptr(self, user: *mut u8) -> *mut u8 {
        match self {
            Tag::Header => user.wrapping_sub(OWNER_HEADER_BYTES),
            Tag::Trailer => user,
        }
    }

    /// The user pointer of the inner block `inner`.
    #[inline(always)]
    fn user_ptr(self, inner: *mut u8) -> *mut u8 {
        match self {
            Tag::Header => inner.wrapping_add(OWNER_HEADER_BYTES),
            Tag::Trailer => inner,
        }
    }

    /// Where the id of the inner block `inner` (user size `size`) lives.
    #[inline(always)]
    fn slot(self, inner: *mut u8, size: usize) -> *mut u32 {
        match self {
            Tag::Header => inner.cast(),
            Tag::Trailer => inner.wrapping_add(size).cast(),
        }
    }
}

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

    #[inline(always)]
    unsafe fn alloc_owner(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        let tag = Tag::of(layout.size(), layout.align());
        let Some(inner_layout) = tag.inner_layout(layout.size(), layout.align()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `inner_layout` has non-zero size and a valid alignment.
        let inner = unsafe {
            if zeroed {
                self.inner.alloc_zeroed(inner_layout)
            } else {
                self.inner.alloc(inner_layout)
            }
        };
        if inner.is_null() {
            return inner;
        }
        // SAFETY: `inner` was just returned for `inner_layout`.
        let usable = unsafe { self.inner.usable_size(inner, inner_layout) };
        let scope = thread::on_alloc_scoped(layout.size(), usable, Self::MODE);
        // SAFETY: the slot lies inside the inner block (its header or its last 4 bytes).
        unsafe { tag.slot(inner, layout.size()).write_unaligned(scope) };
        tag.user_ptr(inner)
    }

    #[inline(always)]
    unsafe fn dealloc_owner(&self, ptr: *mut u8, layout: Layout) {
        let tag = Tag::of(layout.size(), layout.align());
        let inner = tag.inner_ptr(ptr);
        // SAFETY: the block was allocated by `alloc_owner` with this tag and
        // this inner layout, which was valid then.
        unsafe {
            let inner_layout = tag
                .inner_layout(layout.size(), layout.align())
                .unwrap_unchecked();
            let owner = tag.slot(inner, layout.size()).read_unaligned();
            let usable = self.inner.usable_size(inner, inner_layout);
            self.inner.dealloc(inner, inner_layout);
            thread::on_free_owned(layout.size(), usable, owner, Self::MODE);
        }
    }

    #[inline(always)]
    unsafe fn realloc_owner(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_tag = Tag::of(layout.size(), layout.align());
        let new_tag = Tag::of(new_size, layout.align());
        let Some(new_inner_layout) = new_tag.inner_layout(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        let old_inner = old_tag.inner_ptr(ptr);
        // SAFETY: the old block was allocated by `alloc_owner` with `old_tag`
        // and this inner layout; the new inner layout was checked above.
        unsafe {
            let old_inner_layout = old_tag
                .inner_layout(layout.size(), layout.align())
                .unwrap_unchecked();
            let owner = old_tag.slot(old_inner, layout.size()).read_unaligned();
            let old_usable = self.inner.usable_size(old_inner, old_inner_layout);
            let new_inner = if old_tag == new_tag {
                self.inner
                    .realloc(old_inner, old_inner_layout, new_inner_layout.size())
            } else {
                // The tag changes place: a fresh block, the user bytes copied over.
                let fresh = self.inner.alloc(new_inner_layout);
                if !fresh.is_null() {
                    std::ptr::copy_nonoverlapping(
                        ptr,
                        new_tag.user_ptr(fresh),
                        layout.size().min(new_size),
                    );
                    self.inner.dealloc(old_inner, old_inner_layout);
                }
                fresh
            };
            if new_inner.is_null() {
                return new_inner;
            }
            let new_usable = self.inner.usable_size(new_inner, new_inner_layout);
            let scope = thread::on_realloc_owned(
                layout.size(),
                old_usable,
                owner,
                new_size,
                new_usable,
                Self::MODE,
            );
            new_tag.slot(new_inner, new_size).write_unaligned(scope);
            new_tag.user_ptr(new_inner)
        }
    }
}

// SAFETY: every method returns exactly what the inner allocator returned for
// an equivalent request (in owner mode, a request a few bytes larger whose
// extra bytes the caller never sees, offset past a header when it has one,
// which keeps the requested alignment: headers are only used for alignments
// up to their own size), so `A`'s guarantees carry over.
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
            // SAFETY: caller's contract passed on.
            return unsafe { self.dealloc_owner(ptr, layout) };
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
            // SAFETY: caller's contract passed on.
            return unsafe { self.realloc_owner(ptr, layout, new_size) };
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

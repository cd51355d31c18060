//! Inner allocators and how each reports **usable** bytes.
//!
//! [`Tracked`](crate::Tracked) forwards every call to an inner
//! [`GlobalAlloc`] and asks it, through [`Inner::usable_size`], how many bytes
//! the block really occupies. The answer must be the same when the block is
//! allocated and when it is freed (it is asked at both ends), so that live
//! usable bytes return to zero; it need not be exact.
//!
//! | inner | usable bytes | cost |
//! |---|---|---|
//! | [`MiMalloc`] (feature `mimalloc`) | mimalloc's size class of the request, computed inline; `mi_usable_size(ptr)` for over-aligned blocks | a few instructions |
//! | [`System`] | `malloc_usable_size(ptr)` | one libc call |
//! | [`Plain<A>`] | the requested size | none |

use std::alloc::{GlobalAlloc, Layout, System};

/// A [`GlobalAlloc`] that memledger can wrap: it also says how many bytes a
/// block occupies.
///
/// Implemented for [`System`], for `MiMalloc` (feature `mimalloc`) and for any
/// allocator wrapped in [`Plain`].
pub trait Inner: GlobalAlloc {
    /// The usable size of the live block `ptr`, allocated by `self` for `layout`.
    ///
    /// Called right after the block was allocated and right before it is freed
    /// (or reallocated); both calls must return the same value.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block that `self` returned for `layout`.
    #[inline(always)]
    unsafe fn usable_size(&self, ptr: *mut u8, layout: Layout) -> usize {
        let _ = ptr;
        layout.size()
    }
}

/// Any [`GlobalAlloc`], with usable bytes reported equal to requested bytes.
///
/// ```
/// use memledger_alloc::{Plain, Tracked};
/// static GLOBAL: Tracked<Plain<std::alloc::System>> = Tracked::new(Plain(std::alloc::System));
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Plain<A>(pub A);

// SAFETY: every method forwards to the wrapped allocator unchanged.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Plain<A> {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { self.0.alloc(layout) }
    }
    #[inline(always)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe { self.0.alloc_zeroed(layout) }
    }
    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { self.0.dealloc(ptr, layout) }
    }
    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

impl<A: GlobalAlloc> Inner for Plain<A> {}

impl Inner for System {
    #[inline(always)]
    unsafe fn usable_size(&self, ptr: *mut u8, _layout: Layout) -> usize {
        // SAFETY: `ptr` is a live block from the system allocator (caller's contract).
        unsafe { libc::malloc_usable_size(ptr.cast()) }
    }
}

#[cfg(feature = "mimalloc")]
pub use mimalloc_classes::mimalloc_good_size;

#[cfg(feature = "mimalloc")]
mod mimalloc_classes {
    use super::Inner;
    use mimalloc::MiMalloc;
    use std::alloc::Layout;

    /// Requests up to this size use the inline size-class formula; larger ones ask mimalloc.
    /// The unit test checks the formula against `mi_good_size` for every size up to here.
    pub(crate) const FORMULA_MAX: usize = 64 * 1024;

    /// mimalloc's size class (block size) for a request of `size` bytes with the
    /// default alignment: `mi_good_size(size)`, computed without a call for
    /// sizes up to 64 KiB (see `class_of`).
    #[inline(always)]
    pub fn mimalloc_good_size(size: usize) -> usize {
        if size <= TABLE_MAX {
            // One load from a 2 KiB table; no data-dependent branch.
            CLASS_BY_WORDS[size.div_ceil(8)] as usize
        } else if size <= FORMULA_MAX {
            class_of(size)
        } else {
            // SAFETY: a pure function of its argument.
            unsafe { libmimalloc_sys::mi_good_size(size) }
        }
    }

    /// Requests up to this size read their class from [`CLASS_BY_WORDS`]:
    /// most allocations of most programs.
    const TABLE_MAX: usize = 8 * 1024;

    /// mimalloc's class for every size in words up to [`TABLE_MAX`] bytes.
    static CLASS_BY_WORDS: [u16; TABLE_MAX / 8 + 1] = {
        let mut table = [0u16; TABLE_MAX / 8 + 1];
        let mut words = 0;
        while words <= TABLE_MAX / 8 {
            table[words] = class_of(if words == 0 { 1 } else { words * 8 }) as u16;
            words += 1;
        }
        table
    };

    /// The size-class formula (`mi_bin` followed by the bin's block size),
    /// without a data-dependent branch: random sizes cost no mispredictions.
    ///
    /// With `w = words - 1`, the class keeps the top three bits of `w`
    /// (at least the low bit dropped: double-word classes below 64 bytes, as
    /// mimalloc is built with MI_ALIGN2W) and rounds up; one word for up to
    /// 8 bytes.
    #[inline(always)]
    const fn class_of(size: usize) -> usize {
        let w = size.div_ceil(8).saturating_sub(1);
        let top = usize::BITS - 1 - (w | 1).leading_zeros();
        let shift = if top > 3 { top } else { 3 } - 2;
        let class = (((w >> shift) + 1) << shift) * 8;
        if size <= 8 { 8 } else { class }
    }

    impl Inner for MiMalloc {
        #[inline(always)]
        unsafe fn usable_size(&self, ptr: *mut u8, layout: Layout) -> usize {
            if layout.align() <= 8 {
                mimalloc_good_size(layout.size())
            } else {
                // Over-aligned blocks may come from a larger class; ask mimalloc.
                // SAFETY: `ptr` is a live mimalloc block (caller's contract).
                unsafe { libmimalloc_sys::mi_usable_size(ptr.cast()) }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn formula_matches_mi_good_size_for_every_size_up_to_the_limit() {
            for size in 1..=FORMULA_MAX {
                // SAFETY: pure function.
                let expected = unsafe { libmimalloc_sys::mi_good_size(size) };
                assert_eq!(mimalloc_good_size(size), expected, "size {size}");
            }
        }

        #[test]
        fn formula_matches_mi_usable_size_of_real_blocks() {
            for size in [
                1,
                8,
                9,
                24,
                65,
                100,
                1000,
                4097,
                30_000,
                65_536,
                70_000,
                1 << 20,
            ] {
                // SAFETY: a fresh block, freed right after.
                unsafe {
                    let p = libmimalloc_sys::mi_malloc(size);
                    assert!(!p.is_null());
                    assert_eq!(
                        mimalloc_good_size(size),
                        libmimalloc_sys::mi_usable_size(p),
                        "size {size}"
                    );
                    libmimalloc_sys::mi_free(p);
                }
            }
        }
    }
}

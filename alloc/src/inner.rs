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
//! | [`MiMalloc`] (feature `mimalloc`) | mimalloc's size class of the request, from a table, for blocks up to 8 KiB aligned to at most 8 bytes; `mi_usable_size(ptr)` for all others | one load; one call for larger or over-aligned blocks |
//! | [`System`] | `malloc_usable_size(ptr)` | one libc call |
//! | [`Plain<A>`] | the requested size | none |
//!
//! For mimalloc the figure is what mimalloc really hands out (a test
//! compares it with `mi_usable_size` for blocks of 1 B to 8 MiB at
//! alignments 1 to 4096). To keep it so cheaply, `Tracked<MiMalloc>` sends
//! blocks of up to 8 KiB aligned to at most 8 bytes to `mi_malloc`, which
//! always serves them from their size class, and every other request to the
//! same entry points as `MiMalloc` itself. Those blocks are never larger
//! than under bare `MiMalloc`, and sometimes one class smaller: its aligned
//! entry point over-allocates when a small class's page is exhausted, and
//! above 1 KiB for sizes within `align - 1` bytes of a class boundary,
//! except power-of-two classes up to 4 KiB (8 KiB at alignment 8 becomes
//! 10 KiB) — mimalloc's own `realloc` serves those sizes from their class,
//! as `mi_malloc` does. A `realloc` that
//! shrinks a block into a smaller class of that range moves it (mimalloc
//! would keep the larger block in place, which the new layout's class would
//! no longer describe); growth in place is kept.

use std::alloc::{GlobalAlloc, Layout, System};

/// A [`GlobalAlloc`] that memledger can wrap: it also says how many bytes a
/// block occupies.
///
/// Implemented for [`System`], for `MiMalloc` (feature `mimalloc`) and for any
/// allocator wrapped in [`Plain`].
///
/// # Safety
///
/// The sizes it reports decide where owner mode writes a block's tag (in
/// the bytes between the requested and the usable size): a usable size
/// must be at least the requested size and at most what the block really
/// holds, and the same at the block's allocation and at its free.
pub unsafe trait Inner: GlobalAlloc {
    /// The usable size of the live block `ptr`, allocated by `self` for `layout`.
    ///
    /// Called right after the block was allocated and right before it is freed
    /// (or reallocated); both calls must return the same value, at least
    /// `layout.size()`.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block that `self` returned for `layout`.
    #[inline(always)]
    unsafe fn usable_size(&self, ptr: *mut u8, layout: Layout) -> usize {
        let _ = ptr;
        layout.size()
    }

    /// The usable size of every block `self` returns for `layout`, when
    /// the layout alone decides it (no call needed), else `None`. When it
    /// is `Some`, [`usable_size`](Inner::usable_size) returns the same.
    /// Such blocks take memledger's shortest path.
    #[inline(always)]
    fn class_size(&self, layout: Layout) -> Option<usize> {
        let _ = layout;
        None
    }

    /// [`class_size`](Inner::class_size) as memledger's packed counters
    /// take it: `None` for usable sizes past their range; with `owner`, the
    /// owner tag's place is flagged in it. An implementation may answer from
    /// a table of increments; it must agree with `class_size`.
    #[doc(hidden)]
    #[inline(always)]
    fn packed_increment(&self, layout: Layout, owner: bool) -> Option<u64> {
        match self.class_size(layout) {
            Some(usable) if usable <= crate::thread::PACKED_MAX => {
                let flags = if owner {
                    crate::tag::packed_flags(layout.size(), usable)
                } else {
                    0
                };
                Some(crate::thread::pack(layout.size(), usable) | flags)
            }
            _ => None,
        }
    }

    /// Whether the inner allocator reports every refusal of a layout that
    /// [`packed_increment`](Inner::packed_increment) takes to
    /// `thread::refused`, on the refusing thread, before it returns null,
    /// once [`report_refusals`] ran. Then counting mode counts such a block
    /// before it asks for it, and the inner call is `alloc`'s last act (a
    /// tail call). Only memledger's own implementations may set it.
    #[doc(hidden)]
    const REPORTS_REFUSALS: bool = false;

    /// Allocates like [`GlobalAlloc::alloc`]; an inner allocator may pick
    /// among its own entry points so that [`usable_size`](Inner::usable_size)
    /// stays exact.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc`].
    #[inline(always)]
    unsafe fn alloc_tracked(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract.
        unsafe { self.alloc(layout) }
    }

    /// Allocates zeroed memory like [`GlobalAlloc::alloc_zeroed`] (see
    /// [`alloc_tracked`](Inner::alloc_tracked)).
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc_zeroed`].
    #[inline(always)]
    unsafe fn alloc_zeroed_tracked(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract.
        unsafe { self.alloc_zeroed(layout) }
    }

    /// Reallocates like [`GlobalAlloc::realloc`], for a block whose usable
    /// size is `old_usable`. An inner allocator whose
    /// [`usable_size`](Inner::usable_size) is computed from the layout
    /// overrides it to keep that figure true after the call.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::realloc`].
    #[inline(always)]
    unsafe fn realloc_tracked(
        &self,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
        old_usable: usize,
    ) -> *mut u8 {
        let _ = old_usable;
        // SAFETY: the caller's contract.
        unsafe { self.realloc(ptr, layout, new_size) }
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

// SAFETY: usable = requested, which the block holds.
unsafe impl<A: GlobalAlloc> Inner for Plain<A> {
    #[inline(always)]
    fn class_size(&self, layout: Layout) -> Option<usize> {
        Some(layout.size())
    }
}

// SAFETY: `malloc_usable_size` is what the block holds, at least the
// requested size, and does not change while the block lives.
unsafe impl Inner for System {
    #[inline(always)]
    unsafe fn usable_size(&self, ptr: *mut u8, _layout: Layout) -> usize {
        // SAFETY: `ptr` is a live block from the system allocator (caller's contract).
        unsafe { crate::sys::malloc_usable_size(ptr) }
    }
}

#[cfg(feature = "mimalloc")]
pub use mimalloc_classes::mimalloc_good_size;

/// Installs the refusal report of every inner allocator that has one (see
/// `Inner::REPORTS_REFUSALS`); each thread runs it as it registers.
pub(crate) fn report_refusals() {
    #[cfg(feature = "mimalloc")]
    mimalloc_classes::report_refusals();
}

#[cfg(feature = "mimalloc")]
mod mimalloc_classes {
    use super::Inner;
    use mimalloc::MiMalloc;
    use std::alloc::{GlobalAlloc, Layout};
    use std::ffi::{c_int, c_void};
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    /// Requests up to this size use the inline size-class formula; larger ones ask mimalloc.
    /// The unit test checks the formula against `mi_good_size` for every size up to here.
    pub(crate) const FORMULA_MAX: usize = 64 * 1024;

    /// mimalloc's size class (block size) for a request of `size` bytes with the
    /// default alignment: `mi_good_size(size)`, computed without a call for
    /// sizes up to 64 KiB (see `class_of`).
    #[inline(always)]
    pub fn mimalloc_good_size(size: usize) -> usize {
        if size <= TABLE_MAX {
            // One load from a table; no data-dependent branch.
            (INCREMENT_BY_WORDS[size.div_ceil(8)] >> crate::thread::USABLE_SHIFT) as usize
        } else if size <= FORMULA_MAX {
            class_of(size)
        } else {
            // SAFETY: a pure function of its argument.
            unsafe { libmimalloc_sys::mi_good_size(size) }
        }
    }

    /// Requests up to this size read their class from [`INCREMENT_BY_WORDS`]:
    /// most allocations of most programs.
    const TABLE_MAX: usize = 8 * 1024;

    /// For every size in words up to [`TABLE_MAX`] bytes, mimalloc's class
    /// as the packed counters' increment for one operation of 0 requested
    /// bytes (the class in the usable field, one operation): adding the
    /// requested size gives the whole increment. A `const` reference, not
    /// a `static`: the table is then emitted in the crate that inlines the
    /// allocator (the program's own), and the hot path reaches it by its
    /// address relative to the code, not through the global offset table
    /// (one load fewer per operation).
    const INCREMENT_BY_WORDS: &[u64; TABLE_MAX / 8 + 1] = &increments(false);

    /// [`INCREMENT_BY_WORDS`] with the owner tag's place flagged in each
    /// increment (the place is the same for every size of a word).
    const OWNER_INCREMENT_BY_WORDS: &[u64; TABLE_MAX / 8 + 1] = &increments(true);

    const fn increments(owner: bool) -> [u64; TABLE_MAX / 8 + 1] {
        let mut table = [0u64; TABLE_MAX / 8 + 1];
        let mut words = 0;
        while words <= TABLE_MAX / 8 {
            let largest = if words == 0 { 1 } else { words * 8 };
            let class = class_of(largest);
            table[words] = crate::thread::pack(0, class);
            if owner {
                let flags = crate::tag::packed_flags(largest, class);
                // Every size of the word has the same class and place.
                let mut size = largest.saturating_sub(7);
                while size <= largest {
                    assert!(size == 0 || class_of(size) == class);
                    assert!(size == 0 || crate::tag::packed_flags(size, class) == flags);
                    size += 1;
                }
                table[words] |= flags;
            }
            words += 1;
        }
        table
    }

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

    /// Blocks up to this size aligned to at most 8 bytes are allocated with
    /// `mi_malloc` and their usable size read from the class table.
    const SMALL_MAX: usize = TABLE_MAX;

    /// Whether `layout` is served by `mi_malloc` from its size class.
    #[inline(always)]
    fn from_its_class(layout: Layout) -> bool {
        layout.size() <= SMALL_MAX && layout.align() <= 8
    }

    /// Installs [`on_error`] as mimalloc's error handler, once.
    pub(super) fn report_refusals() {
        static INSTALLED: AtomicBool = AtomicBool::new(false);
        if !INSTALLED.load(Relaxed) && !INSTALLED.swap(true, Relaxed) {
            // SAFETY: `on_error` may run on any thread, at any time.
            unsafe { libmimalloc_sys::mi_register_error(Some(on_error), std::ptr::null_mut()) };
        }
    }

    /// mimalloc's error handler: mimalloc calls it on the refusing thread
    /// before an allocation from its default heap returns null (`ENOMEM`;
    /// a block of up to 8 KiB is refused for no other reason), so that the
    /// block memledger counted ahead is counted as freed. Every other error
    /// returns, as under mimalloc's default build (its message is printed
    /// before, as without a handler).
    extern "C" fn on_error(code: c_int, _arg: *mut c_void) {
        if code == libc::ENOMEM {
            crate::thread::refused();
        }
    }

    // SAFETY: mimalloc's own figure, or its size class (see the module's
    // documentation and the tests against `mi_usable_size`); mimalloc
    // reports every refusal through `on_error` once it is installed.
    unsafe impl Inner for MiMalloc {
        const REPORTS_REFUSALS: bool = true;

        #[inline(always)]
        unsafe fn alloc_tracked(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract.
            unsafe { alloc_in_class(self, layout, false) }
        }

        #[inline(always)]
        unsafe fn alloc_zeroed_tracked(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract.
            unsafe { alloc_in_class(self, layout, true) }
        }

        #[inline(always)]
        unsafe fn usable_size(&self, ptr: *mut u8, layout: Layout) -> usize {
            match self.class_size(layout) {
                Some(usable) => usable,
                // Large or over-aligned blocks: ask mimalloc.
                // SAFETY: `ptr` is a live mimalloc block (caller's contract).
                None => unsafe { libmimalloc_sys::mi_usable_size(ptr.cast()) },
            }
        }

        #[inline(always)]
        fn class_size(&self, layout: Layout) -> Option<usize> {
            if from_its_class(layout) {
                // SAFETY: `from_its_class` holds only for sizes up to SMALL_MAX.
                unsafe { std::hint::assert_unchecked(layout.size() <= SMALL_MAX) };
                Some(mimalloc_good_size(layout.size()))
            } else {
                None
            }
        }

        #[inline(always)]
        fn packed_increment(&self, layout: Layout, owner: bool) -> Option<u64> {
            const { assert!(SMALL_MAX == TABLE_MAX && TABLE_MAX <= crate::thread::PACKED_MAX) };
            if from_its_class(layout) {
                let size = layout.size();
                // SAFETY: `from_its_class` holds only for sizes up to SMALL_MAX.
                unsafe { std::hint::assert_unchecked(size <= SMALL_MAX) };
                let table = if owner {
                    OWNER_INCREMENT_BY_WORDS
                } else {
                    INCREMENT_BY_WORDS
                };
                Some(table[size.div_ceil(8)] + size as u64)
            } else {
                None
            }
        }

        #[inline(always)]
        unsafe fn realloc_tracked(
            &self,
            ptr: *mut u8,
            layout: Layout,
            new_size: usize,
            old_usable: usize,
        ) -> *mut u8 {
            // SAFETY: the caller's contract: `new_size` with this alignment is a valid layout.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            // mimalloc keeps a block in place when the new size fits and
            // wastes at most half of it; if the new layout's class is
            // smaller, the kept block would be larger than its class says.
            if new_size < layout.size()
                && from_its_class(new_layout)
                && mimalloc_good_size(new_size) != old_usable
            {
                // SAFETY: the caller's contract; the new layout is smaller.
                return unsafe { move_block(self, ptr, layout, new_layout) };
            }
            // SAFETY: the caller's contract.
            unsafe { self.realloc(ptr, layout, new_size) }
        }
    }

    /// Allocates `layout` with `mi_malloc` (or `mi_zalloc`) when it is
    /// [`from_its_class`], and through `MiMalloc` otherwise.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc`].
    #[inline(always)]
    unsafe fn alloc_in_class(a: &MiMalloc, layout: Layout, zeroed: bool) -> *mut u8 {
        // SAFETY: mimalloc aligns every block to at least 8 bytes, enough for
        // `from_its_class` layouts; otherwise the caller's contract.
        unsafe {
            match (from_its_class(layout), zeroed) {
                (true, false) => libmimalloc_sys::mi_malloc(layout.size()).cast(),
                (true, true) => libmimalloc_sys::mi_zalloc(layout.size()).cast(),
                (false, false) => a.alloc(layout),
                (false, true) => a.alloc_zeroed(layout),
            }
        }
    }

    /// Reallocates by allocating, copying and freeing.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of `a` for `layout`; `new_layout` is smaller
    /// and [`from_its_class`].
    #[cold]
    unsafe fn move_block(
        a: &MiMalloc,
        ptr: *mut u8,
        layout: Layout,
        new_layout: Layout,
    ) -> *mut u8 {
        // SAFETY: `new_layout` is served by `mi_malloc` (the caller's contract).
        let fresh: *mut u8 = unsafe { libmimalloc_sys::mi_malloc(new_layout.size()).cast() };
        if !fresh.is_null() {
            // SAFETY: both blocks are live and do not overlap; the new one is smaller.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, fresh, new_layout.size());
                a.dealloc(ptr, layout);
            }
        }
        fresh
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
        fn owner_increments_flag_each_size_and_count_like_counting_ones() {
            use crate::tag::{PACKED_FLAGS, PACKED_SIDE, PACKED_TRAILER, packed_flags};
            for size in 1..=TABLE_MAX {
                for align in [1, 2, 4, 8] {
                    let layout = Layout::from_size_align(size, align).unwrap();
                    let plain = MiMalloc.packed_increment(layout, false).unwrap();
                    let flagged = MiMalloc.packed_increment(layout, true).unwrap();
                    // SAFETY: pure function.
                    let class = unsafe { libmimalloc_sys::mi_good_size(size) };
                    assert_eq!(plain, crate::thread::pack(size, class), "{size} B");
                    assert_eq!(flagged & !PACKED_FLAGS, plain, "{size} B");
                    assert_eq!(
                        flagged & PACKED_FLAGS,
                        packed_flags(size, class),
                        "{size} B"
                    );
                }
            }
            let flags = |size| {
                MiMalloc
                    .packed_increment(Layout::from_size_align(size, 8).unwrap(), true)
                    .unwrap()
                    & PACKED_FLAGS
            };
            // (size, class): (52, 64), (60, 64), (64, 64), (72, 80), 248 to
            // 256 in 256, 1016 to 1024 in 1024, (1100, 1280).
            for (size, expected) in [
                (52, PACKED_TRAILER),
                (60, 0),
                (64, 0),
                (72, PACKED_TRAILER),
                (248, PACKED_TRAILER),
                (249, PACKED_SIDE),
                (256, PACKED_SIDE),
                (1016, PACKED_TRAILER),
                (1020, PACKED_SIDE),
                (1100, PACKED_SIDE),
            ] {
                assert_eq!(flags(size), expected, "{size} B");
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

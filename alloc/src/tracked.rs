//! [`Tracked`]: the `GlobalAlloc` wrapper.
//!
//! Every method forwards the caller's request, unchanged, to the inner
//! allocator (through the entry points [`Inner`] picks: so `realloc` keeps
//! in-place growth, `alloc_zeroed` keeps lazily zeroed pages, and the
//! program gets blocks of the size classes it would get without memledger,
//! never larger), then, only if the inner allocator succeeded, counts the
//! result on the calling thread (see the `thread` module for the hot path's
//! invariants). A null from the inner allocator is returned unchanged and
//! counts nothing, so `try_reserve` reports the failure and the figures
//! stay true.
//!
//! One exception keeps the commonest call short: in counting mode, over an
//! inner allocator that reports its refusals (`Inner::REPORTS_REFUSALS`:
//! mimalloc, through its error handler), a short-path block is counted
//! *before* the call, which is then `alloc`'s last act — a jump, with no
//! stack frame or check after it. mimalloc reports a refusal on the
//! refusing thread before it returns null, and the block is then counted
//! as freed ([`thread::refused`]): live figures are exact again before the
//! caller sees the null. Such a block is counted ahead only while it keeps
//! the thread within its limit; otherwise it takes the short path below.
//!
//! Blocks whose usable size the layout alone decides ([`Inner::class_size`]:
//! for mimalloc, up to 8 KiB aligned to at most 8 bytes) take the short
//! path: the increment of the packed counters is computed before the inner
//! call, one add and one comparison after it, the cold work out of line.
//! In owner mode the same increment carries a flag saying where the
//! block's tag lies (trailer or side table), so that no size arithmetic
//! decides it; an untagged block's increment carries none and, after one
//! test, is counted exactly as in counting mode. Every other block takes
//! the general path, also out of line.
//!
//! In [`Owner`](crate::Owner) mode each block also carries the id of the
//! scope that allocated it, in its size class's slack or in a side table
//! (see [`OWNER_TAG_BYTES`](crate::OWNER_TAG_BYTES)); its free is charged
//! back to that scope.

use std::alloc::{GlobalAlloc, Layout};
use std::marker::PhantomData;

use crate::inner::Inner;
use crate::mode::{Attribution, Counting, Mode};
use crate::stacks::{self, SAMPLED};
use crate::{tag, thread};

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
        Attribution::Counting => COUNTING_MODE,
        Attribution::Owner => OWNER_MODE,
    } | if Self::AHEAD {
        thread::REPORTS_REFUSALS
    } else {
        0
    };
    const OWNER: bool = matches!(M::ATTRIBUTION, Attribution::Owner);

    /// Whether a short-path block is counted before the inner call (see
    /// the module's documentation): counting mode over an inner allocator
    /// that reports its refusals. Owner mode tags a block after the call,
    /// so it counts after the call too. Two other ways were measured, each
    /// over 8 link orders, and neither was kept:
    ///
    /// - untagged blocks counted ahead, with a jump to an out-of-line path
    ///   for tagged ones: small pairs 0.02x faster on one processor and
    ///   0.13x slower on another, random churn 0.02x to 0.06x slower;
    /// - every short-path block counted ahead, with its scope kept in the
    ///   one register that lives across the call and the tag written after:
    ///   small pairs 0.03x slower.
    const AHEAD: bool = A::REPORTS_REFUSALS && !Self::OWNER;

    /// Counts a fresh block (and tags it in owner mode).
    ///
    /// # Safety
    ///
    /// `ptr` is a live block the inner allocator just returned for `layout`.
    #[inline(always)]
    unsafe fn count_new(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract.
        let usable = unsafe { self.inner.usable_size(ptr, layout) };
        if Self::OWNER {
            let scope = thread::on_alloc_scoped(layout.size(), usable, Self::MODE);
            // SAFETY: the block is live, `usable` bytes long and ours.
            unsafe { tag_new(ptr, layout.size(), usable, scope) };
        } else {
            thread::on_alloc(layout.size(), usable, Self::MODE);
        }
    }
}

impl<A: Inner, M: Mode> Tracked<A, M> {
    /// Whether a packed increment carries owner mode's place flags (counting
    /// mode's never do): a block tagged in its trailer or the side table.
    /// An untagged block's increment is its plain increment.
    #[inline(always)]
    const fn tagged(flagged: u64) -> bool {
        Self::OWNER && flagged & tag::PACKED_FLAGS != 0
    }

    /// The inner allocator's plain or zeroing entry point, for a block
    /// counted after it returns.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc`].
    #[inline(always)]
    unsafe fn inner_alloc(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        if Self::AHEAD {
            thread::counting_after();
        }
        // SAFETY: the caller's contract.
        unsafe { self.inner_alloc_as_is(layout, zeroed) }
    }

    /// [`inner_alloc`](Self::inner_alloc) with nothing before the call.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc`].
    #[inline(always)]
    unsafe fn inner_alloc_as_is(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        // SAFETY: the caller's contract.
        unsafe {
            if zeroed {
                self.inner.alloc_zeroed_tracked(layout)
            } else {
                self.inner.alloc_tracked(layout)
            }
        }
    }

    /// Allocates (zeroed or not) and counts the block: the packed counters'
    /// short path when they take it, else the general one (out of line, so
    /// that the short path saves fewer registers).
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc`].
    #[inline(always)]
    unsafe fn alloc_with(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        if let Some(flagged) = self.inner.packed_increment(layout, Self::OWNER) {
            if Self::AHEAD {
                if thread::on_alloc_ahead(flagged) {
                    // Counted ahead: a refusal is reported (and the block
                    // counted as freed) before the inner allocator returns.
                    // SAFETY: the caller's contract.
                    return unsafe { self.inner_alloc_as_is(layout, zeroed) };
                }
                // SAFETY: the caller's contract.
                return unsafe { self.alloc_packed_past_limit(layout, zeroed, flagged) };
            }
            // SAFETY: the caller's contract.
            return unsafe { self.alloc_packed(layout, zeroed, flagged) };
        }
        // SAFETY: the caller's contract.
        unsafe { self.alloc_counted(layout, zeroed) }
    }

    /// [`alloc_packed`](Self::alloc_packed), out of line: counted ahead,
    /// the block would take its thread past the limit.
    ///
    /// # Safety
    ///
    /// As [`alloc_packed`](Self::alloc_packed).
    #[cold]
    #[inline(never)]
    unsafe fn alloc_packed_past_limit(
        &self,
        layout: Layout,
        zeroed: bool,
        flagged: u64,
    ) -> *mut u8 {
        // SAFETY: the caller's contract.
        unsafe { self.alloc_packed(layout, zeroed, flagged) }
    }

    /// The short path, counted after the call: allocates, then adds the
    /// block's packed increment `flagged` (owner mode: with its tag's place
    /// flagged) and tags the block.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc`]; `flagged` is `layout`'s increment.
    #[inline(always)]
    unsafe fn alloc_packed(&self, layout: Layout, zeroed: bool, flagged: u64) -> *mut u8 {
        // Only the increment stays live across the call.
        let flagged = opaque(flagged);
        // SAFETY: the caller's contract.
        let ptr = unsafe { self.inner_alloc(layout, zeroed) };
        if ptr.is_null() {
            return ptr;
        }
        if Self::tagged(flagged) {
            let increment = flagged & !tag::PACKED_FLAGS;
            let (scope, within) = thread::on_alloc_packed_scoped(increment);
            if !within {
                // SAFETY: `ptr` is a fresh block of `layout`, ours.
                return unsafe { after_packed_alloc_owned(ptr, increment, scope) };
            }
            // A slot's scope never carries the sampled bit.
            if flagged & tag::PACKED_TRAILER == 0 {
                return tag_side(ptr, increment, scope);
            }
            let (_, usable) = thread::unpack(increment);
            // SAFETY: the trailer lies in the block's slack (the flag says
            // so), past what the program may touch.
            unsafe { tag::trailer(ptr, usable).write_unaligned(scope) };
        } else if !thread::on_alloc_packed(flagged) {
            // Counted as in counting mode: an untagged block needs no scope
            // (a sample of it is not found again at its free).
            return after_packed_alloc(ptr, flagged, Self::MODE);
        }
        ptr
    }

    /// The general path, out of line: allocates and counts the block.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc`].
    #[inline(never)]
    unsafe fn alloc_counted(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        // SAFETY: the caller's contract.
        let ptr = unsafe { self.inner_alloc(layout, zeroed) };
        if !ptr.is_null() {
            // SAFETY: `ptr` was just returned for `layout`.
            unsafe { self.count_new(ptr, layout) };
        }
        ptr
    }

    /// The general `dealloc`, out of line.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::dealloc`].
    #[inline(never)]
    unsafe fn dealloc_counted(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is live for `layout` until the inner dealloc below.
        let usable = unsafe { self.inner.usable_size(ptr, layout) };
        let owner = if Self::OWNER {
            // SAFETY: the block was tagged when it was counted, with these sizes.
            unsafe { tag::take(ptr, layout.size(), usable) }
        } else {
            None
        };
        // Counted first, so that the inner `dealloc` is a tail call.
        match owner {
            Some(owner) => thread::on_free_owned(ptr, layout.size(), usable, owner, Self::MODE),
            None => thread::on_free(layout.size(), usable, Self::MODE),
        }
        // SAFETY: caller's contract passed on.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    /// `dealloc` of a block the packed counters take, charged to the
    /// current slot.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::dealloc`]; `increment` is the block's, unflagged.
    #[inline(always)]
    unsafe fn dealloc_packed(&self, ptr: *mut u8, layout: Layout, increment: u64) {
        if !thread::on_free_packed(increment) {
            // SAFETY: caller's contract passed on.
            return unsafe { self.dealloc_after_packed(ptr, layout, increment) };
        }
        // SAFETY: caller's contract passed on.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    /// Owner mode: `dealloc` of a block another scope owns (or sampled).
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::dealloc`]; `usable` and `owner` are the block's.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_foreign(&self, ptr: *mut u8, layout: Layout, usable: usize, owner: u32) {
        thread::on_free_owned(ptr, layout.size(), usable, owner, Self::MODE);
        // SAFETY: caller's contract passed on.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    /// Owner mode: `dealloc` of a block the packed counters take whose tag
    /// is in the side table.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::dealloc`]; `increment` is the block's.
    #[inline(never)]
    unsafe fn dealloc_side(&self, ptr: *mut u8, layout: Layout, increment: u64) {
        match tag::side_take(ptr) {
            Some(owner) if owner != thread::current_scope() => {
                let (_, usable) = thread::unpack(increment);
                // SAFETY: caller's contract passed on.
                unsafe { self.dealloc_foreign(ptr, layout, usable, owner) }
            }
            // SAFETY: caller's contract passed on.
            _ => unsafe { self.dealloc_packed(ptr, layout, increment) },
        }
    }

    /// `dealloc` after [`thread::on_free_packed`] asked for the cold path.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::dealloc`].
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_after_packed(&self, ptr: *mut u8, layout: Layout, increment: u64) {
        thread::after_packed(Self::MODE, increment);
        // SAFETY: caller's contract passed on.
        unsafe { self.inner.dealloc(ptr, layout) }
    }
}

// SAFETY: every method returns exactly what the inner allocator returned for
// the caller's own request; owner tags live in bytes the inner allocator
// handed out beyond the requested size, or outside the block.
unsafe impl<A: Inner, M: Mode> GlobalAlloc for Tracked<A, M> {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: caller's contract passed on.
        unsafe { self.alloc_with(layout, false) }
    }

    #[inline(always)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: caller's contract passed on.
        unsafe { self.alloc_with(layout, true) }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(flagged) = self.inner.packed_increment(layout, Self::OWNER) {
            if Self::tagged(flagged) {
                let increment = flagged & !tag::PACKED_FLAGS;
                if flagged & tag::PACKED_TRAILER == 0 {
                    // SAFETY: caller's contract passed on.
                    return unsafe { self.dealloc_side(ptr, layout, increment) };
                }
                let (_, usable) = thread::unpack(increment);
                // SAFETY: the block was tagged when it was counted, in its
                // slack (the flag says so).
                let owner = unsafe { tag::trailer(ptr, usable).read_unaligned() };
                if owner != thread::current_scope() {
                    // SAFETY: caller's contract passed on.
                    return unsafe { self.dealloc_foreign(ptr, layout, usable, owner) };
                }
                // SAFETY: caller's contract passed on.
                return unsafe { self.dealloc_packed(ptr, layout, increment) };
            }
            // Untagged: charged where it is freed.
            // SAFETY: caller's contract passed on.
            return unsafe { self.dealloc_packed(ptr, layout, flagged) };
        }
        // SAFETY: caller's contract passed on.
        unsafe { self.dealloc_counted(ptr, layout) }
    }

    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` is live for `layout` until the inner realloc succeeds.
        let old_usable = unsafe { self.inner.usable_size(ptr, layout) };
        // The tag comes off before the block may be freed (and its address
        // reused by another thread); it goes back if the realloc fails.
        let owner = if Self::OWNER {
            // SAFETY: the block was tagged when it was counted, with these sizes.
            unsafe { tag::take(ptr, layout.size(), old_usable) }
        } else {
            None
        };
        // A sampled block leaves the live samples before its address may be
        // reused.
        let sample = match owner {
            Some(owner) if owner & SAMPLED != 0 => stacks::leave_live(ptr),
            _ => None,
        };
        if Self::AHEAD {
            thread::counting_after();
        }
        // SAFETY: caller's contract passed on.
        let new_ptr = unsafe {
            self.inner
                .realloc_tracked(ptr, layout, new_size, old_usable)
        };
        if new_ptr.is_null() {
            if let Some(owner) = owner {
                if let Some(sample) = sample {
                    stacks::enter_live(ptr, sample);
                }
                // SAFETY: the old block is still live and ours.
                unsafe { tag::write(ptr, layout.size(), old_usable, owner) };
            }
            return new_ptr;
        }
        let owner = owner.map(|owner| owner & !SAMPLED);
        // SAFETY: `new_ptr` was just returned for `new_size` with `layout`'s
        // alignment, which the caller guarantees is a valid layout.
        let new_usable = unsafe {
            self.inner.usable_size(
                new_ptr,
                Layout::from_size_align_unchecked(new_size, layout.align()),
            )
        };
        let scope = match owner {
            Some(owner) => thread::on_realloc_owned(
                layout.size(),
                old_usable,
                owner,
                new_size,
                new_usable,
                Self::MODE,
            ),
            None => thread::on_realloc(layout.size(), old_usable, new_size, new_usable, Self::MODE),
        };
        if Self::OWNER {
            // SAFETY: the new block is live, `new_usable` bytes long and ours.
            unsafe { tag_new(new_ptr, new_size, new_usable, scope) };
        }
        new_ptr
    }
}

/// The cold path after [`thread::on_alloc_packed`]; returns the block.
#[cold]
#[inline(never)]
fn after_packed_alloc(ptr: *mut u8, increment: u64, mode: u8) -> *mut u8 {
    thread::after_packed(mode, increment);
    ptr
}

/// `value`, computed here: the optimiser cannot move its computation past
/// what follows (a call, after which one register is cheaper to keep than
/// the inputs).
#[inline(always)]
fn opaque(value: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut value = value;
        // SAFETY: an empty instruction sequence; `value` is unchanged.
        unsafe {
            std::arch::asm!("/* {0} */", inout(reg) value, options(nomem, nostack, preserves_flags))
        };
        value
    }
    #[cfg(not(target_arch = "x86_64"))]
    value
}

/// Owner mode: the cold path after [`thread::on_alloc_packed_scoped`];
/// tags the block and returns it.
///
/// # Safety
///
/// `ptr` is a fresh block of the increment's sizes, ours.
#[cold]
#[inline(never)]
unsafe fn after_packed_alloc_owned(ptr: *mut u8, increment: u64, scope: u32) -> *mut u8 {
    let sampled = thread::after_packed(OWNER_MODE, increment);
    let (size, usable) = thread::unpack(increment);
    // SAFETY: the caller's contract.
    unsafe { tag_new(ptr, size, usable, scope | sampled) };
    ptr
}

/// Owner mode: enters a fresh block in the side table (the packed
/// increment's flag says its tag goes there); returns the block.
#[inline(never)]
fn tag_side(ptr: *mut u8, increment: u64, scope: u32) -> *mut u8 {
    let (size, usable) = thread::unpack(increment);
    tag::side_insert(ptr, size, usable, scope);
    ptr
}

/// The mode byte of owner mode (see `Tracked::MODE`).
const OWNER_MODE: u8 = 2;

/// The mode byte of counting mode (see `Tracked::MODE`).
const COUNTING_MODE: u8 = 1;

/// Owner mode: tags a new block with `scope`, as returned by the counters.
///
/// # Safety
///
/// `ptr` is a live block of at least `usable` bytes that the caller owns.
#[inline(always)]
unsafe fn tag_new(ptr: *mut u8, size: usize, usable: usize, scope: u32) {
    if scope & SAMPLED != 0 {
        // SAFETY: the caller's contract.
        unsafe { tag_sampled(ptr, size, usable, scope & !SAMPLED) };
    } else {
        // SAFETY: the caller's contract.
        unsafe { tag::write(ptr, size, usable, scope) };
    }
}

/// Owner mode: tags a block whose stack was just sampled; it carries the
/// sampled bit when it can be found again at its free.
///
/// # Safety
///
/// As [`tag_new`].
#[cold]
#[inline(never)]
unsafe fn tag_sampled(ptr: *mut u8, size: usize, usable: usize, scope: u32) {
    if tag::taggable(size, usable) && stacks::enter_live(ptr, thread::pending_sample()) {
        // SAFETY: the caller's contract.
        if unsafe { tag::write(ptr, size, usable, scope | SAMPLED) } {
            return;
        }
        stacks::leave_live(ptr);
    } else {
        // SAFETY: the caller's contract.
        unsafe { tag::write(ptr, size, usable, scope) };
    }
}

//! Scopes: named tags that a thread enters for a region of code.
//!
//! Allocations made while a scope is entered are charged to it; the innermost
//! entered scope wins; allocations outside any scope go to
//! [`Scope::UNSCOPED`]. A scope is a `u32` index into a fixed table of
//! [`MAX_SCOPES`] cells, interned by name, so copying one is free.
//!
//! Entering or leaving a scope only changes which of the thread's own slots
//! the hot path counts into (see the `thread` module): it writes no shared
//! memory unless the scope it leaves holds unpublished bytes. A scope's
//! figures are its cell's folded counts plus what every live thread holds for
//! it, read together; see [`Scope::stats`] for what is exact.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use crate::cell::{self, MAX_SCOPES, cell};
use crate::counts::Counts;
use crate::{tag, thread};

/// A named tag that allocations are charged to. Interned: the same name is the
/// same scope. Cheap to copy.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(u32);

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scope({:?})", self.name())
    }
}

/// Distinct names that got [`Scope::OVERFLOW`] because the table was full.
static OVERFLOWED_NAMES: AtomicU64 = AtomicU64::new(0);

/// How many distinct scope names did not fit in the table of [`MAX_SCOPES`]
/// and were charged to [`Scope::OVERFLOW`] instead (each name counted once).
pub fn overflowed_scope_names() -> u64 {
    OVERFLOWED_NAMES.load(Relaxed)
}

struct Interner {
    names: Vec<&'static str>,
    ids: BTreeMap<&'static str, u32>,
    /// Names refused for lack of room, kept so each is counted once.
    overflowed: BTreeSet<Box<str>>,
}

static INTERNER: Mutex<Interner> = Mutex::new(Interner {
    names: Vec::new(),
    ids: BTreeMap::new(),
    overflowed: BTreeSet::new(),
});

impl Scope {
    /// Allocations outside any scope.
    pub const UNSCOPED: Scope = Scope(0);
    /// Where allocations go once [`MAX_SCOPES`] scopes exist.
    pub const OVERFLOW: Scope = Scope(1);

    /// The scope named `name`, created on first use.
    ///
    /// Takes a lock and may allocate: call it once per operator or task, not
    /// per allocation. Past [`MAX_SCOPES`] names it returns [`Scope::OVERFLOW`]
    /// (never an error, never lost bytes). The names `unscoped` and `overflow`
    /// are the built-in scopes.
    pub fn new(name: &str) -> Scope {
        match name {
            "unscoped" => return Scope::UNSCOPED,
            "overflow" => return Scope::OVERFLOW,
            _ => {}
        }
        let mut interner = lock_interner();
        if let Some(&id) = interner.ids.get(name) {
            return Scope(id);
        }
        let id = cell::count();
        if id as usize >= MAX_SCOPES {
            if interner.overflowed.insert(name.into()) {
                OVERFLOWED_NAMES.fetch_add(1, Relaxed);
            }
            return Scope::OVERFLOW;
        }
        let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
        if interner.names.is_empty() {
            interner.names.extend(["unscoped", "overflow"]);
        }
        interner.names.push(name);
        interner.ids.insert(name, id);
        cell::set_count(id + 1);
        Scope(id)
    }

    /// The innermost scope the calling thread has entered.
    pub fn current() -> Scope {
        Scope(thread::current_scope())
    }

    /// The scope's name.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "unscoped",
            1 => "overflow",
            id => lock_interner()
                .names
                .get(id as usize)
                .copied()
                .unwrap_or("?"),
        }
    }

    /// The scope of index `id` (an id read back from the counters).
    pub(crate) fn from_id(id: u32) -> Scope {
        Scope(id)
    }

    /// The scope's index (0 is `unscoped`, 1 is `overflow`).
    pub fn id(self) -> u32 {
        self.0
    }

    /// Enters the scope on this thread until the guard drops; the previous
    /// scope is restored then. Guards nest; the innermost wins.
    #[must_use = "the scope is left when the guard drops"]
    #[inline]
    pub fn enter(self) -> ScopeGuard {
        ScopeGuard {
            previous: thread::switch_scope(self.0),
            _not_send: PhantomData,
        }
    }

    /// Runs `f` inside the scope.
    pub fn in_scope<R>(self, f: impl FnOnce() -> R) -> R {
        let _guard = self.enter();
        f()
    }

    /// Wraps a future (or, with feature `stream`, a stream) so that every
    /// `poll` runs inside this scope, on whichever thread polls it.
    pub fn instrument<F>(self, inner: F) -> Instrumented<F> {
        Instrumented::new(self, inner)
    }

    /// This scope's figures now.
    ///
    /// Live, total and count figures are exact at the moment of reading, and
    /// never go down between two reads while threads run (cumulative ones);
    /// the peaks are within [`peak_error_bytes`](crate::peak_error_bytes)
    /// below the truth. Takes the thread registry's lock for a walk over
    /// live threads; does not allocate.
    pub fn stats(self) -> ScopeStats {
        let mut counts = [Counts::default()];
        thread::scope_counts(&mut counts, self.0);
        ScopeStats::new(self, self.name(), &counts[0])
    }

    /// Owner mode: charges the block that starts at `ptr` to this scope
    /// from now on, as if this scope had allocated it. Its live bytes move
    /// from the scope it belonged to into this one (raising this scope's
    /// peak), and its free is charged here. Returns the usable bytes the
    /// block holds, or `None` when memledger cannot find the block by its
    /// address: counting mode, a block smaller than
    /// [`OWNER_SIDE_TABLE_ALWAYS`](crate::OWNER_SIDE_TABLE_ALWAYS) (those
    /// keep their tag where only the block's layout finds it), a pointer
    /// into a block rather than to its start, or memory that did not come
    /// from the global allocator. `ptr` is never dereferenced.
    ///
    /// This is how a data structure that passes from one component to
    /// another (a batch of columns handed from one query operator to the
    /// next) is charged to the component that holds it rather than the one
    /// that built it. A move is not an allocation: it changes no count, no
    /// per-thread figure and no process figure; each scope's totals count
    /// it as bytes freed (the old scope) and allocated (this one).
    ///
    /// The figures are exact when the caller holds the block for the
    /// duration of the call (so that it cannot be freed and its address
    /// reused meanwhile); two threads moving one block at once both take
    /// effect, in some order.
    pub fn adopt(self, ptr: *const u8) -> Option<usize> {
        self.adopt_from(ptr, |_| true)
    }

    /// [`adopt`](Self::adopt), only if the scope the block belongs to now
    /// satisfies `from` (say, only from the scopes of one component's
    /// parts, so that data shared with the rest of the program stays where
    /// it is charged). Returns `None`, moving nothing, when it does not.
    pub fn adopt_from(self, ptr: *const u8, from: impl Fn(Scope) -> bool) -> Option<usize> {
        match tag::side_recharge(ptr, self.0, |owner| from(Scope(owner))) {
            tag::Recharge::Unknown => None,
            tag::Recharge::Already(usable) => Some(usable),
            tag::Recharge::Moved(moved) => {
                thread::move_live(moved.from, self.0, moved.requested, moved.usable);
                Some(moved.usable)
            }
        }
    }

    /// Sets this scope's peaks to its live values now.
    pub fn reset_peak(self) {
        thread::flush_current();
        let s = self.stats();
        cell(self.0)
            .live
            .reset_peaks(s.live_requested, s.live_usable);
    }
}

/// Owner mode: charges the block that starts at `ptr` to the current scope
/// from now on; [`Scope::adopt`] on [`Scope::current`].
pub fn recharge(ptr: *const u8) -> Option<usize> {
    Scope::current().adopt(ptr)
}

/// Every scope that exists (including `unscoped` and `overflow`), by id,
/// read together (see [`Scope::stats`] for what is exact).
pub fn scopes() -> Vec<ScopeStats> {
    let count = cell::count() as usize;
    let mut counts = vec![Counts::default(); count];
    thread::scope_counts(&mut counts, 0);
    let names: Vec<&'static str> = {
        let interner = lock_interner();
        (0..count)
            .map(|id| match id {
                0 => "unscoped",
                1 => "overflow",
                _ => interner.names.get(id).copied().unwrap_or("?"),
            })
            .collect()
    };
    counts
        .iter()
        .zip(names)
        .enumerate()
        .map(|(id, (c, name))| ScopeStats::new(Scope(id as u32), name, c))
        .collect()
}

/// Sets every scope's peaks to its live values now.
pub(crate) fn reset_all_peaks() {
    for s in scopes() {
        cell(s.scope.0)
            .live
            .reset_peaks(s.live_requested, s.live_usable);
    }
}

fn lock_interner() -> std::sync::MutexGuard<'static, Interner> {
    match INTERNER.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// One scope's figures. In counting mode `live` can be negative: the scope
/// freed blocks that another scope allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeStats {
    /// The scope.
    pub scope: Scope,
    /// Its name.
    pub name: &'static str,
    /// Requested bytes allocated in it and not freed (in counting mode:
    /// allocated in it minus freed in it).
    pub live_requested: i64,
    /// Usable bytes, likewise.
    pub live_usable: i64,
    /// Highest `live_requested` (within the peak error bound).
    pub peak_requested: i64,
    /// Highest `live_usable` (within the peak error bound).
    pub peak_usable: i64,
    /// Cumulative requested bytes allocated in it.
    pub total_requested: u64,
    /// Cumulative usable bytes allocated in it.
    pub total_usable: u64,
    /// Allocations made in it.
    pub allocations: u64,
    /// Deallocations charged to it.
    pub deallocations: u64,
}

impl ScopeStats {
    fn new(scope: Scope, name: &'static str, c: &Counts) -> ScopeStats {
        let cell = cell(scope.0);
        let live_requested = c.net_requested();
        let live_usable = c.net_usable();
        ScopeStats {
            scope,
            name,
            live_requested,
            live_usable,
            peak_requested: cell.live.peak_requested.load(Relaxed).max(live_requested),
            peak_usable: cell.live.peak_usable.load(Relaxed).max(live_usable),
            total_requested: c.alloc_requested,
            total_usable: c.alloc_usable,
            allocations: c.allocations,
            deallocations: c.deallocations,
        }
    }
}

/// Leaves the scope (restoring the previous one) when dropped. Not `Send`:
/// a scope is entered on one thread and must be left there.
#[must_use = "the scope is left when the guard drops"]
pub struct ScopeGuard {
    previous: u32,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ScopeGuard {
    #[inline]
    fn drop(&mut self) {
        thread::switch_scope(self.previous);
    }
}

pin_project_lite::pin_project! {
    /// A future or stream whose every poll, and its drop, run inside a scope.
    /// See [`Scope::instrument`].
    ///
    /// Dropping it (a cancelled query, an early `LIMIT`) runs the inner
    /// value's destructor inside the scope too, so state freed on
    /// cancellation is charged where it belongs.
    pub struct Instrumented<F> {
        scope: Scope,
        // `ManuallyDrop` so that `Drop` can enter the scope first and then
        // drop the inner value inside it.
        #[pin]
        inner: ManuallyDrop<F>,
    }

    impl<F> PinnedDrop for Instrumented<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let _guard = this.scope.enter();
            // SAFETY: the value is dropped in place, never moved (as if it
            // were wrapped in an `Option` set to `None`), and `PinnedDrop::drop`
            // runs once, so it is dropped exactly once.
            unsafe { ManuallyDrop::drop(this.inner.get_unchecked_mut()) }
        }
    }
}

impl<F> Instrumented<F> {
    fn new(scope: Scope, inner: F) -> Self {
        Instrumented {
            scope,
            inner: ManuallyDrop::new(inner),
        }
    }

    /// The scope polls run in.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The wrapped value (without running its destructor in the scope).
    pub fn into_inner(self) -> F {
        // The destructor must not run: it would drop `inner` a second time.
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used again and its destructor never runs,
        // so `inner` is moved out exactly once.
        unsafe { ManuallyDrop::take(&mut this.inner) }
    }
}

impl<F: std::fmt::Debug> std::fmt::Debug for Instrumented<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instrumented")
            .field("scope", &self.scope)
            .field("inner", &*self.inner)
            .finish()
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = this.scope.enter();
        // SAFETY: `inner` is pinned with `self` (structural pinning through
        // `ManuallyDrop`, which never moves its content).
        let inner = unsafe { this.inner.map_unchecked_mut(|v| &mut **v) };
        inner.poll(cx)
    }
}

#[cfg(feature = "stream")]
impl<S: futures_core::Stream> futures_core::Stream for Instrumented<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let _guard = this.scope.enter();
        // SAFETY: as in `Future::poll`.
        let inner = unsafe { this.inner.map_unchecked_mut(|v| &mut **v) };
        inner.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

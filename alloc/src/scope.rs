//! Scopes: named tags that a thread enters for a region of code.
//!
//! Allocations made while a scope is entered are charged to it; the innermost
//! entered scope wins; allocations outside any scope go to
//! [`Scope::UNSCOPED`]. A scope is a `u32` index into a fixed table of
//! [`MAX_SCOPES`] cells, interned by name, so copying one is free.
//!
//! The hot path never touches a scope cell: each thread accumulates its
//! allocations for its current scope in thread-local counters and publishes
//! them to the cell (a handful of atomic adds) when it enters or leaves a
//! scope, every [`FLUSH_BYTES`](crate::FLUSH_BYTES) of net change, and when
//! it exits. Reads add the still-pending deltas of live threads, so live and
//! total figures are exact; a scope's peak is seen at publication time and
//! may be off by [`peak_error_bytes`](crate::peak_error_bytes).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use crate::thread;

/// How many scopes can exist; past this, [`Scope::new`] returns [`Scope::OVERFLOW`].
pub const MAX_SCOPES: usize = 16384;

/// A named tag that allocations are charged to. Interned: the same name is the
/// same scope. Cheap to copy.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(u32);

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scope({:?})", self.name())
    }
}

/// One scope's published counters. One cache line, written only when a thread
/// publishes its deltas.
#[repr(C, align(64))]
pub(crate) struct ScopeCell {
    pub(crate) live_requested: AtomicI64,
    pub(crate) live_usable: AtomicI64,
    pub(crate) peak_requested: AtomicI64,
    pub(crate) peak_usable: AtomicI64,
    pub(crate) total_requested: AtomicU64,
    pub(crate) total_usable: AtomicU64,
    pub(crate) allocations: AtomicU64,
    pub(crate) deallocations: AtomicU64,
}

impl ScopeCell {
    const fn new() -> Self {
        ScopeCell {
            live_requested: AtomicI64::new(0),
            live_usable: AtomicI64::new(0),
            peak_requested: AtomicI64::new(0),
            peak_usable: AtomicI64::new(0),
            total_requested: AtomicU64::new(0),
            total_usable: AtomicU64::new(0),
            allocations: AtomicU64::new(0),
            deallocations: AtomicU64::new(0),
        }
    }

    /// Adds a thread's published delta. Cold: a few atomic adds on this scope's line.
    #[inline]
    pub(crate) fn publish(&self, d: &thread::Delta) {
        let live = self.live_requested.fetch_add(d.net_requested(), Relaxed) + d.net_requested();
        raise(&self.peak_requested, live);
        let live_u = self.live_usable.fetch_add(d.net_usable(), Relaxed) + d.net_usable();
        raise(&self.peak_usable, live_u);
        if d.alloc_requested != 0 {
            self.total_requested.fetch_add(d.alloc_requested, Relaxed);
            self.total_usable.fetch_add(d.alloc_usable, Relaxed);
        }
        if d.allocations != 0 {
            self.allocations.fetch_add(d.allocations, Relaxed);
        }
        if d.deallocations != 0 {
            self.deallocations.fetch_add(d.deallocations, Relaxed);
        }
    }
}

/// Raises `peak` to `value` if it is higher; reads first so the common case writes nothing.
#[inline]
pub(crate) fn raise(peak: &AtomicI64, value: i64) {
    if value > peak.load(Relaxed) {
        peak.fetch_max(value, Relaxed);
    }
}

static CELLS: [ScopeCell; MAX_SCOPES] = [const { ScopeCell::new() }; MAX_SCOPES];

/// Number of ids handed out (0 and 1 are built in).
static COUNT: AtomicU32 = AtomicU32::new(2);

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

#[inline(always)]
pub(crate) fn cell(id: u32) -> &'static ScopeCell {
    // Ids only come from `Scope` values, which are always < MAX_SCOPES; the
    // `min` keeps a corrupt owner-mode trailer from indexing out of bounds.
    &CELLS[(id as usize).min(MAX_SCOPES - 1)]
}

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
        let mut interner = match INTERNER.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(&id) = interner.ids.get(name) {
            return Scope(id);
        }
        let id = COUNT.load(Relaxed);
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
        COUNT.store(id + 1, Relaxed);
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
            id => {
                let interner = match INTERNER.lock() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                interner.names.get(id as usize).copied().unwrap_or("?")
            }
        }
    }

    /// The scope's index (0 is `unscoped`, 1 is `overflow`).
    pub fn id(self) -> u32 {
        self.0
    }

    /// Enters the scope on this thread until the guard drops; the previous
    /// scope is restored then. Guards nest; the innermost wins.
    #[must_use = "the scope is left when the guard drops"]
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
        Instrumented { scope: self, inner }
    }

    /// This scope's figures now (live and totals exact, peak within
    /// [`peak_error_bytes`](crate::peak_error_bytes)).
    pub fn stats(self) -> ScopeStats {
        let mut stats = ScopeStats::read(self);
        thread::add_pending(|scope, delta| {
            if scope == self.0 {
                stats.add(delta);
            }
        });
        stats
    }

    /// Sets this scope's peaks to its live values now.
    pub fn reset_peak(self) {
        thread::flush_current();
        let c = cell(self.0);
        c.peak_requested
            .store(c.live_requested.load(Relaxed), Relaxed);
        c.peak_usable.store(c.live_usable.load(Relaxed), Relaxed);
    }
}

/// Every scope that exists (including `unscoped` and `overflow`), by id.
pub fn scopes() -> Vec<ScopeStats> {
    let count = COUNT.load(Relaxed) as usize;
    let mut all: Vec<ScopeStats> = (0..count as u32)
        .map(|id| ScopeStats::read(Scope(id)))
        .collect();
    thread::add_pending(|scope, delta| {
        if let Some(stats) = all.get_mut(scope as usize) {
            stats.add(delta);
        }
    });
    all
}

/// Sets every scope's peak to its live value.
pub(crate) fn reset_all_peaks() {
    for id in 0..COUNT.load(Relaxed) {
        let c = cell(id);
        c.peak_requested
            .store(c.live_requested.load(Relaxed), Relaxed);
        c.peak_usable.store(c.live_usable.load(Relaxed), Relaxed);
    }
}

/// One scope's figures. In counting mode `live` can be negative: the scope
/// freed blocks that another scope allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeStats {
    pub scope: Scope,
    pub name: &'static str,
    pub live_requested: i64,
    pub live_usable: i64,
    pub peak_requested: i64,
    pub peak_usable: i64,
    pub total_requested: u64,
    pub total_usable: u64,
    pub allocations: u64,
    pub deallocations: u64,
}

impl ScopeStats {
    fn read(scope: Scope) -> ScopeStats {
        ScopeStats::read_named(scope, scope.name())
    }

    fn read_named(scope: Scope, name: &'static str) -> ScopeStats {
        let c = cell(scope.0);
        ScopeStats {
            scope,
            name,
            live_requested: c.live_requested.load(Relaxed),
            live_usable: c.live_usable.load(Relaxed),
            peak_requested: c.peak_requested.load(Relaxed),
            peak_usable: c.peak_usable.load(Relaxed),
            total_requested: c.total_requested.load(Relaxed),
            total_usable: c.total_usable.load(Relaxed),
            allocations: c.allocations.load(Relaxed),
            deallocations: c.deallocations.load(Relaxed),
        }
    }

    fn add(&mut self, d: &thread::Delta) {
        self.live_requested += d.net_requested();
        self.live_usable += d.net_usable();
        self.peak_requested = self.peak_requested.max(self.live_requested);
        self.peak_usable = self.peak_usable.max(self.live_usable);
        self.total_requested += d.alloc_requested;
        self.total_usable += d.alloc_usable;
        self.allocations += d.allocations;
        self.deallocations += d.deallocations;
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
    fn drop(&mut self) {
        thread::switch_scope(self.previous);
    }
}

/// A future or stream whose every poll runs inside a scope. See [`Scope::instrument`].
#[derive(Debug, Clone)]
pub struct Instrumented<F> {
    scope: Scope,
    inner: F,
}

impl<F> Instrumented<F> {
    /// The scope polls run in.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The wrapped value.
    pub fn into_inner(self) -> F {
        self.inner
    }

    fn project(self: Pin<&mut Self>) -> (Scope, Pin<&mut F>) {
        // SAFETY: `inner` is structurally pinned: it is never moved out of a
        // pinned `Instrumented` (no `Unpin`-free accessor hands out `&mut F`,
        // and `Instrumented` has no `Drop` impl that could move it).
        unsafe {
            let this = self.get_unchecked_mut();
            (this.scope, Pin::new_unchecked(&mut this.inner))
        }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let (scope, inner) = self.project();
        let _guard = scope.enter();
        inner.poll(cx)
    }
}

#[cfg(feature = "stream")]
impl<S: futures_core::Stream> futures_core::Stream for Instrumented<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let (scope, inner) = self.project();
        let _guard = scope.enter();
        inner.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

//! Measuring one region of code, isolated from the rest of the process.
//!
//! [`measure`] runs a closure in a scope of its own on the calling thread,
//! with [`memledger_alloc::precise`] held so its peak is exact, and
//! consumers registered inside tied to that scope. Other threads (parallel
//! tests, say) allocate into their own scopes and do not disturb it.
//! [`measure_future`] does the same for a future, on every `poll`, on
//! whichever thread polls it.
//!
//! ```no_run
//! use std::sync::Arc;
//! use memledger_profiler::{GreedyPool, MemoryConsumer, MemoryPool, measure};
//!
//! let pool: Arc<dyn MemoryPool> = Arc::new(GreedyPool::new(64 << 20));
//! let (_, m) = measure(|| {
//!     let mut r = MemoryConsumer::new("MySort").register(&pool);
//!     r.try_grow(1 << 20).unwrap();
//!     let rows = vec![0u64; 100_000]; // 800 KB, within the reservation
//!     rows.len()
//! });
//! m.assert_within_reservation(0.1); // panics, readably, past 10% over
//! assert_eq!(m.live_at_end_bytes, 0, "nothing leaked");
//! ```
//!
//! The innermost scope wins: code inside the region that enters scopes of
//! its own (an operator entering `SortExec[0]`) is charged to those scopes,
//! not to the measurement. Measure such code from outside, with
//! [`scope_audit`](crate::scope_audit) or a [`Session`](crate::Session).
//!
//! Work the region hands to other threads is counted only if those threads
//! enter the measurement's scope: inside the region, [`Scope::current`] is
//! that scope (give it to [`Scope::instrument`] or [`Scope::enter`] on the
//! other thread). In counting mode a block allocated inside and freed on
//! another thread counts as live at the end; owner mode charges it back.
//!
//! Scopes are reused: a measurement that ended hands its scope to the next
//! one, so a process can run any number of measurements within the
//! allocator's [`MAX_SCOPES`](memledger_alloc::MAX_SCOPES).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use memledger_alloc::{Scope, ScopeStats};

use crate::internal::internal_scope;
use crate::ledger::ledger;

thread_local! {
    /// The scope new consumers default to on this thread while measuring.
    static MEASURING: Cell<Option<Scope>> = const { Cell::new(None) };
}

/// Scopes of measurements that ended, ready for the next.
static FREE_SCOPES: Mutex<Vec<Scope>> = Mutex::new(Vec::new());

/// The scope consumers created on this thread default to, if a measurement runs.
pub(crate) fn measuring_scope() -> Option<Scope> {
    MEASURING.with(Cell::get)
}

/// What one measured region did. Byte figures are requested bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measurement {
    /// The scope the region ran in (handed to a later measurement once this
    /// one ended).
    pub scope: Scope,
    /// Highest live heap of the region: exact for allocations made on the
    /// measuring thread, within the allocator's flush threshold per thread
    /// for other threads that entered the scope.
    pub peak_bytes: i64,
    /// Allocations made.
    pub allocations: u64,
    /// Bytes still live when it ended (allocated inside, not freed inside): leaks.
    pub live_at_end_bytes: i64,
    /// Highest reservation of the consumers tied to the region's scope
    /// together (by default, those registered inside).
    pub reserved_peak_bytes: u64,
    /// `peak_bytes - reserved_peak_bytes`: heap the reservations never
    /// covered (a lower bound of the largest live − reserved gap).
    pub untracked_peak_bytes: i64,
}

impl Measurement {
    /// `Err` with a readable message when the heap peak exceeds the
    /// reservation peak by more than `tolerance` (a fraction of the
    /// reservation peak: 0.1 allows 10% more; negative or NaN counts as 0).
    pub fn check_within_reservation(&self, tolerance: f64) -> Result<(), String> {
        let tolerance = if tolerance.is_nan() {
            0.0
        } else {
            tolerance.max(0.0)
        };
        let allowed = self.reserved_peak_bytes as f64 * (1.0 + tolerance);
        if self.peak_bytes as f64 <= allowed {
            return Ok(());
        }
        Err(format!(
            "heap peak {} bytes exceeds the reservation peak {} bytes by {} bytes ({}), more than the {:.0}% tolerance",
            self.peak_bytes,
            self.reserved_peak_bytes,
            self.untracked_peak_bytes,
            if self.reserved_peak_bytes == 0 {
                "nothing reserved".to_string()
            } else {
                format!(
                    "{:.1}x",
                    self.peak_bytes as f64 / self.reserved_peak_bytes as f64
                )
            },
            tolerance * 100.0
        ))
    }

    /// Panics with [`check_within_reservation`](Self::check_within_reservation)'s
    /// message when the heap peak exceeds the reservation peak by more than
    /// `tolerance`; for tests.
    #[track_caller]
    pub fn assert_within_reservation(&self, tolerance: f64) {
        if let Err(message) = self.check_within_reservation(tolerance) {
            panic!("{message}");
        }
    }
}

/// A scope for a new measurement: one that a finished measurement handed
/// back (its peak reset), or a new one.
fn take_scope() -> Scope {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Creating the internal scope interns its name: do it before the region,
    // not inside it.
    internal_scope();
    let reused = match FREE_SCOPES.lock() {
        Ok(mut free) => free.pop(),
        Err(poisoned) => poisoned.into_inner().pop(),
    };
    match reused {
        Some(scope) => {
            scope.reset_peak();
            scope
        }
        None => Scope::new(&format!("memledger.measure#{}", NEXT.fetch_add(1, Relaxed))),
    }
}

fn give_back(scope: Scope) {
    if scope == Scope::OVERFLOW {
        return;
    }
    match FREE_SCOPES.lock() {
        Ok(mut free) => free.push(scope),
        Err(poisoned) => poisoned.into_inner().push(scope),
    }
}

/// Where a measurement starts: its scope's figures and its consumers'
/// reserved bytes (nonzero only if a reservation of an earlier region that
/// used the scope is still held).
#[derive(Clone, Copy)]
struct Start {
    scope: Scope,
    stats: ScopeStats,
    reserved: u64,
}

impl Start {
    /// Takes a scope and restarts its peaks (heap and reserved) from now.
    fn now() -> Start {
        let scope = take_scope();
        Start {
            scope,
            stats: scope.stats(),
            reserved: ledger().restart_scope_peak(scope),
        }
    }
}

/// The figures of the region that began at `start`.
fn measurement(start: &Start) -> Measurement {
    let (scope, before) = (start.scope, &start.stats);
    let after = scope.stats();
    let (_, reserved_peak) = ledger().reserved_in(scope);
    let reserved_peak = reserved_peak.saturating_sub(start.reserved);
    let peak = after.peak_requested - before.live_requested;
    Measurement {
        scope,
        peak_bytes: peak,
        allocations: after.allocations - before.allocations,
        live_at_end_bytes: after.live_requested - before.live_requested,
        reserved_peak_bytes: reserved_peak,
        untracked_peak_bytes: peak - reserved_peak as i64,
    }
}

/// Runs `f` inside `scope` with exact peaks and consumers defaulting to it.
fn run_in<R>(scope: Scope, f: impl FnOnce() -> R) -> R {
    let previous = MEASURING.with(|m| m.replace(Some(scope)));
    let result = {
        let _precise = memledger_alloc::precise();
        scope.in_scope(f)
    };
    MEASURING.with(|m| m.set(previous));
    result
}

/// Runs `f` in a scope of its own on this thread and measures it. Needs
/// the tracked allocator installed (otherwise every heap figure is 0).
///
/// The reservation figures are those of the consumers tied to the
/// measurement's scope: consumers registered inside `f` without
/// [`with_scope`](crate::MemoryConsumer::with_scope) are.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Measurement) {
    let start = Start::now();
    let result = run_in(start.scope, f);
    let m = measurement(&start);
    give_back(start.scope);
    (result, m)
}

/// Measures a future like [`measure`] measures a closure: every `poll`
/// runs in the measurement's scope with exact peaks, on whichever thread
/// polls it. Resolves to the future's output and the measurement.
pub fn measure_future<F: Future>(future: F) -> MeasuredFuture<F> {
    MeasuredFuture {
        inner: Box::pin(future),
        state: None,
    }
}

/// The future [`measure_future`] returns.
pub struct MeasuredFuture<F> {
    inner: Pin<Box<F>>,
    /// Where the measurement started (at the first poll).
    state: Option<Start>,
}

impl<F: Future> Future for MeasuredFuture<F> {
    type Output = (F::Output, Measurement);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `MeasuredFuture` is `Unpin`: the inner future is pinned in its box.
        let this = self.get_mut();
        let start = *this.state.get_or_insert_with(Start::now);
        let inner = &mut this.inner;
        match run_in(start.scope, || inner.as_mut().poll(cx)) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(output) => {
                let m = measurement(&start);
                this.state = None;
                give_back(start.scope);
                Poll::Ready((output, m))
            }
        }
    }
}

impl<F> Drop for MeasuredFuture<F> {
    fn drop(&mut self) {
        // Dropped before it finished: the scope is free again.
        if let Some(start) = self.state.take() {
            give_back(start.scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(peak: i64, reserved: u64) -> Measurement {
        Measurement {
            scope: Scope::UNSCOPED,
            peak_bytes: peak,
            allocations: 1,
            live_at_end_bytes: 0,
            reserved_peak_bytes: reserved,
            untracked_peak_bytes: peak - reserved as i64,
        }
    }

    #[test]
    fn the_reservation_check_allows_exactly_the_tolerance() {
        assert!(m(1100, 1000).check_within_reservation(0.1).is_ok());
        let err = m(1101, 1000).check_within_reservation(0.1).unwrap_err();
        assert_eq!(
            err,
            "heap peak 1101 bytes exceeds the reservation peak 1000 bytes by 101 bytes (1.1x), more than the 10% tolerance"
        );
        let none = m(10, 0).check_within_reservation(f64::NAN).unwrap_err();
        assert!(
            none.contains("(nothing reserved)") && none.contains("the 0% tolerance"),
            "{none}"
        );
        let caught = std::panic::catch_unwind(|| m(3000, 1000).assert_within_reservation(0.5));
        let payload = caught.unwrap_err();
        let text = payload.downcast_ref::<String>().unwrap();
        assert!(text.starts_with("heap peak 3000 bytes exceeds"), "{text}");
    }
}

//! Measuring one region of code, isolated from the rest of the process.
//!
//! [`measure`] runs a closure in a fresh scope on the calling thread, with
//! [`memledger_alloc::precise`] held so its peak is exact, and consumers
//! registered inside tied to that scope. Other threads (parallel tests, say)
//! allocate into their own scopes and do not disturb it. Work the closure
//! hands to other threads is not counted unless those threads enter the
//! measurement's scope ([`Measurement::scope`]).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use memledger_alloc::Scope;

use crate::ledger::ledger;

thread_local! {
    /// The scope new consumers default to on this thread while measuring.
    static MEASURING: Cell<Option<Scope>> = const { Cell::new(None) };
}

/// The scope consumers created on this thread default to, if a measurement runs.
pub(crate) fn measuring_scope() -> Option<Scope> {
    MEASURING.with(Cell::get)
}

/// What one measured region did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measurement {
    /// The scope the region ran in.
    pub scope: Scope,
    /// Highest live heap (requested bytes) during the region.
    pub peak_bytes: i64,
    /// Allocations made.
    pub allocations: u64,
    /// Bytes still live when it ended (allocated inside, not freed inside): leaks.
    pub live_at_end_bytes: i64,
    /// Highest reservation of the consumers registered inside.
    pub reserved_peak_bytes: u64,
    /// `peak_bytes - reserved_peak_bytes`: heap the reservations never covered.
    pub untracked_peak_bytes: i64,
}

impl Measurement {
    /// `Err` with a readable message when the heap peak exceeds the
    /// reservation peak by more than `tolerance` (a fraction: 0.1 = 10%).
    pub fn check_within_reservation(&self, tolerance: f64) -> Result<(), String> {
        let allowed = self.reserved_peak_bytes as f64 * (1.0 + tolerance);
        if self.peak_bytes as f64 <= allowed {
            return Ok(());
        }
        Err(format!(
            "heap peak {} bytes exceeds the reservation peak {} bytes by {} bytes ({:.1}x), more than the {:.0}% tolerance",
            self.peak_bytes,
            self.reserved_peak_bytes,
            self.untracked_peak_bytes,
            if self.reserved_peak_bytes == 0 {
                f64::INFINITY
            } else {
                self.peak_bytes as f64 / self.reserved_peak_bytes as f64
            },
            tolerance * 100.0
        ))
    }
}

/// Runs `f` in a fresh scope on this thread and measures it. Needs the
/// tracked allocator installed (otherwise every figure is 0).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Measurement) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let scope = Scope::new(&format!("memledger.measure#{}", NEXT.fetch_add(1, Relaxed)));
    let before = scope.stats();
    let previous = MEASURING.with(|m| m.replace(Some(scope)));
    let result = {
        let _precise = memledger_alloc::precise();
        scope.in_scope(f)
    };
    MEASURING.with(|m| m.set(previous));
    let after = scope.stats();
    let (_, reserved_peak) = ledger().reserved_in(scope);
    let peak = after.peak_requested - before.live_requested;
    (
        result,
        Measurement {
            scope,
            peak_bytes: peak,
            allocations: after.allocations - before.allocations,
            live_at_end_bytes: after.live_requested - before.live_requested,
            reserved_peak_bytes: reserved_peak,
            untracked_peak_bytes: peak - reserved_peak as i64,
        },
    )
}

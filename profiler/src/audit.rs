//! The audit: what the pool was told (the ledger's reservations) held
//! against what the code allocated (the tracked allocator's scopes and heap).
//!
//! ```text
//!   ledger():  reserved now/peak per consumer ──(consumer → scope)──┐
//!                                                                  ▼
//!   memledger_alloc::scopes(): live/peak per scope ──► per scope: untracked = live − reserved
//!   memledger_alloc::heap():   live/peak, process ───► process:   untracked = live − reserved
//! ```
//!
//! **untracked** is heap the pool does not know about; negative means the
//! consumers reserved more than their scopes hold. The figures are only as
//! good as the scopes: a consumer's allocations count against it only when
//! its code runs inside its scope (see [`memledger_alloc::Scope`]). Without
//! the tracked allocator installed, every live figure is 0.
//!
//! [`scope_audit`] and [`process_audit`] read the figures now, for a test or
//! a log line; the session builds the report's sections here.

use std::collections::HashMap;
use std::time::Instant as Clock;

use memledger_alloc::Scope;

use crate::internal::{internal_live, internal_scope};
use crate::ledger::ledger;
use crate::report::{
    AuditReport, ConsumerReport, ExternalReport, HeapReport, Instant, ScopeReport, ThreadReport,
};
use crate::sampler::Observed;

/// One scope's audit now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScopeAudit {
    /// The scope.
    pub scope: Scope,
    /// Heap its code holds now (requested bytes; counting mode: can be
    /// negative if it freed what other scopes allocated).
    pub live_requested: i64,
    /// The same in usable bytes (size classes).
    pub live_usable: i64,
    /// Highest `live_requested` so far, within the allocator's
    /// [`peak_error_bytes`](memledger_alloc::peak_error_bytes).
    pub peak_requested: i64,
    /// Reserved now by the consumers tied to it.
    pub reserved: u64,
    /// Highest `reserved` so far.
    pub reserved_peak: u64,
    /// `live_requested - reserved`.
    pub untracked: i64,
    /// Bytes outside the global allocator reported for it (not in the figures above).
    pub external: u64,
}

/// The audit of `scope` now.
pub fn scope_audit(scope: Scope) -> ScopeAudit {
    let stats = scope.stats();
    let (reserved, reserved_peak) = ledger().reserved_in(scope);
    let external = ledger()
        .external()
        .into_iter()
        .find(|e| e.scope == scope)
        .map_or(0, |e| e.bytes);
    ScopeAudit {
        scope,
        live_requested: stats.live_requested,
        live_usable: stats.live_usable,
        peak_requested: stats.peak_requested,
        reserved,
        reserved_peak,
        untracked: stats.live_requested - reserved as i64,
        external,
    }
}

/// The whole process's audit now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessAudit {
    /// Live heap (requested bytes), the profiler's own bytes excluded.
    pub live_requested: i64,
    /// Live heap (usable bytes), the profiler's own bytes excluded.
    pub live_usable: i64,
    /// Highest live heap (requested bytes) since start, the profiler's included.
    pub peak_requested: i64,
    /// Reserved now by every consumer.
    pub reserved: u64,
    /// Highest `reserved` since start.
    pub reserved_peak: u64,
    /// `live_requested - reserved`.
    pub untracked: i64,
    /// Live bytes of the profiler's own bookkeeping
    /// ([`INTERNAL_SCOPE`](crate::internal::INTERNAL_SCOPE)).
    pub internal_live: i64,
}

/// The process's audit now.
pub fn process_audit() -> ProcessAudit {
    let heap = memledger_alloc::heap();
    let own = internal_live();
    let l = ledger();
    let reserved = l.reserved();
    let live = heap.live_requested - own;
    ProcessAudit {
        live_requested: live,
        live_usable: heap.live_usable - own,
        peak_requested: heap.peak_requested,
        reserved,
        reserved_peak: l.reserved_peak(),
        untracked: live - reserved as i64,
        internal_live: own,
    }
}

/// The report's `heap` section: the process as the allocator saw it, with
/// the profiler's `own` live bytes taken out of the live figures.
pub(crate) fn heap_report(own: i64) -> HeapReport {
    let heap = memledger_alloc::heap();
    HeapReport {
        live_requested_bytes: heap.live_requested - own,
        live_usable_bytes: heap.live_usable - own,
        peak_requested_bytes: heap.peak_requested,
        peak_usable_bytes: heap.peak_usable,
        total_requested_bytes: heap.total_requested,
        total_usable_bytes: heap.total_usable,
        allocations: heap.allocations,
        deallocations: heap.deallocations,
        reallocations: heap.reallocations,
        peak_error_bytes: heap.peak_error_bytes,
        internal_live_bytes: own,
    }
}

/// The report's `threads` section.
pub(crate) fn thread_reports() -> Vec<ThreadReport> {
    memledger_alloc::threads()
        .into_iter()
        .map(|t| ThreadReport {
            tid: t.tid,
            name: t.name,
            exited: t.exited,
            live_requested_bytes: t.live_requested,
            peak_requested_bytes: t.peak_requested,
            total_requested_bytes: t.total_requested,
            allocations: t.allocations,
            deallocations: t.deallocations,
        })
        .collect()
}

/// The report's `scopes` section: every scope that allocated, freed,
/// reserved or reported external bytes, the internal one excluded.
///
/// A scope's untracked peak is the largest of: what the sampler's scope
/// walks saw (`observed`), its heap peak minus its reserved peak,
/// and its untracked value now. Each is a value untracked really reached or
/// exceeded, so the result is a lower bound of the true peak, exact when the
/// peak lasted across a scope walk.
pub(crate) fn scope_reports(observed: &Observed) -> Vec<ScopeReport> {
    let l = ledger();
    let reserved: HashMap<Scope, (u64, u64)> = l
        .reserved_by_scope()
        .into_iter()
        .map(|(scope, now, peak)| (scope, (now, peak)))
        .collect();
    let external: HashMap<Scope, u64> = l
        .external()
        .into_iter()
        .map(|e| (e.scope, e.bytes))
        .collect();
    let own = internal_scope();
    memledger_alloc::scopes()
        .into_iter()
        .filter(|s| s.scope != own)
        .filter_map(|s| {
            let (now, peak) = reserved.get(&s.scope).copied().unwrap_or((0, 0));
            let ext = external.get(&s.scope).copied().unwrap_or(0);
            let active = s.allocations + s.deallocations + now + peak + ext != 0;
            let untracked = s.live_requested - now as i64;
            let untracked_peak = [
                untracked,
                s.peak_requested - peak as i64,
                observed.untracked_peak(s.scope).unwrap_or(i64::MIN),
            ]
            .into_iter()
            .max()
            .unwrap_or(untracked);
            active.then(|| ScopeReport {
                name: s.name.to_string(),
                live_requested_bytes: s.live_requested,
                live_usable_bytes: s.live_usable,
                peak_requested_bytes: s.peak_requested,
                peak_usable_bytes: s.peak_usable,
                total_requested_bytes: s.total_requested,
                allocations: s.allocations,
                deallocations: s.deallocations,
                reserved_bytes: now,
                reserved_peak_bytes: peak,
                untracked_bytes: untracked,
                untracked_peak_bytes: untracked_peak,
                external_bytes: ext,
            })
        })
        .collect()
}

/// The report's `consumers` section, in registration order: live
/// consumers and the rows of finished ones.
pub(crate) fn consumer_reports() -> Vec<ConsumerReport> {
    ledger()
        .consumers()
        .into_iter()
        .map(|c| ConsumerReport {
            name: c.name,
            scope: c.scope.name().to_string(),
            can_spill: c.can_spill,
            reserved_bytes: c.reserved,
            reserved_peak_bytes: c.reserved_peak,
            refusals: c.refusals,
            spills: c.spills,
            registrations: c.registrations,
        })
        .collect()
}

/// The report's `external` section.
pub(crate) fn external_reports() -> Vec<ExternalReport> {
    ledger()
        .external()
        .into_iter()
        .map(|e| ExternalReport {
            scope: e.scope.name().to_string(),
            bytes: e.bytes,
            peak_bytes: e.peak_bytes,
        })
        .collect()
}

/// The report's `audit` section from what the sampler observed, corrected
/// with the ledger's exact reserved peak.
///
/// The ledger records the instant of the reserved peak as it happens; the
/// sampler may have missed it. When the ledger's peak is higher and fell
/// inside the session (which started at `session_start`), it replaces the
/// sampled instant: its time and heap are the ledger's, its RSS is the
/// nearest sample's (RSS is only read by the sampler).
pub(crate) fn audit_report(
    observed: &Observed,
    live_requested: i64,
    session_start: Clock,
    own: i64,
) -> AuditReport {
    let mut peaks = observed.peaks;
    let l = ledger();
    let reserved = l.reserved();
    let in_session = l
        .reserved_peak_since(session_start)
        .filter(|rp| rp.reserved > peaks.reserved.reserved_bytes);
    if let Some(rp) = in_session {
        let t_ms = rp.t_ms;
        let rss_bytes = observed
            .timeline
            .samples
            .iter()
            .min_by_key(|s| s.t_ms.abs_diff(t_ms))
            .and_then(|s| s.rss_bytes);
        peaks.reserved = Instant {
            t_ms,
            rss_bytes,
            heap_live_bytes: rp.heap_live - own,
            reserved_bytes: rp.reserved,
        };
    }
    AuditReport {
        reserved_bytes: reserved,
        reserved_peak_bytes: l.reserved_peak(),
        untracked_bytes: live_requested - reserved as i64,
        peaks,
        drift_peak: observed.drift.clone(),
        scopes_at_heap_peak: observed.scopes_at_heap_peak.clone(),
        window_start: None,
    }
}

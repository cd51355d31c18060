//! The sampler: a background thread recording the timeline and the
//! time-aligned peaks.
//!
//! Every interval it reads RSS (`/proc/self/statm`), the heap
//! ([`memledger_alloc::heap`]) and the ledger's reserved total, and keeps:
//!
//! - the timeline, at most [`MAX_SAMPLES`] samples: when full, neighbours
//!   are merged two by two keeping each field's maximum (extremes survive),
//!   and later samples are merged in groups of the new stride;
//! - at the RSS peak, the heap peak and the reserved peak, all three values;
//! - the drift peak (largest heap − reserved) and the consumer whose
//!   reservation changed last;
//! - every [`WALK_EVERY`] samples (fewer when walks are slow), a walk over
//!   every scope ([`walk_scopes`]):
//!   the largest scopes for the timeline and each scope's largest untracked
//!   value (live − reserved);
//! - at the heap peak, every scope's live and reserved bytes (a walk at the
//!   new peak, or, while the heap keeps climbing, at the last sample that
//!   rose by [`PEAK_WALK_STEP`] or more over the previous walk).
//!
//! Peaks between two samples are missed here; the ledger records the
//! reserved peak at the instant it happens and the allocator keeps the exact
//! heap peak, and reports give both.
//!
//! The thread runs inside the profiler's internal scope
//! ([`INTERNAL_SCOPE`](crate::internal::INTERNAL_SCOPE)); reports leave its
//! bytes out of the user's live heap and scopes.
//!
//! # Cost
//!
//! A sample is one `pread` of `statm`, one [`memledger_alloc::heap`] (a walk
//! over live threads), one atomic load and a short lock, without allocating;
//! a scope walk reads every scope's counters (no allocation per scope). The
//! wake-up itself is most of the cost: see the `sampler_cost` example.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as Clock};

use memledger_alloc::Scope;

use crate::internal::{internal_live, internal_scope};
use crate::ledger::ledger;
use crate::proc;
use crate::report::{AlignedPeaks, DriftPeak, Instant, Sample, ScopeAtPeak, Timeline};

/// The most samples a timeline keeps (about 200 KiB with their top scopes;
/// 40 s at the default 10 ms before the first downsampling).
pub const MAX_SAMPLES: usize = 4096;
/// Scopes listed per walked sample.
const TOP_SCOPES: usize = 3;
/// The sampler walks every scope every this many samples, or less often
/// when walks are slow (thousands of scopes): walks are spaced so that they
/// take at most 1/[`WALK_BUDGET`] of the sampler's wall time. Samples
/// between walks carry no top scopes.
pub const WALK_EVERY: u64 = 10;
/// See [`WALK_EVERY`]: walks take at most 1/500 of the time (0.2% of a core).
pub const WALK_BUDGET: u128 = 500;
/// While the heap keeps setting new peaks, the scopes at the heap peak are
/// walked again only once the heap rose by this fraction (1/64) over the
/// last walk, so a climbing heap does not cost a walk per sample.
pub const PEAK_WALK_STEP: i64 = 64;

/// One scope in a walk: what its code holds and what its consumers reserve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScopeNow {
    /// The scope.
    pub scope: Scope,
    /// Its name.
    pub name: &'static str,
    /// Live heap of its code (requested bytes).
    pub live_requested: i64,
    /// Reserved now by its consumers.
    pub reserved: u64,
}

impl ScopeNow {
    /// `live_requested - reserved`.
    pub fn untracked(&self) -> i64 {
        self.live_requested - self.reserved as i64
    }
}

/// What the sampler has seen so far.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// The bounded timeline.
    pub timeline: Timeline,
    /// RSS, heap and reserved at each of their sampled peaks.
    pub peaks: AlignedPeaks,
    /// The largest sampled heap − reserved.
    pub drift: DriftPeak,
    /// Every scope with live or reserved bytes at the sampled heap peak
    /// (see the module docs for when it is taken).
    pub scopes_at_heap_peak: Vec<ScopeAtPeak>,
    /// Heap live at the walk behind `scopes_at_heap_peak`.
    peak_walk_heap: Option<i64>,
    /// Owner mode with stacks sampled: each stack record's live bytes at
    /// that walk.
    pub stacks_at_heap_peak: Vec<(usize, i64)>,
    /// Per scope id: the largest `live_requested - reserved` seen on a walk
    /// (`i64::MIN`: never seen).
    untracked_peaks: Vec<i64>,
    /// Samples merged into one timeline entry.
    stride: usize,
    /// Samples waiting to be merged into the next entry.
    pending: Option<(Sample, usize)>,
    drift_seen: bool,
    /// Samples recorded so far.
    recorded: u64,
}

/// Two samples as one: the first one's time, each field's maximum, the top
/// scopes of the one with more heap.
fn merge(a: Sample, b: Sample) -> Sample {
    let top_scopes = if b.heap_live_bytes > a.heap_live_bytes {
        b.top_scopes
    } else {
        a.top_scopes
    };
    Sample {
        t_ms: a.t_ms,
        rss_bytes: a.rss_bytes.max(b.rss_bytes),
        heap_live_bytes: a.heap_live_bytes.max(b.heap_live_bytes),
        reserved_bytes: a.reserved_bytes.max(b.reserved_bytes),
        untracked_bytes: a.untracked_bytes.max(b.untracked_bytes),
        top_scopes,
    }
}

impl Observed {
    /// Adds one sample: peaks, drift and the bounded timeline (at most
    /// `max_samples` entries, at least 2). `walk`, if the sample came with
    /// one, raises the per-scope untracked peaks; at a new heap peak without
    /// one, this walks the scopes itself (see [`PEAK_WALK_STEP`]).
    pub fn record(&mut self, sample: Sample, walk: Option<&[ScopeNow]>, max_samples: usize) {
        self.recorded += 1;
        if let Some(walk) = walk {
            self.observe_scopes(walk);
        }
        let now = Instant {
            t_ms: sample.t_ms,
            rss_bytes: sample.rss_bytes,
            heap_live_bytes: sample.heap_live_bytes,
            reserved_bytes: sample.reserved_bytes,
        };
        if now.rss_bytes > self.peaks.rss.rss_bytes {
            self.peaks.rss = now;
        }
        if now.heap_live_bytes > self.peaks.heap.heap_live_bytes {
            self.peaks.heap = now;
            self.walk_at_heap_peak(now.heap_live_bytes, walk);
        }
        if now.reserved_bytes > self.peaks.reserved.reserved_bytes {
            self.peaks.reserved = now;
        }
        if !self.drift_seen || sample.untracked_bytes > self.drift.untracked_bytes {
            self.drift_seen = true;
            self.drift = DriftPeak {
                untracked_bytes: sample.untracked_bytes,
                t_ms: sample.t_ms,
                heap_live_bytes: sample.heap_live_bytes,
                reserved_bytes: sample.reserved_bytes,
                consumer: ledger().last_changed(),
            };
        }
        self.push(sample, max_samples.max(2));
    }

    fn walk_at_heap_peak(&mut self, heap: i64, walk: Option<&[ScopeNow]>) {
        let owned;
        let walk = match walk {
            Some(walk) => walk,
            None => {
                let due = self
                    .peak_walk_heap
                    .is_none_or(|last| heap - last >= (last / PEAK_WALK_STEP).max(1));
                if !due {
                    return;
                }
                owned = walk_scopes();
                self.observe_scopes(&owned);
                &owned
            }
        };
        self.peak_walk_heap = Some(heap);
        if memledger_alloc::stacks::sample_bytes().is_some()
            && memledger_alloc::attribution() == Some(memledger_alloc::Attribution::Owner)
        {
            self.stacks_at_heap_peak = crate::stacks::live_now();
        }
        self.scopes_at_heap_peak = walk
            .iter()
            .map(|s| ScopeAtPeak {
                scope: s.name.to_string(),
                live_requested_bytes: s.live_requested,
                reserved_bytes: s.reserved,
            })
            .collect();
    }

    fn push(&mut self, sample: Sample, max_samples: usize) {
        let stride = self.stride.max(1);
        let (merged, count) = match self.pending.take() {
            Some((acc, n)) => (merge(acc, sample), n + 1),
            None => (sample, 1),
        };
        if count < stride {
            self.pending = Some((merged, count));
            return;
        }
        let samples = &mut self.timeline.samples;
        samples.push(merged);
        if samples.len() >= max_samples {
            let mut halved = Vec::with_capacity(max_samples);
            let mut it = std::mem::take(samples).into_iter();
            while let Some(a) = it.next() {
                halved.push(match it.next() {
                    Some(b) => merge(a, b),
                    None => a,
                });
            }
            *samples = halved;
            self.stride = stride * 2;
            self.timeline.downsampled = true;
        }
    }

    /// Raises each scope's untracked peak with a walk's figures.
    pub fn observe_scopes(&mut self, walk: &[ScopeNow]) {
        for s in walk {
            let i = s.scope.id() as usize;
            if i >= self.untracked_peaks.len() {
                self.untracked_peaks.resize(i + 1, i64::MIN);
            }
            self.untracked_peaks[i] = self.untracked_peaks[i].max(s.untracked());
        }
    }

    /// The largest `live_requested - reserved` of `scope` seen on a walk.
    pub fn untracked_peak(&self, scope: Scope) -> Option<i64> {
        self.untracked_peaks
            .get(scope.id() as usize)
            .copied()
            .filter(|&v| v != i64::MIN)
    }

    /// How many samples were recorded (before any merging).
    pub fn recorded(&self) -> u64 {
        self.recorded
    }

    /// Flushes a partly merged entry into the timeline.
    pub fn close(&mut self) {
        if let Some((acc, _)) = self.pending.take() {
            self.timeline.samples.push(acc);
        }
    }
}

/// Every scope with live or reserved bytes now, the internal one excluded,
/// by scope id. Allocates one vector for all scopes (two, with the
/// allocator's own list), nothing per scope.
pub fn walk_scopes() -> Vec<ScopeNow> {
    let reserved: HashMap<Scope, u64> = ledger()
        .reserved_by_scope()
        .into_iter()
        .filter(|&(_, now, _)| now != 0)
        .map(|(scope, now, _)| (scope, now))
        .collect();
    let own = internal_scope();
    memledger_alloc::scopes()
        .into_iter()
        .filter(|s| s.scope != own)
        .filter_map(|s| {
            let r = reserved.get(&s.scope).copied().unwrap_or(0);
            (s.live_requested != 0 || r != 0).then_some(ScopeNow {
                scope: s.scope,
                name: s.name,
                live_requested: s.live_requested,
                reserved: r,
            })
        })
        .collect()
}

/// The [`TOP_SCOPES`] largest scopes of a walk by live bytes, largest first.
fn top_scopes(walk: &[ScopeNow]) -> Vec<(String, i64)> {
    let mut top: Vec<&ScopeNow> = Vec::with_capacity(TOP_SCOPES + 1);
    for s in walk.iter().filter(|s| s.live_requested > 0) {
        let at = top.partition_point(|t| t.live_requested >= s.live_requested);
        if at < TOP_SCOPES {
            top.insert(at, s);
            top.truncate(TOP_SCOPES);
        }
    }
    top.into_iter()
        .map(|s| (s.name.to_string(), s.live_requested))
        .collect()
}

/// Takes one sample now, `t_ms` after the session started; `walk` (from
/// [`walk_scopes`]) gives its top scopes.
pub fn sample_now(t_ms: u64, walk: Option<&[ScopeNow]>) -> Sample {
    sample_with(t_ms, walk, proc::rss_bytes(), internal_live())
}

/// A sample from an RSS reading and the profiler's own live bytes (`own`,
/// left out of the heap).
fn sample_with(t_ms: u64, walk: Option<&[ScopeNow]>, rss_bytes: Option<u64>, own: i64) -> Sample {
    let heap = memledger_alloc::heap().live_requested - own;
    let reserved = ledger().reserved();
    Sample {
        t_ms,
        rss_bytes,
        heap_live_bytes: heap,
        reserved_bytes: reserved,
        untracked_bytes: heap - reserved as i64,
        top_scopes: walk.map(top_scopes).unwrap_or_default(),
    }
}

/// A running sampler thread; dropping it stops the thread.
pub struct Sampler {
    observed: Arc<Mutex<Observed>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    start: Clock,
    max_samples: usize,
}

fn lock(m: &Mutex<Observed>) -> MutexGuard<'_, Observed> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Sampler {
    /// Starts sampling every `interval` (at least 1 ms), keeping at most
    /// [`MAX_SAMPLES`] timeline entries. If the thread cannot be spawned,
    /// nothing is sampled until [`stop`](Self::stop) takes one last sample.
    pub fn start(interval: Duration) -> Sampler {
        Sampler::start_bounded(interval, MAX_SAMPLES)
    }

    /// [`start`](Self::start) with a timeline of at most `max_samples`
    /// entries (at least 2).
    pub fn start_bounded(interval: Duration, max_samples: usize) -> Sampler {
        let interval = interval.max(Duration::from_millis(1));
        let max_samples = max_samples.max(2);
        let observed = Arc::new(Mutex::new(Observed {
            timeline: Timeline {
                interval_ms: interval.as_millis() as u64,
                ..Timeline::default()
            },
            ..Observed::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let start = Clock::now();
        let handle = {
            let observed = Arc::clone(&observed);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("memledger-sampler".into())
                .spawn(move || {
                    let _scope = internal_scope().enter();
                    let mut statm = proc::Statm::open();
                    let mut own = 0;
                    let mut n: u64 = 0;
                    let mut next_walk: u64 = 0;
                    while !stop.load(Relaxed) {
                        let walk_due = n >= next_walk;
                        if walk_due {
                            // The profiler's own bytes change slowly: read them
                            // per walk, before the walk allocates its list.
                            own = internal_live();
                        }
                        let t_ms = start.elapsed().as_millis() as u64;
                        let mut sample = sample_with(t_ms, None, statm.rss_bytes(), own);
                        let walk = walk_due.then(|| {
                            let began = Clock::now();
                            let walk = walk_scopes();
                            let gap = began.elapsed().as_nanos() * WALK_BUDGET
                                / interval.as_nanos().max(1);
                            next_walk = n + (gap as u64).max(WALK_EVERY);
                            walk
                        });
                        n += 1;
                        if let Some(walk) = &walk {
                            sample.top_scopes = top_scopes(walk);
                        }
                        lock(&observed).record(sample, walk.as_deref(), max_samples);
                        std::thread::park_timeout(interval);
                    }
                })
                .ok()
        };
        Sampler {
            observed,
            stop,
            handle,
            start,
            max_samples,
        }
    }

    /// A sampler without a thread: it samples only when
    /// [`record_now`](Self::record_now) is called (and once more when it
    /// stops), keeping at most `max_samples` timeline entries (at least 2).
    /// For tests and for programs that sample at points of their choosing;
    /// the timeline's interval is 0.
    pub fn manual(max_samples: usize) -> Sampler {
        Sampler {
            observed: Arc::new(Mutex::new(Observed::default())),
            stop: Arc::new(AtomicBool::new(true)),
            handle: None,
            start: Clock::now(),
            max_samples: max_samples.max(2),
        }
    }

    /// Takes one sample now, with a walk over every scope, and records it.
    pub fn record_now(&self) {
        let _scope = internal_scope().enter();
        let mut sample = sample_now(self.elapsed_ms(), None);
        let walk = walk_scopes();
        sample.top_scopes = top_scopes(&walk);
        lock(&self.observed).record(sample, Some(&walk), self.max_samples);
    }

    /// How many samples were recorded so far (by the thread and by
    /// [`record_now`](Self::record_now)).
    pub fn recorded(&self) -> u64 {
        lock(&self.observed).recorded()
    }

    /// When the sampler started: the origin of its samples' `t_ms`.
    pub fn started_at(&self) -> Clock {
        self.start
    }

    /// Milliseconds since the sampler started.
    pub fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// What was observed so far plus one sample now, without stopping.
    pub fn snapshot(&self) -> Observed {
        let _scope = internal_scope().enter();
        let mut observed = lock(&self.observed).clone();
        self.last_sample(&mut observed);
        observed
    }

    /// Stops the thread, takes a last sample and returns everything observed.
    pub fn stop(mut self) -> Observed {
        self.halt();
        let _scope = internal_scope().enter();
        // The thread is gone: take what it gathered instead of copying it.
        let mut observed = std::mem::take(&mut *lock(&self.observed));
        self.last_sample(&mut observed);
        observed
    }

    fn last_sample(&self, observed: &mut Observed) {
        let mut last = sample_now(self.elapsed_ms(), None);
        let walk = walk_scopes();
        last.top_scopes = top_scopes(&walk);
        observed.record(last, Some(&walk), self.max_samples);
        observed.close();
    }

    fn halt(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: u64, rss: u64, heap: i64, reserved: u64) -> Sample {
        Sample {
            t_ms: t,
            rss_bytes: Some(rss),
            heap_live_bytes: heap,
            reserved_bytes: reserved,
            untracked_bytes: heap - reserved as i64,
            top_scopes: Vec::new(),
        }
    }

    #[test]
    fn time_aligned_peaks_on_a_scripted_sequence() {
        let mut o = Observed::default();
        // t: rss, heap, reserved. RSS peaks at t=30, heap at t=20, reserved at t=40.
        for s in [
            sample(10, 100, 50, 10),
            sample(20, 150, 120, 30),
            sample(30, 200, 90, 60),
            sample(40, 180, 70, 80),
            sample(50, 120, 40, 20),
        ] {
            o.record(s, None, 100);
        }
        assert_eq!(
            (
                o.peaks.rss.t_ms,
                o.peaks.rss.heap_live_bytes,
                o.peaks.rss.reserved_bytes
            ),
            (30, 90, 60)
        );
        assert_eq!(
            (
                o.peaks.heap.t_ms,
                o.peaks.heap.rss_bytes,
                o.peaks.heap.reserved_bytes
            ),
            (20, Some(150), 30)
        );
        assert_eq!(
            (
                o.peaks.reserved.t_ms,
                o.peaks.reserved.rss_bytes,
                o.peaks.reserved.heap_live_bytes
            ),
            (40, Some(180), 70)
        );
        assert_eq!((o.drift.untracked_bytes, o.drift.t_ms), (90, 20));
    }

    #[test]
    fn the_timeline_stays_bounded_and_keeps_extremes() {
        let mut o = Observed::default();
        for t in 0..100_000u64 {
            let heap = if t == 77_777 {
                1 << 40
            } else {
                (t % 1000) as i64
            };
            o.record(sample(t, 10, heap, 0), None, 256);
        }
        o.close();
        assert!(
            o.timeline.samples.len() <= 256,
            "{} samples",
            o.timeline.samples.len()
        );
        assert!(o.timeline.samples.len() >= 64);
        assert!(o.timeline.downsampled);
        let max = o.timeline.samples.iter().map(|s| s.heap_live_bytes).max();
        assert_eq!(max, Some(1 << 40), "the extreme survived downsampling");
        let times: Vec<u64> = o.timeline.samples.iter().map(|s| s.t_ms).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "time stays ordered");
    }

    fn at(name: &'static str, live: i64, reserved: u64) -> ScopeNow {
        ScopeNow {
            scope: Scope::new(name),
            name,
            live_requested: live,
            reserved,
        }
    }

    #[test]
    fn scope_walks_keep_each_scopes_largest_untracked_value() {
        let mut o = Observed::default();
        o.observe_scopes(&[at("walk-sort", 100, 40), at("walk-join", 10, 50)]);
        o.observe_scopes(&[at("walk-sort", 300, 280), at("walk-join", 90, 20)]);
        o.observe_scopes(&[at("walk-sort", 0, 0)]);
        assert_eq!(o.untracked_peak(Scope::new("walk-sort")), Some(60));
        assert_eq!(o.untracked_peak(Scope::new("walk-join")), Some(70));
        assert_eq!(o.untracked_peak(Scope::new("walk-never")), None);
        let top = top_scopes(&[
            at("walk-a", 5, 0),
            at("walk-b", 50, 0),
            at("walk-c", -3, 0),
            at("walk-d", 7, 0),
            at("walk-e", 6, 0),
        ]);
        assert_eq!(
            top,
            vec![
                ("walk-b".into(), 50),
                ("walk-d".into(), 7),
                ("walk-e".into(), 6)
            ]
        );
    }

    #[test]
    fn a_climbing_heap_is_walked_again_only_after_rising_by_the_step() {
        let mut o = Observed::default();
        let walk = [at("climb", 6400, 0)];
        o.record(sample(0, 0, 6400, 0), Some(&walk), 100);
        assert_eq!(o.scopes_at_heap_peak[0].live_requested_bytes, 6400);
        // +99 is below 6400/64 = 100: the walk at 6400 stands.
        o.record(sample(1, 0, 6499, 0), None, 100);
        assert_eq!(o.peaks.heap.heap_live_bytes, 6499);
        assert_eq!(o.peak_walk_heap, Some(6400));
        // A walk that comes with the sample is always taken.
        let walk = [at("climb", 6500, 0)];
        o.record(sample(2, 0, 6500, 0), Some(&walk), 100);
        assert_eq!(o.scopes_at_heap_peak[0].live_requested_bytes, 6500);
        assert_eq!(o.peak_walk_heap, Some(6500));
    }
}

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
//! - the drift peak (largest heap − reserved) and the consumer that changed last;
//! - at the heap peak, every scope's live and reserved bytes.
//!
//! The thread runs inside the scope [`SAMPLER_SCOPE`], which reports exclude.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as Clock};

use memledger_alloc::Scope;

use crate::ledger::ledger;
use crate::proc;
use crate::report::{AlignedPeaks, DriftPeak, Instant, Sample, ScopeAtPeak, Timeline};

/// The most samples a timeline keeps.
pub const MAX_SAMPLES: usize = 4096;
/// The scope the sampler's own allocations are charged to.
pub const SAMPLER_SCOPE: &str = "memledger.sampler";
/// Scopes listed per sample.
const TOP_SCOPES: usize = 3;
/// The top scopes are listed every this many samples (they cost a walk over
/// every scope); the other samples carry none.
const TOP_SCOPES_EVERY: u64 = 10;

/// What the sampler has seen so far.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    pub timeline: Timeline,
    pub peaks: AlignedPeaks,
    pub drift: DriftPeak,
    pub scopes_at_heap_peak: Vec<ScopeAtPeak>,
    /// Samples merged into one timeline entry.
    stride: usize,
    /// Samples waiting to be merged into the next entry.
    pending: Option<(Sample, usize)>,
    drift_seen: bool,
}

fn merge(a: &Sample, b: &Sample) -> Sample {
    let mut top = a.top_scopes.clone();
    if b.heap_live_bytes > a.heap_live_bytes {
        top = b.top_scopes.clone();
    }
    Sample {
        t_ms: a.t_ms,
        rss_bytes: a.rss_bytes.max(b.rss_bytes),
        heap_live_bytes: a.heap_live_bytes.max(b.heap_live_bytes),
        reserved_bytes: a.reserved_bytes.max(b.reserved_bytes),
        untracked_bytes: a.untracked_bytes.max(b.untracked_bytes),
        top_scopes: top,
    }
}

impl Observed {
    /// Adds one sample: peaks, drift and the bounded timeline.
    pub fn record(&mut self, sample: Sample, max_samples: usize) {
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
            self.scopes_at_heap_peak = scopes_now();
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

    fn push(&mut self, sample: Sample, max_samples: usize) {
        let stride = self.stride.max(1);
        let (merged, count) = match self.pending.take() {
            Some((acc, n)) => (merge(&acc, &sample), n + 1),
            None => (sample, 1),
        };
        if count < stride {
            self.pending = Some((merged, count));
            return;
        }
        let samples = &mut self.timeline.samples;
        samples.push(merged);
        if samples.len() >= max_samples {
            let halved: Vec<Sample> = samples
                .chunks(2)
                .map(|pair| match pair {
                    [a, b] => merge(a, b),
                    [a] => a.clone(),
                    _ => Sample::default(),
                })
                .collect();
            *samples = halved;
            self.stride = stride * 2;
            self.timeline.downsampled = true;
        }
    }

    /// Flushes a partly merged entry into the timeline.
    pub fn close(&mut self) {
        if let Some((acc, _)) = self.pending.take() {
            self.timeline.samples.push(acc);
        }
    }
}

/// Every scope with live or reserved bytes now (the sampler's own excluded).
pub fn scopes_now() -> Vec<ScopeAtPeak> {
    let reserved = ledger().reserved_by_scope();
    memledger_alloc::scopes()
        .into_iter()
        .filter(|s| s.name != SAMPLER_SCOPE)
        .filter_map(|s| {
            let r = reserved
                .iter()
                .find(|(scope, _, _)| *scope == s.scope)
                .map_or(0, |(_, now, _)| *now);
            (s.live_requested != 0 || r != 0).then(|| ScopeAtPeak {
                scope: s.name.to_string(),
                live_requested_bytes: s.live_requested,
                reserved_bytes: r,
            })
        })
        .collect()
}

/// Takes one sample now, `t_ms` after the session started.
pub fn sample_now(t_ms: u64, with_top_scopes: bool) -> Sample {
    sample_with(t_ms, with_top_scopes, proc::rss_bytes())
}

fn sample_with(t_ms: u64, with_top_scopes: bool, rss_bytes: u64) -> Sample {
    let heap = memledger_alloc::heap().live_requested - sampler_live();
    let reserved = ledger().reserved();
    let top_scopes = if with_top_scopes {
        let mut all: Vec<(String, i64)> = memledger_alloc::scopes()
            .into_iter()
            .filter(|s| s.name != SAMPLER_SCOPE && s.live_requested > 0)
            .map(|s| (s.name.to_string(), s.live_requested))
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.1));
        all.truncate(TOP_SCOPES);
        all
    } else {
        Vec::new()
    };
    Sample {
        t_ms,
        rss_bytes,
        heap_live_bytes: heap,
        reserved_bytes: reserved,
        untracked_bytes: heap - reserved as i64,
        top_scopes,
    }
}

/// Live bytes the sampler itself holds (excluded from the user's heap).
pub fn sampler_live() -> i64 {
    Scope::new(SAMPLER_SCOPE).stats().live_requested.max(0)
}

/// A running sampler thread.
pub struct Sampler {
    observed: Arc<Mutex<Observed>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    start: Clock,
}

fn lock(m: &Mutex<Observed>) -> MutexGuard<'_, Observed> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Sampler {
    /// Starts sampling every `interval` (at least 1 ms).
    pub fn start(interval: Duration) -> Sampler {
        let interval = interval.max(Duration::from_millis(1));
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
                    let _scope = Scope::new(SAMPLER_SCOPE).enter();
                    let mut statm = proc::Statm::open();
                    let mut n: u64 = 0;
                    while !stop.load(Relaxed) {
                        let top = n % TOP_SCOPES_EVERY == 0;
                        n += 1;
                        let sample =
                            sample_with(start.elapsed().as_millis() as u64, top, statm.rss_bytes());
                        lock(&observed).record(sample, MAX_SAMPLES);
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
        }
    }

    /// Milliseconds since the sampler started.
    pub fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Stops the thread, takes a last sample and returns everything observed.
    pub fn stop(mut self) -> Observed {
        self.halt();
        let last = {
            let _scope = Scope::new(SAMPLER_SCOPE).enter();
            sample_now(self.elapsed_ms(), true)
        };
        let mut observed = lock(&self.observed).clone();
        observed.record(last, MAX_SAMPLES);
        observed.close();
        observed
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
            rss_bytes: rss,
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
            o.record(s, 100);
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
            (20, 150, 30)
        );
        assert_eq!(
            (
                o.peaks.reserved.t_ms,
                o.peaks.reserved.rss_bytes,
                o.peaks.reserved.heap_live_bytes
            ),
            (40, 180, 70)
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
            o.record(sample(t, 10, heap, 0), 256);
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
}

//! The audit, the sampler, the report and the session, with the tracked
//! allocator installed. The ledger is process-wide, so tests run one at a time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use memledger_alloc::{MiMalloc, Scope, Tracked};
use memledger_profiler::report::{REPORT_SCHEMA, Report, ReportError};
use memledger_profiler::sampler::Sampler;
use memledger_profiler::{
    MemoryConsumer, MemoryPool, PoolKind, Session, UnboundedPool, report_external, scope_audit,
};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const MIB: i64 = 1 << 20;

/// Waits until `sampler` has recorded `n` samples; a bounded wait, so a
/// sampler that stopped fails the test instead of hanging it.
fn wait_for_samples(sampler: &Sampler, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sampler.recorded() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "the sampler thread recorded {} of {n} samples",
            sampler.recorded()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_consumer_reserving_1_mib_while_allocating_3_mib_shows_2_mib_untracked() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let session = Session::manual(Some(path.clone()), None);
    let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedPool::new());
    let mut r = MemoryConsumer::new("ToyOperator[0]").register(&pool);
    r.try_grow(MIB as usize).unwrap();
    let data = Scope::new("ToyOperator[0]").in_scope(|| vec![7u8; 3 * MIB as usize]);
    session.record_sample();
    let report = session.finish().unwrap();
    let scope = report
        .scopes
        .iter()
        .find(|s| s.name == "ToyOperator[0]")
        .unwrap();
    assert_eq!(scope.live_requested_bytes, 3 * MIB);
    assert_eq!(scope.reserved_bytes, MIB as u64);
    assert_eq!(scope.untracked_bytes, 2 * MIB);
    assert_eq!(scope.untracked_peak_bytes, 2 * MIB);
    let at_peak = report
        .audit
        .scopes_at_heap_peak
        .iter()
        .find(|s| s.scope == "ToyOperator[0]")
        .unwrap();
    assert_eq!(
        (at_peak.live_requested_bytes, at_peak.reserved_bytes),
        (3 * MIB, MIB as u64)
    );
    let consumer = report
        .consumers
        .iter()
        .find(|c| c.name == "ToyOperator[0]")
        .unwrap();
    assert_eq!(
        (consumer.scope.as_str(), consumer.reserved_peak_bytes),
        ("ToyOperator[0]", MIB as u64)
    );
    // The profiler's own bookkeeping (ledger rows, the timeline) is listed
    // apart, never as one of the user's scopes.
    assert!(report.heap.internal_live_bytes > 0, "{:?}", report.heap);
    assert!(
        report
            .scopes
            .iter()
            .all(|s| s.name != memledger_profiler::internal::INTERNAL_SCOPE)
    );
    assert!(
        report
            .audit
            .scopes_at_heap_peak
            .iter()
            .all(|s| s.scope != memledger_profiler::internal::INTERNAL_SCOPE)
    );
    // The written file is the same report.
    let written = Report::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written, report);
    drop((data, r));
}

#[test]
fn time_aligned_peaks_come_from_real_samples() {
    let _s = serial();
    // Samples taken exactly where the script says, by a sampler without a thread.
    let session = Session::manual(None, None);
    let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedPool::new());
    let mut r = MemoryConsumer::new("Aligned[0]").register(&pool);
    // Heap peak first (40 MiB, 1 MiB reserved), reserved peak later (8 MiB reserved, little heap).
    r.try_grow(MIB as usize).unwrap();
    let big = vec![1u8; 40 * MIB as usize];
    session.record_sample();
    drop(big);
    r.try_grow(7 * MIB as usize).unwrap();
    session.record_sample();
    let report = session.finish().unwrap();
    let samples = &report.timeline.samples;
    assert_eq!(samples.len(), 3, "two recorded, one when it finished");
    assert_eq!(
        (samples[0].reserved_bytes, samples[1].reserved_bytes),
        (MIB as u64, 8 * MIB as u64)
    );
    let p = report.audit.peaks;
    assert!(
        p.heap.heap_live_bytes >= 40 * MIB,
        "heap peak {}",
        p.heap.heap_live_bytes
    );
    assert_eq!(
        p.heap.reserved_bytes, MIB as u64,
        "reserved at the heap peak"
    );
    assert_eq!(p.reserved.reserved_bytes, 8 * MIB as u64);
    assert!(
        p.reserved.heap_live_bytes < 40 * MIB,
        "heap at the reserved peak"
    );
    assert_eq!(p.heap.t_ms, samples[0].t_ms);
    assert!(p.heap.t_ms <= p.reserved.t_ms);
    assert!(report.audit.drift_peak.untracked_bytes >= 39 * MIB);
    assert_eq!(
        report.audit.drift_peak.consumer.as_deref(),
        Some("Aligned[0]")
    );
}

#[test]
fn a_session_dropped_early_still_writes_its_report() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("early.json");
    fn work(path: std::path::PathBuf) -> Result<(), String> {
        let mut session = Session::new(Some(path), Some(1 << 30), Duration::from_millis(5));
        session.set_label("early-return");
        session.set_error("pool said no");
        Err("bailed out".into())
    }
    assert!(work(path.clone()).is_err());
    let report = Report::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(report.label.as_deref(), Some("early-return"));
    assert_eq!(report.error.as_deref(), Some("pool said no"));
    assert_eq!(report.memory_limit_bytes, Some(1 << 30));
    assert_eq!(report.schema, REPORT_SCHEMA);
    assert!(report.process.peak_rss_bytes > Some(0) && report.heap.allocations > 0);
}

#[test]
fn reports_round_trip_and_unknown_majors_are_refused() {
    let mut report = Report::new();
    report.label = Some("q1".into());
    report.heap.peak_requested_bytes = 123;
    let back = Report::from_json(&report.to_json()).unwrap();
    assert_eq!(back, report);
    // Figures nobody measured (no `/proc`) are null, and read back as such.
    let json = report.to_json();
    assert!(json.contains("\"peak_rss_bytes\": null"), "{json}");
    assert_eq!(back.process.peak_rss_bytes, None);
    let measured = json.replace("\"peak_rss_bytes\": null", "\"peak_rss_bytes\": 4096");
    let measured = Report::from_json(&measured).unwrap();
    assert_eq!(measured.process.peak_rss_bytes, Some(4096));
    let future = report
        .to_json()
        .replace(REPORT_SCHEMA, "memledger.report/2");
    match Report::from_json(&future) {
        Err(e @ ReportError::UnknownSchema(_)) => {
            assert_eq!(
                e.to_string(),
                "unsupported report schema `memledger.report/2`: this memledger reads memledger.report/1"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(
        Report::from_json("{"),
        Err(ReportError::Malformed(_))
    ));
    assert!(
        Report::from_json(
            &report
                .to_json()
                .replace(REPORT_SCHEMA, "memledger.report/1.3")
        )
        .is_ok()
    );
}

#[test]
fn the_sampler_thread_keeps_its_timeline_within_the_bound_on_a_long_run() {
    let _s = serial();
    // 1 ms samples into at most 16 entries; the test waits for sample
    // counts, not for time: 400 samples are 25 times the bound.
    let sampler = Sampler::start_bounded(Duration::from_millis(1), 16);
    wait_for_samples(&sampler, 200);
    let before = sampler.recorded();
    let spike = vec![1u8; 32 * MIB as usize];
    // The sample under way may have read the heap before the spike; the
    // next one starts after it.
    wait_for_samples(&sampler, sampler.recorded() + 2);
    drop(spike);
    // However long this thread took (a loaded machine may stall it), the
    // spike spans at most a sixteenth of the samples: at most one merged
    // entry's worth, so at most three entries.
    let lasted = sampler.recorded() + 1 - before;
    wait_for_samples(&sampler, 400.max(sampler.recorded() + 16 * lasted));
    let observed = sampler.stop();
    assert!(observed.recorded() > 400, "{}", observed.recorded());
    let samples = &observed.timeline.samples;
    assert!(samples.len() <= 16, "{} entries", samples.len());
    assert!(samples.len() >= 8, "{} entries", samples.len());
    assert!(observed.timeline.downsampled);
    let highest = samples.iter().map(|s| s.heap_live_bytes).max().unwrap();
    assert!(highest >= 32 * MIB, "the spike survived merging: {highest}");
    let spikes = samples
        .iter()
        .filter(|s| s.heap_live_bytes >= 32 * MIB)
        .count();
    assert!(spikes < samples.len() / 2, "the spike is not everywhere");
    let times: Vec<u64> = samples.iter().map(|s| s.t_ms).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
}

#[test]
fn a_scope_untracked_peak_is_seen_even_when_its_peaks_coincide() {
    let _s = serial();
    let session = Session::manual(None, None);
    let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedPool::new());
    let scope = Scope::new("LateReserver[0]");
    let mut r = MemoryConsumer::new("LateReserver[0]").register(&pool);
    // 8 MiB allocated with 1 MiB reserved at one sample, then reserved in
    // full: heap peak − reserved peak is 0, but 7 MiB went untracked.
    r.grow(MIB as usize);
    let data = scope.in_scope(|| vec![3u8; 8 * MIB as usize]);
    session.record_sample();
    r.grow(7 * MIB as usize);
    session.record_sample();
    let mid = session.report();
    let report = session.finish().unwrap();
    for rep in [&mid, &report] {
        let s = rep
            .scopes
            .iter()
            .find(|s| s.name == "LateReserver[0]")
            .unwrap();
        assert_eq!(s.peak_requested_bytes - s.reserved_peak_bytes as i64, 0);
        assert_eq!(s.untracked_peak_bytes, 7 * MIB);
        assert_eq!(s.untracked_bytes, 0);
    }
    assert_eq!(
        mid.timeline.samples.len(),
        3,
        "a mid-run report carries the timeline and one sample now"
    );
    assert!(mid.audit.peaks.heap.heap_live_bytes >= 8 * MIB);
    let now = scope_audit(scope);
    assert_eq!(
        (now.live_requested, now.reserved, now.untracked),
        (8 * MIB, 8 * MIB as u64, 0)
    );
    drop((data, r));
}

#[test]
fn the_ledger_catches_a_reserved_peak_between_two_samples() {
    let _s = serial();
    // One sample before and one after: the spike falls between.
    let session = Session::manual(None, None);
    session.record_sample();
    let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedPool::new());
    let mut r = MemoryConsumer::new("Spike[0]").register(&pool);
    r.grow(1 << 40);
    r.free();
    session.record_sample();
    let report = session.finish().unwrap();
    let samples = &report.timeline.samples;
    assert!(samples.iter().all(|s| s.reserved_bytes < 1 << 40));
    let at = report.audit.peaks.reserved;
    assert_eq!(at.reserved_bytes, 1 << 40);
    assert!(
        samples[0].t_ms <= at.t_ms && at.t_ms <= samples[1].t_ms,
        "{at:?} between {samples:?}"
    );
    assert!(at.rss_bytes > Some(0), "RSS from the nearest sample");
    assert_eq!(report.audit.reserved_peak_bytes, 1 << 40);
}

#[test]
fn external_bytes_are_reported_apart_from_the_heap() {
    let _s = serial();
    let session = Session::new(None, None, Duration::from_millis(5));
    let scope = Scope::new("MmapReader[0]");
    report_external(scope, 64 * MIB as u64);
    report_external(scope, 16 * MIB as u64);
    let report = session.finish().unwrap();
    let e = report
        .external
        .iter()
        .find(|e| e.scope == "MmapReader[0]")
        .unwrap();
    assert_eq!((e.bytes, e.peak_bytes), (16 * MIB as u64, 64 * MIB as u64));
    let s = report
        .scopes
        .iter()
        .find(|s| s.name == "MmapReader[0]")
        .unwrap();
    assert_eq!(
        (s.external_bytes, s.live_requested_bytes),
        (16 * MIB as u64, 0)
    );
    assert!(
        report.heap.live_requested_bytes < 64 * MIB,
        "never mixed into the heap"
    );
}

#[test]
fn the_session_builds_its_pool_from_the_limit_and_names_it() {
    let _s = serial();
    let fair =
        Session::new(None, Some(4096), Duration::from_millis(5)).with_pool_kind(PoolKind::Fair);
    let pool = fair.pool();
    assert!(Arc::ptr_eq(&pool, &fair.pool()), "one pool per session");
    assert_eq!((pool.name(), pool.limit()), ("fair", Some(4096)));
    let mut r = MemoryConsumer::new("SessionPool[0]").register(&pool);
    assert!(r.try_grow(5000).is_err());
    drop(r);
    let report = fair.finish().unwrap();
    assert_eq!(report.pool.as_deref(), Some("fair"));
    assert_eq!(report.memory_limit_bytes, Some(4096));
    let c = report
        .consumers
        .iter()
        .find(|c| c.name == "SessionPool[0]")
        .unwrap();
    assert_eq!(c.refusals, 1);

    let limited = Session::new(None, Some(1 << 20), Duration::from_millis(5));
    assert_eq!(
        limited.pool().name(),
        "greedy",
        "DataFusion's default with a limit"
    );
    let open = Session::new(None, None, Duration::from_millis(5)).with_pool_kind(PoolKind::Arbiter);
    assert_eq!(
        (open.pool().name(), open.pool().limit()),
        ("unbounded", None)
    );
    let mut named = Session::new(None, None, Duration::from_millis(5));
    named.set_pool_kind("datafusion-fair");
    let _ = named.pool();
    assert_eq!(
        named.finish().unwrap().pool.as_deref(),
        Some("datafusion-fair")
    );
}

#[test]
fn the_window_start_holds_the_ballast_allocated_before_the_session() {
    let _s = serial();
    // 24 MiB held (and touched) before the session: the window starts above it.
    let ballast: Vec<u8> = vec![1u8; 24 * MIB as usize];
    // Earlier tests in this process set higher peaks.
    memledger_alloc::reset_peak();
    let session = Session::manual(None, None);
    let work: Vec<u8> = vec![1u8; 8 * MIB as usize];
    session.record_sample();
    let report = session.finish().unwrap();
    let start = report.audit.window_start.expect("measured");
    let heap_at_start = start
        .heap_live_bytes
        .expect("the tracked allocator is installed");
    assert!(
        (24 * MIB..26 * MIB).contains(&heap_at_start),
        "the ballast and little else: {heap_at_start}"
    );
    let growth = report.heap.peak_requested_bytes - heap_at_start;
    assert!(
        (8 * MIB..10 * MIB).contains(&growth),
        "the work, not the ballast: {growth}"
    );
    let rss_at_start = start.rss_bytes.expect("/proc is readable");
    assert!(
        rss_at_start >= 24 * MIB as u64,
        "the touched ballast is resident: {rss_at_start}"
    );
    let json = report.to_json();
    let back = Report::from_json(&json).unwrap();
    assert_eq!(back.audit.window_start, Some(start));
    let old = json.replace("\"window_start\"", "\"window_start_unknown\"");
    assert_eq!(
        Report::from_json(&old).unwrap().audit.window_start,
        None,
        "absent in older reports: null, not 0"
    );
    drop((ballast, work));
}

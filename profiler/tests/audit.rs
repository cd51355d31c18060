//! The audit, the report and the session, with the tracked allocator installed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use memledger_alloc::{MiMalloc, Scope, Tracked};
use memledger_profiler::report::{REPORT_SCHEMA, Report, ReportError};
use memledger_profiler::{GreedyPool, MemoryConsumer, MemoryPool, Session, UnboundedPool, measure};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const MIB: i64 = 1 << 20;

#[test]
fn a_consumer_reserving_1_mib_while_allocating_3_mib_shows_2_mib_untracked() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let session = Session::new(Some(path.clone()), None, Duration::from_millis(5));
    let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedPool::new());
    let mut r = MemoryConsumer::new("ToyOperator[0]").register(&pool);
    r.try_grow(MIB as usize).unwrap();
    let data = Scope::new("ToyOperator[0]").in_scope(|| vec![7u8; 3 * MIB as usize]);
    std::thread::sleep(Duration::from_millis(100));
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
    // The written file is the same report.
    let written = Report::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written, report);
    drop((data, r));
}

#[test]
fn time_aligned_peaks_come_from_real_samples() {
    let _s = serial();
    let session = Session::new(None, None, Duration::from_millis(2));
    let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedPool::new());
    let mut r = MemoryConsumer::new("Aligned[0]").register(&pool);
    // Heap peak first (40 MiB, 1 MiB reserved), reserved peak later (8 MiB reserved, little heap).
    r.try_grow(MIB as usize).unwrap();
    let big = vec![1u8; 40 * MIB as usize];
    std::thread::sleep(Duration::from_millis(120));
    drop(big);
    r.try_grow(7 * MIB as usize).unwrap();
    std::thread::sleep(Duration::from_millis(120));
    let report = session.finish().unwrap();
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
    assert!(p.heap.t_ms < p.reserved.t_ms);
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
    assert!(report.process.peak_rss_bytes > 0 && report.heap.allocations > 0);
}

#[test]
fn reports_round_trip_and_unknown_majors_are_refused() {
    let mut report = Report::new();
    report.label = Some("q1".into());
    report.heap.peak_requested_bytes = 123;
    let back = Report::from_json(&report.to_json()).unwrap();
    assert_eq!(back, report);
    let future = report
        .to_json()
        .replace("memledger.report/1", "memledger.report/2");
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
                .replace("memledger.report/1", "memledger.report/1.3")
        )
        .is_ok()
    );
}

#[test]
fn two_concurrent_measurements_see_only_their_own_allocations() {
    let _s = serial();
    let handles: Vec<_> = [3usize, 5]
        .into_iter()
        .map(|mib| {
            std::thread::spawn(move || {
                measure(|| {
                    let mut keep = Vec::new();
                    for _ in 0..20 {
                        let v = vec![0u8; mib << 20];
                        std::thread::sleep(Duration::from_millis(1));
                        keep.push(vec![1u8; 1000]);
                        drop(v);
                    }
                    keep
                })
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap().1).collect();
    for (m, mib) in results.iter().zip([3i64, 5]) {
        // The peak: one big buffer plus the small ones kept so far, plus the keep vector.
        assert!(
            m.peak_bytes >= mib * MIB && m.peak_bytes < mib * MIB + 64 * 1024,
            "{m:?}"
        );
        assert!(m.live_at_end_bytes >= 20 * 1000 && m.live_at_end_bytes < 20 * 1000 + 1024);
        assert!(m.allocations >= 40 && m.allocations < 50, "{m:?}");
    }
}

#[test]
fn the_reservation_check_fails_readably_when_the_heap_outgrows_it() {
    let _s = serial();
    let pool: Arc<dyn MemoryPool> = Arc::new(GreedyPool::new(1 << 30));
    let (_, m) = measure(|| {
        let mut r = MemoryConsumer::new("Checked[0]").register(&pool);
        r.try_grow(MIB as usize).unwrap();
        let v = vec![0u8; 2 * MIB as usize];
        drop(v);
    });
    assert_eq!(m.reserved_peak_bytes, MIB as u64);
    assert_eq!(m.untracked_peak_bytes, m.peak_bytes - MIB);
    let err = m.check_within_reservation(0.5).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "heap peak {} bytes exceeds the reservation peak 1048576 bytes",
            m.peak_bytes
        )),
        "{err}"
    );
    assert!(m.check_within_reservation(1.5).is_ok());
}

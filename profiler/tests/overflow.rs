//! A full scope table shows in the report. Its own process: it fills the
//! allocator's scope table, which no other test may see.

use std::sync::Arc;

use memledger_alloc::{MAX_SCOPES, MiMalloc, Scope, Tracked};
use memledger_profiler::report::Report;
use memledger_profiler::{GreedyPool, MemoryConsumer, MemoryPool, Session, measure};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

#[test]
fn names_refused_by_a_full_scope_table_are_counted_in_the_report() {
    let session = Session::manual(None, None);
    // A measurement before the table fills leaves a scope to reuse.
    let _ = measure(|| ());
    let mut made = 0;
    while Scope::new(&format!("Filler[{made}]")) != Scope::OVERFLOW {
        made += 1;
        assert!(made <= MAX_SCOPES, "the table never filled");
    }
    // The name that found it full, five more, and one of them again.
    for i in 1..=5 {
        assert_eq!(
            Scope::new(&format!("Filler[{}]", made + i)),
            Scope::OVERFLOW
        );
    }
    assert_eq!(
        Scope::new(&format!("Filler[{}]", made + 1)),
        Scope::OVERFLOW
    );
    assert_eq!(memledger_alloc::overflowed_scope_names(), 6);
    // Measurements keep working, exactly, on the scope they reuse.
    let pool: Arc<dyn MemoryPool> = Arc::new(GreedyPool::new(1 << 20));
    let mut peaks = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let (_, m) = measure(|| {
            let mut r = MemoryConsumer::new("AfterFull[0]").register(&pool);
            r.try_grow(4096).unwrap();
            drop(vec![0u8; 4096]);
        });
        assert_ne!(m.scope, Scope::OVERFLOW);
        assert_eq!((m.reserved_peak_bytes, m.live_at_end_bytes), (4096, 0));
        // The buffer, plus the registration's few small blocks.
        assert!(m.peak_bytes >= 4096 && m.peak_bytes < 4096 + 1024, "{m:?}");
        peaks.insert(m.peak_bytes);
    }
    assert_eq!(
        peaks.len(),
        1,
        "every repetition measures the same: {peaks:?}"
    );
    let report = session.finish().unwrap();
    assert_eq!(report.overflowed_scope_names, 6);
    let json = report.to_json();
    assert!(json.contains("\"overflowed_scope_names\": 6"), "{json}");
    // A report written before the field existed still reads, as 0.
    let old = json.replace("\"overflowed_scope_names\": 6,", "");
    assert_eq!(Report::from_json(&old).unwrap().overflowed_scope_names, 0);
}

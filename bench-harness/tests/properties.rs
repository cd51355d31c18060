//! Property tests for every parser of user input and of run files: no input
//! makes one panic, and every accepted value round-trips exactly.

use std::time::Duration;

use memledger_harness::run::{Context, Figures, QueryResult, Repeat, Run, Status};
use memledger_harness::suite::{parse_query_list, split_words};
use memledger_harness::units::{
    format_percent, parse_duration, parse_percent, parse_scale, parse_size, parse_timeout,
};
use proptest::prelude::*;

/// Text that looks like what a user types for a value, and worse.
fn value_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[-+ ]?[0-9]{0,25}(\\.[0-9]{0,25})? ?(b|k|K|Ki|KiB|m|MB|M|g|G|T|t|ms|s|sec|m|min|h|%|x)?",
        "[0-9.,=q ]{0,20}",
    ]
}

fn status() -> impl Strategy<Value = Status> {
    prop::sample::select(vec![
        Status::Ok,
        Status::Failed,
        Status::Signal,
        Status::Timeout,
        Status::Oom,
        Status::Interrupted,
    ])
}

fn figures() -> impl Strategy<Value = Figures> {
    (
        (
            any::<u64>(),
            any::<Option<u64>>(),
            any::<Option<i64>>(),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            any::<Option<i64>>(),
            any::<Option<i64>>(),
        ),
        (
            any::<Option<u64>>(),
            any::<Option<i64>>(),
            any::<Option<i64>>(),
            any::<Option<i64>>(),
        ),
    )
        .prop_map(
            |(
                (wall, rss, heap, reserved, allocations, untracked_at, untracked),
                (start_rss, start_heap, rss_growth, heap_growth),
            )| Figures {
                wall_ms: wall,
                peak_rss_bytes: rss,
                heap_peak_bytes: heap,
                reserved_peak_bytes: reserved,
                allocations,
                untracked_at_heap_peak_bytes: untracked_at,
                untracked_peak_bytes: untracked,
                window_start_rss_bytes: start_rss,
                window_start_heap_live_bytes: start_heap,
                peak_rss_growth_bytes: rss_growth,
                heap_growth_bytes: heap_growth,
            },
        )
}

fn query_result(index: usize) -> impl Strategy<Value = QueryResult> {
    (
        "[a-z0-9 =.\"\\\\é]{0,12}",
        status(),
        any::<Option<i32>>(),
        any::<Option<i32>>(),
        figures(),
        any::<Option<u64>>(),
        any::<Option<String>>(),
        any::<String>(),
        prop::collection::vec((any::<u64>(), any::<u64>()), 0..4),
        prop::collection::vec((status(), figures()), 0..3),
    )
        .prop_map(
            move |(
                name,
                status,
                exit_code,
                signal,
                figures,
                limit,
                error,
                tail,
                timeline,
                repeats,
            )| {
                QueryResult {
                    // Unique by construction: ids in a run are unique.
                    id: format!("{index}-{name}"),
                    status,
                    exit_code,
                    signal,
                    figures,
                    peak_rss_growth_per_reserved: figures.peak_rss_growth_per_reserved(),
                    heap_growth_per_reserved: figures.heap_growth_per_reserved(),
                    limit_bytes: limit,
                    error,
                    stderr_tail: tail,
                    timeline,
                    stacks: None,
                    repeats: repeats
                        .into_iter()
                        .map(|(status, figures)| Repeat {
                            status,
                            exit_code,
                            signal,
                            figures,
                        })
                        .collect(),
                    min: Some(figures),
                    median: None,
                    report: None,
                }
            },
        )
}

fn run() -> impl Strategy<Value = Run> {
    (
        any::<String>(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<u64>(),
        any::<u32>(),
        any::<bool>(),
        (0usize..4).prop_flat_map(|n| (0..n).map(query_result).collect::<Vec<_>>()),
    )
        .prop_map(
            |(command, limit, timeout, sample_ms, repeat, interrupted, queries)| {
                let mut run = Run::new(Context {
                    command,
                    memory_limit_bytes: limit,
                    timeout_ms: timeout,
                    sample_ms,
                    repeat,
                    ..Context::default()
                });
                run.interrupted = interrupted;
                run.queries = queries;
                run
            },
        )
}

proptest! {
    #[test]
    fn sizes_never_panic_and_round_trip(text in value_text()) {
        if let Ok(bytes) = parse_size(&text) {
            prop_assert_eq!(parse_size(&bytes.to_string()), Ok(bytes));
            prop_assert_eq!(parse_size(&format!("{bytes}B")), Ok(bytes));
        }
    }

    #[test]
    fn every_byte_count_is_exact(bytes in any::<u64>(), kib in 0u64..(1 << 54)) {
        prop_assert_eq!(parse_size(&bytes.to_string()), Ok(bytes));
        prop_assert_eq!(parse_size(&format!("{kib}K")), Ok(kib * 1024));
        let past = u128::from(bytes) + u128::from(u64::MAX) + 1;
        prop_assert!(parse_size(&past.to_string()).is_err(), "past u64::MAX is refused");
        let negative = format!("-{bytes}");
        prop_assert!(parse_size(&negative).is_err());
    }

    #[test]
    fn durations_never_panic_and_round_trip(text in value_text()) {
        for duration in [parse_duration(&text), parse_timeout(&text)].into_iter().flatten() {
            let ms = duration.as_millis();
            prop_assert_eq!(u128::from(u64::try_from(ms).unwrap()), ms);
            prop_assert_eq!(duration, Duration::from_millis(ms as u64), "whole ms");
            prop_assert_eq!(parse_duration(&format!("{ms}ms")), Ok(duration));
        }
    }

    #[test]
    fn every_millisecond_count_is_exact(ms in any::<u64>()) {
        prop_assert_eq!(parse_duration(&format!("{ms}ms")), Ok(Duration::from_millis(ms)));
        if ms > 0 {
            prop_assert_eq!(parse_timeout(&format!("{ms}ms")), Ok(Duration::from_millis(ms)));
        }
    }

    #[test]
    fn percentages_never_panic_and_round_trip(text in value_text()) {
        if let Ok(fraction) = parse_percent(&text) {
            prop_assert!(fraction >= 0.0 && fraction.is_finite());
            let shown = format_percent(fraction);
            prop_assert!(!shown.starts_with('-'));
            prop_assert_eq!(parse_percent(&shown), Ok(fraction), "{}", shown);
        }
    }

    #[test]
    fn every_six_decimal_percentage_is_exact(millionths in 0u64..=1_000_000_000_000) {
        let text = format!("{}.{:06}%", millionths / 1_000_000, millionths % 1_000_000);
        let fraction = parse_percent(&text).unwrap();
        prop_assert_eq!(parse_percent(&format_percent(fraction)), Ok(fraction));
        prop_assert_eq!((fraction * 1e8).round() as u64, millionths);
    }

    #[test]
    fn scales_never_panic_and_are_positive(text in value_text()) {
        if let Ok(scale) = parse_scale(&text) {
            let value: f64 = scale.parse().unwrap();
            prop_assert!(value > 0.0 && value.is_finite(), "{}", scale);
            prop_assert_eq!(parse_scale(&scale), Ok(scale.clone()));
        }
    }

    #[test]
    fn query_lists_never_panic_and_round_trip(
        text in prop_oneof![
            any::<String>(),
            "[a-z]{0,2}[0-9]{0,4}(\\.\\.=?[a-z]{0,2}[0-9]{0,4})?(,[a-z.]{0,2}[0-9]{0,3}(\\.\\.[a-z]{0,2}[0-9]{0,3})?){0,3}",
        ]
    ) {
        if let Ok(list) = parse_query_list(&text) {
            prop_assert!(!list.is_empty());
            prop_assert_eq!(parse_query_list(&list.join(",")), Ok(list.clone()));
        }
        let _ = split_words(&text);
    }

    #[test]
    fn run_json_never_panics(text in prop_oneof![
        any::<String>(),
        "\\{\"schema\": ?\"memledger\\.run/[0-9.]{1,4}\"(, ?\"queries\": ?\\[(\\{\"id\": ?\"q\", ?\"status\": ?\"(ok|failed|interrupted|x)\"\\},?){0,3}\\])?\\}",
    ]) {
        let _ = Run::from_json(&text);
    }

    #[test]
    fn runs_round_trip_exactly(run in run()) {
        let back = Run::from_json(&run.to_json()).unwrap();
        prop_assert_eq!(&back, &run);
        let baseline = Run::from_json(&run.to_baseline_json()).unwrap();
        prop_assert_eq!(baseline.queries.len(), run.queries.len());
        for (b, q) in baseline.queries.iter().zip(&run.queries) {
            prop_assert_eq!(&b.id, &q.id);
            prop_assert_eq!(b.status, q.status);
            prop_assert_eq!(b.figures, q.figures);
        }
    }
}

//! Sampled allocation stacks in the report: which code allocated the bytes,
//! and which held them at the heap peak.
//!
//! The allocator samples stacks when `MEMLEDGER_SAMPLE_BYTES` is set (see
//! [`memledger_alloc::stacks`]); this module turns its records into the
//! report's `stacks` section: frames symbolized in the measured process at
//! report time (function, file, line, inlined frames included), the
//! allocator's own frames dropped, records with the same symbolized stack
//! added up, and for each scope that held more than its consumers reserved
//! at the heap peak, its top stacks.
//!
//! The section also writes as folded stacks (`scope;outer;…;inner bytes`),
//! the text format of flamegraph.pl, inferno and speedscope.

use std::collections::HashMap;
use std::ffi::c_void;

use memledger_alloc::stacks::{self as sampled, SampledStack};
use serde::{Deserialize, Serialize};

use crate::report::ScopeAtPeak;

/// The environment variable that turns sampling on: mean bytes between
/// samples, a whole number above 0.
pub const SAMPLE_BYTES_ENV: &str = "MEMLEDGER_SAMPLE_BYTES";

/// Stacks kept in a report, largest first (by allocated bytes; the top
/// stacks of each scope over its reservation are always kept).
pub const MAX_REPORTED_STACKS: usize = 200;

/// Stacks listed per scope over its reservation.
pub const TOP_PER_SCOPE: usize = 5;

/// The report's `stacks` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StacksReport {
    /// Mean bytes between samples.
    pub sample_bytes: u64,
    /// Samples taken.
    pub samples: u64,
    /// Whether frees of sampled blocks were seen (owner mode), so that
    /// live figures exist.
    pub live_tracked: bool,
    /// Estimated usable bytes allocated, all stacks together.
    pub estimated_allocated_bytes: u64,
    /// Samples whose stack found the allocator's record table full (their
    /// bytes are in one stack with no frames).
    pub table_overflows: u64,
    /// Owner mode: sampled blocks that found the live table full (counted
    /// as allocated, never live).
    pub live_table_overflows: u64,
    /// The stacks, largest allocated first, at most [`MAX_REPORTED_STACKS`]
    /// plus the per-scope tops.
    pub stacks: Vec<StackReport>,
    /// Stacks left out of `stacks`, and their estimated allocated bytes.
    pub omitted_stacks: u64,
    /// Estimated allocated bytes of the stacks left out.
    pub omitted_allocated_bytes: u64,
    /// Every scope whose code held more than its consumers reserved at the
    /// heap peak, with its top stacks.
    pub untracked_by_scope: Vec<ScopeStacks>,
}

/// One scope's samples with one (symbolized) stack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StackReport {
    /// The scope the sampled blocks were charged to.
    pub scope: String,
    /// Innermost first, the allocator's own frames left out.
    pub frames: Vec<Frame>,
    /// Samples taken.
    pub samples: u64,
    /// Estimated usable bytes allocated.
    pub allocated_bytes: u64,
    /// Estimated requested bytes allocated.
    pub allocated_requested_bytes: u64,
    /// Estimated usable bytes live at the sampled heap peak; `null` in
    /// counting mode.
    pub live_at_heap_peak_bytes: Option<i64>,
    /// Estimated usable bytes live when the report was built; `null` in
    /// counting mode.
    pub live_at_end_bytes: Option<i64>,
}

/// One frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    /// The function, demangled, without its hash; `??` when unknown.
    pub function: String,
    /// Source file, when the binary has line tables.
    pub file: Option<String>,
    /// Line in `file`.
    pub line: Option<u32>,
}

/// A scope over its reservation at the heap peak, and the stacks that
/// allocated its bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScopeStacks {
    /// The scope.
    pub scope: String,
    /// Requested bytes its code held at the heap peak minus its reservation then.
    pub untracked_bytes: i64,
    /// What the stacks are ranked by: `live_at_heap_peak` (owner mode) or
    /// `allocated` (counting mode, where frees are not seen).
    pub ranked_by: String,
    /// Indexes into [`StacksReport::stacks`], largest first.
    pub top: Vec<usize>,
}

impl StackReport {
    /// The figure a flamegraph of this kind weighs the stack by.
    pub fn weight(&self, kind: Weight) -> i64 {
        match kind {
            Weight::Allocated => i64::try_from(self.allocated_bytes).unwrap_or(i64::MAX),
            Weight::LiveAtHeapPeak => self.live_at_heap_peak_bytes.unwrap_or(0),
        }
    }
}

/// Which figure folded stacks carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// Estimated bytes allocated.
    Allocated,
    /// Estimated bytes live at the heap peak (owner mode).
    LiveAtHeapPeak,
}

impl StacksReport {
    /// Folded stacks: one line per stack, `scope;outermost;…;innermost N`
    /// with N the chosen figure in bytes (lines with N ≤ 0 left out).
    /// Semicolons in names are replaced by `:` so that the format holds.
    pub fn folded(&self, kind: Weight) -> String {
        let mut out = String::new();
        for s in &self.stacks {
            let weight = s.weight(kind);
            if weight <= 0 {
                continue;
            }
            out.push_str(&clean(&s.scope));
            for f in s.frames.iter().rev() {
                out.push(';');
                out.push_str(&clean(&f.function));
            }
            out.push_str(&format!(" {weight}\n"));
        }
        out
    }
}

fn clean(name: &str) -> String {
    name.replace([';', '\n'], ":")
}

/// Reads [`SAMPLE_BYTES_ENV`]: `Ok(None)` when unset, an error message when
/// it is not a whole number of bytes above 0.
pub fn sample_bytes_from_env() -> Result<Option<u64>, String> {
    match std::env::var(SAMPLE_BYTES_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!(
                "{SAMPLE_BYTES_ENV}={v:?} is not a whole number of bytes above 0; stacks are not sampled"
            )),
        },
        Err(_) => Err(format!(
            "{SAMPLE_BYTES_ENV} is not valid UTF-8; stacks are not sampled"
        )),
    }
}

/// The live bytes of each record, as the allocator has them now: cheap
/// enough for each new heap peak.
pub(crate) fn live_now() -> Vec<(usize, i64)> {
    let mut out = Vec::new();
    sampled::live_by_stack(&mut out);
    out
}

/// The global allocator's entry points: every frame inside one is the
/// allocator's.
fn is_allocator_entry(function: &str) -> bool {
    [
        "__rust_alloc",
        "__rust_realloc",
        "__rg_alloc",
        "__rg_realloc",
    ]
    .iter()
    .any(|e| function.contains(e))
}

/// Frames of the allocator (by qualified name, when an entry point is not
/// in the stack) and of the standard library's way into it: dropped from
/// the inner end of every stack.
fn is_allocator_frame(frame: &Frame) -> bool {
    let f = frame.function.trim_start_matches('<');
    let file = frame.file.as_deref().unwrap_or("");
    f.starts_with("memledger_alloc::")
        || f.starts_with("alloc::alloc::")
        || f.starts_with("std::alloc::")
        || f.starts_with("core::alloc::")
        || is_allocator_entry(f)
        || file.contains("library/alloc/src/alloc.rs")
        || file.contains("library/core/src/alloc/")
        || file.contains("library/std/src/alloc.rs")
}

/// Symbolizes return addresses, each once.
#[derive(Default)]
struct Symbolizer {
    cache: HashMap<usize, Vec<Frame>>,
}

impl Symbolizer {
    /// The frames at return address `ip`, innermost (inlined) first.
    fn frames(&mut self, ip: usize) -> &[Frame] {
        self.cache.entry(ip).or_insert_with(|| {
            let mut frames = Vec::new();
            backtrace::resolve(ip as *mut c_void, |symbol| {
                frames.push(Frame {
                    function: symbol
                        .name()
                        .map_or_else(|| "??".to_string(), |n| format!("{n:#}")),
                    file: symbol.filename().map(|p| p.display().to_string()),
                    line: symbol.lineno(),
                });
            });
            if frames.is_empty() {
                frames.push(Frame {
                    function: format!("{ip:#x}"),
                    file: None,
                    line: None,
                });
            }
            frames
        })
    }

    fn stack(&mut self, ips: &[usize]) -> Vec<Frame> {
        let mut out: Vec<Frame> = Vec::with_capacity(ips.len() * 2);
        for &ip in ips {
            out.extend_from_slice(self.frames(ip));
        }
        // Inlined frames carry short names, so the allocator is known by
        // its entry point first.
        if let Some(entry) = out.iter().rposition(|f| is_allocator_entry(&f.function)) {
            out.drain(..=entry);
        }
        let inner = out.iter().take_while(|f| is_allocator_frame(f)).count();
        out.drain(..inner);
        out
    }
}

/// The `stacks` section from the allocator's records now, with the live
/// bytes at the heap peak (`at_peak`, as [`live_now`] gave them) and the
/// scopes at the heap peak; `None` when sampling never ran.
pub(crate) fn stacks_report(
    at_peak: &[(usize, i64)],
    scopes_at_peak: &[ScopeAtPeak],
) -> Option<StacksReport> {
    let sample_bytes = sampled::sample_bytes()?;
    let records = sampled::sampled_stacks();
    let live_tracked = memledger_alloc::attribution() == Some(memledger_alloc::Attribution::Owner);
    let peak: HashMap<usize, i64> = at_peak.iter().copied().collect();
    let mut symbolizer = Symbolizer::default();
    let mut merged: HashMap<(String, Vec<Frame>), StackReport> = HashMap::new();
    for r in &records {
        let frames = symbolizer.stack(&r.frames);
        let scope = r.scope.name().to_string();
        let entry = merged
            .entry((scope.clone(), frames.clone()))
            .or_insert_with(|| StackReport {
                scope,
                frames,
                live_at_heap_peak_bytes: live_tracked.then_some(0),
                live_at_end_bytes: live_tracked.then_some(0),
                ..StackReport::default()
            });
        add(entry, r, peak.get(&r.id).copied().unwrap_or(0));
    }
    let mut all: Vec<StackReport> = merged.into_values().collect();
    all.sort_by(|a, b| {
        b.allocated_bytes
            .cmp(&a.allocated_bytes)
            .then_with(|| a.scope.cmp(&b.scope))
            .then_with(|| a.frames.len().cmp(&b.frames.len()))
    });
    let estimated_allocated_bytes = all.iter().map(|s| s.allocated_bytes).sum();
    let samples = all.iter().map(|s| s.samples).sum();

    // The top stacks of each scope over its reservation are always kept.
    let ranked_by = if live_tracked {
        "live_at_heap_peak"
    } else {
        "allocated"
    };
    let over: Vec<&ScopeAtPeak> = scopes_at_peak
        .iter()
        .filter(|s| s.live_requested_bytes > s.reserved_bytes as i64)
        .collect();
    let mut keep = vec![false; all.len()];
    keep.iter_mut()
        .take(MAX_REPORTED_STACKS)
        .for_each(|k| *k = true);
    let mut tops: Vec<(String, i64, Vec<usize>)> = Vec::new();
    for s in &over {
        let mut mine: Vec<usize> = (0..all.len())
            .filter(|&i| all[i].scope == s.scope)
            .collect();
        let key = |i: &usize| {
            if live_tracked {
                all[*i].live_at_heap_peak_bytes.unwrap_or(0)
            } else {
                i64::try_from(all[*i].allocated_bytes).unwrap_or(i64::MAX)
            }
        };
        mine.sort_by_key(|i| std::cmp::Reverse(key(i)));
        mine.retain(|i| key(i) > 0);
        mine.truncate(TOP_PER_SCOPE);
        for &i in &mine {
            keep[i] = true;
        }
        tops.push((
            s.scope.clone(),
            s.live_requested_bytes - s.reserved_bytes as i64,
            mine,
        ));
    }
    // Renumber the kept stacks.
    let mut index = vec![usize::MAX; all.len()];
    let mut stacks = Vec::new();
    let (mut omitted_stacks, mut omitted_allocated_bytes) = (0u64, 0u64);
    for (i, s) in all.into_iter().enumerate() {
        if keep[i] {
            index[i] = stacks.len();
            stacks.push(s);
        } else {
            omitted_stacks += 1;
            omitted_allocated_bytes = omitted_allocated_bytes.saturating_add(s.allocated_bytes);
        }
    }
    let mut untracked_by_scope: Vec<ScopeStacks> = tops
        .into_iter()
        .map(|(scope, untracked_bytes, top)| ScopeStacks {
            scope,
            untracked_bytes,
            ranked_by: ranked_by.to_string(),
            top: top.into_iter().map(|i| index[i]).collect(),
        })
        .collect();
    untracked_by_scope.sort_by_key(|s| std::cmp::Reverse(s.untracked_bytes));
    Some(StacksReport {
        sample_bytes,
        samples,
        live_tracked,
        estimated_allocated_bytes,
        table_overflows: sampled::stack_table_overflows(),
        live_table_overflows: sampled::live_table_overflows(),
        stacks,
        omitted_stacks,
        omitted_allocated_bytes,
        untracked_by_scope,
    })
}

fn add(entry: &mut StackReport, r: &SampledStack, live_at_peak: i64) {
    entry.samples += r.samples;
    entry.allocated_bytes = entry.allocated_bytes.saturating_add(r.allocated_usable);
    entry.allocated_requested_bytes = entry
        .allocated_requested_bytes
        .saturating_add(r.allocated_requested);
    if let Some(v) = entry.live_at_heap_peak_bytes.as_mut() {
        *v = v.saturating_add(live_at_peak);
    }
    if let (Some(v), Some(live)) = (entry.live_at_end_bytes.as_mut(), r.live) {
        *v = v.saturating_add(live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(f: &str) -> Frame {
        Frame {
            function: f.into(),
            file: None,
            line: None,
        }
    }

    #[test]
    fn folded_lines_go_from_the_scope_outwards_in() {
        let r = StacksReport {
            stacks: vec![
                StackReport {
                    scope: "sort".into(),
                    frames: vec![frame("inner"), frame("mid;dle"), frame("main")],
                    allocated_bytes: 300,
                    live_at_heap_peak_bytes: Some(0),
                    ..StackReport::default()
                },
                StackReport {
                    scope: "join".into(),
                    frames: vec![frame("build")],
                    allocated_bytes: 100,
                    live_at_heap_peak_bytes: Some(40),
                    ..StackReport::default()
                },
            ],
            ..StacksReport::default()
        };
        assert_eq!(
            r.folded(Weight::Allocated),
            "sort;main;mid:dle;inner 300\njoin;build 100\n"
        );
        assert_eq!(r.folded(Weight::LiveAtHeapPeak), "join;build 40\n");
    }

    #[test]
    fn allocator_frames_are_recognized() {
        for f in [
            "memledger_alloc::thread::slow",
            "<memledger_alloc::tracked::Tracked<A,M> as core::alloc::global::GlobalAlloc>::alloc",
            "__rustc::__rust_alloc",
            "alloc::alloc::exchange_malloc",
        ] {
            assert!(is_allocator_frame(&frame(f)), "{f}");
        }
        let inlined = Frame {
            function: "alloc_impl".into(),
            file: Some("/rustc/abc/library/alloc/src/alloc.rs".into()),
            line: Some(3),
        };
        assert!(is_allocator_frame(&inlined));
        for f in [
            "alloc::raw_vec::RawVec<T>::grow_one",
            "my_crate::build",
            "??",
        ] {
            assert!(!is_allocator_frame(&frame(f)), "{f}");
        }
    }
}

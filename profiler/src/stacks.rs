//! Sampled allocation stacks in the report: which code allocated the bytes,
//! and which held them at the heap peak.
//!
//! The allocator samples stacks when `MEMLEDGER_SAMPLE_BYTES` is set (see
//! [`memledger_alloc::stacks`]); this module turns its records into the
//! report's `stacks` section: the return addresses of each stack with the
//! objects they lie in, and for each scope that held more than its
//! consumers reserved at the heap peak, its top stacks.
//!
//! [`symbolize`] turns addresses into frames (function, file, line,
//! inlined frames included) from the objects' debug info, drops the
//! allocator's own frames and adds up stacks that read the same. Reading
//! debug info takes tens of MB, so where it happens matters: the session
//! symbolizes in the measured process when its report is built, unless
//! `MEMLEDGER_SYMBOLIZE=later` (which `mem_profile run --stacks` sets: the
//! harness symbolizes after the query exited, and the query's peak RSS stays
//! its own).
//!
//! The section also writes as folded stacks (`scope;outer;…;inner bytes`),
//! the text format of flamegraph.pl, inferno and speedscope.

use std::collections::HashMap;

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

/// Set to `later` to leave symbolizing to the reader of the report.
pub const SYMBOLIZE_ENV: &str = "MEMLEDGER_SYMBOLIZE";

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
    /// Whether `frames` are filled in (see [`symbolize`]).
    #[serde(default)]
    pub symbolized: bool,
    /// The executable objects of the process, to symbolize with.
    #[serde(default)]
    pub modules: Vec<Module>,
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
    /// Return addresses, innermost first (the allocator's own included).
    #[serde(default)]
    pub addresses: Vec<u64>,
    /// Innermost first, the allocator's own frames left out; empty until
    /// symbolized.
    #[serde(default)]
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

/// An executable object loaded in the measured process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Its file.
    pub path: String,
    /// What was added to its addresses when it was loaded.
    pub bias: u64,
    /// Its executable address ranges in the process, `[start, end)`.
    pub ranges: Vec<[u64; 2]>,
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

    /// One stack, shortly: its innermost frames that are the program's own
    /// (the standard library's left out when others exist), innermost first,
    /// each with its file name and line when known.
    pub fn short(&self, frames: usize) -> String {
        let own: Vec<&Frame> = self
            .frames
            .iter()
            .filter(|f| !is_library(f))
            .take(frames)
            .collect();
        let shown: Vec<&Frame> = if own.is_empty() {
            self.frames.iter().take(frames).collect()
        } else {
            own
        };
        if shown.is_empty() {
            return "(no frames)".to_string();
        }
        shown
            .iter()
            .map(|f| {
                let file = f.file.as_deref().map(|p| p.rsplit('/').next().unwrap_or(p));
                let function = without_generics(&f.function);
                match (file, f.line) {
                    (Some(file), Some(line)) => format!("{function} ({file}:{line})"),
                    (Some(file), None) => format!("{function} ({file})"),
                    _ => function,
                }
            })
            .collect::<Vec<_>>()
            .join(" ← ")
    }
}

/// A function name without its generic arguments (`take_native<i128, X>`
/// reads `take_native`); a leading `<T as Trait>` stays.
fn without_generics(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0usize;
    let mut previous = ' ';
    for c in name.chars() {
        if depth > 0 {
            match c {
                '<' => depth += 1,
                '>' if previous != '-' => depth -= 1,
                _ => {}
            }
        } else if c == '<' && (previous.is_alphanumeric() || previous == '_') {
            depth = 1;
        } else {
            out.push(c);
        }
        previous = c;
    }
    out
}

/// Frames of the standard library (by its sources' paths, else by name),
/// which name no place in the program.
fn is_library(frame: &Frame) -> bool {
    match frame.file.as_deref() {
        Some(file) => {
            file.starts_with("/rustc/")
                || ["library/core/", "library/alloc/", "library/std/"]
                    .iter()
                    .any(|p| file.contains(p))
        }
        None => {
            let f = frame.function.trim_start_matches('<');
            ["alloc::", "core::", "std::", "__rust"]
                .iter()
                .any(|p| f.starts_with(p))
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

/// The executable objects loaded now (`dl_iterate_phdr`).
fn modules() -> Vec<Module> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the vector `modules` passed, `info` the
        // loader's, both valid during the call.
        let (out, info) = unsafe { (&mut *data.cast::<Vec<Module>>(), &*info) };
        let name = if info.dlpi_name.is_null() {
            String::new()
        } else {
            // SAFETY: a NUL-terminated string of the loader's.
            unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }
                .to_string_lossy()
                .into_owned()
        };
        let headers: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
            &[]
        } else {
            // SAFETY: the loader's program headers, `dlpi_phnum` of them.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let bias = info.dlpi_addr;
        let ranges: Vec<[u64; 2]> = headers
            .iter()
            .filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_X != 0)
            .map(|h| {
                let start = bias.wrapping_add(h.p_vaddr);
                [start, start.wrapping_add(h.p_memsz)]
            })
            .collect();
        if !ranges.is_empty() {
            out.push(Module {
                path: name,
                bias,
                ranges,
            });
        }
        0
    }
    let mut out: Vec<Module> = Vec::new();
    // SAFETY: `each` only touches `out`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each), (&raw mut out).cast()) };
    // The program itself has no name in the loader's list.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    for m in &mut out {
        if m.path.is_empty() {
            m.path = exe.clone();
        }
    }
    out
}

/// Symbolizes return addresses with the objects' debug info, each once.
struct Symbolizer<'a> {
    modules: &'a [Module],
    loaders: HashMap<usize, Option<addr2line::Loader>>,
    cache: HashMap<u64, Vec<Frame>>,
}

impl<'a> Symbolizer<'a> {
    fn new(modules: &'a [Module]) -> Self {
        Symbolizer {
            modules,
            loaders: HashMap::new(),
            cache: HashMap::new(),
        }
    }

    /// The frames at return address `ip`, innermost (inlined) first.
    fn frames(&mut self, ip: u64) -> Vec<Frame> {
        if let Some(frames) = self.cache.get(&ip) {
            return frames.clone();
        }
        let frames = self.resolve(ip);
        self.cache.insert(ip, frames.clone());
        frames
    }

    fn resolve(&mut self, ip: u64) -> Vec<Frame> {
        let unknown = || {
            vec![Frame {
                function: format!("{ip:#x}"),
                file: None,
                line: None,
            }]
        };
        let Some(index) = self
            .modules
            .iter()
            .position(|m| m.ranges.iter().any(|r| (r[0]..r[1]).contains(&ip)))
        else {
            return unknown();
        };
        let module = &self.modules[index];
        let loader = self
            .loaders
            .entry(index)
            .or_insert_with(|| addr2line::Loader::new(&module.path).ok());
        let Some(loader) = loader else {
            return unknown();
        };
        // A return address points after its call.
        let probe = ip.wrapping_sub(module.bias).wrapping_sub(1);
        let mut out = Vec::new();
        if let Ok(mut iter) = loader.find_frames(probe) {
            while let Ok(Some(frame)) = iter.next() {
                let function = frame
                    .function
                    .as_ref()
                    .and_then(|f| f.demangle().ok())
                    .map_or_else(|| "??".to_string(), |f| strip_hash(&f));
                let location = frame.location.as_ref();
                out.push(Frame {
                    function,
                    file: location.and_then(|l| l.file).map(str::to_string),
                    line: location.and_then(|l| l.line),
                });
            }
        }
        if out.is_empty() || out.iter().all(|f| f.function == "??") {
            if let Some(symbol) = loader.find_symbol(probe) {
                let name = addr2line::demangle_auto(symbol.into(), None);
                return vec![Frame {
                    function: strip_hash(&name),
                    file: None,
                    line: None,
                }];
            }
        }
        if out.is_empty() { unknown() } else { out }
    }

    fn stack(&mut self, ips: &[u64]) -> Vec<Frame> {
        let mut out: Vec<Frame> = Vec::with_capacity(ips.len() * 2);
        for &ip in ips {
            out.extend(self.frames(ip));
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

/// A demangled Rust name without its trailing `::h<hash>`.
fn strip_hash(name: &str) -> String {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head.to_string()
        }
        _ => name.to_string(),
    }
}

/// Fills in the frames of every stack from the objects' debug info (files
/// that cannot be read leave hexadecimal addresses), then adds up the
/// stacks that read the same and ranks them again. Does nothing to a
/// section already symbolized.
pub fn symbolize(report: &mut StacksReport) {
    if report.symbolized {
        return;
    }
    let mut symbolizer = Symbolizer::new(&report.modules);
    for s in &mut report.stacks {
        s.frames = symbolizer.stack(&s.addresses);
    }
    report.symbolized = true;
    // Stacks that differ only inside the allocator, or by call sites on
    // one line, read the same: one row.
    let mut merged: Vec<StackReport> = Vec::with_capacity(report.stacks.len());
    let mut at: HashMap<(String, Vec<Frame>), usize> = HashMap::new();
    for s in std::mem::take(&mut report.stacks) {
        match at.get(&(s.scope.clone(), s.frames.clone())) {
            Some(&i) => {
                let m = &mut merged[i];
                m.samples += s.samples;
                m.allocated_bytes = m.allocated_bytes.saturating_add(s.allocated_bytes);
                m.allocated_requested_bytes = m
                    .allocated_requested_bytes
                    .saturating_add(s.allocated_requested_bytes);
                m.live_at_heap_peak_bytes =
                    sum(m.live_at_heap_peak_bytes, s.live_at_heap_peak_bytes);
                m.live_at_end_bytes = sum(m.live_at_end_bytes, s.live_at_end_bytes);
            }
            None => {
                at.insert((s.scope.clone(), s.frames.clone()), merged.len());
                merged.push(s);
            }
        }
    }
    report.stacks = merged;
    rank(report);
}

fn sum(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    }
}

/// Sorts the stacks, largest allocated first, and picks each listed
/// scope's top stacks again.
fn rank(report: &mut StacksReport) {
    report.stacks.sort_by(|a, b| {
        b.allocated_bytes
            .cmp(&a.allocated_bytes)
            .then_with(|| a.scope.cmp(&b.scope))
            .then_with(|| a.addresses.cmp(&b.addresses))
    });
    let live = report.live_tracked;
    let key = |s: &StackReport| {
        if live {
            s.live_at_heap_peak_bytes.unwrap_or(0)
        } else {
            i64::try_from(s.allocated_bytes).unwrap_or(i64::MAX)
        }
    };
    for scope in &mut report.untracked_by_scope {
        let mut mine: Vec<usize> = (0..report.stacks.len())
            .filter(|&i| report.stacks[i].scope == scope.scope && key(&report.stacks[i]) > 0)
            .collect();
        mine.sort_by_key(|&i| std::cmp::Reverse(key(&report.stacks[i])));
        mine.truncate(TOP_PER_SCOPE);
        scope.top = mine;
    }
}

/// The `stacks` section from the allocator's records now, with the live
/// bytes at the heap peak (`at_peak`, as [`live_now`] gave them) and the
/// scopes at the heap peak; `None` when sampling never ran. Unsymbolized:
/// see [`symbolize`].
pub(crate) fn stacks_report(
    at_peak: &[(usize, i64)],
    scopes_at_peak: &[ScopeAtPeak],
) -> Option<StacksReport> {
    let sample_bytes = sampled::sample_bytes()?;
    let records = sampled::sampled_stacks();
    let live_tracked = memledger_alloc::attribution() == Some(memledger_alloc::Attribution::Owner);
    let peak: HashMap<usize, i64> = at_peak.iter().copied().collect();
    let mut merged: HashMap<(String, Vec<u64>), StackReport> = HashMap::new();
    for r in &records {
        let addresses: Vec<u64> = r.frames.iter().map(|&f| f as u64).collect();
        let scope = r.scope.name().to_string();
        let entry = merged
            .entry((scope.clone(), addresses.clone()))
            .or_insert_with(|| StackReport {
                scope,
                addresses,
                live_at_heap_peak_bytes: live_tracked.then_some(0),
                live_at_end_bytes: live_tracked.then_some(0),
                ..StackReport::default()
            });
        add(entry, r, peak.get(&r.id).copied().unwrap_or(0));
    }
    let mut report = StacksReport {
        sample_bytes,
        live_tracked,
        table_overflows: sampled::stack_table_overflows(),
        live_table_overflows: sampled::live_table_overflows(),
        stacks: merged.into_values().collect(),
        untracked_by_scope: scopes_at_peak
            .iter()
            .filter(|s| s.live_requested_bytes > s.reserved_bytes as i64)
            .map(|s| ScopeStacks {
                scope: s.scope.clone(),
                untracked_bytes: s.live_requested_bytes - s.reserved_bytes as i64,
                ranked_by: if live_tracked {
                    "live_at_heap_peak"
                } else {
                    "allocated"
                }
                .to_string(),
                top: Vec::new(),
            })
            .collect(),
        ..StacksReport::default()
    };
    report
        .untracked_by_scope
        .sort_by_key(|s| std::cmp::Reverse(s.untracked_bytes));
    report.estimated_allocated_bytes = report.stacks.iter().map(|s| s.allocated_bytes).sum();
    report.samples = report.stacks.iter().map(|s| s.samples).sum();
    rank(&mut report);
    // Keep the largest stacks and every scope's top ones.
    let mut keep = vec![false; report.stacks.len()];
    keep.iter_mut()
        .take(MAX_REPORTED_STACKS)
        .for_each(|k| *k = true);
    for scope in &report.untracked_by_scope {
        for &i in &scope.top {
            keep[i] = true;
        }
    }
    let mut kept = Vec::new();
    for (s, keep) in std::mem::take(&mut report.stacks).into_iter().zip(keep) {
        if keep {
            kept.push(s);
        } else {
            report.omitted_stacks += 1;
            report.omitted_allocated_bytes = report
                .omitted_allocated_bytes
                .saturating_add(s.allocated_bytes);
        }
    }
    report.stacks = kept;
    rank(&mut report);
    report.modules = modules();
    Some(report)
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
    fn short_stacks_name_the_program_not_the_library() {
        let mut s = StackReport {
            frames: [
                "finish_grow",
                "from_elem<u8>",
                "buffer",
                "sort::run",
                "main",
            ]
            .map(frame)
            .to_vec(),
            ..StackReport::default()
        };
        s.frames[0].file = Some("/rustc/abc/library/alloc/src/raw_vec.rs".into());
        s.frames[1].file = Some("/rustc/abc/library/alloc/src/vec/mod.rs".into());
        s.frames[2].file = Some("/src/app/sort.rs".into());
        s.frames[2].line = Some(42);
        assert_eq!(s.short(2), "buffer (sort.rs:42) ← sort::run");
        for (name, short) in [
            ("from_iter<i128, core::iter::Map<A, B>>", "from_iter"),
            ("call_once<fn() -> i32>", "call_once"),
            ("<u8 as Foo<T>>::to_vec", "<u8 as Foo>::to_vec"),
            ("{closure#0}", "{closure#0}"),
        ] {
            assert_eq!(without_generics(name), short);
        }
        let only_std = StackReport {
            frames: vec![frame("alloc::vec::Vec::push")],
            ..StackReport::default()
        };
        assert_eq!(only_std.short(3), "alloc::vec::Vec::push");
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

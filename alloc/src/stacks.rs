//! Sampled allocation stacks: which code allocated the bytes.
//!
//! Off until [`start_sampling`] is called (the profiler calls it when
//! `MEMLEDGER_SAMPLE_BYTES` is set). Then each thread keeps a countdown of
//! usable bytes to its next sample, drawn from an exponential distribution
//! with the chosen mean; the allocation that crosses it is sampled. The
//! countdown is folded into the limit the hot path already compares with,
//! so a sample costs nothing until it is due, and with sampling off the
//! hot path is unchanged.
//!
//! # What a sample holds
//!
//! The call stack (up to [`MAX_FRAMES`] return addresses, unsymbolized),
//! the scope the block was charged to, and an unbiased weight: a block of
//! `s` usable bytes is sampled with probability `p = 1 - exp(-s / mean)`,
//! so it stands for `s / p` bytes (requested bytes likewise). Samples with
//! the same scope and stack add up in one record of a fixed table
//! ([`MAX_STACKS`] records); past that, they add up in one record with no
//! frames, counted by [`stack_table_overflows`].
//!
//! # Live bytes by stack
//!
//! In [`Owner`](crate::Owner) mode a sampled block carries a "sampled" bit
//! in its owner tag and is entered in a table of live samples, so its free
//! takes its weight off its record's live bytes ([`SampledStack::live`]).
//! Blocks that carry no tag (small blocks without slack, see
//! [`Owner`](crate::Owner)) and blocks that found the live table full
//! ([`live_table_overflows`]) count in the allocated figures only. In
//! [`Counting`](crate::Counting) mode a free is never looked at, so only the
//! allocated figures exist and [`SampledStack::live`] is `None`.
//!
//! # How a stack is captured
//!
//! With the system unwinder (`_Unwind_Backtrace`), which reads the
//! program's unwind tables and never allocates on the common path. It costs
//! microseconds, so each thread keeps its last few stacks with the stack
//! addresses where their return addresses lie: on x86-64 a new sample at
//! the same stack depth whose return addresses are all still in place is
//! the same stack, read in a few nanoseconds. Allocations made while a
//! thread captures (the unwinder's own, if any) are counted, never sampled,
//! so capturing never recurses.
//!
//! Symbolizing happens later, off the hot path: see the profiler's report.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{
    AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed,
    Ordering::Release,
};

use crate::Scope;

/// The mean bytes between samples when sampling is turned on without a
/// figure (as jemalloc's `lg_prof_sample = 19`).
pub const DEFAULT_SAMPLE_BYTES: u64 = 512 * 1024;

/// The deepest stack a sample keeps (innermost frames first).
pub const MAX_FRAMES: usize = 64;

/// Distinct (scope, stack) records the table holds.
pub const MAX_STACKS: usize = 4096;

/// The bit of an owner tag that marks a sampled block (scope ids stay below
/// `MAX_SCOPES`, 2^14).
pub(crate) const SAMPLED: u32 = 1 << 14;

/// Mean bytes between samples; 0 is off.
static MEAN: AtomicU64 = AtomicU64::new(0);

/// Turns sampling on with `mean_bytes` between samples on average (0 turns
/// it off). Threads pick the change up within [`FLUSH_BYTES`](crate::FLUSH_BYTES)
/// of their next allocations, or when they next enter a scope.
pub fn start_sampling(mean_bytes: u64) {
    MEAN.store(mean_bytes, Relaxed);
}

/// The mean bytes between samples, or `None` when sampling is off.
pub fn sample_bytes() -> Option<u64> {
    match MEAN.load(Relaxed) {
        0 => None,
        mean => Some(mean),
    }
}

pub(crate) fn mean() -> u64 {
    MEAN.load(Relaxed)
}

// ---------------------------------------------------------------------------
// The record table.
// ---------------------------------------------------------------------------

/// `state`: empty, being written, or ready (`READY | hash`).
const EMPTY: u64 = 0;
const WRITING: u64 = 1;
const READY: u64 = 1 << 63;
/// Consecutive records a stack is looked for in.
const PROBES: usize = 64;

struct Record {
    state: AtomicU64,
    scope: AtomicU32,
    depth: AtomicU32,
    frames: [AtomicUsize; MAX_FRAMES],
    samples: AtomicU64,
    usable: AtomicU64,
    requested: AtomicU64,
    live: AtomicI64,
}

impl Record {
    const fn new() -> Self {
        Record {
            state: AtomicU64::new(EMPTY),
            scope: AtomicU32::new(0),
            depth: AtomicU32::new(0),
            frames: [const { AtomicUsize::new(0) }; MAX_FRAMES],
            samples: AtomicU64::new(0),
            usable: AtomicU64::new(0),
            requested: AtomicU64::new(0),
            live: AtomicI64::new(0),
        }
    }

    fn matches(&self, hash: u64, scope: u32, frames: &[usize]) -> bool {
        self.state.load(Acquire) == READY | hash
            && self.scope.load(Relaxed) == scope
            && self.depth.load(Relaxed) as usize == frames.len()
            && self
                .frames
                .iter()
                .zip(frames)
                .all(|(a, &b)| a.load(Relaxed) == b)
    }
}

/// Records, then the overflow record (index `MAX_STACKS`).
static RECORDS: [Record; MAX_STACKS + 1] = [const { Record::new() }; MAX_STACKS + 1];
const OVERFLOW_RECORD: usize = MAX_STACKS;
static TABLE_FULL: AtomicU64 = AtomicU64::new(0);

fn hash(scope: u32, frames: &[usize]) -> u64 {
    let mut h = u64::from(scope).wrapping_add(0x9E37_79B9_7F4A_7C15);
    for &f in frames {
        h = (h ^ f as u64)
            .wrapping_mul(0x1000_0000_01B3)
            .rotate_left(29);
    }
    h & !READY
}

/// The record of (`scope`, `frames`), entered if new; never blocks.
fn record_of(scope: u32, frames: &[usize]) -> usize {
    let h = hash(scope, frames);
    let first = (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize;
    for i in 0..PROBES {
        let index = (first + i) % MAX_STACKS;
        let r = &RECORDS[index];
        match r.state.load(Acquire) {
            EMPTY => {
                if r.state
                    .compare_exchange(EMPTY, WRITING, Relaxed, Relaxed)
                    .is_ok()
                {
                    r.scope.store(scope, Relaxed);
                    r.depth.store(frames.len() as u32, Relaxed);
                    for (slot, &f) in r.frames.iter().zip(frames) {
                        slot.store(f, Relaxed);
                    }
                    r.state.store(READY | h, Release);
                    return index;
                }
                if r.matches(h, scope, frames) {
                    return index;
                }
            }
            // Another thread is entering a stack here: look further (at
            // worst the same stack gets two records, added up when read).
            WRITING => {}
            _ => {
                if r.matches(h, scope, frames) {
                    return index;
                }
            }
        }
    }
    TABLE_FULL.fetch_add(1, Relaxed);
    OVERFLOW_RECORD
}

/// Samples whose stack found the record table full; they add up in one
/// record with no frames.
pub fn stack_table_overflows() -> u64 {
    TABLE_FULL.load(Relaxed)
}

// ---------------------------------------------------------------------------
// Owner mode: the live sampled blocks.
// ---------------------------------------------------------------------------

const LIVE_BITS: u32 = 15;
const LIVE_SLOTS: usize = 1 << LIVE_BITS;
const LIVE_PROBES: usize = 32;
/// Values: the record above the weight.
const WEIGHT_BITS: u32 = 50;

/// Keys: block address (never 0); values: record and weight.
static LIVE_KEYS: [AtomicUsize; LIVE_SLOTS] = [const { AtomicUsize::new(0) }; LIVE_SLOTS];
static LIVE_VALUES: [AtomicU64; LIVE_SLOTS] = [const { AtomicU64::new(0) }; LIVE_SLOTS];
static LIVE_FULL: AtomicU64 = AtomicU64::new(0);

/// Owner mode: sampled blocks that found the table of live samples full;
/// their bytes count as allocated, never as live.
pub fn live_table_overflows() -> u64 {
    LIVE_FULL.load(Relaxed)
}

fn live_probe(ptr: usize) -> impl Iterator<Item = usize> {
    let first =
        ((ptr as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - LIVE_BITS)) as usize;
    (0..LIVE_PROBES).map(move |i| (first + i) % LIVE_SLOTS)
}

/// A sample's record and weight, packed in one word.
#[derive(Clone, Copy)]
pub(crate) struct Taken(pub(crate) u64);

impl Taken {
    fn record(self) -> usize {
        (self.0 >> WEIGHT_BITS) as usize
    }
    fn weight(self) -> u64 {
        self.0 & ((1 << WEIGHT_BITS) - 1)
    }
}

/// Owner mode: block `ptr`, just sampled as `taken`, is live; returns
/// whether it is entered (its tag may then carry [`SAMPLED`]).
pub(crate) fn enter_live(ptr: *mut u8, taken: Taken) -> bool {
    let key = ptr as usize;
    for i in live_probe(key) {
        if LIVE_KEYS[i]
            .compare_exchange(0, key, Relaxed, Relaxed)
            .is_ok()
        {
            LIVE_VALUES[i].store(taken.0, Relaxed);
            RECORDS[taken.record()]
                .live
                .fetch_add(taken.weight() as i64, Relaxed);
            return true;
        }
    }
    LIVE_FULL.fetch_add(1, Relaxed);
    false
}

/// Owner mode: block `ptr`, tagged [`SAMPLED`], is freed (or moved by a
/// reallocation); returns its sample.
#[cold]
#[inline(never)]
pub(crate) fn leave_live(ptr: *mut u8) -> Option<Taken> {
    let key = ptr as usize;
    for i in live_probe(key) {
        if LIVE_KEYS[i].load(Relaxed) == key {
            // Only the block's holder touches its entry once it is in.
            let taken = Taken(LIVE_VALUES[i].swap(0, Relaxed));
            LIVE_KEYS[i].store(0, Relaxed);
            RECORDS[taken.record()]
                .live
                .fetch_sub(taken.weight() as i64, Relaxed);
            return Some(taken);
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Taking a sample.
// ---------------------------------------------------------------------------

/// A thread's sampling state, kept in its counters (cold fields).
pub(crate) struct Sampler {
    /// The mean this thread armed with (0: not sampling).
    pub(crate) mean: Cell<u64>,
    /// Usable bytes that may still be allocated before the next sample.
    pub(crate) left: Cell<u64>,
    /// The current slot's allocated usable bytes when `left` was last set.
    pub(crate) armed: Cell<u64>,
    rng: Cell<u64>,
    capturing: Cell<bool>,
    /// Owner mode: the last sample, for its block's tag.
    pub(crate) pending: Cell<u64>,
}

impl Sampler {
    pub(crate) const fn new() -> Self {
        Sampler {
            mean: Cell::new(0),
            left: Cell::new(0),
            armed: Cell::new(0),
            rng: Cell::new(0),
            capturing: Cell::new(false),
            pending: Cell::new(0),
        }
    }

    /// Follows the process-wide mean; draws a new countdown when it changed.
    pub(crate) fn follow(&self) {
        let mean = mean();
        if mean != self.mean.get() {
            self.mean.set(mean);
            if mean != 0 {
                self.left.set(self.draw(mean));
            }
        }
    }

    /// Usable bytes to the next sample: exponential with mean `mean`.
    fn draw(&self, mean: u64) -> u64 {
        let mut x = self.rng.get();
        if x == 0 {
            static SEEDS: AtomicU64 = AtomicU64::new(0x2545_F491_4F6C_DD1D);
            x = SEEDS.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed)
                ^ (self as *const Self as u64).rotate_left(32)
                | 1;
        }
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        let bits = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        // In (0, 1].
        let u = (bits + 1) as f64 / (1u64 << 53) as f64;
        (-u.ln() * mean as f64) as u64
    }

    /// The allocation of `usable` bytes (`requested` asked for) that took
    /// the thread's allocated bytes `consumed` past its countdown, in
    /// `scope`: samples it unless the thread is capturing already. Returns
    /// the sample, if taken.
    #[inline(never)]
    pub(crate) fn take(&self, scope: u32, requested: usize, usable: usize) -> Option<Taken> {
        let mean = self.mean.get();
        self.left.set(self.draw(mean));
        if self.capturing.get() || mean == 0 || usable == 0 {
            return None;
        }
        self.capturing.set(true);
        let mut frames = [0usize; MAX_FRAMES];
        let depth = capture(&mut frames);
        let record = record_of(scope, &frames[..depth]);
        self.capturing.set(false);
        // A block of `usable` bytes is sampled with probability
        // 1 - exp(-usable / mean).
        let p = -(-(usable as f64) / mean as f64).exp_m1();
        let weight = ((usable as f64 / p) as u64).min((1 << WEIGHT_BITS) - 1);
        let weight_requested = (requested as f64 / p) as u64;
        let r = &RECORDS[record];
        r.samples.fetch_add(1, Relaxed);
        r.usable.fetch_add(weight, Relaxed);
        r.requested.fetch_add(weight_requested, Relaxed);
        Some(Taken(((record as u64) << WEIGHT_BITS) | weight))
    }
}

// ---------------------------------------------------------------------------
// Capturing a stack.
// ---------------------------------------------------------------------------

unsafe extern "C" {
    fn _Unwind_Backtrace(
        trace: extern "C" fn(*mut c_void, *mut c_void) -> c_int,
        arg: *mut c_void,
    ) -> c_int;
    fn _Unwind_GetIP(context: *mut c_void) -> usize;
    fn _Unwind_GetCFA(context: *mut c_void) -> usize;
}

/// `_URC_NO_REASON` and `_URC_END_OF_STACK`.
const URC_CONTINUE: c_int = 0;
const URC_STOP: c_int = 5;

/// One stack as the unwinder walked it: return addresses and the stack
/// addresses just above which they lie.
struct Walk {
    ips: [usize; MAX_FRAMES + 1],
    cfas: [usize; MAX_FRAMES + 1],
    len: usize,
}

extern "C" fn step(context: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` that `capture` passed, alive and ours.
    let walk = unsafe { &mut *arg.cast::<Walk>() };
    // SAFETY: `context` is the unwinder's, valid during this call.
    let (ip, cfa) = unsafe { (_Unwind_GetIP(context), _Unwind_GetCFA(context)) };
    if ip == 0 || walk.len == walk.ips.len() {
        return URC_STOP;
    }
    walk.ips[walk.len] = ip;
    walk.cfas[walk.len] = cfa;
    walk.len += 1;
    URC_CONTINUE
}

static UNWINDS: AtomicU64 = AtomicU64::new(0);

/// Samples whose stack the unwinder walked; the others were recognized
/// among the stacks their thread remembered.
pub fn unwinds() -> u64 {
    UNWINDS.load(Relaxed)
}

/// Stacks a thread remembers.
const CACHED: usize = 4;

/// A remembered stack: the stack pointer in [`capture`] when it was walked,
/// and for each frame its return address and where it lies.
struct Cached {
    sp: Cell<usize>,
    len: Cell<usize>,
    ips: [Cell<usize>; MAX_FRAMES],
    at: [Cell<usize>; MAX_FRAMES],
}

struct Cache {
    entries: [Cached; CACHED],
    next: Cell<usize>,
}

thread_local! {
    static CACHE: Cache = const {
        Cache {
            entries: [const {
                Cached {
                    sp: Cell::new(0),
                    len: Cell::new(0),
                    ips: [const { Cell::new(0) }; MAX_FRAMES],
                    at: [const { Cell::new(0) }; MAX_FRAMES],
                }
            }; CACHED],
            next: Cell::new(0),
        }
    };
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads a register.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

/// Writes the calling stack's return addresses, innermost first and
/// without this function's own frame, into `out`; returns how many.
#[inline(never)]
fn capture(out: &mut [usize; MAX_FRAMES]) -> usize {
    #[cfg(target_arch = "x86_64")]
    let sp = stack_pointer();
    #[cfg(target_arch = "x86_64")]
    if let Some(len) = CACHE.try_with(|c| c.find(sp, out)).ok().flatten() {
        return len;
    }
    let mut walk = Walk {
        ips: [0; MAX_FRAMES + 1],
        cfas: [0; MAX_FRAMES + 1],
        len: 0,
    };
    UNWINDS.fetch_add(1, Relaxed);
    // SAFETY: `step` only writes into `walk`, which outlives the call.
    unsafe { _Unwind_Backtrace(step, (&raw mut walk).cast()) };
    // Frame 0 is this function.
    let len = walk.len.saturating_sub(1);
    out[..len].copy_from_slice(&walk.ips[1..=len]);
    #[cfg(target_arch = "x86_64")]
    let _ = CACHE.try_with(|c| c.remember(sp, &walk));
    len
}

#[cfg(target_arch = "x86_64")]
impl Cache {
    /// The remembered stack that is still the calling one, copied to `out`.
    fn find(&self, sp: usize, out: &mut [usize; MAX_FRAMES]) -> Option<usize> {
        let e = self
            .entries
            .iter()
            .find(|e| e.len.get() != 0 && e.sp.get() == sp && e.holds())?;
        let len = e.len.get();
        for (o, ip) in out.iter_mut().zip(&e.ips[..len]) {
            *o = ip.get();
        }
        Some(len)
    }

    /// Remembers a walked stack, if each return address lies where x86-64
    /// puts it, just below the frame's CFA as the unwinder reports it.
    fn remember(&self, sp: usize, walk: &Walk) {
        let len = walk.len.saturating_sub(1);
        let placed = (1..=len).all(|i| {
            // SAFETY: the unwinder just read this frame's return address
            // from this thread's stack, at or near this word.
            walk.cfas[i] >= 8 && unsafe { *((walk.cfas[i] - 8) as *const usize) } == walk.ips[i]
        });
        if len == 0 || !placed {
            return;
        }
        let e = &self.entries[self.next.get() % CACHED];
        self.next.set(self.next.get().wrapping_add(1));
        e.sp.set(sp);
        e.len.set(len);
        for i in 0..len {
            e.ips[i].set(walk.ips[i + 1]);
            e.at[i].set(walk.cfas[i + 1] - 8);
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Cached {
    /// Whether every return address is still where it was. `capture` is
    /// at the same stack pointer, so every word read lies between it and
    /// the base of this thread's stack.
    fn holds(&self) -> bool {
        (0..self.len.get()).all(|i| {
            // SAFETY: see above: a word of this thread's own stack.
            unsafe { *(self.at[i].get() as *const usize) == self.ips[i].get() }
        })
    }
}

// ---------------------------------------------------------------------------
// Reading.
// ---------------------------------------------------------------------------

/// One scope's samples with one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledStack {
    /// The record's index, as [`live_by_stack`] names it.
    pub id: usize,
    /// The scope the sampled blocks were charged to.
    pub scope: Scope,
    /// Return addresses, innermost first; empty for the record of samples
    /// that found the table full. The innermost frames are the allocator's
    /// own; symbolizers drop them.
    pub frames: Vec<usize>,
    /// Samples taken.
    pub samples: u64,
    /// Estimated usable bytes allocated (each sample weighted by the
    /// inverse of its probability).
    pub allocated_usable: u64,
    /// Estimated requested bytes allocated.
    pub allocated_requested: u64,
    /// Owner mode: estimated usable bytes allocated and still live; `None`
    /// in counting mode.
    pub live: Option<i64>,
}

/// Every (scope, stack) sampled so far, in table order.
pub fn sampled_stacks() -> Vec<SampledStack> {
    let owner = crate::attribution() == Some(crate::Attribution::Owner);
    RECORDS
        .iter()
        .enumerate()
        .take(MAX_STACKS)
        .filter(|(_, r)| r.state.load(Acquire) & READY != 0 && r.samples.load(Relaxed) != 0)
        .map(|(id, r)| {
            let depth = (r.depth.load(Relaxed) as usize).min(MAX_FRAMES);
            SampledStack {
                id,
                scope: Scope::from_id(r.scope.load(Relaxed)),
                frames: r.frames[..depth].iter().map(|f| f.load(Relaxed)).collect(),
                samples: r.samples.load(Relaxed),
                allocated_usable: r.usable.load(Relaxed),
                allocated_requested: r.requested.load(Relaxed),
                live: owner.then(|| r.live.load(Relaxed)),
            }
        })
        .chain({
            let r = &RECORDS[OVERFLOW_RECORD];
            (r.samples.load(Relaxed) != 0).then(|| SampledStack {
                id: OVERFLOW_RECORD,
                scope: Scope::OVERFLOW,
                frames: Vec::new(),
                samples: r.samples.load(Relaxed),
                allocated_usable: r.usable.load(Relaxed),
                allocated_requested: r.requested.load(Relaxed),
                live: owner.then(|| r.live.load(Relaxed)),
            })
        })
        .collect()
}

/// Owner mode: the estimated live bytes of every record that has any now,
/// as (`SampledStack::id`, bytes); allocates nothing once `out` has room,
/// cheap enough to call at each new heap peak.
pub fn live_by_stack(out: &mut Vec<(usize, i64)>) {
    out.clear();
    for (i, r) in RECORDS.iter().enumerate() {
        if r.state.load(Relaxed) & READY != 0 || i == OVERFLOW_RECORD {
            let live = r.live.load(Relaxed);
            if live != 0 {
                out.push((i, live));
            }
        }
    }
}

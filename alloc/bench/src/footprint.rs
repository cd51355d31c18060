//! Owner mode's memory cost: the usable bytes a fixed set of blocks holds,
//! as memledger itself counts them.
//!
//! memledger counts the usable bytes of the block the inner allocator really
//! handed out, so any bytes owner mode adds to a block for its scope tag show
//! up there as a larger size class. Allocating the same blocks under the
//! counting and the owner binary and comparing `heap().live_usable` gives the
//! tags' cost in real size classes. Memory an allocator keeps outside the
//! blocks (a table of its own) is not in this figure.

use std::alloc::{Layout, dealloc};

use crate::workload::{CHURN_LIVE_BLOCKS, CHURN_SEED, allocate, churn_size, layout, next_random};

/// A fixed set of block sizes, the same in every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// The pair workload's sizes (8, 16, ..., 128 B), 256 blocks of each.
    PairSizes,
    /// The churn workload's first [`CHURN_LIVE_BLOCKS`] sizes (8 B to 8 KiB).
    ChurnSizes,
    /// Power-of-two sizes 8 B to 64 KiB, each with every power-of-two
    /// alignment 8 to 4096, 16 blocks of each: the contract says tagging
    /// never moves these into a larger size class.
    PowersOfTwo,
}

impl Pattern {
    /// Both patterns, in print order.
    pub const ALL: [Pattern; 3] = [
        Pattern::PairSizes,
        Pattern::ChurnSizes,
        Pattern::PowersOfTwo,
    ];

    /// The short name used between the processes.
    pub fn key(self) -> &'static str {
        match self {
            Pattern::PairSizes => "pair-sizes",
            Pattern::ChurnSizes => "churn-sizes",
            Pattern::PowersOfTwo => "powers-of-two",
        }
    }

    /// The pattern named `key`, if any.
    pub fn from_key(key: &str) -> Option<Pattern> {
        Pattern::ALL.into_iter().find(|p| p.key() == key)
    }

    /// The table label.
    pub fn label(self) -> &'static str {
        match self {
            Pattern::PairSizes => "pair sizes (8–128 B)",
            Pattern::ChurnSizes => "churn sizes (8 B–8 KiB)",
            Pattern::PowersOfTwo => "powers of two 8 B–64 KiB, align 8–4096",
        }
    }

    /// The blocks' layouts.
    pub fn layouts(self) -> Vec<Layout> {
        match self {
            Pattern::PairSizes => (0..16 * 256).map(|i| layout(8 + (i % 16) * 8)).collect(),
            Pattern::ChurnSizes => {
                let mut state = CHURN_SEED | 1;
                (0..CHURN_LIVE_BLOCKS)
                    .map(|_| layout(churn_size(next_random(&mut state))))
                    .collect()
            }
            Pattern::PowersOfTwo => (3..=16)
                .flat_map(|size_log| (3..=12).map(move |align_log| (1 << size_log, 1 << align_log)))
                .flat_map(|(size, align)| {
                    Layout::from_size_align(size, align)
                        .map(|l| [l; 16])
                        .into_iter()
                        .flatten()
                })
                .collect(),
        }
    }
}

/// What one pattern's blocks hold while all of them are live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Blocks allocated.
    pub blocks: u64,
    /// Requested bytes: the sum of the sizes.
    pub requested: u64,
    /// Usable bytes memledger counted for them (`live_usable` after minus before).
    pub usable: i64,
}

/// Allocates every block of `pattern` through the global allocator, reads
/// memledger's live usable bytes, and frees them. Exact when no other thread
/// allocates meanwhile (live figures are exact when read).
pub fn measure(pattern: Pattern) -> Footprint {
    let layouts = pattern.layouts();
    // Both vectors are allocated before the first reading.
    let mut blocks = Vec::with_capacity(layouts.len());
    let before = memledger_alloc::heap().live_usable;
    for &layout in &layouts {
        blocks.push(allocate(layout));
    }
    let after = memledger_alloc::heap().live_usable;
    for (&ptr, &layout) in blocks.iter().zip(&layouts) {
        // SAFETY: allocated above with `layout`, freed once.
        unsafe { dealloc(ptr, layout) };
    }
    Footprint {
        blocks: layouts.len() as u64,
        requested: layouts.iter().map(|l| l.size() as u64).sum(),
        usable: after - before,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_fixed() {
        let pairs = Pattern::PairSizes.layouts();
        assert_eq!(pairs.len(), 4096);
        let requested: usize = pairs.iter().map(|l| l.size()).sum();
        assert_eq!(requested, 256 * (8..=128).step_by(8).sum::<usize>());
        assert_eq!(Pattern::ChurnSizes.layouts(), Pattern::ChurnSizes.layouts());
        assert_eq!(Pattern::ChurnSizes.layouts().len(), CHURN_LIVE_BLOCKS);
        let powers = Pattern::PowersOfTwo.layouts();
        assert_eq!(powers.len(), 14 * 10 * 16);
        assert!(powers.iter().any(|l| l.size() == 8 && l.align() == 4096));
        assert!(powers.iter().any(|l| l.size() == 65536 && l.align() == 8));
    }

    #[test]
    fn keys_round_trip() {
        for p in Pattern::ALL {
            assert_eq!(Pattern::from_key(p.key()), Some(p));
        }
    }
}

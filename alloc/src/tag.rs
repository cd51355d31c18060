//! Owner mode's per-block tags: where a block keeps the id of the scope that
//! allocated it, without ever asking the inner allocator for more bytes.
//!
//! The place is a function of the block's requested and usable size alone,
//! so `dealloc` and `realloc` find it again. Sizes are taken rounded up to
//! a whole word (8 bytes), so that the place is the same for every size of
//! a word and the hot path reads it from the same table entry as the
//! block's size class:
//!
//! - **side table**: blocks of [`OWNER_SIDE_TABLE_ALWAYS`] bytes or more, and
//!   blocks without slack whose rounded size is [`OWNER_SIDE_TABLE_MIN`]
//!   bytes or more (power-of-two buffers, Arrow's 64-byte-rounded ones), are
//!   entered in a fixed, lock-free hash table keyed by address: a trailer at
//!   the far end of a large block would cost a cache miss on each
//!   allocation and free;
//! - **trailer**: other blocks whose usable size is at least
//!   [`OWNER_TAG_BYTES`] past their rounded size keep the id in their last
//!   four usable bytes, which the program never sees;
//! - **none**: smaller blocks with no slack (8, 16, 32, 48, 64, 128 bytes…,
//!   and sizes within a word of such a class, as 60 bytes in 64) carry no
//!   tag, and neither does a large block when its probe window in the table
//!   is full; their frees are charged as in counting mode, to the scope that
//!   frees them.
//!
//! So tagging never moves a block into a larger size class and the measured
//! program's memory is what it would be without memledger, apart from the
//! table (2 MiB of address space, touched a page at a time; 131 072 entries,
//! each block looked for in 32 consecutive ones).
//!
//! A side-table entry also keeps the block's sizes, so a block can be found
//! from its address alone and [recharged](crate::recharge) to another scope.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::stacks::SAMPLED;

/// Bytes of an owner tag in a block's slack.
pub const OWNER_TAG_BYTES: usize = 4;

/// Blocks without slack for a trailer are tagged in the side table when
/// their size rounded up to a word is this many bytes or more (from 249
/// bytes); smaller ones go untagged.
pub const OWNER_SIDE_TABLE_MIN: usize = 256;

/// Blocks of this many bytes or more are always tagged in the side table.
pub const OWNER_SIDE_TABLE_ALWAYS: usize = 1024;

const TABLE_BITS: u32 = 17;
const TABLE_SLOTS: usize = 1 << TABLE_BITS;
/// A block is looked for in this many consecutive entries from its hash.
const PROBES: usize = 32;
/// Scope ids and the sampled bit fit in the low bits of an entry
/// (`MAX_SCOPES` is 2^14).
const SCOPE_BITS: u32 = 15;
const SCOPE_MASK: u64 = (1 << SCOPE_BITS) - 1;

/// Bits of an entry's `sizes` word that hold the requested size; the slack
/// (usable minus requested) is above them.
const REQUESTED_BITS: u32 = 40;

/// One side-table entry: `address >> 4` above the scope id (0 is empty),
/// and the block's sizes (requested, and the slack above it; 0 when they do
/// not fit). Side-table blocks are at least 249 bytes long, so two live ones
/// never share an `address >> 4`.
#[repr(C, align(16))]
struct Entry {
    key: AtomicU64,
    sizes: AtomicU64,
}

static TABLE: [Entry; TABLE_SLOTS] = [const {
    Entry {
        key: AtomicU64::new(0),
        sizes: AtomicU64::new(0),
    }
}; TABLE_SLOTS];

/// The `sizes` word of a block, or 0 when they do not fit.
fn pack_sizes(size: usize, usable: usize) -> u64 {
    let (size, slack) = (size as u64, usable.saturating_sub(size) as u64);
    if size >> REQUESTED_BITS == 0 && slack >> (64 - REQUESTED_BITS) == 0 {
        slack << REQUESTED_BITS | size
    } else {
        0
    }
}

/// Where a block's tag lies.
#[derive(Clone, Copy)]
enum Place {
    /// In the block's slack, at [`trailer`].
    Trailer,
    /// In the side table.
    Side,
    /// Nowhere: the block is untagged.
    None,
}

/// Where the tag of a block of `size` requested and `usable` bytes lies.
#[inline(always)]
const fn place(size: usize, usable: usize) -> Place {
    // Rounded to the word, saturating (no block is that large).
    let rounded = match size.checked_next_multiple_of(8) {
        Some(rounded) => rounded,
        None => usize::MAX,
    };
    if size >= OWNER_SIDE_TABLE_ALWAYS {
        Place::Side
    } else if usable >= rounded + OWNER_TAG_BYTES {
        Place::Trailer
    } else if rounded >= OWNER_SIDE_TABLE_MIN {
        Place::Side
    } else {
        Place::None
    }
}

/// In an owner-mode increment (see [`crate::Inner`]'s `packed_increment`):
/// the block's tag is at its [`trailer`].
/// The flags sit above the requested field's 16 significant bits, and come
/// off before the increment is counted.
pub(crate) const PACKED_TRAILER: u64 = 1 << 19;
/// In an owner-mode increment: the block's tag is in the side table.
pub(crate) const PACKED_SIDE: u64 = 1 << 18;
/// Both flags.
pub(crate) const PACKED_FLAGS: u64 = PACKED_TRAILER | PACKED_SIDE;
// One operation's requested bytes (at most its usable bytes) stay below them.
const _: () = assert!((crate::thread::PACKED_MAX as u64) < PACKED_SIDE);

/// The flags of an owner-mode increment for a block of these sizes.
#[inline(always)]
pub(crate) const fn packed_flags(size: usize, usable: usize) -> u64 {
    match place(size, usable) {
        Place::Trailer => PACKED_TRAILER,
        Place::Side => PACKED_SIDE,
        Place::None => 0,
    }
}

fn key(ptr: *mut u8) -> u64 {
    (ptr as usize as u64) >> 4
}

fn first_index(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TABLE_BITS)) as usize
}

fn probe(key: u64) -> impl Iterator<Item = &'static Entry> {
    let first = first_index(key);
    (0..PROBES).map(move |i| &TABLE[(first + i) % TABLE_SLOTS])
}

/// Enters the block in the side table with `scope`; returns whether it is
/// in (its probe window was not full).
#[cold]
pub(crate) fn side_insert(ptr: *mut u8, size: usize, usable: usize, scope: u32) -> bool {
    let k = key(ptr);
    let entry = (k << SCOPE_BITS) | (u64::from(scope) & SCOPE_MASK);
    for slot in probe(k) {
        if slot
            .key
            .compare_exchange(0, entry, Relaxed, Relaxed)
            .is_ok()
        {
            // Read only by a holder of the block, which got it after this.
            slot.sizes.store(pack_sizes(size, usable), Relaxed);
            return true;
        }
    }
    // Window full: the block goes untagged.
    TABLE_FULL.fetch_add(1, Relaxed);
    false
}

/// Blocks that found their probe window in the side table full.
static TABLE_FULL: AtomicU64 = AtomicU64::new(0);

/// Owner mode: how many blocks that belonged in the side table found it
/// full and went untagged (their frees were charged as in counting mode).
/// 0 means every large block was charged back to its owner.
pub fn side_table_overflows() -> u64 {
    TABLE_FULL.load(Relaxed)
}

/// Takes the block's entry out of the side table and returns its scope,
/// or `None` when it has none.
#[cold]
pub(crate) fn side_take(ptr: *mut u8) -> Option<u32> {
    let k = key(ptr);
    for slot in probe(k) {
        let entry = slot.key.load(Relaxed);
        if entry != 0 && entry >> SCOPE_BITS == k {
            // Once it is in, only holders of the block touch its entry, and
            // a free comes after every other holder is done with it.
            slot.key.store(0, Relaxed);
            return Some((entry & SCOPE_MASK) as u32);
        }
    }
    None
}

/// A block moved from one scope to another by [`side_recharge`].
pub(crate) struct Moved {
    /// The scope it belonged to.
    pub(crate) from: u32,
    pub(crate) requested: usize,
    pub(crate) usable: usize,
}

/// What [`side_recharge`] found.
pub(crate) enum Recharge {
    /// Nothing moved: the block is not in the side table (or its sizes are
    /// unknown), or it belongs to a scope the caller did not accept.
    Unknown,
    /// The block already belongs to the scope; it holds `usable` bytes.
    Already(usize),
    /// The block now belongs to the scope.
    Moved(Moved),
}

/// Re-tags the side-table block at `ptr` with scope `to` (keeping its
/// sampled bit), if `from` accepts the scope it belongs to now. Never
/// dereferences `ptr`.
///
/// Exact while the caller holds the block, so that it cannot be freed (and
/// its address reused) meanwhile; concurrent recharges of one block are
/// each applied once, in some order.
pub(crate) fn side_recharge(ptr: *const u8, to: u32, from: impl Fn(u32) -> bool) -> Recharge {
    let k = key(ptr.cast_mut());
    if k == 0 || ptr as usize % 16 != 0 {
        return Recharge::Unknown;
    }
    for slot in probe(k) {
        let mut entry = slot.key.load(Relaxed);
        if entry == 0 || entry >> SCOPE_BITS != k {
            continue;
        }
        let sizes = slot.sizes.load(Relaxed);
        if sizes == 0 {
            return Recharge::Unknown;
        }
        let requested = (sizes & ((1 << REQUESTED_BITS) - 1)) as usize;
        let usable = requested + (sizes >> REQUESTED_BITS) as usize;
        loop {
            let owner = (entry & SCOPE_MASK) as u32;
            if owner & !SAMPLED == to {
                return Recharge::Already(usable);
            }
            if !from(owner & !SAMPLED) {
                return Recharge::Unknown;
            }
            let moved = (entry & !SCOPE_MASK) | u64::from((owner & SAMPLED) | to);
            match slot.key.compare_exchange(entry, moved, Relaxed, Relaxed) {
                Ok(_) => {
                    return Recharge::Moved(Moved {
                        from: owner & !SAMPLED,
                        requested,
                        usable,
                    });
                }
                // Another holder recharged it meanwhile: go on from there.
                Err(now) if now >> SCOPE_BITS == k => entry = now,
                Err(_) => return Recharge::Unknown,
            }
        }
    }
    Recharge::Unknown
}

/// Where a block of `usable` bytes at `ptr` keeps a trailer tag: its last
/// [`OWNER_TAG_BYTES`] usable bytes. Only computes the address.
#[inline(always)]
pub(crate) fn trailer(ptr: *mut u8, usable: usize) -> *mut u32 {
    ptr.wrapping_add(usable - OWNER_TAG_BYTES).cast()
}

/// Tags the block `ptr` (`size` requested, `usable` usable bytes) with
/// `scope`; returns whether the block carries the tag.
///
/// # Safety
///
/// `ptr` is a live block of at least `usable` bytes that the caller owns.
#[inline(always)]
pub(crate) unsafe fn write(ptr: *mut u8, size: usize, usable: usize, scope: u32) -> bool {
    match place(size, usable) {
        Place::Trailer => {
            // SAFETY: the trailer lies in the block's slack, past what the
            // program may touch (the caller's contract).
            unsafe { trailer(ptr, usable).write_unaligned(scope) };
            true
        }
        Place::Side => side_insert(ptr, size, usable, scope),
        Place::None => false,
    }
}

/// Whether a block of these sizes can carry a tag.
pub(crate) fn taggable(size: usize, usable: usize) -> bool {
    !matches!(place(size, usable), Place::None)
}

/// Takes the tag off the block `ptr` (removing its side-table entry) and
/// returns the scope it names, or `None` for an untagged block.
///
/// # Safety
///
/// `ptr` is a live block tagged by [`write`] with the same sizes.
#[inline(always)]
pub(crate) unsafe fn take(ptr: *mut u8, size: usize, usable: usize) -> Option<u32> {
    match place(size, usable) {
        // SAFETY: as in `write`.
        Place::Trailer => Some(unsafe { trailer(ptr, usable).read_unaligned() }),
        Place::Side => side_take(ptr),
        Place::None => None,
    }
}

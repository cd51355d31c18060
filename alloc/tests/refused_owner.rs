//! Owner mode over mimalloc counts every block after mimalloc answers (it
//! tags the block then): a refusal counts nothing, and the live figures
//! stay exact.

use memledger_alloc::{MiMalloc, Owner, Tracked};

mod refusals;

#[global_allocator]
static GLOBAL: Tracked<MiMalloc, Owner> = Tracked::new(MiMalloc);

#[test]
fn refused_small_blocks_leave_live_figures_exact() {
    // 64 and 128 B are untagged; 72 B has a trailer; 4 KiB and 300 B are
    // in the side table.
    refusals::run(
        "refused_small_blocks_leave_live_figures_exact",
        &[64, 4096, 128, 72, 300],
    );
}

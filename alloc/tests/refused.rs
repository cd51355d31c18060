//! Counting mode over mimalloc: blocks of up to 8 KiB are counted before
//! mimalloc answers; those it refuses are counted as freed when it reports
//! the refusal, so live figures stay exact.

use memledger_alloc::{MiMalloc, Tracked};

mod refusals;

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

#[test]
fn refused_small_blocks_leave_live_figures_exact() {
    refusals::run(
        "refused_small_blocks_leave_live_figures_exact",
        &[4096, 64, 100, 8000, 24],
    );
}

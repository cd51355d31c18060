//! Peer: `stats_alloc::StatsAlloc<MiMalloc>` (shared atomic counters).

use memledger_alloc_bench::{Installed, child_main};
use mimalloc::MiMalloc;
use stats_alloc::StatsAlloc;

#[global_allocator]
static GLOBAL: StatsAlloc<MiMalloc> = StatsAlloc::new(MiMalloc);

fn main() -> std::process::ExitCode {
    child_main(Installed::Other)
}

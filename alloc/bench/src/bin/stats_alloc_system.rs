//! Peer: `stats_alloc::StatsAlloc<System>`, the crate's own instrumented system allocator.

use memledger_alloc_bench::{Installed, child_main};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn main() -> std::process::ExitCode {
    child_main(Installed::Other)
}

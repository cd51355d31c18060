//! Peer: `cap::Cap<MiMalloc>` with no limit (one shared atomic counter).

use cap::Cap;
use memledger_alloc_bench::{Installed, child_main};
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: Cap<MiMalloc> = Cap::new(MiMalloc, usize::MAX);

fn main() -> std::process::ExitCode {
    child_main(Installed::Other)
}

//! Bare mimalloc: the baseline every ratio is taken against.

use memledger_alloc_bench::{Installed, child_main};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    child_main(Installed::Other)
}

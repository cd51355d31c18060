//! The system allocator (glibc malloc on Linux), bare.

use memledger_alloc_bench::{Installed, child_main};

#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;

fn main() -> std::process::ExitCode {
    child_main(Installed::Other)
}

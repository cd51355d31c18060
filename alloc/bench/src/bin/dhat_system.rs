//! Peer: dhat's heap profiler (`dhat::Alloc`, over the system allocator),
//! profiling on, nothing written at exit.

use memledger_alloc_bench::{Installed, child_main};

#[global_allocator]
static GLOBAL: dhat::Alloc = dhat::Alloc;

fn main() -> std::process::ExitCode {
    let _profiler = dhat::Profiler::builder().testing().build();
    child_main(Installed::Other)
}

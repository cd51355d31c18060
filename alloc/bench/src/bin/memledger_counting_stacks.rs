//! memledger in counting mode over mimalloc, sampling allocation stacks at
//! the default mean, as `MEMLEDGER_SAMPLE_BYTES` turns on in a profiled run.

use memledger_alloc::stacks::{DEFAULT_SAMPLE_BYTES, start_sampling};
use memledger_alloc::{MiMalloc, Tracked};
use memledger_alloc_bench::{Installed, child_main};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

fn main() -> std::process::ExitCode {
    start_sampling(DEFAULT_SAMPLE_BYTES);
    child_main(Installed::Memledger)
}

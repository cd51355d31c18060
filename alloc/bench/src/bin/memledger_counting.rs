//! memledger in counting mode over mimalloc: `Tracked<MiMalloc>`.

use memledger_alloc::{MiMalloc, Tracked};
use memledger_alloc_bench::{Installed, child_main};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

fn main() -> std::process::ExitCode {
    child_main(Installed::Memledger)
}

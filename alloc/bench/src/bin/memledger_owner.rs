//! memledger in owner mode over mimalloc: `Tracked<MiMalloc, Owner>`.

use memledger_alloc::{MiMalloc, Owner, Tracked};
use memledger_alloc_bench::{Installed, child_main};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc, Owner> = Tracked::new(MiMalloc);

fn main() -> std::process::ExitCode {
    child_main(Installed::Memledger)
}

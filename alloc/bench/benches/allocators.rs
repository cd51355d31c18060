//! The allocator benchmark: memledger against bare mimalloc and its peers,
//! each the `#[global_allocator]` of its own binary.
//!
//! ```text
//! cargo bench -p memledger-alloc-bench                          # full run
//! cargo bench -p memledger-alloc-bench -- --rounds 3 --scale 0.2  # quick look
//! cargo bench -p memledger-alloc-bench --features dhat            # with dhat
//! cargo bench -p memledger-alloc-bench -- --help
//! ```
//!
//! Cargo builds the binaries below before this one and hands over their paths.

use memledger_alloc_bench::{Contender, Role, driver_main};

fn main() -> std::process::ExitCode {
    let contenders = [
        Contender::new(
            "mimalloc (bare)",
            env!("CARGO_BIN_EXE_mimalloc-bare"),
            Role::Baseline,
        ),
        Contender::new(
            "System (bare)",
            env!("CARGO_BIN_EXE_system-bare"),
            Role::Peer,
        ),
        Contender::new(
            "memledger counting",
            env!("CARGO_BIN_EXE_memledger-counting"),
            Role::Counting,
        ),
        Contender::new(
            "memledger owner",
            env!("CARGO_BIN_EXE_memledger-owner"),
            Role::Owner,
        ),
        Contender::new(
            "memledger counting + stacks",
            env!("CARGO_BIN_EXE_memledger-counting-stacks"),
            Role::Sampling,
        ),
        Contender::new(
            "cap<mimalloc>",
            env!("CARGO_BIN_EXE_cap-mimalloc"),
            Role::Peer,
        ),
        Contender::new(
            "stats_alloc<mimalloc>",
            env!("CARGO_BIN_EXE_stats-alloc-mimalloc"),
            Role::Peer,
        ),
        Contender::new(
            "stats_alloc<System>",
            env!("CARGO_BIN_EXE_stats-alloc-system"),
            Role::Peer,
        ),
        Contender::new(
            "tracking-allocator<mimalloc>",
            env!("CARGO_BIN_EXE_tracking-allocator-mimalloc"),
            Role::Peer,
        ),
        #[cfg(feature = "dhat")]
        Contender::new("dhat", env!("CARGO_BIN_EXE_dhat-system"), Role::Peer).with_scale(0.01),
    ];
    driver_main(&contenders)
}

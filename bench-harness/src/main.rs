//! `mem_profile`: see the `memledger_harness` library docs, or `mem_profile --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(memledger_harness::app::main())
}

//! Peer: `tracking_allocator::Allocator<MiMalloc>`, tracking enabled with a
//! tracker that does nothing: the crate's own cost, the least a user pays.

use memledger_alloc_bench::{Installed, child_main};
use mimalloc::MiMalloc;
use tracking_allocator::{AllocationGroupId, AllocationRegistry, AllocationTracker, Allocator};

#[global_allocator]
static GLOBAL: Allocator<MiMalloc> = Allocator::from_allocator(MiMalloc);

struct Discard;

impl AllocationTracker for Discard {
    fn allocated(&self, _addr: usize, _object: usize, _wrapped: usize, _group: AllocationGroupId) {}

    fn deallocated(
        &self,
        _addr: usize,
        _object: usize,
        _wrapped: usize,
        _source: AllocationGroupId,
        _current: AllocationGroupId,
    ) {
    }
}

fn main() -> std::process::ExitCode {
    if AllocationRegistry::set_global_tracker(Discard).is_err() {
        return std::process::ExitCode::FAILURE;
    }
    AllocationRegistry::enable_tracking();
    child_main(Installed::Other)
}

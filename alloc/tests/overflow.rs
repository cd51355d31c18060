//! Past MAX_SCOPES, new scopes are the `overflow` scope: nothing breaks, no byte is lost.

use memledger_alloc::{MAX_SCOPES, MiMalloc, Scope, Tracked, overflowed_scope_names, scopes};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

#[test]
fn thousands_of_scopes_then_overflow() {
    let first = Scope::new("ExternalSorter[0]");
    let mut last = first;
    for i in 1..MAX_SCOPES - 2 {
        last = Scope::new(&format!("ExternalSorter[{i}]"));
    }
    assert_eq!(last.id() as usize, MAX_SCOPES - 1);
    assert_eq!(last.name(), format!("ExternalSorter[{}]", MAX_SCOPES - 3));
    let over = Scope::new("one too many");
    assert_eq!(over, Scope::OVERFLOW);
    assert_eq!(over.name(), "overflow");
    assert_eq!(overflowed_scope_names(), 1);
    assert_eq!(Scope::new("one too many"), Scope::OVERFLOW);
    assert_eq!(overflowed_scope_names(), 1, "a name is counted once");
    assert_eq!(Scope::new("another one"), Scope::OVERFLOW);
    assert_eq!(overflowed_scope_names(), 2);
    let v = over.in_scope(|| vec![0u8; 5000]);
    let w = last.in_scope(|| vec![0u8; 7000]);
    assert_eq!(Scope::OVERFLOW.stats().live_requested, 5000);
    assert_eq!(last.stats().live_requested, 7000);
    let all = scopes();
    assert_eq!(all.len(), MAX_SCOPES);
    assert_eq!(all[last.id() as usize].live_requested, 7000);
    assert_eq!(Scope::new("ExternalSorter[0]"), first);
    drop((v, w));
}

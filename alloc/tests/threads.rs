//! Threads: per-thread figures, the `exited` row, thread-local destructors,
//! many threads at once, and a forked child. Tests run one at a time (a lock)
//! because they read process-wide figures.

use std::cell::RefCell;
use std::sync::Mutex;

use memledger_alloc::{MiMalloc, Scope, Tracked, exited_threads, heap, this_thread, threads};

#[global_allocator]
static GLOBAL: Tracked<MiMalloc> = Tracked::new(MiMalloc);

static SERIAL: Mutex<()> = Mutex::new(());

fn exited_row() -> memledger_alloc::ThreadStats {
    threads()
        .into_iter()
        .find(|t| t.exited)
        .expect("an exited row is always present")
}

#[test]
fn a_thread_that_exits_lands_in_the_exited_row() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let row_before = exited_row();
    let exited_before = exited_threads();
    let tid = std::thread::Builder::new()
        .name("leaker".into())
        .spawn(|| {
            // Visible by name while alive.
            let me = this_thread().tid;
            let row = threads().into_iter().find(|t| t.tid == me).unwrap();
            assert_eq!(row.name, "leaker");
            Box::leak(vec![0u8; 1 << 20].into_boxed_slice());
            me
        })
        .unwrap()
        .join()
        .unwrap();
    let row_after = exited_row();
    assert!(exited_threads() > exited_before);
    // Counting mode: the thread also freed a few bytes its parent allocated
    // for it (its name, its closure), and the test runner's own threads may
    // exit meanwhile, so allow a little either way.
    let grew = row_after.live_requested - row_before.live_requested;
    assert!(
        ((1 << 20) - 65536..(1 << 20) + 65536).contains(&grew),
        "exited row grew by {grew}, expected the 1 MiB the thread leaked"
    );
    assert!(
        threads().iter().all(|t| t.tid != tid),
        "the thread's own row is gone"
    );
}

struct AllocOnDrop(RefCell<Option<std::sync::mpsc::Sender<(bool, i64)>>>);

impl Drop for AllocOnDrop {
    fn drop(&mut self) {
        // Runs during thread teardown, possibly after memledger folded this
        // thread's counters into the exited row.
        let leaked = Box::leak(vec![7u8; 300_000].into_boxed_slice());
        let me = this_thread();
        if let Some(tx) = self.0.borrow_mut().take() {
            let _ = tx.send((me.exited, leaked.len() as i64));
        }
    }
}

thread_local! {
    static LATE: AllocOnDrop = const { AllocOnDrop(RefCell::new(None)) };
}

extern "C" fn late_thread(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `arg` is the Box the spawner leaked for us.
    let tx = unsafe { Box::from_raw(arg.cast::<std::sync::mpsc::Sender<(bool, i64)>>()) };
    LATE.with(|l| {
        // The first allocation of this thread happens here, after LATE exists.
        *l.0.borrow_mut() = Some(*tx);
    });
    let v = vec![1u8; 1000];
    drop(v);
    std::ptr::null_mut()
}

#[test]
fn allocations_in_thread_local_destructors_are_counted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = heap().live_requested;
    let exited_before = exited_row().live_requested;
    let (tx, rx) = std::sync::mpsc::channel::<(bool, i64)>();
    // A raw pthread, so that nothing allocates on it before `late_thread`
    // touches LATE: LATE's destructor is then registered before memledger's
    // exit hook and runs after it (destructors run last-registered first).
    let tx = Box::into_raw(Box::new(tx));
    let mut thread: libc::pthread_t = 0;
    // SAFETY: `late_thread` takes ownership of `tx` and returns null.
    unsafe {
        assert_eq!(
            libc::pthread_create(&mut thread, std::ptr::null(), late_thread, tx.cast()),
            0
        );
        assert_eq!(libc::pthread_join(thread, std::ptr::null_mut()), 0);
    }
    let (after_teardown, leaked) = rx.recv().unwrap();
    assert!(
        after_teardown,
        "the destructor ran after memledger folded the thread"
    );
    let grew = heap().live_requested - before;
    assert!(
        (leaked - 65536..leaked + 65536).contains(&grew),
        "heap grew by {grew}"
    );
    let exited_grew = exited_row().live_requested - exited_before;
    assert!(
        (leaked - 65536..leaked + 65536).contains(&exited_grew),
        "exited row grew by {exited_grew} (destructor ran after teardown: {after_teardown})"
    );
}

#[test]
fn thirty_two_threads_churning_leave_no_drift() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scope = Scope::new("churn");
    let before = heap();
    let handles: Vec<_> = (0..32u64)
        .map(|t| {
            std::thread::spawn(move || {
                let _g = scope.enter();
                let mut seed = t * 7919 + 1;
                let mut live: Vec<Vec<u8>> = Vec::with_capacity(512);
                let mut bytes = 0u64;
                for _ in 0..20_000 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    if live.len() < 512 && seed % 3 != 0 {
                        let size = 8 + (seed % 8192) as usize;
                        bytes += size as u64;
                        live.push(vec![0u8; size]);
                    } else if !live.is_empty() {
                        let i = (seed as usize / 3) % live.len();
                        live.swap_remove(i);
                    }
                }
                drop(live);
                bytes
            })
        })
        .collect();
    let churned: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let after = heap();
    let s = scope.stats();
    assert_eq!(s.live_requested, 0, "every block freed inside the scope");
    assert_eq!(s.live_usable, 0);
    assert_eq!(s.allocations, s.deallocations);
    // Vec<Vec<u8>> of capacity 512 per thread plus the churned blocks.
    assert_eq!(s.total_requested, churned + 32 * 512 * 24);
    let drift = after.live_requested - before.live_requested;
    assert!(
        drift.abs() < 64 * 1024,
        "global live drifted by {drift} bytes"
    );
    assert!(after.allocations - before.allocations >= s.allocations);
}

#[test]
fn a_forked_child_keeps_counting() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A second thread with live bytes, so the child has a vanished thread to fold.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let kept = vec![3u8; 100_000];
        ready_tx.send(()).unwrap();
        rx.recv().unwrap();
        drop(kept);
    });
    ready_rx.recv().unwrap();
    let parent_live = heap().live_requested;
    // SAFETY: the child only allocates, reads counters and calls _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = std::panic::catch_unwind(|| {
            let start = heap();
            let v = vec![9u8; 2 << 20];
            let during = heap();
            let ok_live = during.live_requested - start.live_requested == 2 << 20;
            // The parent's other thread is gone in the child, but its bytes still count.
            let ok_threads =
                during.threads == 1 && (start.live_requested - parent_live).abs() < 64 * 1024;
            drop(v);
            // Scope and thread reads work in the child too.
            let ok_reads = memledger_alloc::scopes().len() >= 2 && threads().len() == 2;
            if ok_live && ok_threads && ok_reads {
                0
            } else {
                1
            }
        })
        .unwrap_or(2);
        // SAFETY: terminate the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting on our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    tx.send(()).unwrap();
    holder.join().unwrap();
    assert!(libc::WIFEXITED(status), "child status {status}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child's counters were wrong");
}

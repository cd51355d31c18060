//! The registry of live threads: an intrusive doubly linked list of nodes
//! (each thread's counters, which live in its thread-local storage) under a
//! spin lock.
//!
//! All the raw-pointer code of the crate is here, behind a safe API. Its
//! invariant: **a linked node is live**. A thread links its node when it
//! registers and unlinks it, under the lock, before its thread-local storage
//! goes away; so while the lock is held, every node reachable from the head
//! may be read.
//!
//! Only registration, thread exit, fork and readers take the lock, and none
//! of them allocates while holding it (a reader that allocates is already
//! registered, so its allocations never need the lock).

use std::ptr;
use std::sync::atomic::{
    AtomicBool, AtomicPtr, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

/// The list pointers a node carries.
pub(crate) struct Links<T> {
    next: AtomicPtr<T>,
    prev: AtomicPtr<T>,
}

impl<T> Links<T> {
    pub(crate) const fn new() -> Self {
        Links {
            next: AtomicPtr::new(ptr::null_mut()),
            prev: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

/// A type that can sit in a [`Registry`].
pub(crate) trait Linked: Sized {
    fn links(&self) -> &Links<Self>;
}

pub(crate) struct Registry<T> {
    head: AtomicPtr<T>,
    lock: AtomicBool,
}

/// Proof that the registry's lock is held; the list can be walked and changed.
pub(crate) struct Locked<'a, T: Linked> {
    registry: &'a Registry<T>,
}

impl<T: Linked> Registry<T> {
    pub(crate) const fn new() -> Self {
        Registry {
            head: AtomicPtr::new(ptr::null_mut()),
            lock: AtomicBool::new(false),
        }
    }

    /// Takes the lock until the guard drops.
    pub(crate) fn lock(&self) -> Locked<'_, T> {
        self.raw_lock();
        Locked { registry: self }
    }

    /// Takes the lock without a guard (for `fork`'s prepare handler, which
    /// releases it in another function).
    pub(crate) fn raw_lock(&self) {
        while self
            .lock
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
    }

    /// Releases a lock taken with [`raw_lock`](Self::raw_lock).
    pub(crate) fn raw_unlock(&self) {
        self.lock.store(false, Release);
    }

    /// A guard for a lock already taken with [`raw_lock`](Self::raw_lock)
    /// (the child after `fork`): it releases the lock when dropped.
    pub(crate) fn adopt_lock(&self) -> Locked<'_, T> {
        Locked { registry: self }
    }
}

impl<T: Linked> Locked<'_, T> {
    /// Links `node` at the head.
    ///
    /// The caller promises to [`unlink`](Self::unlink) it before `node`'s
    /// storage goes away (a thread's node is unlinked in its exit hook).
    pub(crate) fn link(&self, node: &T) {
        let me = node as *const T as *mut T;
        let head = self.registry.head.load(Relaxed);
        node.links().prev.store(ptr::null_mut(), Relaxed);
        node.links().next.store(head, Relaxed);
        if !head.is_null() {
            // SAFETY: linked nodes are live while the lock is held.
            unsafe { (*head).links().prev.store(me, Relaxed) };
        }
        self.registry.head.store(me, Relaxed);
    }

    /// Unlinks `node`, which must be linked.
    pub(crate) fn unlink(&self, node: &T) {
        let next = node.links().next.load(Relaxed);
        let prev = node.links().prev.load(Relaxed);
        // SAFETY: the neighbours are linked, hence live while the lock is held.
        unsafe {
            if !next.is_null() {
                (*next).links().prev.store(prev, Relaxed);
            }
            if prev.is_null() {
                self.registry.head.store(next, Relaxed);
            } else {
                (*prev).links().next.store(next, Relaxed);
            }
        }
        node.links().next.store(ptr::null_mut(), Relaxed);
        node.links().prev.store(ptr::null_mut(), Relaxed);
    }

    /// Calls `f` on every linked node, newest first.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&T)) {
        let mut p = self.registry.head.load(Relaxed);
        while !p.is_null() {
            // SAFETY: linked nodes are live while the lock is held.
            let node = unsafe { &*p };
            p = node.links().next.load(Relaxed);
            f(node);
        }
    }
}

impl<T: Linked> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        self.registry.raw_unlock();
    }
}

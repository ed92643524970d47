//! [`ShutdownSignal`]: how a long-lived response body learns that the server is shutting down.
//!
//! Server-Sent Events and other endless streams would hold a graceful shutdown open until its
//! deadline. A body that wants to end promptly puts a `ShutdownSignal` in its response's
//! extensions; the server links it to its own signal, which it triggers when the drain begins
//! (immediately, if the drain has already begun). The body polls the signal and ends cleanly.
//!
//! Only responses that carry a signal cost anything: the server's check is one branch on the
//! (usually empty) response extensions.
//!
//! ```
//! use conduit_core::ShutdownSignal;
//!
//! let server = ShutdownSignal::new();
//! let stream = ShutdownSignal::new();
//! server.link(&stream); // what the server does with a response's signal
//! assert!(!stream.is_triggered());
//! server.trigger();
//! assert!(stream.is_triggered());
//! ```

use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

/// A one-shot, cloneable "shutdown has begun" flag with wake-ups, linkable into a tree.
///
/// Clones share one state. Triggering is idempotent and also triggers every linked signal.
#[derive(Clone, Default)]
pub struct ShutdownSignal {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    waiters: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    wakers: Vec<Waker>,
    children: Vec<Weak<Inner>>,
}

impl fmt::Debug for ShutdownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownSignal")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

impl ShutdownSignal {
    /// A signal that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.inner.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Trigger this signal and every signal linked to it. Idempotent.
    pub fn trigger(&self) {
        Self::trigger_inner(&self.inner);
    }

    fn trigger_inner(inner: &Arc<Inner>) {
        if inner.triggered.swap(true, Ordering::AcqRel) {
            return;
        }
        let Waiters { wakers, children } =
            std::mem::take(&mut *inner.waiters.lock().unwrap_or_else(|e| e.into_inner()));
        for w in wakers {
            w.wake();
        }
        for child in children.iter().filter_map(Weak::upgrade) {
            Self::trigger_inner(&child);
        }
    }

    /// Whether the signal has been triggered.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// Make `child` trigger when this signal does (at once if this one already has).
    /// The link is weak: a dropped child costs nothing but a slot, reclaimed on later links.
    pub fn link(&self, child: &ShutdownSignal) {
        if Arc::ptr_eq(&self.inner, &child.inner) {
            return;
        }
        {
            let mut w = self.lock();
            if !self.is_triggered() {
                if w.children.len() == w.children.capacity() {
                    w.children.retain(|c| c.strong_count() > 0);
                }
                w.children.push(Arc::downgrade(&child.inner));
                return;
            }
        }
        child.trigger();
    }

    /// Ready once triggered; otherwise registers `cx`'s waker (once per distinct waker).
    pub fn poll_triggered(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_triggered() {
            return Poll::Ready(());
        }
        let mut w = self.lock();
        if self.is_triggered() {
            return Poll::Ready(());
        }
        if !w.wakers.iter().any(|k| k.will_wake(cx.waker())) {
            w.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Resolves once the signal is triggered.
    pub async fn triggered(&self) {
        poll_fn(|cx| self.poll_triggered(cx)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_wakes_waiters_and_children() {
        let root = ShutdownSignal::new();
        let child = ShutdownSignal::new();
        root.link(&child);
        let c = child.clone();
        let task = tokio::spawn(async move { c.triggered().await });
        tokio::task::yield_now().await;
        root.trigger();
        task.await.unwrap();
        assert!(child.is_triggered());
        // linking after the trigger triggers at once
        let late = ShutdownSignal::new();
        root.link(&late);
        assert!(late.is_triggered());
    }

    #[test]
    fn dropped_children_are_reclaimed() {
        let root = ShutdownSignal::new();
        for _ in 0..1000 {
            root.link(&ShutdownSignal::new());
        }
        assert!(root.lock().children.len() <= 64);
    }
}

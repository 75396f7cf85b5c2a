//! Pause and resume across pipes: a piped producer (or data producer) has *followers* — the
//! pipe producers standing for it in other cells, and those `pipe_producer_to_router` made —
//! which pause and resume with it. The virtual object's own `pause()` / `resume()` applies the
//! change to the real object, then to every follower, and returns once all are done: consumers
//! in every worker report `producer_paused()` as soon as the call returns, as consumers in the
//! producer's own worker do with mediasoup. No task, channel or runtime is involved (the
//! library runs on any executor); one lock orders pause, resume and new followers, so a pipe made
//! while its source is being paused ends up in the source's state.

use crate::internals::object::{lock, run_later};
use async_trait::async_trait;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Something that pauses with its source (a pipe producer or pipe data producer), held weakly:
/// following a source never keeps an end open.
#[async_trait]
pub(crate) trait PausableEnd: Send + Sync {
    /// Whether it is paused now; `None` once it is gone.
    fn paused_state(&self) -> Option<bool>;
    /// Pauses or resumes it (errors are ignored: it may be closing).
    async fn set_paused(&self, paused: bool);
}

/// The followers a change has still to reach.
struct Pending {
    ends: Vec<Arc<dyn PausableEnd>>,
    paused: bool,
    next: usize,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.next >= self.ends.len() {
            return;
        }
        let (rest, paused) = (self.ends.split_off(self.next), self.paused);
        run_later(move || {
            futures_lite::future::block_on(async {
                for end in rest {
                    end.set_paused(paused).await;
                }
            });
        });
    }
}

/// The followers of one source, and the lock ordering changes to them.
#[derive(Default)]
pub(crate) struct Followers {
    order: tokio::sync::Mutex<()>,
    ends: Mutex<Vec<Arc<dyn PausableEnd>>>,
}

impl Followers {
    /// Applies `change` (the source's own pause or resume) and then the same state to every
    /// follower, in order with other changes and new followers.
    pub(crate) async fn apply<E, F: Future<Output = Result<(), E>>>(&self, paused: bool, change: F) -> Result<(), E> {
        let _order = self.order.lock().await;
        change.await?;
        let ends: Vec<Arc<dyn PausableEnd>> = {
            let mut ends = lock(&self.ends);
            ends.retain(|e| e.paused_state().is_some());
            ends.clone()
        };
        // A caller that stops waiting (a timeout, a select) does not leave the other workers
        // in the old state: what is not done yet is finished on the deferred thread.
        let mut pending = Pending { ends, paused, next: 0 };
        while let Some(end) = pending.ends.get(pending.next).cloned() {
            end.set_paused(paused).await;
            pending.next += 1;
        }
        Ok(())
    }

    /// Adds a follower, first bringing it to the source's state (`source_paused`, read under
    /// the lock so that no change is missed).
    pub(crate) async fn follow(&self, end: Arc<dyn PausableEnd>, source_paused: impl Fn() -> bool) {
        let _order = self.order.lock().await;
        let paused = source_paused();
        if end.paused_state().is_some_and(|now| now != paused) {
            end.set_paused(paused).await;
        }
        let mut ends = lock(&self.ends);
        ends.retain(|e| e.paused_state().is_some());
        ends.push(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Weak;

    #[derive(Default)]
    struct Flag(AtomicBool);

    /// A follower holding its flag weakly, as real followers hold their pipe ends.
    struct Follows(Weak<Flag>);

    #[async_trait]
    impl PausableEnd for Follows {
        fn paused_state(&self) -> Option<bool> {
            self.0.upgrade().map(|f| f.0.load(Ordering::SeqCst))
        }
        async fn set_paused(&self, paused: bool) {
            if let Some(flag) = self.0.upgrade() {
                flag.0.store(paused, Ordering::SeqCst);
            }
        }
    }

    #[test]
    fn followers_take_the_source_state_without_a_runtime() {
        futures::executor::block_on(async {
            let followers = Followers::default();
            let source = Arc::new(AtomicBool::new(true));
            let end = Arc::new(Flag::default());
            let read = Arc::clone(&source);
            followers.follow(Arc::new(Follows(Arc::downgrade(&end))), move || read.load(Ordering::SeqCst)).await;
            assert!(end.0.load(Ordering::SeqCst), "a new follower starts in the source's state");
            let set = Arc::clone(&source);
            followers
                .apply(false, async move {
                    set.store(false, Ordering::SeqCst);
                    Ok::<(), ()>(())
                })
                .await
                .expect("resume");
            assert!(!end.0.load(Ordering::SeqCst), "resumed before apply returned");
            let failed = followers.apply(true, async { Err::<(), &str>("closed") }).await;
            assert_eq!(failed, Err("closed"));
            assert!(!end.0.load(Ordering::SeqCst), "a failed change does not reach followers");
            drop(end);
            followers.apply(true, async { Ok::<(), ()>(()) }).await.expect("a gone follower is skipped");
            assert!(lock(&followers.ends).is_empty(), "gone followers are forgotten");
        });
    }

    /// A follower that takes a while to pause.
    struct Slow(Weak<Flag>);

    #[async_trait]
    impl PausableEnd for Slow {
        fn paused_state(&self) -> Option<bool> {
            self.0.upgrade().map(|f| f.0.load(Ordering::SeqCst))
        }
        async fn set_paused(&self, paused: bool) {
            futures_timer::Delay::new(std::time::Duration::from_millis(20)).await;
            if let Some(flag) = self.0.upgrade() {
                flag.0.store(paused, Ordering::SeqCst);
            }
        }
    }

    #[test]
    fn a_caller_that_stops_waiting_does_not_leave_followers_behind() {
        let followers = Followers::default();
        let ends: Vec<Arc<Flag>> = (0..3).map(|_| Arc::new(Flag::default())).collect();
        futures::executor::block_on(async {
            for end in &ends {
                followers.follow(Arc::new(Slow(Arc::downgrade(end))), || false).await;
            }
            // The caller gives up while the first follower is still pausing.
            let apply = followers.apply(true, async { Ok::<(), ()>(()) });
            let gave_up = crate::internals::object::within(std::time::Duration::from_millis(5), apply).await;
            assert!(gave_up.is_none(), "the caller stopped waiting");
        });
        let (tx, rx) = std::sync::mpsc::channel();
        run_later(move || {
            let _ = tx.send(());
        });
        rx.recv_timeout(std::time::Duration::from_secs(5)).expect("the deferred thread ran");
        assert!(ends.iter().all(|e| e.0.load(Ordering::SeqCst)), "every follower paused anyway");
    }
}

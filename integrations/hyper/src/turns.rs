//! Polling the futures of one exchange from the task that owns it, without
//! having them wake that task for each other.
//!
//! The hyper connection, the response future and the body channel of an
//! exchange are all polled by one task: the request's future, then the
//! response body. When the connection delivers the response head or a
//! chunk of the body, hyper wakes whoever waits for it: that same task,
//! which is running. Tokio answers a task woken while it runs by
//! rescheduling it as a yield, and a yield wakes an idle worker thread to
//! come and help; on a multi-thread runtime that is a futex wake-up of
//! another thread, or two, for every request, and the task may move
//! between threads.
//!
//! [`Turns`] gives the inner futures a waker of their own. A wake-up that
//! arrives while the task is polling them only marks that another turn is
//! due, which [`Turns::run`] takes at once; one that arrives while the
//! task is away (the socket turned readable) wakes the task.

use atomic_waker::AtomicWaker;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// At most this many turns in a row; then the task yields to others.
const MAX_TURNS: usize = 32;

/// The waker given to the futures of one exchange, and what it knows of
/// the task that polls them.
#[derive(Debug)]
pub(crate) struct Turns {
    state: Arc<TurnState>,
    /// A waker over `state`, made once.
    waker: Waker,
}

#[derive(Debug, Default)]
struct TurnState {
    /// Whether the owning task is polling the inner futures now.
    polling: AtomicBool,
    /// Whether a wake-up came during the current turn.
    woken: AtomicBool,
    /// The owning task, woken by wake-ups that come between its polls.
    task: AtomicWaker,
}

impl Wake for TurnState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Either the poller sees `woken` after its turn, or this sees it
        // gone and wakes the task (sequentially consistent, both ways).
        self.woken.store(true, SeqCst);
        if !self.polling.load(SeqCst) {
            self.task.wake();
        }
    }
}

impl Turns {
    pub(crate) fn new() -> Self {
        let state = Arc::new(TurnState::default());
        let waker = Waker::from(state.clone());
        Self { state, waker }
    }

    /// Polls `turn` with the inner waker until it is ready, or until a
    /// turn passes with no wake-up (then the task waits for one).
    pub(crate) fn run<T>(
        &self,
        cx: &mut Context<'_>,
        mut turn: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.state.task.register(cx.waker());
        let mut inner = Context::from_waker(&self.waker);
        for _ in 0..MAX_TURNS {
            self.state.woken.store(false, SeqCst);
            self.state.polling.store(true, SeqCst);
            let poll = turn(&mut inner);
            self.state.polling.store(false, SeqCst);
            if poll.is_ready() || !self.state.woken.load(SeqCst) {
                return poll;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Runs `last` once with the inner waker, for a last look at futures
    /// the task is about to let go of: wake-ups during it are not acted
    /// on, and those after it wake the task.
    pub(crate) fn finally<T>(
        &self,
        cx: &mut Context<'_>,
        last: impl FnOnce(&mut Context<'_>) -> T,
    ) -> T {
        self.state.task.register(cx.waker());
        let mut inner = Context::from_waker(&self.waker);
        self.state.polling.store(true, SeqCst);
        let result = last(&mut inner);
        self.state.polling.store(false, SeqCst);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A task's waker that counts its wake-ups.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn wake_ups_during_a_turn_take_another_turn_not_the_task() {
        let task = Arc::new(Counting::default());
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let turns = Turns::new();
        let mut polls = 0;
        let poll = turns.run(&mut cx, |inner| {
            polls += 1;
            if polls < 3 {
                // What hyper does when the connection delivers what
                // another of the exchange's futures waits for.
                inner.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        });
        assert_eq!(poll, Poll::Ready(3));
        assert_eq!(task.0.load(SeqCst), 0, "the task was not woken");
    }

    #[test]
    fn wake_ups_between_turns_wake_the_task() {
        let task = Arc::new(Counting::default());
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let turns = Turns::new();
        let mut registered = None;
        let poll = turns.run(&mut cx, |inner| {
            // A socket registers the waker and is not ready yet.
            registered = Some(inner.waker().clone());
            Poll::<()>::Pending
        });
        assert!(poll.is_pending());
        assert_eq!(task.0.load(SeqCst), 0);
        // The socket turns ready while the task waits.
        registered.expect("registered").wake();
        assert_eq!(task.0.load(SeqCst), 1);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_yields_at_last() {
        let task = Arc::new(Counting::default());
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let turns = Turns::new();
        let mut polls = 0;
        let poll = turns.run(&mut cx, |inner| {
            polls += 1;
            inner.waker().wake_by_ref();
            Poll::<()>::Pending
        });
        assert!(poll.is_pending());
        assert_eq!(polls, MAX_TURNS);
        assert_eq!(task.0.load(SeqCst), 1, "woken to be polled again");
    }
}

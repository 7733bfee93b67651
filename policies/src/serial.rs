//! A serializer that never blocks: commands to a policy's slow-path state are
//! queued, and whichever thread finds the serializer idle runs them all.
//!
//! This is a combining scheme: a thread that submits while another is
//! draining does not wait; the draining thread is obliged to run its command
//! before it stops. No thread ever waits for another to make progress, and
//! the slow-path state (waiter queues, stateful idle lists) is touched by one
//! thread at a time, so its logic is plain sequential code.
//!
//! How it works: [the design notes](crate::implementation#the-non-blocking-serializer).

use crate::sync::{AtomicUsize, Backoff, Fifo, Mutex, Ordering};
use std::fmt;

pub(crate) struct Serial<C, S> {
    commands: Fifo<C>,
    pending: AtomicUsize,
    state: Mutex<S>,
}

impl<C, S> Serial<C, S> {
    pub(crate) fn new(state: S) -> Self {
        Self {
            commands: Fifo::new(),
            pending: AtomicUsize::new(0),
            state: Mutex::new(state),
        }
    }

    /// Submits `command`. If no thread is draining, this one drains: for
    /// each batch, `apply` runs every command, then `settle` once; `settle`'s
    /// output is handed to `after` once the state is unlocked (for work such
    /// as closing connections, which must not hold up other commands).
    pub(crate) fn submit<O>(
        &self,
        command: C,
        mut apply: impl FnMut(&mut S, C),
        mut settle: impl FnMut(&mut S) -> O,
        mut after: impl FnMut(O),
    ) {
        self.commands.push(command);
        if self.pending.fetch_add(1, Ordering::AcqRel) != 0 {
            return;
        }
        let mut batch = 1;
        loop {
            let out = {
                let mut state = match self.state.try_lock() {
                    Ok(state) => state,
                    Err(_) => panic!("serializer state locked outside the drainer role"),
                };
                for _ in 0..batch {
                    let backoff = Backoff::new();
                    let command = loop {
                        // A counted command is always queued (module docs);
                        // the loop only covers a push still completing,
                        // whose thread may have been preempted.
                        match self.commands.pop() {
                            Some(command) => break command,
                            None => backoff.snooze(),
                        }
                    };
                    apply(&mut state, command);
                }
                settle(&mut state)
            };
            let before = self.pending.fetch_sub(batch, Ordering::AcqRel);
            // Outside the role when it was the last batch, so another thread
            // can drain while this one closes connections.
            after(out);
            if before == batch {
                return;
            }
            batch = before - batch;
        }
    }
}

impl<C, S> fmt::Debug for Serial<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serial")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

//! Where closed connections are closed: inline, or on a disposal thread the
//! pool owns, so a slow close (TLS `close_notify`, a peer that does not
//! answer) never sits on a lease path.
//!
//! The disposal thread takes connections from a bounded lock-free queue and
//! parks when it is empty. When the queue is full the connection is closed
//! inline on the caller's thread — a connection is never dropped unclosed.
//! Dropping the pool stops the thread after it has closed everything queued,
//! and joins it: no thread is left behind.

use crate::connector::Connector;
use crossbeam_queue::ArrayQueue;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// How the pool closes connections it is done with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disposal {
    /// On the thread that gave the connection up (a return, a discard, an
    /// eviction done for a lease). Nothing extra runs, but a slow close
    /// delays that thread.
    Inline,
    /// On a disposal thread owned by the pool, with a queue of `queue`
    /// connections; when it is full, inline.
    Background {
        /// How many connections may wait to be closed.
        queue: usize,
    },
}

impl Default for Disposal {
    /// `Background` with a queue of 1024.
    fn default() -> Self {
        Self::Background { queue: 1024 }
    }
}

struct Shared<C: Connector> {
    queue: ArrayQueue<C::Conn>,
    stop: AtomicBool,
    connector: Arc<C>,
}

/// Closes connections, inline or through the disposal thread.
pub(crate) struct Disposer<C: Connector> {
    connector: Arc<C>,
    background: Option<Arc<Shared<C>>>,
    /// The disposal thread: its handle to wake it, and to join it on stop.
    thread: Option<thread::Thread>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl<C: Connector> Disposer<C> {
    pub(crate) fn new(connector: Arc<C>, disposal: Disposal) -> io::Result<Self> {
        let Disposal::Background { queue } = disposal else {
            return Ok(Self {
                connector,
                background: None,
                thread: None,
                handle: Mutex::new(None),
            });
        };
        let shared = Arc::new(Shared {
            queue: ArrayQueue::new(queue.max(1)),
            stop: AtomicBool::new(false),
            connector: connector.clone(),
        });
        let worker = shared.clone();
        let handle = thread::Builder::new()
            .name("leasehold-dispose".into())
            .spawn(move || run(&worker))?;
        Ok(Self {
            connector,
            background: Some(shared),
            thread: Some(handle.thread().clone()),
            handle: Mutex::new(Some(handle)),
        })
    }

    /// Closes `conn`, in the background if there is room.
    pub(crate) fn dispose(&self, conn: C::Conn) {
        match (&self.background, &self.thread) {
            (Some(shared), Some(thread)) => match shared.queue.push(conn) {
                Ok(()) => thread.unpark(),
                // Full: the documented rule is to close it here.
                Err(conn) => self.connector.close(conn),
            },
            _ => self.connector.close(conn),
        }
    }

    /// Stops the disposal thread once it has closed everything queued.
    pub(crate) fn stop(&self) {
        let handle = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let (Some(shared), Some(handle)) = (&self.background, handle) {
            shared.stop.store(true, Ordering::SeqCst);
            handle.thread().unpark();
            // A panicking connector panicked on that thread already; the
            // pool is being dropped, so there is no one left to tell.
            let _ = handle.join();
        }
    }
}

fn run<C: Connector>(shared: &Shared<C>) {
    loop {
        while let Some(conn) = shared.queue.pop() {
            shared.connector.close(conn);
        }
        if shared.stop.load(Ordering::SeqCst) {
            // Everything pushed before the stop flag was set is closed by
            // the drain above or this one.
            while let Some(conn) = shared.queue.pop() {
                shared.connector.close(conn);
            }
            return;
        }
        // Woken by each push; a push between the drain and this park left
        // an unpark token, so the park returns at once.
        thread::park();
    }
}

impl<C: Connector> fmt::Debug for Disposer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queued = self.background.as_ref().map(|shared| shared.queue.len());
        f.debug_struct("Disposer").field("queued", &queued).finish()
    }
}

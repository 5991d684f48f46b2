//! Threads that in-process driver calls run on, kept for the next call.
//!
//! A call runs on a thread of its own so that a driver that never answers
//! costs that thread, not the caller (see `LoadedDriver::call_on_thread`).
//! Starting a thread with a [`CALL_STACK`] stack for every call cost about
//! 0.2 ms, a hundred times a small call itself; an idle thread is handed the
//! next call instead. A thread whose call was abandoned at its deadline is
//! never reused: it ends when the driver returns, if ever.

use std::{
    sync::{
        mpsc::{sync_channel, Receiver, SyncSender},
        Arc, Mutex, PoisonError, Weak,
    },
    thread,
};

use super::runner::CALL_STACK;

/// Work for a call thread. It returns whether its caller still waited for
/// the reply: `false` means the call was abandoned, and the thread ends.
pub type Job = Box<dyn FnOnce() -> bool + Send>;

/// Idle threads kept per driver; more than that many finishing at once end.
const MAX_IDLE: usize = 16;

/// The idle call threads of one driver.
pub struct CallThreads {
    name: String,
    /// Each idle thread's inbox. A rendezvous channel: a send succeeds only
    /// when that thread takes the job, so no job is left in the inbox of a
    /// thread that is ending.
    idle: Mutex<Vec<SyncSender<Job>>>,
}

impl CallThreads {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: format!("driver-{name}"),
            idle: Mutex::default(),
        })
    }

    /// Runs `job` on an idle thread, or on a new one when none is idle.
    pub fn run(self: &Arc<Self>, mut job: Job) -> std::io::Result<()> {
        loop {
            let inbox = self.lock().pop();
            let Some(inbox) = inbox else { break };
            match inbox.send(job) {
                Ok(()) => return Ok(()),
                // That thread has ended: try the next one.
                Err(returned) => job = returned.0,
            }
        }
        let (inbox, jobs) = sync_channel(0);
        let pool = Arc::downgrade(self);
        thread::Builder::new()
            .name(self.name.clone())
            .stack_size(CALL_STACK)
            .spawn(move || serve(job, &inbox, &jobs, &pool))
            .map(drop)
    }

    /// Threads waiting for a call now.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SyncSender<Job>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A call thread's life: run a job, then wait in the pool for the next,
/// until a job is abandoned, the pool is full or gone.
fn serve(mut job: Job, inbox: &SyncSender<Job>, jobs: &Receiver<Job>, pool: &Weak<CallThreads>) {
    loop {
        if !job() {
            return;
        }
        {
            let Some(pool) = pool.upgrade() else { return };
            let mut idle = pool.lock();
            if idle.len() >= MAX_IDLE {
                return;
            }
            idle.push(inbox.clone());
        }
        match jobs.recv() {
            Ok(next) => job = next,
            // The pool (and so every inbox) is gone.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;
    use std::time::Duration;

    use super::*;

    fn on_pool(pool: &Arc<CallThreads>, answer: bool) -> thread::ThreadId {
        let (tx, rx) = channel();
        pool.run(Box::new(move || {
            tx.send(thread::current().id()).is_ok() && answer
        }))
        .expect("run");
        rx.recv_timeout(Duration::from_secs(10)).expect("ran")
    }

    fn settle(pool: &CallThreads, idle: usize) {
        for _ in 0..1000 {
            if pool.idle() == idle {
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(pool.idle(), idle);
    }

    #[test]
    fn a_thread_is_reused_unless_its_call_was_abandoned() {
        let pool = CallThreads::new("t");
        let first = on_pool(&pool, true);
        settle(&pool, 1);
        assert_eq!(on_pool(&pool, true), first, "the idle thread took it");
        settle(&pool, 1);
        // Abandoned: that thread ends; the next call gets a new one.
        assert_eq!(on_pool(&pool, false), first);
        settle(&pool, 0);
        assert_ne!(on_pool(&pool, true), first);
    }

    #[test]
    fn calls_at_once_get_threads_of_their_own_and_the_pool_is_bounded() {
        let pool = CallThreads::new("t");
        let gate = Arc::new(std::sync::Barrier::new(MAX_IDLE + 4 + 1));
        let (tx, rx) = channel();
        for _ in 0..MAX_IDLE + 4 {
            let (gate, tx) = (gate.clone(), tx.clone());
            pool.run(Box::new(move || {
                gate.wait();
                tx.send(thread::current().id()).is_ok()
            }))
            .expect("run");
        }
        // Every call waits for the others: none ran on another's thread.
        gate.wait();
        let ids: std::collections::BTreeSet<_> = (0..MAX_IDLE + 4)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("ran"))
            .map(|id| format!("{id:?}"))
            .collect();
        assert_eq!(ids.len(), MAX_IDLE + 4);
        settle(&pool, MAX_IDLE);
    }
}

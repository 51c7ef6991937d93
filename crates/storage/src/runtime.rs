//! The process's object-storage I/O runtime.
//!
//! The block store is synchronous (threads, rayon); `object_store` is async. Requests run on one
//! small multi-thread tokio runtime owned by this crate and callers wait on a channel, so a call
//! works from any thread — including a worker of another runtime (DataFusion's), where
//! `block_on` would panic.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

use crate::{Error, Result};

/// Worker threads of the I/O runtime: requests are network-bound, two keep many in flight.
const IO_THREADS: usize = 2;

fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(IO_THREADS)
                .thread_name("sealstore-io")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|message| Error::Backend {
            operation: "start",
            name: "the I/O runtime".into(),
            message: message.clone(),
        })
}

/// Runs `future` on the I/O runtime and waits for its output.
pub(crate) fn run<F>(future: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        // The receiver only goes away if the caller's thread died; nothing to tell then.
        let _ = tx.send(future.await);
    });
    rx.recv().map_err(|_| Error::Backend {
        operation: "request",
        name: "the I/O runtime".into(),
        message: "the request's task ended without an answer".into(),
    })
}

/// Spawns `future` on the I/O runtime without waiting (parallel range reads feed a channel).
pub(crate) fn spawn<F>(future: F) -> Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    runtime()?.spawn(future);
    Ok(())
}

//! The slot writer thread of a pipelined transaction.
use super::*;

/// A writer thread that receives sealed blocks over a bounded channel and `pwrite`s them, so
/// sealing the next block overlaps with writing the last one; the channel bound caps the sealed
/// blocks in flight. When the channel closes it `fdatasync`s what it wrote, so the slices of a
/// cluster commit make their blocks durable concurrently while the pool finishes other slices.
pub(crate) struct SlotWriter {
    pub(crate) tx: Option<crossbeam_channel::Sender<(u64, Vec<u8>)>>,
    pub(crate) handle: std::thread::JoinHandle<Result<()>>,
    /// Set by the thread as its last step (tests check an abort waits for it).
    #[cfg(test)]
    pub(crate) done: Arc<std::sync::atomic::AtomicBool>,
}

impl SlotWriter {
    pub(crate) fn spawn(shared: Arc<Shared>, in_flight: usize) -> Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded::<(u64, Vec<u8>)>(in_flight.max(1));
        #[cfg(test)]
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        #[cfg(test)]
        let done_by_thread = done.clone();
        let handle = std::thread::Builder::new()
            .name(format!("sealstore-writer-{}", shared.slice_id))
            .spawn(move || {
                let mut written = Vec::new();
                let mut result = Ok(());
                for (slot, sealed) in rx {
                    if let Err(e) = shared.segments.write_slot(slot, &sealed) {
                        result = Err(e);
                        break;
                    }
                    written.push(slot);
                }
                let result = result.and_then(|()| shared.segments.sync(written));
                #[cfg(test)]
                done_by_thread.store(true, std::sync::atomic::Ordering::SeqCst);
                result
            })
            .map_err(|e| Error::io("writer thread", e))?;
        Ok(Self {
            tx: Some(tx),
            handle,
            #[cfg(test)]
            done,
        })
    }

    pub(crate) fn send(&self, slot: u64, sealed: Vec<u8>) -> Result<()> {
        match &self.tx {
            // A send error means the writer stopped on an error; `finish` reports it.
            Some(tx) => {
                let _ = tx.send((slot, sealed));
                Ok(())
            }
            None => Err(Error::Internal(
                "block written after the transaction's blocks were finished".into(),
            )),
        }
    }

    /// No more blocks: the thread drains the channel and syncs on its own.
    pub(crate) fn close(&mut self) {
        self.tx = None;
    }

    /// Waits until every block is written and durable.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.close();
        self.handle
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("the slot writer thread panicked".into())))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use sealstore_keyring::provider::InsecureInMemoryProvider;
    use sealstore_keyring::{Keyring, MasterKeyProvider};

    use crate::{Store, StoreOptions, block};

    #[test]
    fn an_aborted_pipelined_transaction_returns_only_after_its_writer_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mk: Arc<dyn MasterKeyProvider> = Arc::new(InsecureInMemoryProvider::new().unwrap());
        let ring = Keyring::create(&dir.path().join("keystore"), mk, "unit").unwrap();
        let keys = ring.create_database("dev", &dir.path().join("deks")).unwrap();
        let options = StoreOptions {
            block_size: block::MIN_BLOCK_SIZE,
            ..Default::default()
        };
        let store = Store::create(&dir.path().join("slice"), keys, options).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        store.create_table("t", &schema).unwrap();
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values((0..200_000).map(|i| i * 7919)))],
        )
        .unwrap();
        for _ in 0..3 {
            let mut txn = store.begin_pipelined(1).unwrap();
            txn.append("t", &batch).unwrap();
            let done = txn.io.as_ref().expect("pipelined").done.clone();
            // Aborted with blocks still queued: the drop must wait for the writer, or its
            // blocks could land in slots the next transaction allocates.
            drop(txn);
            assert!(
                done.load(Ordering::SeqCst),
                "the writer thread still runs after the abort"
            );
        }
        assert!(store.verify().is_empty());
    }
}

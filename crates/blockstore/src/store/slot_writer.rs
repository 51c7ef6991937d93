//! The slot writer thread of a pipelined transaction.
use super::*;

/// A writer thread that receives sealed blocks over a bounded channel and `pwrite`s them, so
/// sealing the next block overlaps with writing the last one; the channel bound caps the sealed
/// blocks in flight. When the channel closes it `fdatasync`s what it wrote, so the slices of a
/// cluster commit make their blocks durable concurrently while the pool finishes other slices.
pub(crate) struct SlotWriter {
    pub(crate) tx: Option<crossbeam_channel::Sender<(u64, Vec<u8>)>>,
    pub(crate) handle: std::thread::JoinHandle<Result<()>>,
}

impl SlotWriter {
    pub(crate) fn spawn(shared: Arc<Shared>, in_flight: usize) -> Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded::<(u64, Vec<u8>)>(in_flight.max(1));
        let handle = std::thread::Builder::new()
            .name(format!("sealstore-writer-{}", shared.slice_id))
            .spawn(move || {
                let mut written = Vec::new();
                for (slot, sealed) in rx {
                    shared.segments.write_slot(slot, &sealed)?;
                    written.push(slot);
                }
                shared.segments.sync(written)
            })
            .map_err(|e| Error::io("writer thread", e))?;
        Ok(Self { tx: Some(tx), handle })
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

//! Transactions: create, drop and append tables, re-key blocks, prepare the commit that
//! [`crate::commit`] runs.
use super::*;

/// A commit that wrote its blocks but is not yet visible (see [`Transaction::prepare`]).
#[derive(Debug)]
pub struct Prepared {
    pub(crate) manifest: Manifest,
    pub(crate) allocated: Vec<u64>,
    pub(crate) freed: Vec<(u64, u64)>,
    pub(crate) dropped: Vec<(u64, u64)>,
    pub(crate) rows: u64,
}

impl Prepared {
    /// Blocks this commit wrote.
    pub fn allocated_blocks(&self) -> u64 {
        self.allocated.len() as u64
    }

    /// The generation this commit creates.
    pub fn generation(&self) -> u64 {
        self.manifest.generation
    }

    /// The generation and (on object storage) tag of the manifest this commit writes.
    pub fn manifest_id(&self) -> crate::ManifestId {
        self.manifest.id()
    }
}

/// A set of changes committed atomically.
pub struct Transaction<'s> {
    pub(crate) store: &'s Store,
    /// Held for the transaction's life: one writer per store.
    pub(crate) state: MutexGuard<'s, WriteState>,
    /// False while nothing changed: the commit protocol leaves such a store at its generation.
    pub(crate) changed: bool,
    pub(crate) manifest: Manifest,
    pub(crate) writers: HashMap<String, Vec<ColumnWriter>>,
    pub(crate) allocated: Vec<u64>,
    /// Next slot index to try, per size class.
    pub(crate) cursor: Vec<u64>,
    pub(crate) freed: Vec<(u64, u64)>,
    pub(crate) dropped: Vec<(u64, u64)>,
    pub(crate) finished: bool,
    pub(crate) rows: u64,
    pub(crate) io: Option<SlotWriter>,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("generation", &self.manifest.generation)
            .field("rows", &self.rows)
            .finish()
    }
}

impl<'s> Transaction<'s> {
    /// Adds a table.
    pub fn create_table(&mut self, name: &str, schema: &Schema) -> Result<()> {
        validate_table_name(name)?;
        if self.manifest.tables.iter().any(|t| t.name == name) {
            return Err(Error::TableExists(name.to_owned()));
        }
        let columns = table_columns(schema)?;
        let id = self.manifest.next_table_id;
        self.manifest.next_table_id += 1;
        self.manifest.tables.push(TableMeta {
            id,
            name: name.to_owned(),
            rows: 0,
            columns,
        });
        self.changed = true;
        Ok(())
    }

    /// Removes a table; its DEKs are shredded when the commit is published.
    pub fn drop_table(&mut self, name: &str) -> Result<()> {
        let idx = self
            .manifest
            .tables
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| Error::UnknownTable(name.to_owned()))?;
        self.writers.remove(name);
        self.changed = true;
        let t = self.manifest.tables.remove(idx);
        let committed: std::collections::HashSet<u64> =
            self.store.manifest.read().blocks().map(|b| b.block_id).collect();
        for c in &t.columns {
            for b in &c.blocks {
                if committed.contains(&b.block_id) {
                    self.dropped.push((b.block_id, b.slot));
                }
            }
        }
        Ok(())
    }

    /// Appends a batch whose schema matches the table's (names and types, in order).
    pub fn append(&mut self, table: &str, batch: &RecordBatch) -> Result<()> {
        let t = self.manifest.table(table)?;
        check_batch(t, batch)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.changed = true;
        if !self.writers.contains_key(table) {
            let writers = self.open_writers(table)?;
            self.writers.insert(table.to_owned(), writers);
        }
        let writers = self.writers.get_mut(table).expect("inserted above");
        for (w, col) in writers.iter_mut().zip(batch.columns()) {
            w.push(col.clone())?;
        }
        self.manifest.table_mut(table)?.rows += batch.num_rows() as u64;
        self.rows += batch.num_rows() as u64;
        self.seal_ready(table)
    }

    /// Column writers for a table; each column's partial last block is taken over
    /// copy-on-write (its pages reused, its slot and DEK freed when this commit publishes).
    pub(crate) fn open_writers(&mut self, table: &str) -> Result<Vec<ColumnWriter>> {
        let capacity = block::capacity(self.store.shared.block_size);
        let t = self.manifest.table(table)?.clone();
        let mut writers = Vec::with_capacity(t.columns.len());
        let mut buf = Vec::new();
        for (ci, c) in t.columns.iter().enumerate() {
            let mut w = ColumnWriter::new(c.ty, capacity, t.rows, &t.name, &c.name);
            if let Some(last) = c.blocks.last().filter(|b| !b.full) {
                let range = self.store.shared.open_block(&t, ci, last, &mut buf)?;
                let pages: Vec<Vec<u8>> = split_pages(&buf[range])
                    .map_err(|e| Shared::decode_error(&t, ci, last, e))?
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect();
                let encoding = pages
                    .first()
                    .and_then(|p| p.get(4))
                    .and_then(|&e| crate::encoding::Encoding::from_u8(e).ok())
                    .unwrap_or(crate::encoding::Encoding::Plain);
                w.seed(
                    pages,
                    last.pages.clone(),
                    last.row_start,
                    u64::from(last.rows),
                    last.zone.clone(),
                    encoding,
                );
                self.freed.push((last.block_id, last.slot));
                self.manifest.table_mut(table)?.columns[ci].blocks.pop();
            }
            writers.push(w);
        }
        Ok(writers)
    }

    /// Re-encrypts up to `limit` blocks whose id is below `below_block_id` (of `table`, or of
    /// every table) under fresh DEKs into new slots. Each block is authenticated and decrypted,
    /// then sealed again as it was (same payload, rows and zone map) with a new block id, DEK and
    /// nonce; the old slot and DEK are freed when the commit is installed. One block buffer at a
    /// time. Returns how many blocks were re-sealed and their slots' bytes.
    pub fn rekey(&mut self, table: Option<&str>, below_block_id: u64, limit: usize) -> Result<(usize, u64)> {
        let shared = self.store.shared.clone();
        let mut buf = Vec::new();
        let mut done = 0;
        let mut bytes = 0u64;
        for ti in 0..self.manifest.tables.len() {
            if table.is_some_and(|t| t != self.manifest.tables[ti].name) {
                continue;
            }
            for ci in 0..self.manifest.tables[ti].columns.len() {
                for bi in 0..self.manifest.tables[ti].columns[ci].blocks.len() {
                    if done == limit {
                        return Ok((done, bytes));
                    }
                    let t = &self.manifest.tables[ti];
                    let meta = &t.columns[ci].blocks[bi];
                    if meta.block_id >= below_block_id {
                        continue;
                    }
                    let (old_id, old_slot) = (meta.block_id, meta.slot);
                    let payload = shared.open_block(t, ci, meta, &mut buf)?;
                    // The header as authenticated, from the private copy (never re-read).
                    let old_header = BlockHeader::decode(&buf).map_err(|r| Error::Internal(r.to_owned()))?;
                    let (block_id, dek) = shared.keys.generate(1)?.pop().expect("one key");
                    let slot = self.alloc_slot(crate::slot::class_of(old_slot))?;
                    let mut header = old_header;
                    header.block_id = block_id;
                    header.dk_generation = shared.keys.dk_generation();
                    sealstore_keyring::fill_random(&mut header.nonce)?;
                    let key = shared.backend.key(dek.expose_secret());
                    drop(dek);
                    block::seal_in_place(&mut buf, &header, payload.len(), key.as_ref())
                        .map_err(|r| Error::Internal(format!("re-sealing block {old_id}: {r}")))?;
                    shared.segments.write_slot(slot, &buf)?;
                    let meta = &mut self.manifest.tables[ti].columns[ci].blocks[bi];
                    meta.block_id = block_id;
                    meta.slot = slot;
                    self.freed.push((old_id, old_slot));
                    self.changed = true;
                    done += 1;
                    bytes += buf.len() as u64;
                }
            }
        }
        buf.fill(0);
        Ok((done, bytes))
    }

    /// A slot of `class` free in the committed generation and not yet taken by this transaction.
    pub(crate) fn alloc_slot(&mut self, class: u8) -> Result<u64> {
        self.store.require_writable()?;
        let segments = match &self.store.shared.segments {
            Segments::Files(files) => files,
            // Write-once objects: always a slot of a fresh segment, never a freed one.
            Segments::Objects(objects) => {
                let slot = objects.fresh_slot(class)?;
                self.allocated.push(slot);
                return Ok(slot);
            }
        };
        if self.cursor.len() <= usize::from(class) {
            self.cursor.resize(usize::from(class) + 1, 0);
        }
        loop {
            let index = self.cursor[usize::from(class)];
            self.cursor[usize::from(class)] += 1;
            if index >= segments.slot_count(class) {
                segments.grow(class)?;
            }
            let slot = crate::slot::compose(class, index);
            if !self.state.in_use.contains(&slot) {
                self.allocated.push(slot);
                return Ok(slot);
            }
        }
    }

    /// Seals and writes the blocks the table's writers finished.
    pub(crate) fn seal_ready(&mut self, table: &str) -> Result<()> {
        let ready: Vec<(usize, BlockOut)> = self
            .writers
            .get_mut(table)
            .map(|ws| {
                ws.iter_mut()
                    .enumerate()
                    .flat_map(|(ci, w)| w.ready.drain(..).map(move |b| (ci, b)))
                    .collect()
            })
            .unwrap_or_default();
        if ready.is_empty() {
            return Ok(());
        }
        // One key-table lock and one RNG call for all the blocks that are ready.
        let keys = self.store.shared.keys.generate(ready.len())?;
        for ((ci, out), key) in ready.into_iter().zip(keys) {
            self.write_block(table, ci, out, key)?;
        }
        Ok(())
    }

    pub(crate) fn write_block(
        &mut self,
        table: &str,
        column: usize,
        out: BlockOut,
        (block_id, dek): (u64, sealstore_keyring::DataKey),
    ) -> Result<()> {
        let shared = self.store.shared.clone();
        let (table_id, ty) = {
            let t = self.manifest.table(table)?;
            (t.id, t.columns[column].ty)
        };
        let payload_len = out.slot.len() - block::PAYLOAD_OFFSET;
        // The smallest size class that holds the sealed block: only the class is visible.
        let class = crate::slot::class_for(
            block::PAYLOAD_OFFSET + payload_len + sealstore_keyring::aead::TAG_LEN,
            shared.segments.top_class(),
        );
        let slot = self.alloc_slot(class)?;
        let mut nonce = [0u8; 12];
        sealstore_keyring::fill_random(&mut nonce)?;
        let header = BlockHeader {
            column_type: ty.code(),
            encoding: out.encoding as u8,
            block_id,
            table_id,
            column_id: column as u32,
            slice_id: shared.slice_id,
            dk_generation: shared.keys.dk_generation(),
            row_start: out.row_start,
            row_count: out.rows as u32,
            nonce,
        };
        let mut sealed = out.slot;
        sealed.resize(crate::slot::class_size(class), 0);
        let key = shared.backend.key(dek.expose_secret());
        drop(dek);
        block::seal_in_place(&mut sealed, &header, payload_len, key.as_ref())
            .map_err(|r| Error::Internal(format!("sealing block {block_id}: {r}")))?;
        match &self.io {
            Some(io) => io.send(slot, sealed)?,
            None => shared.segments.write_slot(slot, &sealed)?,
        }
        self.manifest.table_mut(table)?.columns[column].blocks.push(BlockMeta {
            block_id,
            slot,
            row_start: out.row_start,
            rows: out.rows as u32,
            full: out.full,
            zone: out.zone,
            pages: out.pages,
        });
        Ok(())
    }

    /// Cuts and seals every column's last partial block and, when pipelined, tells the writer
    /// thread that no more blocks come (it then writes and syncs the rest on its own). A cluster
    /// calls this on every slice before [`Transaction::prepare`], so one slice's sync overlaps
    /// the next slice's sealing. In a pipelined transaction a block cut afterwards is an error
    /// (`Error::Internal`), never silently dropped.
    pub fn finish_blocks(&mut self) -> Result<()> {
        let tables: Vec<String> = self.writers.keys().cloned().collect();
        for table in tables {
            for w in self.writers.get_mut(&table).expect("listed").iter_mut() {
                w.finish()?;
            }
            self.seal_ready(&table)?;
        }
        if let Some(io) = &mut self.io {
            io.close();
        }
        Ok(())
    }

    /// Finishes every writer and makes the blocks durable (their DEKs stay staged).
    pub(crate) fn prepare(&mut self) -> Result<Prepared> {
        self.finish_blocks()?;
        match self.io.take() {
            Some(io) => io.finish()?,
            None => self.store.shared.segments.sync(self.allocated.iter().copied())?,
        }
        self.manifest.generation = self.store.generation() + 1;
        self.manifest.tag = super::new_tag(&self.store.shared.medium)?;
        Ok(Prepared {
            manifest: std::mem::take(&mut self.manifest),
            allocated: std::mem::take(&mut self.allocated),
            freed: std::mem::take(&mut self.freed),
            dropped: std::mem::take(&mut self.dropped),
            rows: self.rows,
        })
    }

    /// True once the transaction changed something (a store it left alone keeps its generation).
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Makes the commit write a new manifest generation even if nothing else changed (a re-key
    /// reseals every manifest under the newest metadata key this way).
    pub fn touch(&mut self) {
        self.changed = true;
    }

    /// The store this transaction writes.
    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// A table's schema as this transaction sees it (tables it created included).
    pub fn schema(&self, table: &str) -> Result<arrow_schema::SchemaRef> {
        Ok(self.manifest.table(table)?.schema())
    }

    /// The protocol is past its commit point: the staged DEKs belong to the commit.
    pub(crate) fn mark_finished(&mut self) {
        self.finished = true;
    }

    /// The write state this transaction holds (to install its commit).
    pub(crate) fn state_mut(&mut self) -> &mut WriteState {
        &mut self.state
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.store.shared.keys.discard_pending();
        }
        let discard = !self.finished;
        // An aborted pipelined transaction's writer thread may still hold queued blocks: it
        // must be done writing before the write state (and with it the slots it wrote to) is
        // released, or the next transaction could allocate a slot this thread then overwrites.
        // Its error does not matter: nothing it wrote is referenced.
        if let Some(io) = self.io.take() {
            let _ = io.finish();
        }
        // Segment objects an aborted transaction buffered are never uploaded.
        if discard && let Segments::Objects(objects) = &self.store.shared.segments {
            objects.discard();
        }
    }
}

//! The read path: one block copied into a private buffer, checked against the manifest,
//! authenticated, decrypted and decoded.
use super::*;

/// What readers share: files, keys, layout.
pub(crate) struct Shared {
    /// The directory, or the objects' URL and prefix (what errors name).
    pub dir: PathBuf,
    pub medium: crate::medium::StoreMedium,
    pub block_size: usize,
    pub slice_id: u32,
    pub identity: StoreIdentity,
    pub read_only: bool,
    pub keys: Arc<DatabaseKeys>,
    pub segments: Segments,
    pub backend: &'static dyn AeadBackend,
}

impl Shared {
    /// Copies one block into `buf` (a private copy: nobody else can change it from here on),
    /// checks its header against the manifest, then authenticates and decrypts it in place;
    /// returns the payload range.
    pub fn open_block(
        &self,
        table: &TableMeta,
        column: usize,
        meta: &BlockMeta,
        buf: &mut Vec<u8>,
    ) -> Result<Range<usize>> {
        buf.resize(self.segments.slot_len(meta.slot), 0);
        let (path, offset) = self.segments.location(meta.slot);
        let col = &table.columns[column];
        let fail = |reason: String| Error::BlockAuthentication {
            table: table.name.clone(),
            column: col.name.clone(),
            block_id: meta.block_id,
            path: path.clone(),
            offset,
            reason,
        };
        self.segments.read_slot(meta.slot, buf)?;
        let header = BlockHeader::decode(buf).map_err(|r| fail(r.to_owned()))?;
        let expected = (
            meta.block_id,
            table.id,
            column as u32,
            self.slice_id,
            meta.row_start,
            meta.rows,
            col.ty.code(),
        );
        let found = (
            header.block_id,
            header.table_id,
            header.column_id,
            header.slice_id,
            header.row_start,
            header.row_count,
            header.column_type,
        );
        if expected != found {
            return Err(fail(format!(
                "header does not match the manifest (block moved, swapped or replayed): found block {} of table {} column {} slice {} rows {}+{}",
                header.block_id, header.table_id, header.column_id, header.slice_id, header.row_start, header.row_count
            )));
        }
        let dek = self.keys.data_key(meta.block_id).map_err(|e| match e {
            sealstore_keyring::Error::UnknownBlock { .. } => Error::TableDropped {
                table: table.name.clone(),
            },
            e => fail(e.to_string()),
        })?;
        let key = self.backend.key(dek.expose_secret());
        drop(dek);
        block::open(buf, key.as_ref()).map_err(|r| fail(r.to_owned()))
    }

    pub(crate) fn decode_error(
        table: &TableMeta,
        column: usize,
        meta: &BlockMeta,
        e: crate::encoding::DecodeError,
    ) -> Error {
        Error::Decode {
            table: table.name.clone(),
            column: table.columns[column].name.clone(),
            block_id: meta.block_id,
            reason: e.0.to_owned(),
        }
    }

    /// Decodes a block into its pages' arrays.
    pub fn read_block(
        &self,
        table: &TableMeta,
        column: usize,
        meta: &BlockMeta,
        buf: &mut Vec<u8>,
    ) -> Result<Vec<arrow_array::ArrayRef>> {
        let range = self.open_block(table, column, meta, buf)?;
        crate::writer::decode_block(table.columns[column].ty, &buf[range])
            .map_err(|e| Self::decode_error(table, column, meta, e))
    }
}

//! Writes seed corpora for the cargo-fuzz targets from real sealstore files and encodings:
//! `fuzz-seeds DIR` fills `DIR/<target>/` (run by `scripts/fuzz` before fuzzing).
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use sealstore_blockstore::ColumnType;
use sealstore_blockstore::block::{self, BlockHeader, MIN_BLOCK_SIZE};
use sealstore_blockstore::encoding::{Encoding, encode_page_as};
use sealstore_keyring::aead::default_backend;
use sealstore_keyring::provider::InsecureInMemoryProvider;
use sealstore_keyring::{Keyring, MasterKeyProvider};

fn put(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(name), bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).ok_or("usage: fuzz-seeds DIR")?;
    let out = Path::new(&out);
    let tmp = tempfile::tempdir()?;

    // Key store, DEK table and audit log of a small real hierarchy.
    let provider: Arc<dyn MasterKeyProvider> = Arc::new(InsecureInMemoryProvider::new()?);
    let ring = Keyring::create(&tmp.path().join("ks"), provider, "seed-cluster")?;
    let keys = ring.create_database("dev", &tmp.path().join("deks"))?;
    keys.generate(5)?;
    keys.commit()?;
    keys.remove(&keys.block_ids()[..1])?;
    drop(keys);
    put(
        out,
        "keystore",
        "keystore.ssk",
        &std::fs::read(tmp.path().join("ks/keystore.ssk"))?,
    )?;
    put(
        out,
        "audit_log",
        "audit.log",
        &std::fs::read(tmp.path().join("ks/audit.log"))?,
    )?;
    for e in std::fs::read_dir(tmp.path().join("deks"))? {
        let p = e?.path();
        put(out, "dek_table", "dek.log", &std::fs::read(&p)?)?;
    }

    // Pages of every type in every encoding it accepts, ± LZ4.
    let arrays: Vec<(ColumnType, ArrayRef)> = vec![
        (
            ColumnType::Boolean,
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false), Some(true)])),
        ),
        (
            ColumnType::Int32,
            Arc::new(Int32Array::from(vec![Some(5), None, Some(5), Some(-7), Some(9)])),
        ),
        (
            ColumnType::Int64,
            Arc::new(Int64Array::from_iter_values([10, 11, 13, 13, 13, 1 << 40])),
        ),
        (
            // Few nulls (stored as positions), whole hours (a common divisor).
            ColumnType::TimestampMicros,
            Arc::new(TimestampMicrosecondArray::from_iter(
                (0..200i64).map(|i| (i % 97 != 3).then_some(i / 7 * 3_600_000_000)),
            )),
        ),
        (
            ColumnType::Float64,
            Arc::new(Float64Array::from(vec![Some(1.25), None, Some(3.5), Some(-0.0)])),
        ),
        (
            ColumnType::Utf8,
            Arc::new(StringArray::from(vec![
                Some("alpha"),
                None,
                Some("alpha"),
                Some("beta"),
            ])),
        ),
        (
            ColumnType::Binary,
            Arc::new(BinaryArray::from_iter(vec![
                Some(&b"\x00\x01"[..]),
                None,
                Some(&b"zz"[..]),
            ])),
        ),
        (
            ColumnType::Date32,
            Arc::new(Date32Array::from_iter_values([9000, 9001, 9003])),
        ),
    ];
    let encodings = [
        Encoding::Plain,
        Encoding::RunLength,
        Encoding::DeltaBitPack,
        Encoding::FrameOfReference,
        Encoding::Dictionary,
        Encoding::DecimalScaled,
        Encoding::BlockedFrameOfReference,
        Encoding::DictionaryCascaded,
    ];
    let mut pages = Vec::new();
    for (ty, array) in &arrays {
        for enc in encodings {
            for lz4 in [false, true] {
                if let Some(page) = encode_page_as(*ty, array.as_ref(), Some(enc), Some(lz4)) {
                    put(
                        out,
                        "page_decode",
                        &format!("{}-{}-{lz4}", ty.name(), enc.name()),
                        &page.bytes,
                    )?;
                    pages.push(page.bytes);
                }
            }
        }
    }
    // Block payloads (page lists) and a sealed block under the fuzz target's fixed key.
    for (i, chunk) in pages.chunks(3).enumerate() {
        let mut payload = (chunk.len() as u32).to_le_bytes().to_vec();
        chunk.iter().for_each(|p| payload.extend_from_slice(p));
        put(out, "block_payload", &format!("payload-{i}"), &payload)?;
        if i == 0 {
            let header = BlockHeader {
                column_type: 5,
                encoding: 0,
                block_id: 1,
                table_id: 1,
                column_id: 0,
                slice_id: 0,
                dk_generation: 1,
                row_start: 0,
                row_count: 4,
                nonce: [3; 12],
            };
            let mut slot = vec![0u8; MIN_BLOCK_SIZE];
            block::seal(&mut slot, &header, &payload, default_backend().key(&[0u8; 32]).as_ref())
                .map_err(|e| e.to_string())?;
            put(out, "block_open", "sealed-block", &slot)?;
        }
    }
    for (i, f) in [
        "a = 1",
        "a BETWEEN -5 AND 10 AND b = 'x y'",
        "c >= 1995-01-01 AND c < '1996-01-01'",
        "d != 0.5 AND e IS NOT NULL AND f = true",
        "e = '2024-01-01 10:00:00.5' AND b IS NULL",
    ]
    .iter()
    .enumerate()
    {
        put(out, "filter_parse", &format!("filter-{i}"), f.as_bytes())?;
    }
    // A real manifest (sealed file and its plaintext body), CSV files, operation sequences.
    {
        let store_dir = tmp.path().join("store");
        let provider: Arc<dyn MasterKeyProvider> = Arc::new(InsecureInMemoryProvider::new()?);
        let ring = Keyring::create(&tmp.path().join("ks2"), provider, "seed-cluster")?;
        let keys = ring.create_database("dev", &tmp.path().join("deks2"))?;
        let options = sealstore_blockstore::StoreOptions {
            block_size: MIN_BLOCK_SIZE,
            slice_id: 0,
            ..Default::default()
        };
        let store = sealstore_blockstore::Store::create(&store_dir, keys, options)?;
        let schema = arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("id", arrow_schema::DataType::Int64, true),
            arrow_schema::Field::new("name", arrow_schema::DataType::Utf8, true),
        ]);
        store.create_table("t", &schema)?;
        let batch = arrow_array::RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..1000)),
                Arc::new(StringArray::from_iter_values((0..1000).map(|i| format!("n{i}")))),
            ],
        )?;
        store.append("t", &batch)?;
        let generation = store.generation();
        let sealed = std::fs::read(store_dir.join(format!("manifest-{generation:020}.ssm")))?;
        put(out, "manifest", "sealed", &sealed)?;
        put(out, "manifest", "body", &serde_json::to_vec(&*store.manifest())?)?;
    }
    let orders = include_bytes!("../../../examples/orders.csv");
    put(out, "csv_load", "orders.csv", orders)?;
    put(
        out,
        "csv_load",
        "quoted.csv",
        b"a,b,c\n1,\"x,y\",2024-01-02\n,,\n3,\"\"\"q\"\"\",1999-12-31 23:59:59\n",
    )?;
    put(
        out,
        "csv_load",
        "types.csv",
        b"i,f,b,t\n1,1.5,true,2024-01-01 00:00:00.25\n-9,NaN,false,\n",
    )?;
    for (i, ops) in [
        &[0u8, 0, 0, 1, 0, 5, 8, 3, 3, 1, 0, 9, 4, 0, 0, 6, 0, 0, 7, 0, 0, 2, 0, 0][..],
        &[0, 1, 0, 1, 1, 40, 3, 1, 0, 0, 1, 0, 8, 2, 1, 6, 0, 0, 1, 1, 3, 7, 0, 0],
    ]
    .iter()
    .enumerate()
    {
        put(out, "stateful", &format!("ops-{i}"), ops)?;
    }
    println!("seed corpora written to {}", out.display());
    Ok(())
}

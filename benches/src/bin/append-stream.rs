//! Appends `GIB` GiB of lineitem-like Arrow batches to one store in a single transaction,
//! generating them on the fly, so peak memory (`/usr/bin/time -v`) shows what the writer holds.
//!
//! usage: append-stream [GIB=1] [BLOCK_SIZE=1048576]
use std::sync::Arc;
use std::time::Instant;

use sealstore_blockstore::{Store, StoreOptions};
use sealstore_cluster::datagen::{Lineitem, arrow_bytes, lineitem_schema};
use sealstore_keyring::provider::InsecureInMemoryProvider;
use sealstore_keyring::{Keyring, MasterKeyProvider};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let gib: f64 = args.get(1).map_or(Ok(1.0), |a| a.parse())?;
    let block_size: usize = args.get(2).map_or(Ok(1 << 20), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let provider: Arc<dyn MasterKeyProvider> = Arc::new(InsecureInMemoryProvider::new()?);
    let ring = Keyring::create(&dir.path().join("keystore"), provider, "bench")?;
    let keys = ring.create_database("dev", &dir.path().join("deks"))?;
    let store = Store::create(
        &dir.path().join("slice"),
        keys,
        StoreOptions {
            block_size,
            slice_id: 0,
            ..Default::default()
        },
    )?;
    store.create_table("lineitem", &lineitem_schema())?;
    let target = (gib * (1u64 << 30) as f64) as usize;
    let started = Instant::now();
    let mut txn = store.begin();
    let (mut bytes, mut rows) = (0usize, 0usize);
    for batch in Lineitem::new(usize::MAX / 2, 7) {
        bytes += arrow_bytes(&batch);
        rows += batch.num_rows();
        txn.append("lineitem", &batch)?;
        if bytes >= target {
            break;
        }
    }
    let info = txn.commit()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "appended {rows} rows, {:.2} GiB of Arrow data, {} blocks of {block_size} bytes in one commit in {secs:.1} s ({:.0} MB/s)",
        bytes as f64 / (1u64 << 30) as f64,
        info.blocks_written,
        bytes as f64 / 1e6 / secs
    );
    println!(
        "memory budget: 64 MiB + 2 x block_size x parallelism(1) = {} MiB",
        64 + 2 * block_size / (1 << 20)
    );
    Ok(())
}

//! DEK generation + wrapping, unwrapping by block id, opening a 1M-entry DEK table, and
//! re-wrapping every DEK under a new database key (database-key rotation).
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sealstore_keyring::DekTable;
use sealstore_keyring::aead::default_backend;

const TABLE_ENTRIES: usize = 1_000_000;

fn dek_ops(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut table = DekTable::create(dir.path(), "bench", default_backend().key(&[1; 32]), 1).unwrap();
    let mut g = c.benchmark_group("dek");
    g.measurement_time(Duration::from_secs(5)).sample_size(10);

    const BATCH: usize = 100_000;
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("generate_and_wrap", |b| {
        b.iter(|| {
            let keys = table.generate(BATCH).unwrap();
            table.discard_pending();
            black_box(keys)
        })
    });

    table.generate(TABLE_ENTRIES).unwrap();
    table.commit().unwrap();
    let ids: Vec<u64> = table.entries().iter().map(|e| e.block_id).collect();
    let mut i = 0usize;
    g.bench_function("unwrap_by_block_id", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                i = (i + 7919) % ids.len();
                black_box(table.data_key(ids[i]).unwrap());
            }
        })
    });

    g.throughput(Throughput::Elements(TABLE_ENTRIES as u64));
    g.bench_function("open_1m_entry_table", |b| {
        b.iter(|| black_box(DekTable::open(dir.path(), "bench", default_backend().key(&[1; 32]), 1).unwrap()))
    });
    let opened = DekTable::open(dir.path(), "bench", default_backend().key(&[1; 32]), 1).unwrap();
    eprintln!(
        "DEK table: {} entries, {} bytes in memory = {:.1} bytes/entry, file {} bytes",
        opened.len(),
        opened.memory_bytes(),
        opened.memory_bytes() as f64 / opened.len() as f64,
        std::fs::metadata(opened.current_path()).unwrap().len()
    );
    drop(opened);

    let generation = std::cell::Cell::new(1u32);
    g.bench_function("rewrap_1m_under_new_database_key", |b| {
        b.iter_batched(
            || {
                generation.set(generation.get() + 1);
                default_backend().key(&[generation.get() as u8; 32])
            },
            |new_key| table.rewrap(new_key, generation.get()).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// `rotate database` end to end through the keyring: 1,000,000 DEKs re-wrapped under a new
/// database key, the DEK table switched and both key-store replaces (without block data).
fn rotate_database(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let provider: std::sync::Arc<dyn sealstore_keyring::MasterKeyProvider> =
        std::sync::Arc::new(sealstore_keyring::provider::LocalKeyFile::create(&dir.path().join("mk"), None).unwrap());
    let ring = sealstore_keyring::Keyring::create(&dir.path().join("ks"), provider, "bench").unwrap();
    let keys = ring.create_database("bench", &dir.path().join("deks")).unwrap();
    for _ in 0..TABLE_ENTRIES / 100_000 {
        keys.generate(100_000).unwrap();
        keys.commit().unwrap();
    }
    let mut g = c.benchmark_group("rotate");
    g.sample_size(10);
    g.throughput(Throughput::Elements(TABLE_ENTRIES as u64));
    g.bench_function("rotate_database_key_1m_deks", |b| {
        b.iter(|| black_box(ring.rotate_database_key(&keys).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, dek_ops, rotate_database);
criterion_main!(benches);

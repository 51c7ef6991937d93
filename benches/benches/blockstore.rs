//! Sealing and opening a 1 MiB block (fresh DEK, header, padding) against raw AES-256-GCM of the
//! same buffer, for every compiled backend; encode/decode throughput of each encoding on the data
//! it wins on; zone-map pruning of a 1% selective scan.
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sealstore_blockstore::block::{self, BlockHeader, PAYLOAD_OFFSET};
use sealstore_blockstore::encoding::{decode_page, encode_page};
use sealstore_blockstore::{ColumnType, Predicate, Scalar, ScanStats, Store, StoreOptions};
use sealstore_keyring::aead::backends;
use sealstore_keyring::provider::InsecureInMemoryProvider;
use sealstore_keyring::{DataKey, Keyring, MasterKeyProvider, fill_random};

const MIB: usize = 1 << 20;

fn header(nonce: [u8; 12]) -> BlockHeader {
    BlockHeader {
        column_type: 3,
        encoding: 0,
        block_id: 1,
        table_id: 1,
        column_id: 0,
        slice_id: 0,
        dk_generation: 1,
        row_start: 0,
        row_count: 100_000,
        nonce,
    }
}

fn seal_open(c: &mut Criterion) {
    for backend in backends() {
        let mut g = c.benchmark_group(format!("seal-open/{}", backend.name()));
        g.throughput(Throughput::Bytes(MIB as u64))
            .measurement_time(Duration::from_secs(3));
        let raw_key = backend.key(&[9; 32]);
        let mut buf = vec![0x5au8; MIB];
        g.bench_function("raw_aes_gcm_seal_1mib", |b| {
            b.iter(|| black_box(raw_key.seal_in_place(&[1; 12], b"", &mut buf).unwrap()))
        });
        // An encoded payload filling the block, as the writer hands it over (in place).
        let payload_len = block::capacity(MIB) - 100;
        let mut slot = vec![0x3cu8; MIB];
        g.bench_function("block_seal_1mib_fresh_dek", |b| {
            b.iter(|| {
                let dek = DataKey::generate().unwrap();
                let key = backend.key(dek.expose_secret());
                let mut nonce = [0u8; 12];
                fill_random(&mut nonce).unwrap();
                block::seal_in_place(&mut slot, &header(nonce), payload_len, key.as_ref()).unwrap();
            })
        });
        let tag = raw_key.seal_in_place(&[2; 12], b"", &mut buf).unwrap();
        g.bench_function("raw_aes_gcm_open_1mib", |b| {
            b.iter_batched_ref(
                || buf.clone(),
                |ct| raw_key.open_in_place(&[2; 12], b"", ct, &tag).unwrap(),
                BatchSize::LargeInput,
            )
        });
        let dek = DataKey::generate().unwrap();
        slot[PAYLOAD_OFFSET..PAYLOAD_OFFSET + payload_len].fill(0x11);
        block::seal_in_place(
            &mut slot,
            &header([3; 12]),
            payload_len,
            backend.key(dek.expose_secret()).as_ref(),
        )
        .unwrap();
        let mut out = vec![0u8; MIB];
        g.bench_function("block_open_1mib", |b| {
            b.iter(|| {
                let key = backend.key(dek.expose_secret());
                black_box(block::open_to(&slot, key.as_ref(), &mut out).unwrap())
            })
        });
        g.finish();
    }
}

fn splitmix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn encodings(c: &mut Criterion) {
    const N: usize = 16_384;
    let words = [
        "furiously",
        "sly",
        "careful",
        "blithely",
        "quickly",
        "deposits",
        "requests",
        "ideas",
    ];
    let cases: Vec<(&str, ColumnType, ArrayRef)> = vec![
        (
            "int64_sorted",
            ColumnType::Int64,
            Arc::new(Int64Array::from_iter_values((0..N as i64).map(|i| 1_000_000 + i / 4))),
        ),
        (
            "int64_small_range",
            ColumnType::Int64,
            Arc::new(Int64Array::from_iter_values(
                (0..N as u64).map(|i| (splitmix(i) % 200_000) as i64),
            )),
        ),
        (
            "int64_runs",
            ColumnType::Int64,
            Arc::new(Int64Array::from_iter_values((0..N as i64).map(|i| i / 1000))),
        ),
        (
            "int64_sparse_values",
            ColumnType::Int64,
            Arc::new(Int64Array::from_iter_values(
                (0..N as u64).map(|i| [5i64, 1 << 40, -7][(splitmix(i) % 3) as usize]),
            )),
        ),
        (
            "int64_random",
            ColumnType::Int64,
            Arc::new(Int64Array::from_iter_values((0..N as u64).map(|i| splitmix(i) as i64))),
        ),
        (
            "float64_decimal",
            ColumnType::Float64,
            Arc::new(Float64Array::from_iter_values(
                (0..N as u64).map(|i| (splitmix(i) % 10_000_000) as f64 / 100.0),
            )),
        ),
        (
            "float64_random",
            ColumnType::Float64,
            Arc::new(Float64Array::from_iter_values(
                (0..N as u64).map(|i| f64::from_bits(0x3FF0_0000_0000_0000 | splitmix(i) >> 12)),
            )),
        ),
        (
            "date32",
            ColumnType::Date32,
            Arc::new(Date32Array::from_iter_values(
                (0..N as u64).map(|i| 9000 + (i / 40) as i32 + (splitmix(i) % 240) as i32),
            )),
        ),
        (
            "utf8_low_cardinality",
            ColumnType::Utf8,
            Arc::new(StringArray::from_iter_values((0..N as u64).map(|i| {
                ["REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"][(splitmix(i) % 7) as usize]
            }))),
        ),
        (
            "utf8_short_words",
            ColumnType::Utf8,
            Arc::new(StringArray::from_iter_values((0..N as u64).map(|i| {
                (0..4)
                    .map(|k| words[(splitmix(i * 4 + k) % 8) as usize])
                    .collect::<Vec<_>>()
                    .join(" ")
            }))),
        ),
    ];
    let mut g = c.benchmark_group("encoding");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for (name, ty, array) in &cases {
        let page = encode_page(*ty, array.as_ref());
        eprintln!(
            "{name}: {:?}{} {} bytes Arrow -> {} bytes encoded",
            page.encoding,
            if page.lz4 { "+lz4" } else { "" },
            array.get_buffer_memory_size(),
            page.bytes.len()
        );
        g.throughput(Throughput::Bytes(array.get_buffer_memory_size() as u64));
        g.bench_function(format!("{name}/{:?}/encode", page.encoding), |b| {
            b.iter(|| black_box(encode_page(*ty, array.as_ref())))
        });
        g.bench_function(format!("{name}/{:?}/decode", page.encoding), |b| {
            b.iter(|| black_box(decode_page(*ty, &page.bytes).unwrap()))
        });
    }
    g.finish();
}

fn zone_map_pruning(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let provider: Arc<dyn MasterKeyProvider> = Arc::new(InsecureInMemoryProvider::new().unwrap());
    let ring = Keyring::create(&dir.path().join("ks"), provider, "bench").unwrap();
    let keys = ring.create_database("dev", &dir.path().join("deks")).unwrap();
    let store = Store::create(
        &dir.path().join("s"),
        keys,
        StoreOptions {
            block_size: 64 << 10,
            slice_id: 0,
            ..Default::default()
        },
    )
    .unwrap();
    // A sorted key with random gaps (about 2 bytes/row) and a random double: hundreds of blocks.
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Float64, false),
    ]));
    store.create_table("t", &schema).unwrap();
    let n = 2_000_000u64;
    let mut k = 0i64;
    let keys: Vec<i64> = (0..n)
        .map(|i| {
            k += 1 + (splitmix(i) % 60_000) as i64;
            k
        })
        .collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(keys.clone())),
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| f64::from_bits(0x3FF0_0000_0000_0000 | splitmix(i + n) >> 12)),
            )),
        ],
    )
    .unwrap();
    store.append("t", &batch).unwrap();
    let (lo, hi) = (keys[(n / 2) as usize], keys[(n / 2 + n / 100) as usize]);
    let stats = Arc::new(ScanStats::default());
    let rows: usize = store
        .scan("t")
        .filter(Predicate::between("k", Scalar::Int(lo), Scalar::Int(hi)))
        .stats(stats.clone())
        .run()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    let blocks_k = store.manifest().table("t").unwrap().columns[0].blocks.len();
    let c0 = stats.counts();
    eprintln!(
        "zone maps: 1% of rows ({rows}) lie in {:.1}% of the table's blocks; the scan read {} of {} blocks = {:.2}% (k has {blocks_k} blocks)",
        100.0 * (n / 100) as f64 / n as f64,
        c0.blocks_read,
        c0.blocks_total,
        100.0 * c0.blocks_read as f64 / c0.blocks_total as f64
    );
    let mut g = c.benchmark_group("zone-map");
    g.sample_size(20);
    g.bench_function("selective_scan_1pct", |b| {
        b.iter(|| {
            store
                .scan("t")
                .filter(Predicate::between("k", Scalar::Int(lo), Scalar::Int(hi)))
                .run()
                .unwrap()
                .map(|b| b.unwrap().num_rows())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, seal_open, encodings, zone_map_pruning);
criterion_main!(benches);

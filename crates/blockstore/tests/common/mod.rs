#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::*;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use sealstore_blockstore::{OpenOptions, Store, StoreMedium, StoreOptions};
use sealstore_keyring::provider::LocalKeyFile;
use sealstore_keyring::{DatabaseKeys, Keyring, MasterKeyProvider};
use sealstore_storage::{ObjectStorage, StorageLocation};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub ring: Keyring,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mk: Arc<dyn MasterKeyProvider> = Arc::new(LocalKeyFile::create(&dir.path().join("mk"), None).unwrap());
        let ring = Keyring::create(&dir.path().join("keystore"), mk, "test-cluster").unwrap();
        ring.create_database("dev", &dir.path().join("data/deks")).unwrap();
        Env { dir, ring }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data/slice0")
    }

    pub fn keys(&self) -> Arc<DatabaseKeys> {
        self.ring
            .open_database("dev", &self.dir.path().join("data/deks"))
            .unwrap()
    }

    pub fn create(&self, block_size: usize) -> Store {
        Store::create(
            &self.data(),
            self.keys(),
            StoreOptions {
                block_size,
                slice_id: 0,
                ..Default::default()
            },
        )
        .unwrap()
    }

    /// The objects of a store on object storage kept as files under the test directory
    /// (`object_store`'s local-file backend), so tests can also attack them as files.
    pub fn objects(&self) -> StoreMedium {
        let url = format!("file://{}", self.objects_root().display());
        let storage = ObjectStorage::open(&StorageLocation::parse(&url).unwrap()).unwrap();
        StoreMedium::Objects {
            storage,
            prefix: "node-0/slice-0/dev".into(),
        }
    }

    /// Where [`Env::objects`] keeps its files; the store's objects are under `node-0/slice-0/dev`.
    pub fn objects_root(&self) -> PathBuf {
        self.dir.path().join("bucket")
    }

    pub fn create_in(&self, medium: StoreMedium, block_size: usize) -> Store {
        Store::create_in(
            medium,
            self.keys(),
            StoreOptions {
                block_size,
                slice_id: 0,
                ..Default::default()
            },
        )
        .unwrap()
    }

    pub fn open_in(&self, medium: StoreMedium) -> sealstore_blockstore::Result<Store> {
        Store::open_in(
            medium,
            self.keys(),
            OpenOptions {
                reclaim_keys: true,
                ..Default::default()
            },
        )
    }

    pub fn reopen(&self) -> Store {
        Store::open(
            &self.data(),
            self.keys(),
            OpenOptions {
                reclaim_keys: true,
                ..Default::default()
            },
        )
        .unwrap()
    }
}

pub fn all_types_schema() -> Schema {
    Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("small", DataType::Int32, true),
        Field::new("price", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("blob", DataType::Binary, true),
        Field::new("day", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
    ])
}

/// Deterministic rows `start..start+n` of the all-types table, with some nulls.
pub fn all_types_batch(start: i64, n: usize) -> RecordBatch {
    let ids: Vec<i64> = (start..start + n as i64).collect();
    let null_every = |i: i64, k: i64| i % k == 3;
    RecordBatch::try_new(
        Arc::new(all_types_schema()),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(BooleanArray::from(
                ids.iter()
                    .map(|&i| (!null_every(i, 7)).then_some(i % 3 == 0))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int32Array::from(
                ids.iter()
                    .map(|&i| (!null_every(i, 11)).then_some((i % 50) as i32))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                ids.iter()
                    .map(|&i| (!null_every(i, 13)).then_some((i % 1000) as f64 / 100.0))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                ids.iter()
                    .map(|&i| (!null_every(i, 5)).then(|| format!("name-{}", i % 97)))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(BinaryArray::from_iter(
                ids.iter()
                    .map(|&i| (!null_every(i, 17)).then(|| i.to_le_bytes().to_vec())),
            )),
            Arc::new(Date32Array::from(
                ids.iter()
                    .map(|&i| (!null_every(i, 19)).then_some(8000 + (i / 100) as i32))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(TimestampMicrosecondArray::from(
                ids.iter()
                    .map(|&i| (!null_every(i, 23)).then_some(i * 1_000_000))
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// All rows of a scan, concatenated.
pub fn collect(store: &Store, table: &str) -> RecordBatch {
    let iter = store.scan(table).run().unwrap();
    let schema = iter.schema();
    let batches: Vec<RecordBatch> = iter.map(|b| b.unwrap()).collect();
    arrow_select::concat::concat_batches(&schema, &batches).unwrap()
}

/// Every file below `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}

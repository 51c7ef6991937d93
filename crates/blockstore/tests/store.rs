mod common;

use std::sync::Arc;

use arrow_array::*;
use arrow_schema::{DataType, Field, Schema};
use common::*;
use sealstore_blockstore::{CmpOp, Error, Predicate, Scalar, ScanStats, block};

const SMALL: usize = block::MIN_BLOCK_SIZE;

#[test]
fn append_scan_reopen_round_trip_for_every_type() {
    let env = Env::new();
    let store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    let batch = all_types_batch(0, 30_000);
    store.append("t", &batch).unwrap();
    assert_eq!(collect(&store, "t"), batch);
    drop(store);
    let store = env.reopen();
    assert_eq!(store.row_count("t").unwrap(), 30_000);
    assert_eq!(collect(&store, "t"), batch);
    assert!(store.verify().is_empty());
}

#[test]
fn many_small_appends_keep_one_partial_block_per_column() {
    let env = Env::new();
    let store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    let mut expected = Vec::new();
    for i in 0..40 {
        let b = all_types_batch(i * 50, 50);
        store.append("t", &b).unwrap();
        expected.push(b);
    }
    let m = store.manifest();
    let t = m.table("t").unwrap();
    for c in &t.columns {
        assert_eq!(c.blocks.iter().filter(|b| !b.full).count(), 1, "column {}", c.name);
        assert_eq!(c.blocks.len(), 1, "2000 small rows fit one block: column {}", c.name);
    }
    // Slots of replaced partial blocks were freed: 8 columns → 8 slots in use.
    assert_eq!(store.stats().slots_used, 8);
    assert_eq!(store.keys().len(), 8, "DEKs of replaced blocks were removed");
    let all = arrow_select::concat::concat_batches(&Arc::new(all_types_schema()), &expected).unwrap();
    assert_eq!(collect(&store, "t"), all);
    drop(store);
    assert_eq!(collect(&env.reopen(), "t"), all);
}

#[test]
fn append_all_is_one_commit_and_schema_mismatch_changes_nothing() {
    let env = Env::new();
    let store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    let info = store
        .append_all("t", (0..5).map(|i| all_types_batch(i * 1000, 1000)))
        .unwrap();
    assert_eq!(info.rows, 5000);
    let generation = store.generation();
    let wrong = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["x"]))],
    )
    .unwrap();
    assert!(matches!(store.append("t", &wrong), Err(Error::SchemaMismatch { .. })));
    let mut txn = store.begin();
    txn.append("t", &all_types_batch(5000, 10)).unwrap();
    assert!(txn.append("t", &wrong).is_err());
    drop(txn);
    assert_eq!(store.generation(), generation);
    assert_eq!(store.row_count("t").unwrap(), 5000);
    assert!(store.verify().is_empty());
}

#[test]
fn unsupported_types_and_bad_names_are_refused() {
    let env = Env::new();
    let store = env.create(SMALL);
    let s = Schema::new(vec![Field::new("x", DataType::Float32, true)]);
    let err = store.create_table("t", &s).unwrap_err();
    assert!(matches!(err, Error::UnsupportedType { .. }), "{err}");
    assert!(err.to_string().contains("Float32"));
    assert!(store.create_table("../evil", &all_types_schema()).is_err());
    assert!(store.create_table("t", &Schema::empty()).is_err());
    store.create_table("t", &all_types_schema()).unwrap();
    assert!(matches!(
        store.create_table("t", &all_types_schema()),
        Err(Error::TableExists(_))
    ));
}

fn model_filter(batch: &RecordBatch, keep: impl Fn(usize) -> bool) -> Vec<i64> {
    let ids = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    (0..batch.num_rows())
        .filter(|&i| keep(i))
        .map(|i| ids.value(i))
        .collect()
}

fn scanned_ids(store: &sealstore_blockstore::Store, preds: Vec<Predicate>) -> Vec<i64> {
    store
        .scan("t")
        .columns(&["id"])
        .filters(preds)
        .run()
        .unwrap()
        .flat_map(|b| {
            b.unwrap()
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect()
}

#[test]
fn predicates_match_a_row_by_row_model() {
    let env = Env::new();
    let store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    let batch = all_types_batch(0, 20_000);
    store.append("t", &batch).unwrap();
    let small = batch.column(2).as_any().downcast_ref::<Int32Array>().unwrap();
    let name = batch.column(4).as_any().downcast_ref::<StringArray>().unwrap();
    let price = batch.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
    let int = |v| Scalar::Int(v);
    for (op, f) in [
        (CmpOp::Eq, (|a: i32, b: i32| a == b) as fn(i32, i32) -> bool),
        (CmpOp::Ne, |a, b| a != b),
        (CmpOp::Lt, |a, b| a < b),
        (CmpOp::Le, |a, b| a <= b),
        (CmpOp::Gt, |a, b| a > b),
        (CmpOp::Ge, |a, b| a >= b),
    ] {
        let got = scanned_ids(&store, vec![Predicate::compare("small", op, int(20))]);
        let want = model_filter(&batch, |i| small.is_valid(i) && f(small.value(i), 20));
        assert_eq!(got, want, "{op:?}");
    }
    let got = scanned_ids(
        &store,
        vec![
            Predicate::between("id", int(100), int(5000)),
            Predicate::IsNull("name".into()),
        ],
    );
    assert_eq!(
        got,
        model_filter(&batch, |i| (100..=5000).contains(&(i as i64)) && name.is_null(i))
    );
    let got = scanned_ids(
        &store,
        vec![
            Predicate::IsNotNull("price".into()),
            Predicate::compare("price", CmpOp::Gt, Scalar::Float(9.5)),
        ],
    );
    assert_eq!(got, model_filter(&batch, |i| price.is_valid(i) && price.value(i) > 9.5));
    let got = scanned_ids(
        &store,
        vec![Predicate::compare(
            "name",
            CmpOp::Eq,
            Scalar::Bytes(b"name-42".to_vec()),
        )],
    );
    assert_eq!(
        got,
        model_filter(&batch, |i| name.is_valid(i) && name.value(i) == "name-42")
    );
    let bad = store
        .scan("t")
        .filter(Predicate::compare("name", CmpOp::Eq, Scalar::Int(1)))
        .run();
    assert!(matches!(bad, Err(Error::InvalidPredicate(_))));
    assert!(matches!(
        store.scan("t").columns(&["nope"]).run(),
        Err(Error::UnknownColumn { .. })
    ));
}

#[test]
fn zone_maps_prune_blocks_before_reading() {
    let env = Env::new();
    let store = env.create(SMALL);
    let schema = Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Float64, false),
    ]);
    store.create_table("t", &schema).unwrap();
    let n = 400_000i64;
    // Random-looking values so blocks hold fewer rows than a compressible key would.
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(Float64Array::from_iter_values((0..n).map(|i| {
                f64::from_bits(0x3FF0_0000_0000_0000 | (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 12)
            }))),
        ],
    )
    .unwrap();
    store.append("t", &batch).unwrap();
    let stats = Arc::new(ScanStats::default());
    let rows: usize = store
        .scan("t")
        .filter(Predicate::between("k", Scalar::Int(200_000), Scalar::Int(200_999)))
        .stats(stats.clone())
        .run()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, 1000);
    let c = stats.counts();
    assert!(c.blocks_total > 40, "{c:?}");
    // One 64K-row page of `k` matches; `v` holds ~8K rows per 64 KiB block.
    assert!(
        c.blocks_read <= 10,
        "read {} of {} blocks",
        c.blocks_read,
        c.blocks_total
    );
    let none = Arc::new(ScanStats::default());
    let count = store
        .scan("t")
        .filter(Predicate::compare("k", CmpOp::Gt, Scalar::Int(n)))
        .stats(none.clone())
        .run()
        .unwrap()
        .count();
    assert_eq!((count, none.counts().blocks_read), (0, 0));
}

#[test]
fn row_ranges_cut_at_block_boundaries_scan_each_row_exactly_once() {
    let env = Env::new();
    let store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    let n = 60_000;
    store.append("t", &all_types_batch(0, n)).unwrap();
    let snapshot = store.snapshot();
    let whole: Vec<i64> = scanned_ids(&store, vec![]);
    let once = Arc::new(ScanStats::default());
    store
        .scan("t")
        .columns(&["id"])
        .stats(once.clone())
        .run()
        .unwrap()
        .for_each(drop);
    let id_blocks = once.counts().blocks_read;
    for parts in [1, 2, 3, 7, 1000] {
        let ranges = snapshot.split_rows("t", parts).unwrap();
        assert!(ranges.len() <= parts && !ranges.is_empty());
        assert_eq!(ranges.first().unwrap().start, 0);
        assert_eq!(ranges.last().unwrap().end, n as u64);
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        let stats = Arc::new(ScanStats::default());
        let mut ids = Vec::new();
        for r in &ranges {
            for b in snapshot
                .scan("t")
                .columns(&["id"])
                .rows(r.clone())
                .stats(stats.clone())
                .run()
                .unwrap()
            {
                let b = b.unwrap();
                ids.extend_from_slice(b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values());
            }
        }
        assert_eq!(ids, whole, "{parts} parts");
        // A block of `id` is read twice at most where a cut falls inside it.
        let c = stats.counts();
        assert!(c.blocks_read < id_blocks + ranges.len() as u64, "{c:?} of {id_blocks}");
    }
    // An empty table is one empty range; a range past the end reads nothing.
    store.create_table("e", &all_types_schema()).unwrap();
    let empty_ranges = store.snapshot().split_rows("e", 4).unwrap();
    assert_eq!((empty_ranges.len(), empty_ranges[0].clone()), (1, 0..0));
    let empty: usize = snapshot.scan("t").rows(n as u64..n as u64 + 5).run().unwrap().count();
    assert_eq!(empty, 0);
}

#[test]
fn a_scan_decodes_only_the_pages_whose_rows_it_needs() {
    let env = Env::new();
    let store = env.create(1 << 20);
    let schema = Schema::new(vec![
        Field::new("day", DataType::Int64, false),
        Field::new("amount", DataType::Int64, false),
        Field::new("note", DataType::Utf8, false),
    ]);
    store.create_table("t", &schema).unwrap();
    // Unsorted days: every page's zone map spans every day, so pruning cannot help; one row
    // in 10,000 matches, in a few pages only.
    let n = 200_000i64;
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values((0..n).map(|i| {
                if i % 10_000 == 7 && i < 40_000 {
                    1_000
                } else {
                    i * 7919 % 999
                }
            }))),
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("note {}", i % 97)),
            )),
        ],
    )
    .unwrap();
    store.append("t", &batch).unwrap();
    let all = Arc::new(ScanStats::default());
    assert_eq!(
        store
            .scan("t")
            .stats(all.clone())
            .run()
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum::<usize>(),
        n as usize
    );
    let stats = Arc::new(ScanStats::default());
    let amounts: Vec<i64> = store
        .scan("t")
        .columns(&["amount", "note"])
        .filter(Predicate::compare("day", CmpOp::Eq, Scalar::Int(1_000)))
        .stats(stats.clone())
        .run()
        .unwrap()
        .flat_map(|b| {
            let b = b.unwrap();
            let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().clone();
            a.values().to_vec()
        })
        .collect();
    assert_eq!(amounts, [7, 10_007, 20_007, 30_007]);
    let (c, full) = (stats.counts(), all.counts());
    // Every page of `day` is decoded to evaluate the predicate; of `amount` and `note`, only the
    // pages holding a matching row.
    let day_pages = (n as u64).div_ceil(16_384);
    assert!(full.pages_decoded >= 2 * day_pages, "{full:?}");
    // Two pages of `amount` hold the four rows; `note`'s pages are larger, at most two.
    assert!(c.pages_decoded <= day_pages + 4, "{c:?} vs a full scan's {full:?}");
}

#[test]
fn drop_table_shreds_its_keys_and_frees_slots() {
    let env = Env::new();
    let store = env.create(SMALL);
    store.create_table("a", &all_types_schema()).unwrap();
    store.create_table("b", &all_types_schema()).unwrap();
    store.append("a", &all_types_batch(0, 5000)).unwrap();
    store.append("b", &all_types_batch(0, 5000)).unwrap();
    let a_blocks: Vec<u64> = store.manifest().table("a").unwrap().block_ids().collect();
    let used_before = store.stats().slots_used;
    store.drop_table("a").unwrap();
    for id in &a_blocks {
        assert!(store.keys().data_key(*id).is_err());
    }
    assert!(store.stats().slots_used < used_before);
    assert!(matches!(store.scan("a").run(), Err(Error::UnknownTable(_))));
    let slots_total = store.stats().slots_total;
    store.create_table("c", &all_types_schema()).unwrap();
    store.append("c", &all_types_batch(0, 5000)).unwrap();
    assert_eq!(store.stats().slots_total, slots_total, "freed slots are reused");
    assert_eq!(collect(&store, "b"), all_types_batch(0, 5000));
}

#[test]
fn no_plaintext_marker_reaches_any_file() {
    let env = Env::new();
    let store = env.create(SMALL);
    let schema = Schema::new(vec![Field::new("s", DataType::Utf8, true)]);
    store.create_table("secret_table_marker_free", &schema).unwrap();
    let marker = "PLAINTEXT-MARKER-7c1e";
    let values: Vec<String> = (0..5000).map(|i| format!("{marker}-{i}")).collect();
    let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(StringArray::from(values))]).unwrap();
    store.append("secret_table_marker_free", &batch).unwrap();
    for f in files_under(env.dir.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "marker found in {}",
            f.display()
        );
        assert!(
            !bytes.windows(24).any(|w| w == b"secret_table_marker_free"),
            "table name in {}",
            f.display()
        );
    }
}

#[test]
fn invalid_block_size_is_refused() {
    let env = Env::new();
    for bad in [1000usize, 32 << 10, 32 << 20] {
        let err = sealstore_blockstore::Store::create(
            &env.data(),
            env.keys(),
            sealstore_blockstore::StoreOptions {
                block_size: bad,
                slice_id: 0,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidBlockSize(_)));
    }
}

#[test]
fn pipelined_transaction_finishes_blocks_before_its_commit() {
    let env = Env::new();
    let store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    let batch = all_types_batch(0, 30_000);
    let mut txn = store.begin_pipelined(2).unwrap();
    txn.append("t", &batch).unwrap();
    // The writer thread writes and syncs the rest on its own; commit waits for it.
    txn.finish_blocks().unwrap();
    txn.commit().unwrap();
    assert_eq!(collect(&store, "t"), batch);
    drop(store);
    let store = env.reopen();
    assert_eq!(collect(&store, "t"), batch);
    assert!(store.verify().is_empty());
}

#[test]
fn appending_after_finish_blocks_fails_and_commits_nothing() {
    let env = Env::new();
    let store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    let first = all_types_batch(0, 1000);
    store.append("t", &first).unwrap();
    let mut txn = store.begin_pipelined(2).unwrap();
    txn.append("t", &all_types_batch(1000, 1000)).unwrap();
    txn.finish_blocks().unwrap();
    // A block sealed after the writer was told "no more" must not vanish silently.
    let late = txn
        .append("t", &all_types_batch(2000, 30_000))
        .and_then(|()| txn.commit().map(|_| ()));
    assert!(matches!(late, Err(Error::Internal(_))), "{late:?}");
    assert_eq!(collect(&store, "t"), first);
    drop(store);
    let store = env.reopen();
    assert_eq!(collect(&store, "t"), first);
    assert!(store.verify().is_empty());
}

#[test]
fn restoring_an_older_standalone_store_is_a_rollback_unless_accepted() {
    let env = Env::new();
    let store = env.create(64 << 10);
    store.create_table("t", &all_types_schema()).unwrap();
    store.append("t", &all_types_batch(0, 1_000)).unwrap();
    drop(store);
    let backup = env.dir.path().join("backup");
    copy_dir(&env.data(), &backup);
    let store = env.reopen();
    store.append("t", &all_types_batch(1_000, 1_000)).unwrap();
    assert_eq!(store.row_count("t").unwrap(), 2_000);
    drop(store);
    std::fs::remove_dir_all(env.data()).unwrap();
    copy_dir(&backup, &env.data());
    // The older CURRENT and manifest authenticate, but the key store is bound to a newer
    // generation: refused before any key is reclaimed.
    let err = sealstore_blockstore::Store::open(&env.data(), env.keys(), Default::default()).unwrap_err();
    assert!(err.is_rollback(), "{err}");
    let accepted = sealstore_blockstore::Store::open(
        &env.data(),
        env.keys(),
        sealstore_blockstore::OpenOptions {
            accept_rollback: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(accepted.row_count("t").unwrap(), 1_000);
    drop(accepted);
    // Accepted once, the restored state is the bound one.
    assert_eq!(env.reopen().row_count("t").unwrap(), 1_000);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_scan_running_when_its_table_is_dropped_ends_with_a_clear_error_and_the_keys_are_gone_at_once() {
    let env = Env::new();
    let store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    store.append("t", &all_types_batch(0, 60_000)).unwrap();
    let keys = store.keys().clone();
    let blocks = keys.len();
    let mut scan = store.scan("t").run().unwrap();
    scan.next().unwrap().unwrap();
    store.drop_table("t").unwrap();
    // Shredded when the drop returns, although the scan still holds the old snapshot.
    assert_eq!(keys.len(), 0, "{blocks} DEKs before the drop");
    let err = scan
        .find_map(|b| b.err())
        .expect("a scan cannot go on reading a shredded table");
    assert!(matches!(err, Error::TableDropped { .. }), "{err}");
    assert!(err.to_string().contains("was dropped"), "{err}");
    drop(scan);
    // The slots it pinned are free again for the next load.
    store.create_table("u", &all_types_schema()).unwrap();
    store.append("u", &all_types_batch(0, 1_000)).unwrap();
    assert!(store.verify().is_empty());
}

#[test]
fn commits_after_aborted_pipelined_transactions_reuse_their_slots_intact() {
    let env = Env::new();
    let store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    for round in 0..5 {
        // Many blocks queued behind a one-block channel, then abandoned mid-stream.
        let mut aborted = store.begin_pipelined(1).unwrap();
        aborted.append("t", &all_types_batch(0, 40_000)).unwrap();
        drop(aborted);
        // The next transaction reuses the same free slots at once.
        let batch = all_types_batch(round * 1000, 1000);
        store.append("t", &batch).unwrap();
        assert!(
            store.verify().is_empty(),
            "round {round}: a committed slot was overwritten"
        );
    }
    assert_eq!(store.row_count("t").unwrap(), 5000);
    drop(store);
    let store = env.reopen();
    assert!(store.verify().is_empty());
    assert_eq!(collect(&store, "t").num_rows(), 5000);
}

#[test]
fn strings_scanned_as_views_hold_the_same_rows_and_filter_alike() {
    use arrow_array::cast::AsArray;
    use sealstore_blockstore::BytesLayout;
    let env = Env::new();
    let store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    store.append("t", &all_types_batch(0, 20_000)).unwrap();
    let bytes = |s: &str| Scalar::Bytes(s.as_bytes().to_vec());
    let filters = [
        vec![],
        vec![Predicate::compare("name", CmpOp::Eq, bytes("name-42"))],
        vec![Predicate::compare("name", CmpOp::Lt, bytes("name-2"))],
        vec![Predicate::between("name", bytes("name-1"), bytes("name-3"))],
        vec![Predicate::InList {
            column: "name".into(),
            values: vec![bytes("name-7"), bytes("name-70")],
        }],
        vec![Predicate::StartsWith {
            column: "name".into(),
            prefix: b"name-9".to_vec(),
        }],
        vec![Predicate::IsNull("name".into())],
        vec![Predicate::compare("blob", CmpOp::Ge, Scalar::Bytes(vec![3]))],
    ];
    for preds in filters {
        let scan = |layout| -> Vec<(i64, Option<String>, Option<Vec<u8>>)> {
            let mut rows = Vec::new();
            for b in store
                .scan("t")
                .columns(&["id", "name", "blob"])
                .filters(preds.clone())
                .bytes_layout(layout)
                .run()
                .unwrap()
            {
                let b = b.unwrap();
                let ids = b.column(0).as_primitive::<arrow_array::types::Int64Type>();
                for r in 0..b.num_rows() {
                    let (n, bl) = (b.column(1), b.column(2));
                    let name = n.is_valid(r).then(|| match layout {
                        BytesLayout::Offsets => n.as_string::<i32>().value(r).to_owned(),
                        BytesLayout::Views => n.as_string_view().value(r).to_owned(),
                    });
                    let blob = bl.is_valid(r).then(|| match layout {
                        BytesLayout::Offsets => bl.as_binary::<i32>().value(r).to_vec(),
                        BytesLayout::Views => bl.as_binary_view().value(r).to_vec(),
                    });
                    rows.push((ids.value(r), name, blob));
                }
            }
            rows
        };
        let (offsets, views) = (scan(BytesLayout::Offsets), scan(BytesLayout::Views));
        assert!(!offsets.is_empty(), "{preds:?} selects rows");
        assert_eq!(offsets, views, "{preds:?}");
    }
    let schema = store.scan("t").bytes_layout(BytesLayout::Views).run().unwrap().schema();
    assert_eq!(schema.field(4).data_type(), &DataType::Utf8View);
    assert_eq!(schema.field(5).data_type(), &DataType::BinaryView);
}

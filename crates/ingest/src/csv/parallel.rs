//! Parallel CSV parsing: one thread cuts the file into chunks of whole records
//! ([`super::split`]), worker threads parse chunks with arrow's CSV reader (falling back to the
//! exact path, [`super::rows`], for chunks it refuses), and the consumer yields batches in file
//! order. Memory is bounded: at most a few chunks per worker are in flight.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef};
use crossbeam_channel::{Receiver, Sender, bounded};
use sealstore_blockstore::ColumnType;

use super::split::{CHUNK_BYTES, Chunk, Splitter};
use super::{Counting, header, rows};
use crate::Error;

/// Most parse workers used, whatever the core count (the writer needs cores too).
const MAX_WORKERS: usize = 8;

/// What the splitter hands a worker.
enum Job {
    Parse(Chunk),
    /// The input failed at chunk `seq` (an I/O error): reported in file order.
    Fail(u64, Error),
}

/// One parsed chunk, by its position in the file.
type Parsed = (u64, Result<Vec<RecordBatch>, Error>);

/// Everything a worker needs to parse a chunk.
struct ChunkParser {
    path: PathBuf,
    schema: SchemaRef,
    types: Vec<ColumnType>,
    /// Whether arrow's reader handles every column type (it has no binary parsing).
    fast: bool,
}

impl ChunkParser {
    fn parse(&self, chunk: &Chunk) -> Result<Vec<RecordBatch>, Error> {
        if self.fast
            && let Some(batches) = self.parse_fast(chunk)
        {
            return Ok(batches);
        }
        rows::parse_exact(&self.path, &chunk.bytes, chunk.first_line, &self.schema, &self.types).map(|b| vec![b])
    }

    /// arrow's reader over the chunk; `None` when it refuses any record, so that the exact path
    /// decides (it accepts a few spellings arrow does not, and names the line and column).
    fn parse_fast(&self, chunk: &Chunk) -> Option<Vec<RecordBatch>> {
        // One batch per chunk: the reader sizes its buffers by the batch size.
        let rows = usize::try_from(chunk.newlines).ok()?.saturating_add(1);
        let reader = arrow_csv::ReaderBuilder::new(self.schema.clone())
            .with_header(false)
            .with_batch_size(rows)
            .build_buffered(&chunk.bytes[..])
            .ok()?;
        reader.collect::<Result<Vec<_>, _>>().ok()
    }
}

/// Streams a CSV file as batches of `schema`, parsed in parallel, in file order.
#[derive(Debug)]
pub struct CsvBatches {
    results: Receiver<Parsed>,
    /// Chunks parsed ahead of the one the consumer waits for.
    ahead: BTreeMap<u64, Result<Vec<RecordBatch>, Error>>,
    next_seq: u64,
    ready: std::vec::IntoIter<RecordBatch>,
    done: bool,
    /// Bytes of the file read so far (for progress).
    pub bytes_read: Arc<AtomicU64>,
}

impl CsvBatches {
    /// Checks the header against `schema` and starts the reader and parse threads.
    pub fn open(path: &Path, schema: SchemaRef) -> Result<Self, Error> {
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_WORKERS);
        Self::open_with(path, schema, workers, CHUNK_BYTES)
    }

    pub(crate) fn open_with(path: &Path, schema: SchemaRef, workers: usize, chunk_bytes: usize) -> Result<Self, Error> {
        let names = header(path)?;
        let expected: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        if names != expected {
            return Err(Error::Input(format!(
                "{}: header columns [{}] do not match the table's columns [{}]",
                path.display(),
                names.join(", "),
                expected.join(", ")
            )));
        }
        let types: Vec<ColumnType> = schema
            .fields()
            .iter()
            .map(|f| {
                ColumnType::from_arrow(f.data_type())
                    .ok_or_else(|| Error::Input(format!("column `{}`: unsupported type {}", f.name(), f.data_type())))
            })
            .collect::<Result<_, _>>()?;
        let file = File::open(path).map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))?;
        let bytes_read = Arc::new(AtomicU64::new(0));
        let input = Counting {
            inner: BufReader::with_capacity(1 << 20, file),
            count: bytes_read.clone(),
        };
        let parser = Arc::new(ChunkParser {
            path: path.to_owned(),
            fast: !schema.fields().iter().any(|f| f.data_type() == &DataType::Binary),
            schema,
            types,
        });
        let workers = workers.max(1);
        let (jobs_tx, jobs_rx) = bounded::<Job>(workers);
        let (results_tx, results_rx) = bounded::<Parsed>(workers);
        let splitter = Splitter::new(input, chunk_bytes);
        let owned_path = path.to_owned();
        spawn(
            "sealstore-csv-split",
            move || split(splitter, &jobs_tx, owned_path),
            path,
        )?;
        for _ in 0..workers {
            let (jobs, results, parser) = (jobs_rx.clone(), results_tx.clone(), parser.clone());
            spawn("sealstore-csv-parse", move || parse(&parser, &jobs, &results), path)?;
        }
        Ok(Self {
            results: results_rx,
            ahead: BTreeMap::new(),
            next_seq: 0,
            ready: Vec::new().into_iter(),
            done: false,
            bytes_read,
        })
    }

    /// The next chunk's batches in file order; `None` once every chunk is consumed.
    fn next_chunk(&mut self) -> Option<Result<Vec<RecordBatch>, Error>> {
        loop {
            if let Some(parsed) = self.ahead.remove(&self.next_seq) {
                self.next_seq += 1;
                return Some(parsed);
            }
            // Every sender gone and the chunk not among those parsed ahead: input finished.
            let (seq, parsed) = self.results.recv().ok()?;
            self.ahead.insert(seq, parsed);
        }
    }
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static, path: &Path) -> Result<(), Error> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
        .map(drop)
        .map_err(|e| Error::Input(format!("{}: cannot start a reader thread: {e}", path.display())))
}

/// The splitter thread: chunks in order until the input ends, fails, or nobody listens.
fn split(mut splitter: Splitter<Counting<BufReader<File>>>, jobs: &Sender<Job>, path: PathBuf) {
    let mut seq = 0;
    loop {
        let job = match splitter.next_chunk() {
            Ok(Some(chunk)) => {
                seq = chunk.seq + 1;
                Job::Parse(chunk)
            }
            Ok(None) => return,
            Err(e) => Job::Fail(seq, Error::Input(format!("cannot read {}: {e}", path.display()))),
        };
        let failed = matches!(job, Job::Fail(..));
        if jobs.send(job).is_err() || failed {
            return;
        }
    }
}

/// A parse worker: until the splitter is done or the consumer has gone.
fn parse(parser: &ChunkParser, jobs: &Receiver<Job>, results: &Sender<Parsed>) {
    for job in jobs {
        let parsed = match job {
            Job::Parse(chunk) => (chunk.seq, parser.parse(&chunk)),
            Job::Fail(seq, e) => (seq, Err(e)),
        };
        if results.send(parsed).is_err() {
            return;
        }
    }
}

impl Iterator for CsvBatches {
    type Item = Result<RecordBatch, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(batch) = self.ready.next() {
                return Some(Ok(batch));
            }
            if self.done {
                return None;
            }
            match self.next_chunk() {
                Some(Ok(batches)) => self.ready = batches.into_iter(),
                Some(Err(e)) => {
                    // The first bad chunk in file order ends the stream (and, dropped, the threads).
                    self.done = true;
                    return Some(Err(e));
                }
                None => self.done = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use arrow_schema::{Field, Schema};

    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn ids(batches: &[RecordBatch]) -> Vec<Option<i64>> {
        batches
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
                a.iter().collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn many_small_chunks_come_back_in_file_order() {
        let mut text = String::from("id,name\n");
        for i in 0..5000 {
            text.push_str(&format!("{i},\"n\n{i}\"\n"));
        }
        let f = file(&text);
        let batches: Vec<RecordBatch> = CsvBatches::open_with(f.path(), schema(), 3, 64)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(batches.len() > 100);
        assert_eq!(ids(&batches), (0..5000).map(Some).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_bad_line_in_file_order_is_reported() {
        let mut text = String::from("id,name\n");
        for i in 0..2000 {
            text.push_str(&format!("{i},a\n"));
        }
        text.push_str("x1,a\n");
        for i in 0..2000 {
            text.push_str(&format!("{i},a\n"));
        }
        text.push_str("x2,a\n");
        let f = file(&text);
        let err = CsvBatches::open_with(f.path(), schema(), 2, 100)
            .unwrap()
            .find_map(Result::err)
            .unwrap()
            .to_string();
        assert!(
            err.contains("line 2002: column `id`: `x1` is not a 64-bit integer"),
            "{err}"
        );
    }

    #[test]
    fn a_field_count_mismatch_names_its_line() {
        let f = file("id,name\n1,a\n2\n");
        let err = CsvBatches::open(f.path(), schema())
            .unwrap()
            .find_map(Result::err)
            .unwrap()
            .to_string();
        assert!(err.contains("line 3: expected 2 fields, found 1"), "{err}");
    }

    #[test]
    fn empty_fields_are_null_and_spaced_numbers_still_parse() {
        let f = file("id,name\n1,\n,b\n 7 ,c\n");
        let batches: Vec<RecordBatch> = CsvBatches::open(f.path(), schema())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids(&batches), vec![Some(1), None, Some(7)]);
        let names = batches[0].column(1);
        assert!(names.is_null(0));
    }
}

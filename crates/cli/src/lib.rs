//! The `sealstore` command-line tool's library half: its error type and the CSV loader (also
//! reached by the fuzz target `csv_load`). The commands live in `main.rs`.
pub mod csvload;

/// A failure, classified for the exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments: exit 2.
    Usage(String),
    /// Data, key or authentication failure: exit 1.
    Failure(String),
}

impl From<sealstore_cluster::Error> for CliError {
    fn from(e: sealstore_cluster::Error) -> Self {
        match e {
            sealstore_cluster::Error::InvalidOption(m) => CliError::Usage(m),
            other => CliError::Failure(other.to_string()),
        }
    }
}

impl From<sealstore_blockstore::Error> for CliError {
    fn from(e: sealstore_blockstore::Error) -> Self {
        match e {
            sealstore_blockstore::Error::InvalidPredicate(m) => CliError::Usage(format!("--where: {m}")),
            other => CliError::Failure(other.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Failure(e.to_string())
    }
}

/// The result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

/// Parses `1MiB`, `64KiB`, `16M`, `65536`.
pub fn parse_size(s: &str) -> CliResult<usize> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| CliError::Usage(format!("`{s}` is not a size")))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(CliError::Usage(format!(
                "`{s}`: unknown size unit (use KiB, MiB or GiB)"
            )));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| CliError::Usage(format!("`{s}` is too large")))
}

#[doc(hidden)]
pub mod fuzzing {
    //! Entry point for the `csv_load` fuzz target: any bytes as a CSV file, never a panic.
    use std::sync::Arc;

    /// Infers a schema from `bytes` as a CSV file and streams every batch; also parses the first
    /// line as a `--schema` specification.
    pub fn csv(bytes: &[u8]) {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let _ = crate::csvload::parse_schema(text.lines().next().unwrap_or(""));
        }
        let Ok(file) = tempfile::NamedTempFile::new() else {
            return;
        };
        if std::fs::write(file.path(), bytes).is_err() {
            return;
        }
        let Ok(schema) = crate::csvload::infer_schema(file.path()) else {
            return;
        };
        let Ok(batches) = crate::csvload::CsvBatches::open(file.path(), Arc::new(schema)) else {
            return;
        };
        for b in batches {
            if b.is_err() {
                break;
            }
        }
    }
}

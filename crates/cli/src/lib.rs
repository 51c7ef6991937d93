//! The `sealstore` command-line tool's library half: its error type and size parsing. The
//! commands live in `main.rs`; input files are read by `sealstore-ingest`.

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

impl From<sealstore_ingest::Error> for CliError {
    fn from(e: sealstore_ingest::Error) -> Self {
        match e {
            sealstore_ingest::Error::Usage(m) => CliError::Usage(m),
            sealstore_ingest::Error::Input(m) => CliError::Failure(m),
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

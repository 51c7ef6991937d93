use crate::{Error, Result};

/// Fills `buf` from the operating system's random number generator (getrandom(2) on Linux).
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Rng(e.to_string()))
}

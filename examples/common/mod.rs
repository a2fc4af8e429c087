//! Pieces the examples share (included with `mod common;`; not an example itself).

use std::str::FromStr;

use anyhow::{Context, Result};

/// Parses the value of `flag`, naming the flag and what it takes when it does not parse.
pub fn num<T: FromStr>(flag: &str, value: &str, what: &str) -> Result<T> {
    value
        .parse()
        .ok()
        .with_context(|| format!("{flag} takes {what}, not {value:?}"))
}

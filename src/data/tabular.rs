//! CSV tables with a header row: a reader into an `ndarray::Array2<f32>` with a
//! presence mask, and an atomic writer.
//!
//! A cell is missing when it is empty (after trimming spaces) or spells NaN in
//! any letter case; missing cells hold 0.0 in [`Table::values`] and `false` in
//! [`Table::present`]. Any other cell that is not a finite number of magnitude at most
//! [`MAX_MAGNITUDE`] is an error naming its line and column ([`cell_value`]), and so is a row
//! with another number of cells than the header.

use std::path::Path;

use ndarray::Array2;

use crate::data::error::{show, DataError, Result};

/// A numeric table with named columns and a presence mask.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column names from the header.
    pub header: Vec<String>,
    /// Values, rows by columns; 0.0 where missing.
    pub values: Array2<f32>,
    /// Whether each cell is present.
    pub present: Array2<bool>,
    /// The 1-based line of the file on which each row starts, as the CSV reader counts it (the
    /// numbering of the reader's own errors; a quoted cell may span lines, so this is not always
    /// the row's index plus 2). After a blank line the reader counts from that blank line.
    pub lines: Vec<u64>,
}

/// Reads a CSV file with a header row.
pub fn read_csv(path: &Path) -> Result<Table> {
    let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    parse(&show(path), std::io::BufReader::new(f))
}

/// Parses CSV bytes held in memory; `name` is used in error messages.
pub fn csv_from_bytes(name: &str, bytes: &[u8]) -> Result<Table> {
    parse(name, bytes)
}

/// The largest magnitude of a number read from a table cell: 1e18. Its square stays finite in
/// `f32`, and no unit of measure needs more (rescale a column that does).
pub const MAX_MAGNITUDE: f32 = 1e18;

/// The value of one cell (spaces around it ignored): `None` when it is missing (empty or NaN in
/// any letter case), else the number.
///
/// # Errors
/// A reason quoting the cell when it is not a number, not finite in `f32`, or beyond
/// [`MAX_MAGNITUDE`].
pub fn cell_value(cell: &str) -> std::result::Result<Option<f32>, String> {
    let cell = cell.trim();
    if cell.is_empty() || cell.eq_ignore_ascii_case("nan") {
        return Ok(None);
    }
    let v: f32 = cell
        .parse()
        .map_err(|_| format!("'{cell}' is not a number"))?;
    if !v.is_finite() {
        return Err(format!("'{cell}' is not finite in f32"));
    }
    if v.abs() > MAX_MAGNITUDE {
        return Err(format!(
            "'{cell}' is beyond ±{MAX_MAGNITUDE:e}, the largest magnitude read (rescale the \
             column, e.g. into other units)"
        ));
    }
    Ok(Some(v))
}

fn parse<R: std::io::Read>(file: &str, src: R) -> Result<Table> {
    let err = |line: u64, reason: String| DataError::Csv {
        file: file.to_string(),
        line,
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(src);
    let mut records = reader.records();
    let header: Vec<String> = match records.next() {
        None => return Err(err(1, "file is empty, expected a header row".into())),
        Some(r) => r
            .map_err(|e| err(line_of(&e), format!("cannot read header: {e}")))?
            .iter()
            .map(str::to_string)
            .collect(),
    };
    let width = header.len();
    let mut values = Vec::new();
    let mut present = Vec::new();
    let mut lines = Vec::new();
    let mut rows = 0;
    for record in records {
        let record = record.map_err(|e| err(line_of(&e), format!("cannot read row: {e}")))?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != width {
            return Err(err(
                line,
                format!("row has {} cells but the header has {width}", record.len()),
            ));
        }
        for (c, cell) in record.iter().enumerate() {
            let v = cell_value(cell).map_err(|reason| {
                err(line, format!("column {} ({}): {reason}", c + 1, header[c]))
            })?;
            values.push(v.unwrap_or(0.0));
            present.push(v.is_some());
        }
        lines.push(line);
        rows += 1;
    }
    let shape_err =
        |e: ndarray::ShapeError| DataError::Config(format!("{file}: cannot shape table: {e}"));
    Ok(Table {
        header,
        values: Array2::from_shape_vec((rows, width), values).map_err(shape_err)?,
        present: Array2::from_shape_vec((rows, width), present).map_err(shape_err)?,
        lines,
    })
}

fn line_of(e: &csv::Error) -> u64 {
    e.position().map_or(0, |p| p.line())
}

/// Writes `table` as CSV atomically; missing cells are written empty.
pub fn write_csv(path: &Path, table: &Table) -> Result<()> {
    let bad = |reason: String| DataError::Config(format!("{}: {reason}", show(path)));
    if table.values.dim() != table.present.dim() || table.values.ncols() != table.header.len() {
        return Err(bad(format!(
            "header of {} names, values of shape {:?} and mask of shape {:?} disagree",
            table.header.len(),
            table.values.dim(),
            table.present.dim()
        )));
    }
    for ((r, c), v) in table.values.indexed_iter() {
        if table.present[(r, c)] && !v.is_finite() {
            return Err(bad(format!("value at row {r}, column {c} is not finite")));
        }
    }
    crate::data::atomic::write_atomically(path, |tmp| {
        let csv_err = |e: csv::Error| DataError::io(tmp, std::io::Error::other(e.to_string()));
        let mut w = csv::Writer::from_path(tmp).map_err(csv_err)?;
        w.write_record(&table.header).map_err(csv_err)?;
        let mut cells = Vec::with_capacity(table.header.len());
        for (vals, mask) in table.values.rows().into_iter().zip(table.present.rows()) {
            cells.clear();
            cells.extend(vals.iter().zip(mask.iter()).map(|(v, &p)| {
                if p {
                    v.to_string()
                } else {
                    String::new()
                }
            }));
            w.write_record(&cells).map_err(csv_err)?;
        }
        w.flush().map_err(|e| DataError::io(tmp, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn blanks_and_nan_are_missing() {
        let t = csv_from_bytes("t.csv", b"a,b,c\n1, 2.5,\nNaN,nan,-3e2\n").unwrap();
        assert_eq!(t.header, vec!["a", "b", "c"]);
        assert_eq!(t.values.dim(), (2, 3));
        assert_eq!(t.values[(0, 1)], 2.5);
        assert_eq!(t.values[(1, 2)], -300.0);
        assert_eq!(t.lines, [2, 3]);
        assert_eq!(
            t.present.iter().copied().collect::<Vec<_>>(),
            vec![true, true, false, false, false, true]
        );
    }

    #[test]
    fn ragged_non_number_and_inf_are_errors_with_lines() {
        let e = csv_from_bytes("r.csv", b"a,b\n1,2\n3\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "r.csv: line 3: row has 1 cells but the header has 2");
        let e = csv_from_bytes("x.csv", b"a,b\n1,2\n3,abc\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "x.csv: line 3: column 2 (b): 'abc' is not a number");
        for cell in ["1e30", "-1e19", "3e38"] {
            let csv = format!("a,b\n1,{cell}\n");
            let e = csv_from_bytes("m.csv", csv.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("line 2: column 2 (b)") && e.contains("beyond ±1e18"),
                "{e}"
            );
        }
        assert_eq!(cell_value(" -1e18 "), Ok(Some(-1e18)));
        for cell in ["inf", "-inf", "1e40", "Infinity"] {
            let csv = format!("a\n{cell}\n");
            let e = csv_from_bytes("i.csv", csv.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains("line 2") && e.contains("not finite"), "{e}");
        }
        assert!(matches!(
            csv_from_bytes("e.csv", b""),
            Err(DataError::Csv { line: 1, .. })
        ));
        let t = csv_from_bytes("h.csv", b"a,b\n").unwrap();
        assert_eq!(t.values.dim(), (0, 2));
    }

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        let t = csv_from_bytes("t.csv", b"x,y\n0.1,\n,1e-7\n").unwrap();
        write_csv(&p, &t).unwrap();
        assert_eq!(read_csv(&p).unwrap(), t);
        let mut broken = t.clone();
        broken.header.pop();
        let e = write_csv(&p, &broken).unwrap_err().to_string();
        assert!(e.contains("t.csv: header of 1 names"), "{e}");
        let mut inf = t;
        inf.values[(0, 0)] = f32::INFINITY;
        assert!(write_csv(&p, &inf).is_err());
        assert!(matches!(
            read_csv(&dir.path().join("no.csv")),
            Err(DataError::Io { .. })
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = csv_from_bytes("r.csv", &bytes);
        }

        #[test]
        fn random_text_never_panics(s in "[a-c0-9,.\\-\n\" eEnN]{0,80}") {
            let _ = csv_from_bytes("r.csv", s.as_bytes());
        }

        #[test]
        fn truncations_never_panic(cut in 0usize..60) {
            let b = b"a,b,c\n1,2,3\n4,,6\nnan,8,9.5\n";
            let _ = csv_from_bytes("t.csv", &b[..cut.min(b.len())]);
        }
    }
}

//! CSV bytes → a dataset's content: its schema (column names and kinds), row count, the
//! data file's digest and the dataset digest over them. Pure: no files, no clock.
//!
//! # The dataset digest (canonical form)
//!
//! The dataset digest is SHA-256 over the compact JSON (no whitespace, object keys in
//! lexicographic byte order, strings escaped as RFC 8259 requires and nothing more, as
//! `serde_json` writes them) of
//!
//! ```text
//! {"columns":[{"kind":"numeric","name":"x"},{"kind":"categorical","name":"site"}],
//!  "data":"<64 lower-case hex digits: SHA-256 of the CSV bytes>",
//!  "format":"edgefleet-dataset/1","rows":2}
//! ```
//!
//! `columns` in file order, `rows` the data rows (the header row not counted). Nothing else
//! goes in: not the name, the version, who made it, when, or where the rows came from
//! (provenance), so the same CSV bytes give the same digest in every store, at any time.
//! Because `data` is the digest of the exact bytes, any change to them (a reordered row, a
//! changed line ending) gives another digest.
//!
//! # What a valid dataset CSV is
//!
//! UTF-8, a header row of unique, non-empty column names, and every row with as many cells
//! as the header. Cells are trimmed. A column is `numeric` when every non-empty cell parses
//! as a number (`NaN` and empty cells are missing values), else `categorical`.

use edgefleet_protocol::Digest;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The format tag inside the canonical form; a new canonical form gets a new tag.
pub const FORMAT: &str = "edgefleet-dataset/1";

/// Largest CSV accepted (bytes).
pub const MAX_CSV_BYTES: usize = 256 << 20;

/// Why bytes are not a dataset CSV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Larger than [`MAX_CSV_BYTES`].
    #[error("the CSV is {len} bytes; a dataset holds at most {max} (split it, or sample fewer rows)")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not UTF-8.
    #[error("the CSV is not UTF-8: line {line}, byte {offset} (save it as UTF-8)")]
    NotUtf8 {
        /// 1-based line of the first bad byte.
        line: u64,
        /// Its offset in the file.
        offset: usize,
    },
    /// Empty, or no header.
    #[error("the CSV has no header row (the first line names the columns)")]
    NoHeader,
    /// A header cell is empty or repeated.
    #[error("the header's column {index} {problem}")]
    BadHeader {
        /// 1-based column.
        index: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// A row has the wrong number of cells.
    #[error("line {line} has {found} cell(s), the header has {expected}")]
    Ragged {
        /// 1-based line.
        line: u64,
        /// Cells found.
        found: usize,
        /// Header cells.
        expected: usize,
    },
    /// The CSV parser refused it (an unterminated quote, …).
    #[error("the CSV does not parse: {0}")]
    Parse(String),
}

/// How a column's values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Every non-empty cell is a number.
    Numeric,
    /// Anything else: compared by value.
    Categorical,
}

impl ColumnKind {
    /// As written in the canonical form and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnKind::Numeric => "numeric",
            ColumnKind::Categorical => "categorical",
        }
    }
}

/// One column of the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Column {
    /// Its header cell.
    pub name: String,
    /// Its kind.
    pub kind: ColumnKind,
}

/// The values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Numbers, NaN for a missing value.
    Numeric(Vec<f64>),
    /// The trimmed cells.
    Categorical(Vec<String>),
}

/// A parsed dataset CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The schema, in file order.
    pub columns: Vec<Column>,
    /// The values, one entry per column.
    pub values: Vec<Values>,
    /// Data rows.
    pub rows: u64,
}

/// A dataset's content, as its digest covers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The schema.
    pub columns: Vec<Column>,
    /// Data rows.
    pub rows: u64,
    /// SHA-256 of the CSV bytes.
    pub data: Digest,
    /// The dataset digest ([module docs](self)).
    pub digest: Digest,
}

/// Checks `bytes` and computes their snapshot.
pub fn snapshot(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    let table = parse(bytes)?;
    let data = Digest::sha256(bytes);
    Ok(Snapshot {
        digest: dataset_digest(&table.columns, table.rows, &data),
        columns: table.columns,
        rows: table.rows,
        data,
    })
}

/// The dataset digest of this content ([module docs](self)).
pub fn dataset_digest(columns: &[Column], rows: u64, data: &Digest) -> Digest {
    Digest::sha256(canonical_form(columns, rows, data).as_bytes())
}

/// The canonical JSON text the dataset digest is taken over.
pub fn canonical_form(columns: &[Column], rows: u64, data: &Digest) -> String {
    // Through a `Value`: its maps keep keys sorted, and `to_string` writes no whitespace.
    let columns: Vec<serde_json::Value> =
        columns.iter().map(|c| serde_json::json!({"kind": c.kind.as_str(), "name": c.name})).collect();
    serde_json::json!({"columns": columns, "data": data.to_hex(), "format": FORMAT, "rows": rows}).to_string()
}

/// Parses and checks `bytes` ([module docs](self) say what is valid).
pub fn parse(bytes: &[u8]) -> Result<Table, SnapshotError> {
    if bytes.len() > MAX_CSV_BYTES {
        return Err(SnapshotError::TooLarge { len: bytes.len(), max: MAX_CSV_BYTES });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let line = 1 + bytes[..offset].iter().filter(|b| **b == b'\n').count() as u64;
        SnapshotError::NotUtf8 { line, offset }
    })?;
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| SnapshotError::Parse(e.to_string()))?.clone();
    if header.is_empty() || (header.len() == 1 && header.get(0).is_some_and(str::is_empty)) {
        return Err(SnapshotError::NoHeader);
    }
    let names: Vec<String> = header.iter().map(str::to_string).collect();
    for (i, name) in names.iter().enumerate() {
        let problem = if name.is_empty() {
            Some("is empty (every column needs a name)".to_string())
        } else if names[..i].contains(name) {
            Some(format!("{name:?} repeats an earlier column (names must be unique)"))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(SnapshotError::BadHeader { index: i + 1, problem });
        }
    }
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    let mut rows = 0u64;
    for record in reader.records() {
        let record = record.map_err(|e| SnapshotError::Parse(e.to_string()))?;
        if record.len() != names.len() {
            let line = record.position().map_or(0, |p| p.line());
            return Err(SnapshotError::Ragged { line, found: record.len(), expected: names.len() });
        }
        for (column, cell) in cells.iter_mut().zip(record.iter()) {
            column.push(cell.to_string());
        }
        rows += 1;
    }
    let mut columns = Vec::with_capacity(names.len());
    let mut values = Vec::with_capacity(names.len());
    for (name, column) in names.into_iter().zip(cells) {
        let numbers: Option<Vec<f64>> = column.iter().map(|c| number(c)).collect();
        match numbers {
            Some(numbers) => {
                columns.push(Column { name, kind: ColumnKind::Numeric });
                values.push(Values::Numeric(numbers));
            }
            None => {
                columns.push(Column { name, kind: ColumnKind::Categorical });
                values.push(Values::Categorical(column));
            }
        }
    }
    Ok(Table { columns, values, rows })
}

/// A numeric cell: a number, or NaN for a missing value (empty or `NaN`); `None` otherwise.
fn number(cell: &str) -> Option<f64> {
    if cell.is_empty() || cell.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    cell.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &[u8] = b"x,site\n1.5,plant-3\n2,plant-4\n,plant-3\n";

    #[test]
    fn the_schema_rows_and_kinds_are_read() {
        let s = snapshot(CSV).expect("valid");
        assert_eq!(s.rows, 3);
        assert_eq!(
            s.columns,
            vec![
                Column { name: "x".into(), kind: ColumnKind::Numeric },
                Column { name: "site".into(), kind: ColumnKind::Categorical }
            ]
        );
        assert_eq!(s.data, Digest::sha256(CSV));
    }

    #[test]
    fn the_canonical_form_is_stable() {
        let s = snapshot(CSV).expect("valid");
        let expected = format!(
            r#"{{"columns":[{{"kind":"numeric","name":"x"}},{{"kind":"categorical","name":"site"}}],"data":"{}","format":"edgefleet-dataset/1","rows":3}}"#,
            Digest::sha256(CSV).to_hex()
        );
        assert_eq!(canonical_form(&s.columns, s.rows, &s.data), expected);
        assert_eq!(s.digest, Digest::sha256(expected.as_bytes()));
    }

    #[test]
    fn the_same_bytes_give_the_same_digest_and_row_order_matters() {
        assert_eq!(snapshot(CSV).expect("valid").digest, snapshot(CSV).expect("valid").digest);
        let reordered = b"x,site\n2,plant-4\n1.5,plant-3\n,plant-3\n";
        let other = snapshot(reordered).expect("valid");
        assert_eq!((other.rows, &other.columns), (3, &snapshot(CSV).expect("valid").columns));
        assert_ne!(other.digest, snapshot(CSV).expect("valid").digest);
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let cases: [(&[u8], &str); 5] = [
            (b"", "no header"),
            (b"x,y\n1,2\n3\n", "line 3 has 1 cell(s), the header has 2"),
            (b"x,x\n1,2\n", "\"x\" repeats"),
            (b"x,,z\n1,2,3\n", "column 2 is empty"),
            (b"x\n1\n\xff\xfe\n", "not UTF-8: line 3"),
        ];
        for (bytes, expect) in cases {
            let error = snapshot(bytes).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(expect), "{bytes:?}: {error:?}");
        }
        let huge = vec![b'x'; MAX_CSV_BYTES + 1];
        assert!(matches!(snapshot(&huge), Err(SnapshotError::TooLarge { .. })));
    }

    #[test]
    fn missing_values_keep_a_column_numeric() {
        let t = parse(b"a,b\nNaN,1\n,x\n").expect("valid");
        assert_eq!(t.columns[0].kind, ColumnKind::Numeric);
        assert_eq!(t.columns[1].kind, ColumnKind::Categorical);
        let Values::Numeric(a) = &t.values[0] else { panic!("numeric") };
        assert!(a.iter().all(|v| v.is_nan()));
    }
}

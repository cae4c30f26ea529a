//! NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): little-endian, C-order arrays of
//! f32, f64, i64, i32, u8, i8 and bool.
//!
//! The header is a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (1, 8), }`; [`decode`] parses it with a
//! small bounded parser that returns an error, never panics, on any input. [`encode`] writes
//! what `numpy.save` writes (version 1.0 unless the header needs 2.0, header padded so the data
//! starts on a 64-byte boundary), so `numpy.load` reads it back.

use edgefleet_protocol::tensor::{Tensor, TensorData};
use std::fmt;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Refuse headers longer than this (numpy itself writes a few hundred bytes).
const MAX_HEADER_LEN: usize = 64 * 1024;

/// An `.npy` file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a usable .npy file: {0}")]
pub struct NpyError(String);

fn fail<T>(message: impl Into<String>) -> Result<T, NpyError> {
    Err(NpyError(message.into()))
}

/// Array values, by element type.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `<f4`
    F32(Vec<f32>),
    /// `<f8`
    F64(Vec<f64>),
    /// `<i8`
    I64(Vec<i64>),
    /// `<i4`
    I32(Vec<i32>),
    /// `|u1`
    U8(Vec<u8>),
    /// `|i1`
    I8(Vec<i8>),
    /// `|b1`
    Bool(Vec<bool>),
}

impl NpyData {
    fn descr(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "<f4",
            NpyData::F64(_) => "<f8",
            NpyData::I64(_) => "<i8",
            NpyData::I32(_) => "<i4",
            NpyData::U8(_) => "|u1",
            NpyData::I8(_) => "|i1",
            NpyData::Bool(_) => "|b1",
        }
    }

    fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::I64(v) => v.len(),
            NpyData::I32(v) => v.len(),
            NpyData::U8(v) => v.len(),
            NpyData::I8(v) => v.len(),
            NpyData::Bool(v) => v.len(),
        }
    }
}

/// One array: shape (outermost first) and values in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Shape; empty for a scalar.
    pub shape: Vec<u64>,
    /// Values.
    pub data: NpyData,
}

impl NpyArray {
    /// The array as a tensor. f64 values are narrowed to f32: tensors carry float data as
    /// f32 (the model's f64 inputs are cast back when it runs).
    pub fn into_tensor(self) -> Tensor {
        let data = match self.data {
            NpyData::F32(v) => TensorData::F32(v),
            NpyData::F64(v) => TensorData::F32(v.into_iter().map(|x| x as f32).collect()),
            NpyData::I64(v) => TensorData::I64(v),
            NpyData::I32(v) => TensorData::I32(v),
            NpyData::U8(v) => TensorData::U8(v),
            NpyData::I8(v) => TensorData::I8(v),
            NpyData::Bool(v) => TensorData::Bool(v),
        };
        Tensor { shape: self.shape, data }
    }
}

impl From<Tensor> for NpyArray {
    fn from(t: Tensor) -> Self {
        let data = match t.data {
            TensorData::F32(v) => NpyData::F32(v),
            TensorData::I64(v) => NpyData::I64(v),
            TensorData::I32(v) => NpyData::I32(v),
            TensorData::U8(v) => NpyData::U8(v),
            TensorData::I8(v) => NpyData::I8(v),
            TensorData::Bool(v) => NpyData::Bool(v),
        };
        NpyArray { shape: t.shape, data }
    }
}

struct ShapeTuple<'a>(&'a [u64]);

impl fmt::Display for ShapeTuple<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => f.write_str("()"),
            [one] => write!(f, "({one},)"),
            dims => {
                f.write_str("(")?;
                for (i, d) in dims.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// Writes `array` as `.npy` bytes. The caller keeps `shape` and data length consistent; a
/// mismatch is written as given (and refused by any reader, this one included).
pub fn encode(array: &NpyArray) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        array.data.descr(),
        ShapeTuple(&array.shape)
    );
    // Version 1.0 has a u16 header length; 2.0 a u32 one. Pad so data starts at a multiple of 64.
    let (version, prefix) = if dict.len() + 1 + 10 <= usize::from(u16::MAX) { (1u8, 10) } else { (2u8, 12) };
    let header_len = (dict.len() + 1 + prefix).div_ceil(64) * 64 - prefix;
    let mut out = Vec::with_capacity(prefix + header_len + array.data.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(prefix + header_len - 1, b' ');
    out.push(b'\n');
    match &array.data {
        NpyData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::U8(v) => out.extend_from_slice(v),
        NpyData::I8(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::Bool(v) => v.iter().for_each(|x| out.push(u8::from(*x))),
    }
    out
}

/// Reads `.npy` bytes (the whole file).
pub fn decode(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return fail("missing the \\x93NUMPY magic");
    };
    let (header_len, rest) = match rest {
        [1, _, a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        [2 | 3, _, a, b, c, d, rest @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]) as usize, rest),
        [major, minor, ..] => return fail(format!("unsupported format version {major}.{minor}")),
        _ => return fail("truncated before the header length"),
    };
    if header_len > MAX_HEADER_LEN {
        return fail(format!("header of {header_len} bytes is over the {MAX_HEADER_LEN}-byte limit"));
    }
    if rest.len() < header_len {
        return fail(format!("header says {header_len} bytes, only {} follow", rest.len()));
    }
    let (header, body) = rest.split_at(header_len);
    let Ok(header) = std::str::from_utf8(header) else {
        return fail("header is not UTF-8 text");
    };
    let header = Header::parse(header)?;
    if header.fortran_order {
        return fail("Fortran-order arrays are not supported (save with numpy.ascontiguousarray)");
    }
    let count = header.shape.iter().try_fold(1u64, |acc, d| acc.checked_mul(*d));
    let Some(count) = count.and_then(|c| usize::try_from(c).ok()) else {
        return fail(format!("shape {:?} is too large", header.shape));
    };
    let (kind, width) = parse_descr(&header.descr)?;
    let expected = count.checked_mul(width);
    if expected != Some(body.len()) {
        return fail(format!(
            "shape {:?} of {} needs {} data bytes, the file has {}",
            header.shape,
            header.descr,
            expected.map_or_else(|| "too many".into(), |n| n.to_string()),
            body.len()
        ));
    }
    let data = decode_values(kind, body)?;
    Ok(NpyArray { shape: header.shape, data })
}

#[derive(Clone, Copy)]
enum Kind {
    F32,
    F64,
    I64,
    I32,
    U8,
    I8,
    Bool,
}

fn parse_descr(descr: &str) -> Result<(Kind, usize), NpyError> {
    let mut chars = descr.chars();
    let order = chars.next();
    let code = chars.as_str();
    let single_byte = matches!(code, "u1" | "i1" | "b1");
    let little = match order {
        Some('<') => true,
        Some('|') => single_byte,
        Some('=') => cfg!(target_endian = "little"),
        _ => false,
    };
    if !little {
        return fail(format!("dtype {descr:?} is not little-endian (only '<' byte order is supported)"));
    }
    Ok(match code {
        "f4" => (Kind::F32, 4),
        "f8" => (Kind::F64, 8),
        "i8" => (Kind::I64, 8),
        "i4" => (Kind::I32, 4),
        "u1" => (Kind::U8, 1),
        "i1" => (Kind::I8, 1),
        "b1" => (Kind::Bool, 1),
        _ => return fail(format!("dtype {descr:?} is not supported (f4, f8, i8, i4, u1, i1, b1)")),
    })
}

fn decode_values(kind: Kind, body: &[u8]) -> Result<NpyData, NpyError> {
    fn words<const N: usize, T>(body: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        body.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect()
    }
    Ok(match kind {
        Kind::F32 => NpyData::F32(words(body, f32::from_le_bytes)),
        Kind::F64 => NpyData::F64(words(body, f64::from_le_bytes)),
        Kind::I64 => NpyData::I64(words(body, i64::from_le_bytes)),
        Kind::I32 => NpyData::I32(words(body, i32::from_le_bytes)),
        Kind::U8 => NpyData::U8(body.to_vec()),
        Kind::I8 => NpyData::I8(body.iter().map(|b| *b as i8).collect()),
        Kind::Bool => NpyData::Bool(
            body.iter()
                .map(|b| match b {
                    0 => Ok(false),
                    1 => Ok(true),
                    other => fail(format!("bool array holds the byte {other}")),
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// The three keys numpy writes.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// Token stream over a Python dict literal; every method returns an error at end of input.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_space(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.text[self.pos..].chars().next()
    }

    fn expect(&mut self, c: char) -> Result<(), NpyError> {
        match self.peek() {
            Some(found) if found == c => {
                self.pos += c.len_utf8();
                Ok(())
            }
            Some(found) => fail(format!("header: expected {c:?} at byte {}, found {found:?}", self.pos)),
            None => fail(format!("header: expected {c:?}, found the end")),
        }
    }

    fn string(&mut self) -> Result<&'a str, NpyError> {
        let quote = match self.peek() {
            Some(q @ ('\'' | '"')) => q,
            _ => return fail(format!("header: expected a quoted string at byte {}", self.pos)),
        };
        let start = self.pos + 1;
        let Some(len) = self.text[start..].find(quote) else {
            return fail("header: unterminated string");
        };
        self.pos = start + len + 1;
        Ok(&self.text[start..start + len])
    }

    fn word(&mut self) -> &'a str {
        self.skip_space();
        let rest = &self.text[self.pos..];
        let len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn shape(&mut self) -> Result<Vec<u64>, NpyError> {
        self.expect('(')?;
        let mut dims = Vec::new();
        loop {
            if self.peek() == Some(')') {
                self.pos += 1;
                return Ok(dims);
            }
            let word = self.word();
            let Ok(dim) = word.trim_end_matches('L').parse::<u64>() else {
                return fail(format!("header: shape has {word:?} where a size belongs"));
            };
            if dims.len() >= 32 {
                return fail("header: more than 32 dimensions");
            }
            dims.push(dim);
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {}
                _ => return fail("header: shape tuple is malformed"),
            }
        }
    }
}

impl Header {
    fn parse(text: &str) -> Result<Self, NpyError> {
        let mut cursor = Cursor { text, pos: 0 };
        let (mut descr, mut fortran_order, mut shape) = (None, None, None);
        cursor.expect('{')?;
        loop {
            if cursor.peek() == Some('}') {
                break;
            }
            let key = cursor.string()?;
            cursor.expect(':')?;
            match key {
                "descr" => descr = Some(cursor.string()?.to_owned()),
                "fortran_order" => {
                    fortran_order = Some(match cursor.word() {
                        "True" => true,
                        "False" => false,
                        other => return fail(format!("header: fortran_order is {other:?}, not True/False")),
                    })
                }
                "shape" => shape = Some(cursor.shape()?),
                other => return fail(format!("header: unexpected key {other:?}")),
            }
            match cursor.peek() {
                Some(',') => cursor.pos += 1,
                Some('}') => {}
                _ => return fail("header: expected ',' or '}' after a value"),
            }
        }
        match (descr, fortran_order, shape) {
            (Some(descr), Some(fortran_order), Some(shape)) => Ok(Header { descr, fortran_order, shape }),
            _ => fail("header: needs 'descr', 'fortran_order' and 'shape'"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(array: NpyArray) {
        let bytes = encode(&array);
        assert_eq!(&bytes[..6], MAGIC);
        let data_start = 10 + usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!(data_start % 64, 0);
        assert_eq!(bytes[data_start - 1], b'\n');
        assert_eq!(decode(&bytes).unwrap(), array);
    }

    #[test]
    fn every_type_round_trips() {
        round_trip(NpyArray { shape: vec![2, 3], data: NpyData::F32(vec![0.5, -1.0, 2.0, 3.0, f32::MAX, 1e-30]) });
        round_trip(NpyArray { shape: vec![2], data: NpyData::F64(vec![0.1, -2.5]) });
        round_trip(NpyArray { shape: vec![3], data: NpyData::I64(vec![i64::MIN, 0, i64::MAX]) });
        round_trip(NpyArray { shape: vec![1, 1, 2], data: NpyData::I32(vec![-7, 7]) });
        round_trip(NpyArray { shape: vec![2], data: NpyData::U8(vec![0, 255]) });
        round_trip(NpyArray { shape: vec![2], data: NpyData::I8(vec![-128, 127]) });
        round_trip(NpyArray { shape: vec![], data: NpyData::Bool(vec![true]) });
        round_trip(NpyArray { shape: vec![0, 4], data: NpyData::F32(vec![]) });
    }

    #[test]
    fn reads_what_numpy_writes() {
        // numpy.save of np.arange(3, dtype='<i4').reshape(1, 3), header exactly as numpy pads it.
        let mut bytes =
            b"\x93NUMPY\x01\x00\x76\x00{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3), }".to_vec();
        bytes.resize(10 + 0x76 - 1, b' ');
        bytes.push(b'\n');
        bytes.extend([0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
        let array = decode(&bytes).unwrap();
        assert_eq!(array, NpyArray { shape: vec![1, 3], data: NpyData::I32(vec![0, 1, 2]) });
        // Version 2.0 header length, double quotes, no trailing comma, 1-tuple.
        let header = "{\"descr\":\"<f8\",\"shape\":(2,),\"fortran_order\":False}\n";
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        v2.extend((header.len() as u32).to_le_bytes());
        v2.extend(header.as_bytes());
        v2.extend(1.5f64.to_le_bytes());
        v2.extend(2.5f64.to_le_bytes());
        assert_eq!(decode(&v2).unwrap().into_tensor().data, TensorData::F32(vec![1.5, 2.5]));
    }

    #[test]
    fn rejects_bad_files_with_reasons() {
        let good = encode(&NpyArray { shape: vec![2], data: NpyData::F32(vec![1.0, 2.0]) });
        let with_header = |h: &str| {
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend((h.len() as u16).to_le_bytes());
            b.extend(h.as_bytes());
            b
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"PK\x03\x04".to_vec(), "magic"),
            (good[..good.len() - 1].to_vec(), "data bytes"),
            ([good.as_slice(), &[0]].concat(), "data bytes"),
            (with_header("{'descr': '>f4', 'fortran_order': False, 'shape': (0,), }"), "little-endian"),
            (with_header("{'descr': '<c8', 'fortran_order': False, 'shape': (0,), }"), "not supported"),
            (with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (0,), }"), "Fortran"),
            (with_header("{'descr': '<f4', 'shape': (0,), }"), "needs"),
            (with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"), "size"),
            (
                with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2), }"),
                "too large",
            ),
            (with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}"), "unexpected key"),
            (with_header("{'descr': '<f4"), "unterminated"),
            (with_header("{'descr': '|b1' 'shape': (1,)}"), "after a value"),
            (with_header("{'descr': 'é', 'fortran_order': False, 'shape': (), }"), "little-endian"),
            (b"\x93NUMPY\x09\x00".to_vec(), "version 9.0"),
            (b"\x93NUMPY\x01\x00\xff\xff".to_vec(), "only 0 follow"),
        ];
        for (bytes, reason) in cases {
            let e = decode(&bytes).unwrap_err().to_string();
            assert!(e.contains(reason), "expected {reason:?} in {e:?}");
        }
        let mut bool_bytes = encode(&NpyArray { shape: vec![1], data: NpyData::Bool(vec![true]) });
        *bool_bytes.last_mut().unwrap() = 7;
        assert!(decode(&bool_bytes).unwrap_err().to_string().contains("byte 7"));
    }

    #[test]
    fn never_panics_on_mangled_headers() {
        let good = encode(&NpyArray { shape: vec![2, 2], data: NpyData::I64(vec![1, 2, 3, 4]) });
        // Every truncation and every single-byte substitution of the header with nasty bytes.
        for len in 0..good.len() {
            let _ = decode(&good[..len]);
        }
        for i in 0..80 {
            for b in [0u8, b'(', b')', b'\'', b'"', b',', b':', b'{', b'}', 0x80, 0xff, b'9'] {
                let mut bytes = good.clone();
                bytes[i] = b;
                let _ = decode(&bytes);
            }
        }
    }
}

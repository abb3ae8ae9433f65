//! The IDX file format of MNIST and Fashion-MNIST, raw or gzip-compressed, validated.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::DatasetError;

/// Largest decompressed IDX file accepted (the full MNIST training images are 47 MB). A header
/// or a gzip stream claiming more is rejected before it is allocated.
pub const MAX_IDX_BYTES: u64 = 256 << 20;

/// An unsigned-byte IDX array: `dims` (outermost first) and its row-major values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Extents, e.g. `[60000, 28, 28]`.
    pub dims: Vec<usize>,
    /// `dims.iter().product()` bytes.
    pub data: Vec<u8>,
}

/// Reads an IDX file, decompressing it when it starts with the gzip magic.
///
/// # Errors
/// [`DatasetError::Io`] when the file cannot be read, [`DatasetError::Idx`] when it is not a
/// valid unsigned-byte IDX file (bad magic, unsupported type, too many dimensions, sizes that
/// disagree with the data, or more than [`MAX_IDX_BYTES`]).
pub fn read_idx(path: &Path) -> Result<IdxArray, DatasetError> {
    let limit = MAX_IDX_BYTES + 1;
    let file = std::fs::File::open(path).map_err(DatasetError::io(path))?;
    let mut raw = Vec::new();
    file.take(limit)
        .read_to_end(&mut raw)
        .map_err(DatasetError::io(path))?;
    decode_idx(raw, path)
}

/// Decodes the bytes of an IDX file, raw or gzipped, as [`read_idx`] does after reading;
/// `path` only labels errors.
///
/// # Errors
/// As [`read_idx`], except I/O.
pub fn decode_idx(mut raw: Vec<u8>, path: &Path) -> Result<IdxArray, DatasetError> {
    let limit = MAX_IDX_BYTES + 1;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice())
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| idx_error(path, format!("corrupt gzip stream: {e}")))?;
        raw = out;
    }
    if raw.len() as u64 > MAX_IDX_BYTES {
        return Err(idx_error(path, format!("more than {MAX_IDX_BYTES} bytes")));
    }
    parse_idx(&raw, path)
}

/// Parses IDX bytes already in memory; `path` only labels errors.
///
/// # Errors
/// As [`read_idx`].
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray, DatasetError> {
    let [zero0, zero1, kind, ndims] = match bytes.get(..4) {
        Some(&[a, b, c, d]) => [a, b, c, d],
        _ => {
            return Err(idx_error(
                path,
                format!("{} bytes is too short for a header", bytes.len()),
            ));
        }
    };
    if zero0 != 0 || zero1 != 0 {
        return Err(idx_error(
            path,
            format!("bad magic {:02x}{:02x}{kind:02x}{ndims:02x}", zero0, zero1),
        ));
    }
    if kind != 0x08 {
        return Err(idx_error(
            path,
            format!("element type 0x{kind:02x} is not unsigned byte (0x08)"),
        ));
    }
    if !(1..=4).contains(&ndims) {
        return Err(idx_error(
            path,
            format!("{ndims} dimensions (expected 1 to 4)"),
        ));
    }
    let header = 4 + 4 * ndims as usize;
    let dims_bytes = bytes
        .get(4..header)
        .ok_or_else(|| idx_error(path, "header ends before its dimensions".to_string()))?;
    let dims: Vec<usize> = dims_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n as u64 <= MAX_IDX_BYTES)
        .ok_or_else(|| {
            idx_error(
                path,
                format!("dimensions {dims:?} exceed {MAX_IDX_BYTES} bytes"),
            )
        })?;
    let data = &bytes[header..];
    if data.len() != expected {
        return Err(idx_error(
            path,
            format!(
                "dimensions {dims:?} need {expected} bytes of data, found {}",
                data.len()
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: data.to_vec(),
    })
}

fn idx_error(path: &Path, reason: String) -> DatasetError {
    DatasetError::Idx {
        path: PathBuf::from(path),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    /// `read_idx` on files the test writes: raw and gzipped copies read the same; a truncated
    /// or corrupted gzip stream, a truncated raw file and a missing file are errors.
    #[test]
    fn reads_raw_and_gz_files_and_rejects_damaged_ones() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("rnn-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = idx(&[3, 4], &(0..12).collect::<Vec<u8>>());
        let raw = dir.join("a-idx2-ubyte");
        std::fs::write(&raw, &bytes).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&bytes).unwrap();
        let gz = gz.finish().unwrap();
        let gz_path = dir.join("a-idx2-ubyte.gz");
        std::fs::write(&gz_path, &gz).unwrap();
        assert_eq!(read_idx(&raw).unwrap(), read_idx(&gz_path).unwrap());

        let cut = dir.join("cut.gz");
        std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
        assert!(matches!(read_idx(&cut), Err(DatasetError::Idx { .. })));
        let mut flipped = gz.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0xff;
        let bad = dir.join("bad.gz");
        std::fs::write(&bad, &flipped).unwrap();
        assert!(read_idx(&bad).is_err());
        let short = dir.join("short");
        std::fs::write(&short, &bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(read_idx(&short), Err(DatasetError::Idx { .. })));
        assert!(matches!(
            read_idx(&dir.join("missing")),
            Err(DatasetError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_valid_and_rejects_malformed() {
        let p = Path::new("t");
        let ok = parse_idx(&idx(&[2, 3], &[1, 2, 3, 4, 5, 6]), p).unwrap();
        assert_eq!(ok.dims, vec![2, 3]);
        assert_eq!(ok.data, vec![1, 2, 3, 4, 5, 6]);
        assert!(
            parse_idx(&idx(&[2, 3], &[1, 2, 3]), p).is_err(),
            "truncated"
        );
        assert!(
            parse_idx(&idx(&[2, 3], &[0; 7]), p).is_err(),
            "trailing bytes"
        );
        assert!(parse_idx(&[0, 0, 8], p).is_err(), "short header");
        assert!(
            parse_idx(&[1, 0, 8, 1, 0, 0, 0, 0], p).is_err(),
            "bad magic"
        );
        assert!(
            parse_idx(&[0, 0, 0x0d, 1, 0, 0, 0, 0], p).is_err(),
            "float type"
        );
        assert!(parse_idx(&[0, 0, 8, 9], p).is_err(), "too many dims");
        // A header claiming 4 billion images must fail without allocating them.
        let huge = idx(&[u32::MAX, 28, 28], &[0; 16]);
        let err = parse_idx(&huge, p).unwrap_err().to_string();
        assert!(err.contains("exceed"), "{err}");
    }
}

//! IDX files, the format of MNIST and Fashion-MNIST, gzip'd or raw.
//!
//! An IDX file is a big-endian `u32` magic number whose third byte is the element type
//! (`0x08` = unsigned byte) and whose fourth is the number of dimensions, then one
//! big-endian `u32` per dimension, then the elements. Images are `0x00000803`
//! (count × rows × cols), labels `0x00000801` (count). Whether a file is gzip'd is decided
//! from its first two bytes rather than its name, because an IDX file always starts with
//! two zero bytes and a gzip stream never does — a renamed file still loads.

use std::io::Read;
use std::path::Path;

use crate::error::{read_file, DataError, Result};
use crate::images::ImageSet;

/// Magic number of an IDX file of unsigned-byte images (3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The images of one IDX file: `count` single-channel `rows`×`cols` images, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Height of every image, in pixels.
    pub rows: usize,
    /// Width of every image, in pixels.
    pub cols: usize,
    /// `count × rows × cols` bytes, image after image, each row-major.
    pub pixels: Vec<u8>,
}

/// Reads a file and, when it is gzip'd, decompresses it.
pub(crate) fn read_maybe_gzip(path: &Path, what: &str) -> Result<Vec<u8>> {
    let raw = read_file(path, what)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    DataError::Truncated {
                        path: path.to_path_buf(),
                        detail: format!(
                            "the gzip stream ends early ({} compressed bytes)",
                            raw.len()
                        ),
                    }
                } else {
                    DataError::Invalid {
                        path: path.to_path_buf(),
                        detail: format!("gzip decompression failed: {e}"),
                    }
                }
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses the header of an IDX file: checks the magic and returns the dimensions and the
/// offset of the first element.
fn parse_header(path: &Path, bytes: &[u8], magic: u32, what: &str) -> Result<Vec<usize>> {
    let ndim = (magic & 0xff) as usize;
    let header_len = 4 + 4 * ndim;
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "{} bytes, too short for the 4-byte magic number of an IDX {what} file",
                bytes.len()
            ),
        });
    }
    let found = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if found != magic {
        let hint = match found {
            IMAGES_MAGIC => " — this is an IDX image file",
            LABELS_MAGIC => " — this is an IDX label file",
            _ => "",
        };
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            expected: magic,
            found,
            what: format!("IDX {what} file{hint}"),
        });
    }
    if bytes.len() < header_len {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "{} bytes, shorter than the {header_len}-byte header of an IDX {what} file",
                bytes.len()
            ),
        });
    }
    Ok((0..ndim)
        .map(|d| {
            let o = 4 + 4 * d;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect())
}

/// Checks that exactly `dims` product bytes follow the header.
fn check_payload(path: &Path, bytes: &[u8], dims: &[usize]) -> Result<()> {
    let header_len = 4 + 4 * dims.len();
    let shape = dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×");
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::Invalid {
            path: path.to_path_buf(),
            detail: format!("header dimensions {shape} overflow"),
        })?;
    let found = bytes.len() - header_len;
    if found < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            detail: format!("header says {shape} = {expected} bytes, found {found}"),
        });
    }
    if found > expected {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            detail: format!(
                "header says {shape} = {expected} bytes, found {found} ({} bytes too many)",
                found - expected
            ),
        });
    }
    Ok(())
}

/// Reads an IDX image file (`0x00000803`, gzip'd or raw).
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    let bytes = read_maybe_gzip(path, "an IDX image file")?;
    let dims = parse_header(path, &bytes, IMAGES_MAGIC, "image")?;
    check_payload(path, &bytes, &dims)?;
    let header_len = 4 + 4 * dims.len();
    let mut pixels = bytes;
    pixels.drain(..header_len);
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// Reads an IDX label file (`0x00000801`, gzip'd or raw).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_maybe_gzip(path, "an IDX label file")?;
    let dims = parse_header(path, &bytes, LABELS_MAGIC, "label")?;
    check_payload(path, &bytes, &dims)?;
    let mut labels = bytes;
    labels.drain(..8);
    Ok(labels)
}

/// Reads an image file and its label file into one single-channel [`ImageSet`], checking
/// that the counts agree and every label is below `num_classes`.
pub fn load_idx_pair(
    images_path: &Path,
    labels_path: &Path,
    num_classes: usize,
) -> Result<ImageSet> {
    let images = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels_path)?;
    if images.count != labels.len() {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            labels_path: labels_path.to_path_buf(),
            images: images.count,
            labels: labels.len(),
        });
    }
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= num_classes)
    {
        return Err(DataError::Invalid {
            path: labels_path.to_path_buf(),
            detail: format!("example {i} has label {l}, but there are only {num_classes} classes"),
        });
    }
    ImageSet::new(
        images.pixels,
        labels,
        [1, images.rows, images.cols],
        num_classes,
    )
}

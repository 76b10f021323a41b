//! [`ImageSet`]: labelled images as plain bytes, in the N×C×H×W order a tensor wants.

use crate::error::{DataError, Result};

/// A set of labelled 8-bit images of one shape.
///
/// `pixels` holds `len() * channels * height * width` bytes, image after image, each image
/// channel-major (all of channel 0 row by row, then channel 1, …) — the N×C×H×W layout that
/// `Tensor::from_slice(..).view([n, c, h, w])` expects, so the torch crate never reorders.
/// The fields are private so that this length invariant always holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    channels: usize,
    height: usize,
    width: usize,
    num_classes: usize,
}

impl ImageSet {
    /// Builds a set, checking that the pixel buffer matches the label count and shape and
    /// that every label is below `num_classes`.
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<u8>,
        [channels, height, width]: [usize; 3],
        num_classes: usize,
    ) -> Result<Self> {
        let per_image = channels
            .checked_mul(height)
            .and_then(|x| x.checked_mul(width))
            .ok_or_else(|| {
                DataError::InvalidRequest(format!(
                    "image shape {channels}×{height}×{width} overflows"
                ))
            })?;
        let expected = labels.len().checked_mul(per_image);
        if expected != Some(pixels.len()) {
            return Err(DataError::InvalidRequest(format!(
                "{} labels of {channels}×{height}×{width} images need {} pixel bytes, got {}",
                labels.len(),
                expected.map_or_else(|| "an overflowing number of".into(), |e| e.to_string()),
                pixels.len()
            )));
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| usize::from(l) >= num_classes)
        {
            return Err(DataError::InvalidRequest(format!(
                "label {l} of image {i} is not below the class count {num_classes}"
            )));
        }
        Ok(Self {
            pixels,
            labels,
            channels,
            height,
            width,
            num_classes,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[channels, height, width]` of every image.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// Bytes per image (`channels * height * width`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Number of classes; every label is below it.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// All pixels, N×C×H×W.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// All labels, one per image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The pixels of image `i` (C×H×W), or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let n = self.image_len();
        self.pixels
            .get(i.checked_mul(n)?..i.checked_add(1)?.checked_mul(n)?)
    }

    /// The byte at (`image`, `channel`, `row`, `col`), or `None` when out of range.
    pub fn pixel(&self, image: usize, channel: usize, row: usize, col: usize) -> Option<u8> {
        if channel >= self.channels || row >= self.height || col >= self.width {
            return None;
        }
        let img = self.image(image)?;
        img.get((channel * self.height + row) * self.width + col)
            .copied()
    }

    /// How many images carry each label, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            counts[usize::from(l)] += 1;
        }
        counts
    }

    /// A new set holding the images at `indices`, in that order (repeats allowed).
    pub fn select(&self, indices: &[usize]) -> Result<ImageSet> {
        let n = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len().saturating_mul(n));
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let img = self.image(i).ok_or_else(|| {
                DataError::InvalidRequest(format!(
                    "index {i} is out of range for a set of {} images",
                    self.len()
                ))
            })?;
            pixels.extend_from_slice(img);
            labels.push(self.labels[i]);
        }
        Ok(ImageSet {
            pixels,
            labels,
            channels: self.channels,
            height: self.height,
            width: self.width,
            num_classes: self.num_classes,
        })
    }

    /// Concatenates sets of the same shape and class count (e.g. CIFAR's five batches).
    pub fn concat(sets: Vec<ImageSet>) -> Result<ImageSet> {
        let mut iter = sets.into_iter();
        let Some(mut first) = iter.next() else {
            return Err(DataError::InvalidRequest(
                "cannot concatenate zero image sets".into(),
            ));
        };
        for set in iter {
            if set.shape() != first.shape() || set.num_classes != first.num_classes {
                return Err(DataError::InvalidRequest(format!(
                    "cannot concatenate images of shape {:?} ({} classes) with {:?} ({} classes)",
                    first.shape(),
                    first.num_classes,
                    set.shape(),
                    set.num_classes
                )));
            }
            first.pixels.extend_from_slice(&set.pixels);
            first.labels.extend_from_slice(&set.labels);
        }
        Ok(first)
    }

    /// Splits the set into its pixel and label buffers, for handing to a tensor library
    /// without a copy.
    pub fn into_parts(self) -> (Vec<u8>, Vec<u8>) {
        (self.pixels, self.labels)
    }
}

//! Images on the training device, and batched augmentation.
//!
//! What makes the fastest public CIFAR trainers fast transfers to any child
//! (perf.md): the whole dataset is turned into one tensor on the training
//! device once (resampled, whitened, in the compute precision), and every
//! batch is cut from it and augmented with a few whole-batch kernels — never
//! a per-image loop (`tch::vision`'s augmentation loops per image).
//!
//! Random crop after zero padding and horizontal flip are one pair of
//! `gather`s: for image `b` with crop offset (dy, dx) and flip bit f, output
//! pixel (i, j) reads padded pixel (dy + i, dx + (f ? W-1-j : j)). The
//! offsets, flips and the batch's indices come from the child's ChaCha8
//! stream on the host (a checkpoint captures them exactly) and travel to the
//! device in one small upload per batch.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use nasfleet_data::ImageSet;

use super::CnnError;

/// How the images are prepared once, on loading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prepare {
    /// Resample to this height and width (`None`: keep).
    pub resolution: Option<usize>,
    /// Whiten each channel with the training images' mean and deviation.
    pub normalize: bool,
    /// Kind the images are stored and served in (`Float` or `BFloat16`).
    pub kind: Kind,
}

/// Per-batch augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augment {
    /// Zero-pad by this many pixels, then crop back at a random offset.
    pub crop_padding: usize,
    /// Flip horizontally with probability ½.
    pub flip: bool,
}

impl Augment {
    /// No padding, no flip: evaluation batches.
    pub const NONE: Augment = Augment { crop_padding: 0, flip: false };
}

/// Labelled images as device tensors.
#[derive(Debug)]
pub struct DeviceImages {
    /// N×C×H×W in the prepared kind.
    pub images: Tensor,
    /// N labels (int64).
    pub labels: Tensor,
}

impl DeviceImages {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.size().first().copied().unwrap_or(0) as usize
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A training and a validation set, prepared alike.
#[derive(Debug)]
pub struct DeviceData {
    /// The training images (a subset of the dataset's training set).
    pub train: DeviceImages,
    /// The validation images (held out from the same training set).
    pub valid: DeviceImages,
    /// (C, H, W) of the prepared images.
    pub shape: (usize, usize, usize),
    /// Number of classes.
    pub classes: usize,
    /// Per-channel statistics used for whitening (0 and 1 when off).
    pub mean: Vec<f64>,
    /// Per-channel standard deviations used for whitening (1 when off).
    pub std: Vec<f64>,
    /// The device the tensors live on.
    pub device: Device,
    /// How the images were prepared (what [`DeviceData::prepare_like`] repeats).
    pub prep: Prepare,
}

fn to_float(set: &ImageSet, device: Device) -> Result<Tensor, CnnError> {
    let [c, h, w] = set.shape();
    let x = Tensor::f_from_slice(set.pixels())?
        .f_view([set.len() as i64, c as i64, h as i64, w as i64])?
        .f_to_device(device)?;
    Ok(x.f_to_kind(Kind::Float)?.f_div_scalar(255.0)?)
}

fn resample(x: Tensor, resolution: Option<usize>) -> Result<Tensor, CnnError> {
    let Some(r) = resolution else { return Ok(x) };
    let s = x.size();
    let (h, w) = (s[2] as usize, s[3] as usize);
    if r == 0 {
        return Err(CnnError::Invalid("train.image.resolution must be at least 1".into()));
    }
    let r = r as i64;
    Ok(if (r as usize, r as usize) == (h, w) {
        x
    } else if r as usize <= h.min(w) {
        // Area averaging: each output pixel is the mean of the input pixels it
        // covers (exact 2×2 means for 28 → 14), without aliasing.
        x.f_adaptive_avg_pool2d([r, r])?
    } else {
        x.f_upsample_bilinear2d([r, r], false, None, None)?
    })
}

impl DeviceData {
    /// Moves `train` and `valid` to `device`, prepared per `prep`; the
    /// whitening statistics come from `train` alone.
    pub fn new(train: &ImageSet, valid: &ImageSet, prep: Prepare, device: Device) -> Result<DeviceData, CnnError> {
        if train.shape() != valid.shape() || train.num_classes() != valid.num_classes() {
            return Err(CnnError::Invalid(format!(
                "training images {:?} ({} classes) and validation images {:?} ({} classes) differ",
                train.shape(),
                train.num_classes(),
                valid.shape(),
                valid.num_classes()
            )));
        }
        if train.is_empty() || valid.is_empty() {
            return Err(CnnError::Invalid(format!(
                "need at least one training and one validation image (got {} and {})",
                train.len(),
                valid.len()
            )));
        }
        let xt = resample(to_float(train, device)?, prep.resolution)?;
        let xv = resample(to_float(valid, device)?, prep.resolution)?;
        let c = train.shape()[0];
        let (mut mean, mut std) = (vec![0.0; c], vec![1.0; c]);
        let (xt, xv) = if prep.normalize {
            let m = xt.f_mean_dim([0i64, 2, 3].as_slice(), true, Kind::Float)?;
            let var = (&xt - &m).f_square()?.f_mean_dim([0i64, 2, 3].as_slice(), true, Kind::Float)?;
            // A constant channel (all-black fixture) must not divide by zero.
            let sd = var.f_sqrt()?.f_clamp_min(1e-6)?;
            mean = Vec::<f64>::try_from(m.f_flatten(0, -1)?.f_to_kind(Kind::Double)?)?;
            std = Vec::<f64>::try_from(sd.f_flatten(0, -1)?.f_to_kind(Kind::Double)?)?;
            ((&xt - &m).f_div(&sd)?, (&xv - &m).f_div(&sd)?)
        } else {
            (xt, xv)
        };
        let s = xt.size();
        let labels = |set: &ImageSet| -> Result<Tensor, CnnError> {
            let l: Vec<i64> = set.labels().iter().map(|&l| i64::from(l)).collect();
            Ok(Tensor::f_from_slice(&l)?.f_to_device(device)?)
        };
        Ok(DeviceData {
            train: DeviceImages { images: xt.f_to_kind(prep.kind)?.f_contiguous()?, labels: labels(train)? },
            valid: DeviceImages { images: xv.f_to_kind(prep.kind)?.f_contiguous()?, labels: labels(valid)? },
            shape: (s[1] as usize, s[2] as usize, s[3] as usize),
            classes: train.num_classes(),
            mean,
            std,
            device,
            prep,
        })
    }

    /// `set` (a held-out test set) prepared exactly as the validation images
    /// were: the same resampling, the training images' whitening statistics
    /// and the same kind. Its image shape and class count must match.
    pub fn prepare_like(&self, set: &ImageSet) -> Result<DeviceImages, CnnError> {
        let x = resample(to_float(set, self.device)?, self.prep.resolution)?;
        let s = x.size();
        let shape = (s[1] as usize, s[2] as usize, s[3] as usize);
        if shape != self.shape || set.num_classes() != self.classes || set.is_empty() {
            return Err(CnnError::Invalid(format!(
                "images {:?} ({} classes, {} images) do not match the training images {:?} ({} classes)",
                set.shape(),
                set.num_classes(),
                set.len(),
                self.shape,
                self.classes
            )));
        }
        let x = if self.prep.normalize {
            let c = self.mean.len() as i64;
            let stat = |v: &[f64]| -> Result<Tensor, CnnError> {
                Ok(Tensor::f_from_slice(v)?.f_to_kind(Kind::Float)?.f_view([1, c, 1, 1])?.f_to_device(self.device)?)
            };
            (&x - stat(&self.mean)?).f_div(&stat(&self.std)?)?
        } else {
            x
        };
        let labels: Vec<i64> = set.labels().iter().map(|&l| i64::from(l)).collect();
        Ok(DeviceImages {
            images: x.f_to_kind(self.prep.kind)?.f_contiguous()?,
            labels: Tensor::f_from_slice(&labels)?.f_to_device(self.device)?,
        })
    }

    /// One training batch: the images at `indices`, augmented with offsets
    /// and flips drawn from `rng`, and their labels.
    pub fn train_batch(&self, indices: &[usize], aug: Augment, rng: &mut ChaCha8Rng) -> Result<(Tensor, Tensor), CnnError> {
        let (_, h, w) = self.shape;
        let b = indices.len();
        let p = aug.crop_padding;
        let crop = p > 0;
        // One host buffer, one upload: [indices | rows (b×h) | cols (b×w)].
        let mut host: Vec<i64> = Vec::with_capacity(b * (1 + h + w));
        host.extend(indices.iter().map(|&i| i as i64));
        let mut cols: Vec<i64> = Vec::with_capacity(if crop || aug.flip { b * w } else { 0 });
        for _ in 0..b {
            let (dy, dx) = if crop { (rng.gen_range(0..=2 * p), rng.gen_range(0..=2 * p)) } else { (0, 0) };
            let flipped = aug.flip && rng.gen::<bool>();
            if crop {
                host.extend((0..h).map(|i| (dy + i) as i64));
            }
            if crop || aug.flip {
                cols.extend((0..w).map(|j| (dx + if flipped { w - 1 - j } else { j }) as i64));
            }
        }
        host.extend_from_slice(&cols);
        let host = Tensor::f_from_slice(&host)?;
        let all = if self.device.is_cuda() {
            // Pinned and non-blocking: a plain copy from pageable memory
            // waits for the GPU to drain the previous step, and small
            // children are launch-bound, so the host must run ahead.
            // (libtorch's pinned allocator keeps the buffer until the copy is done.)
            host.f_pin_memory(self.device)?.f_to_device_(self.device, Kind::Int64, true, false)?
        } else {
            host
        };
        let idx = all.f_narrow(0, 0, b as i64)?;
        let x = self.train.images.f_index_select(0, &idx)?;
        let y = self.train.labels.f_index_select(0, &idx)?;
        let (bi, hi, wi, pi) = (b as i64, h as i64, w as i64, p as i64);
        let c = x.size()[1];
        let x = if crop {
            let rows = all.f_narrow(0, bi, bi * hi)?.f_view([bi, 1, hi, 1])?;
            let xp = x.f_constant_pad_nd([pi, pi, pi, pi])?;
            let x = xp.f_gather(2, &rows.f_expand([bi, c, hi, wi + 2 * pi], false)?, false)?;
            let cols = all.f_narrow(0, bi + bi * hi, bi * wi)?.f_view([bi, 1, 1, wi])?;
            x.f_gather(3, &cols.f_expand([bi, c, hi, wi], false)?, false)?
        } else if aug.flip {
            let cols = all.f_narrow(0, bi, bi * wi)?.f_view([bi, 1, 1, wi])?;
            x.f_gather(3, &cols.f_expand([bi, c, hi, wi], false)?, false)?
        } else {
            x
        };
        Ok((x, y))
    }
}

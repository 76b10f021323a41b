//! The on-device data pipeline: preparation and batched augmentation,
//! checked against a plain per-image reference.

use std::collections::HashSet;

use nasfleet_data::ImageSet;
use nasfleet_torch::cnn::{Augment, DeviceData, Prepare};
use nasfleet_torch::tch::{Device, Kind, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_set(n: usize, shape: [usize; 3], seed: u64) -> ImageSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pixels = (0..n * shape.iter().product::<usize>()).map(|_| rng.gen::<u8>()).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    ImageSet::new(pixels, labels, shape, 10).unwrap()
}

fn prep(normalize: bool) -> Prepare {
    Prepare { resolution: None, normalize, kind: Kind::Float }
}

/// Image `i` padded by `p`, cropped at (dy, dx), optionally flipped: the
/// textbook per-image definition.
fn reference(images: &Tensor, i: i64, p: i64, dy: i64, dx: i64, flip: bool) -> Tensor {
    let s = images.size();
    let img = images.get(i).constant_pad_nd([p, p, p, p]).narrow(1, dy, s[2]).narrow(2, dx, s[3]);
    if flip {
        img.flip([2])
    } else {
        img
    }
}

#[test]
fn batched_crop_and_flip_equal_some_per_image_crop_and_every_offset_occurs() {
    let set = random_set(40, [3, 6, 5], 1);
    let data = DeviceData::new(&set, &random_set(10, [3, 6, 5], 2), prep(true), Device::Cpu).unwrap();
    let p = 2i64;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut seen = HashSet::new();
    for round in 0..20 {
        let idx: Vec<usize> = (0..16).map(|k| (k * 7 + round * 3) % 40).collect();
        let (x, y) = data.train_batch(&idx, Augment { crop_padding: p as usize, flip: true }, &mut rng).unwrap();
        assert_eq!(x.size(), vec![16, 3, 6, 5]);
        for (b, &i) in idx.iter().enumerate() {
            assert_eq!(y.int64_value(&[b as i64]), (i % 10) as i64);
            let got = x.get(b as i64);
            let mut matches = Vec::new();
            for dy in 0..=2 * p {
                for dx in 0..=2 * p {
                    for flip in [false, true] {
                        if got.equal(&reference(&data.train.images, i as i64, p, dy, dx, flip)) {
                            matches.push((dy, dx, flip));
                        }
                    }
                }
            }
            // Random pixels: exactly one window and orientation reproduces the output.
            assert_eq!(matches.len(), 1, "image {b} of round {round}: {matches:?}");
            seen.insert(matches[0]);
        }
    }
    assert_eq!(seen.len(), 5 * 5 * 2, "320 draws should hit all 50 (dy, dx, flip) combinations");
}

#[test]
fn flip_only_and_no_augmentation() {
    let set = random_set(8, [1, 4, 4], 3);
    let data = DeviceData::new(&set, &set, prep(false), Device::Cpu).unwrap();
    let idx: Vec<usize> = (0..8).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (x, _) = data.train_batch(&idx, Augment::NONE, &mut rng).unwrap();
    assert!(x.equal(&data.train.images));
    let (x, _) = data.train_batch(&idx, Augment { crop_padding: 0, flip: true }, &mut rng).unwrap();
    let mut flipped = 0;
    for b in 0..8 {
        let orig = data.train.images.get(b);
        let got = x.get(b);
        if got.equal(&orig.flip([2])) {
            flipped += 1;
        } else {
            assert!(got.equal(&orig), "image {b} is neither itself nor its mirror");
        }
    }
    assert!((1..8).contains(&flipped), "{flipped} of 8 flipped");
}

#[test]
fn preparation_whitens_with_training_statistics_and_resamples() {
    let train = random_set(50, [3, 8, 8], 4);
    let valid = random_set(20, [3, 8, 8], 5);
    let data = DeviceData::new(&train, &valid, prep(true), Device::Cpu).unwrap();
    // Whitened training images: per channel mean 0, deviation 1.
    let m = data.train.images.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Double);
    let sd = data.train.images.square().mean_dim([0i64, 2, 3].as_slice(), false, Kind::Double).sqrt();
    for c in 0..3 {
        assert!(m.double_value(&[c]).abs() < 1e-5);
        assert!((sd.double_value(&[c]) - 1.0).abs() < 1e-4);
    }
    // The statistics are the training set's, computed by hand for channel 1.
    let plane = 64;
    let ch1: Vec<f64> = (0..50)
        .flat_map(|i| train.image(i).unwrap()[plane..2 * plane].iter().map(|&v| f64::from(v) / 255.0).collect::<Vec<_>>())
        .collect();
    let mean = ch1.iter().sum::<f64>() / ch1.len() as f64;
    assert!((data.mean[1] - mean).abs() < 1e-6, "{} vs {mean}", data.mean[1]);
    // Validation pixel (0, 1, 2, 3) whitened with the training statistics.
    let v = f64::from(valid.pixel(0, 1, 2, 3).unwrap()) / 255.0;
    let want = (v - data.mean[1]) / data.std[1];
    assert!((data.valid.images.double_value(&[0, 1, 2, 3]) - want).abs() < 1e-5);

    // Area-averaging 8 → 4: each output pixel is the mean of a 2×2 block.
    let small = DeviceData::new(&train, &valid, Prepare { resolution: Some(4), normalize: false, kind: Kind::Float }, Device::Cpu)
        .unwrap();
    assert_eq!(small.shape, (3, 4, 4));
    let img = train.image(0).unwrap();
    let block: f64 = [(2, 2), (2, 3), (3, 2), (3, 3)].iter().map(|&(r, c)| f64::from(img[r * 8 + c])).sum::<f64>() / 4.0 / 255.0;
    assert!((small.train.images.double_value(&[0, 0, 1, 1]) - block).abs() < 1e-6);
    // Growing uses bilinear interpolation and keeps the value range.
    let big = DeviceData::new(&train, &valid, Prepare { resolution: Some(12), normalize: false, kind: Kind::BFloat16 }, Device::Cpu)
        .unwrap();
    assert_eq!((big.shape, big.train.images.kind()), ((3, 12, 12), Kind::BFloat16));
}

#[test]
fn mismatched_or_empty_sets_are_errors() {
    let a = random_set(4, [1, 4, 4], 0);
    let b = random_set(4, [3, 4, 4], 0);
    let err = DeviceData::new(&a, &b, prep(true), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("differ"), "{err}");
    let empty = ImageSet::new(vec![], vec![], [1, 4, 4], 10).unwrap();
    let err = DeviceData::new(&a, &empty, prep(true), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("at least one"), "{err}");
}

#[test]
fn a_test_set_is_prepared_exactly_as_the_validation_set() {
    let train = random_set(50, [3, 8, 8], 6);
    let valid = random_set(20, [3, 8, 8], 7);
    for p in [
        prep(true),
        prep(false),
        Prepare { resolution: Some(4), normalize: true, kind: Kind::Float },
        Prepare { resolution: Some(12), normalize: true, kind: Kind::BFloat16 },
    ] {
        let data = DeviceData::new(&train, &valid, p, Device::Cpu).unwrap();
        // The validation images, prepared again as a "test set": bit for bit
        // the same tensor (resampling, the training statistics, the kind).
        let again = data.prepare_like(&valid).unwrap();
        assert_eq!(again.images.kind(), p.kind);
        assert!(again.images.equal(&data.valid.images), "{p:?}");
        assert!(again.labels.equal(&data.valid.labels));
    }
    // A set of another shape or class count is refused with both shapes.
    let data = DeviceData::new(&train, &valid, prep(true), Device::Cpu).unwrap();
    let err = data.prepare_like(&random_set(5, [1, 8, 8], 8)).unwrap_err().to_string();
    assert!(err.contains("[1, 8, 8]") && err.contains("(3, 8, 8)"), "{err}");
}

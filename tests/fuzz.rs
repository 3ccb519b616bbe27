//! In-tree fuzzing of every parser that reads user files: the NIfTI reader (`.nii` and `.nii.gz`), the
//! safetensors / checkpoint reader (with its checksums and metadata), the model and training config parsers,
//! nnU-Net's `dataset.json`, and the image and mask decoders (PNG 8/16-bit, RGB, JPEG, TIFF).
//!
//! Each target starts from valid files built here and feeds mutations of them (bit flips, interesting
//! integers at random offsets, insertions, deletions, duplicated ranges, truncations, splices of two seeds)
//! to the parser under `catch_unwind`. Every input must give `Ok` or an `Err`: a panic fails the test and the
//! input is written to `target/fuzz-failures/<target>-<iteration>.bin`, with the seed to replay it.
//!
//! The run is seeded and reproducible. `cargo test` runs `MEDSEGDIFF_FUZZ_ITERS` inputs per target (default
//! 1,500, 10,500 in all); a longer campaign: `MEDSEGDIFF_FUZZ_ITERS=200000 MEDSEGDIFF_FUZZ_SEED=7 cargo test
//! --release --test fuzz -- --nocapture` (see docs/fuzzing.md).

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

mod common;

use medsegdiff::data::{folder, nifti};
use medsegdiff::model::weights::TensorFile;
use medsegdiff::model::{memory, UnetConfig};

/// A small, seeded xorshift generator: the same seed gives the same inputs on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u64; 12] =
    [0, 1, 2, 0x7f, 0x80, 0xff, 348, 0x7fff, 0x8000, 0xffff, 0x7fff_ffff, 0xffff_ffff_ffff_ffff];

/// A position, biased to the first 512 bytes (where headers are) half of the time.
fn pos(r: &mut Rng, len: usize) -> usize {
    if r.below(2) == 0 {
        r.below(len.min(512))
    } else {
        r.below(len)
    }
}

fn mutate(r: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[r.below(seeds.len())].clone();
    for _ in 0..1 + r.below(4) {
        if b.is_empty() {
            b.push(r.next() as u8);
        }
        let n = b.len();
        match r.below(9) {
            0 => {
                let p = pos(r, n);
                b[p] ^= 1 << r.below(8);
            }
            1 => {
                let p = pos(r, n);
                b[p] = r.next() as u8;
            }
            2 => {
                let p = pos(r, n);
                b[p] = INTERESTING[r.below(6)] as u8;
            }
            3 => {
                // an interesting 2-, 4- or 8-byte integer, either byte order
                let v = INTERESTING[r.below(INTERESTING.len())];
                let w = [2, 4, 8][r.below(3)];
                let bytes = if r.below(2) == 0 { v.to_le_bytes() } else { v.to_be_bytes() };
                let p = pos(r, n);
                for (i, &x) in bytes[..w].iter().enumerate() {
                    if p + i < n {
                        b[p + i] = x;
                    }
                }
            }
            4 => {
                let p = pos(r, n);
                let len = (1 + r.below(16)).min(n - p);
                b.drain(p..p + len);
            }
            5 => {
                let p = pos(r, n);
                let ins: Vec<u8> = (0..1 + r.below(16)).map(|_| r.next() as u8).collect();
                b.splice(p..p, ins);
            }
            6 => {
                let p = pos(r, n);
                let len = (1 + r.below(64)).min(n - p);
                let dup = b[p..p + len].to_vec();
                let q = pos(r, n);
                b.splice(q..q, dup);
            }
            7 => b.truncate(pos(r, n)),
            _ => {
                let other = &seeds[r.below(seeds.len())];
                let (p, q) = (pos(r, n), r.below(other.len().max(1)));
                b.truncate(p);
                b.extend_from_slice(&other[q.min(other.len())..]);
            }
        }
    }
    b
}

/// For JSON: half the time, replace one number with an extreme one (the byte-level mutations rarely write
/// decimal text); otherwise [`mutate`].
fn mutate_json(r: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    const NUMBERS: [&str; 10] =
        ["0", "-1", "1e309", "-0", "4294967297", "18446744073709551615", "1e-320", "65536", "3.5", "99999999999"];
    let b = seeds[r.below(seeds.len())].clone();
    let starts: Vec<usize> =
        (0..b.len()).filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit())).collect();
    if starts.is_empty() || r.below(2) == 0 {
        return mutate(r, seeds);
    }
    let at = starts[r.below(starts.len())];
    let end = (at..b.len()).find(|&i| !b[i].is_ascii_digit()).unwrap_or(b.len());
    let mut out = b[..at].to_vec();
    out.extend_from_slice(NUMBERS[r.below(NUMBERS.len())].as_bytes());
    out.extend_from_slice(&b[end..]);
    out
}

fn iters() -> usize {
    std::env::var("MEDSEGDIFF_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1500)
}

fn seed() -> u64 {
    std::env::var("MEDSEGDIFF_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed_f022)
}

/// Run `target` on `iters()` mutations of `seeds` (and the seeds themselves, which must parse); return the
/// number of inputs tried and how many were accepted. Panics are collected, saved and reported together.
fn fuzz(name: &str, seeds: &[Vec<u8>], target: impl Fn(&[u8]) -> bool) -> (usize, usize) {
    fuzz_with(name, seeds, mutate, target)
}

fn fuzz_with(
    name: &str,
    seeds: &[Vec<u8>],
    mutator: fn(&mut Rng, &[Vec<u8>]) -> Vec<u8>,
    target: impl Fn(&[u8]) -> bool,
) -> (usize, usize) {
    for (i, s) in seeds.iter().enumerate() {
        assert!(target(s), "{name}: seed {i} does not parse: the harness would only test error paths");
    }
    let mut r =
        Rng(seed() ^ name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)));
    let (mut accepted, mut panics) = (0, Vec::new());
    let n = iters();
    for i in 0..n {
        let input = mutator(&mut r, seeds);
        match catch_unwind(AssertUnwindSafe(|| target(&input))) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => {
                let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
                std::fs::create_dir_all(&dir).unwrap();
                let f = dir.join(format!("{name}-{i}.bin"));
                std::fs::write(&f, &input).unwrap();
                panics.push(f.display().to_string());
            }
        }
    }
    assert!(panics.is_empty(), "{name}: {} of {n} inputs panicked (seed {}); saved: {panics:?}", panics.len(), seed());
    println!("{name}: {n} inputs, {accepted} accepted, 0 panics");
    (n, accepted)
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[test]
fn nifti_reader() {
    let dir = std::env::temp_dir().join(format!("msd-fuzz-nifti-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("v.nii");
    let data: Vec<f32> = (0..5 * 4 * 3).map(|i| i as f32 * 0.5 - 3.0).collect();
    nifti::write_f32(&p, [5, 4, 3], &data).unwrap();
    let plain = std::fs::read(&p).unwrap();
    // the same volume as big-endian i16 (datatype 4, 2 bytes per voxel): the other byte order and width
    let mut be = plain[..352].to_vec();
    for o in (0..352).step_by(2).filter(|o| ![108usize, 110, 112, 114, 116, 118].contains(o)) {
        be.swap(o, o + 1);
    }
    be[..4].copy_from_slice(&348i32.to_be_bytes());
    be[70..72].copy_from_slice(&4i16.to_be_bytes());
    be[72..74].copy_from_slice(&16i16.to_be_bytes());
    for o in [108usize, 112, 116] {
        let v = f32::from_le_bytes(plain[o..o + 4].try_into().unwrap());
        be[o..o + 4].copy_from_slice(&v.to_be_bytes());
    }
    be.extend(data.iter().flat_map(|&v| (v as i16).to_be_bytes()));
    let seeds = vec![plain.clone(), be.clone()];
    let parse = |b: &[u8]| nifti::parse_volume(b, &p).is_ok();
    fuzz("nifti", &seeds, parse);
    // .nii.gz: mutated streams, and mutated volumes compressed (so the header parser sees them through gzip)
    let gz_seeds = vec![gzip(&plain), gzip(&be)];
    fuzz("nifti-gz", &gz_seeds, parse);
    let mut r = Rng(seed());
    for _ in 0..iters() / 4 {
        let v = mutate(&mut r, &seeds);
        let _ = catch_unwind(AssertUnwindSafe(|| nifti::parse_volume(&gzip(&v), &p)))
            .unwrap_or_else(|_| panic!("nifti through gzip panicked on {v:?}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn checkpoint_and_safetensors_reader() {
    let (model, cfg) = common::micro();
    let dir = std::env::temp_dir().join(format!("msd-fuzz-ckpt-{}", std::process::id()));
    let ckpt = dir.join("c.safetensors");
    let data = medsegdiff::data::synthetic::generate(4, 16, 1, 1);
    medsegdiff::train::Trainer::new(&model, cfg, data).unwrap().save(&ckpt).unwrap();
    let bytes = std::fs::read(&ckpt).unwrap();
    // a plain state_dict without checksums (as PyTorch writes), so mutated tensor data reaches the reader too
    let plain = safetensors::serialize(
        [("w", safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![2, 3], &[0u8; 12]).unwrap())],
        None,
    )
    .unwrap();
    let read = |b: &[u8]| match TensorFile::from_bytes(b, &ckpt) {
        Ok(f) => {
            if medsegdiff::train::checkpoint::is_checkpoint(&f) {
                medsegdiff::train::checkpoint::meta(&f, &ckpt).is_ok()
            } else {
                true
            }
        }
        Err(_) => false,
    };
    fuzz("safetensors", &[bytes, plain], read);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_parsers() {
    let (micro, train) = common::micro();
    let (tiny, _) = medsegdiff::train::preset("tiny").unwrap();
    let seeds: Vec<Vec<u8>> = vec![
        serde_json::to_vec(&micro).unwrap(),
        serde_json::to_vec_pretty(&tiny).unwrap(),
        br#"{"dim": 16, "image_size": 32, "dim_mults": [1, 2], "full_self_attn": [false, true]}"#.to_vec(),
    ];
    let parse = |b: &[u8]| {
        let Ok(text) = std::str::from_utf8(b) else { return false };
        match UnetConfig::from_json(text) {
            // a config that parses and validates must also survive the memory estimate a run makes first
            Ok(c) if c.validate().is_ok() => {
                let flags = memory::Flags { size: Some("--image-size"), batch: "--batch-size" };
                let _ = memory::does_not_fit(&c, 8, flags, 128 << 20, "fuzz");
                true
            }
            _ => false,
        }
    };
    fuzz_with("model-config", &seeds, mutate_json, parse);
    // nnU-Net's dataset.json
    let ds_seeds = vec![
        br#"{"channel_names": {"0": "T1", "1": "FLAIR"}, "labels": {"background": 0, "edema": 1, "tumour": [2, 3]}, "numTraining": 4, "file_ending": ".nii.gz"}"#.to_vec(),
        br#"{"modality": {"0": "R", "1": "G", "2": "B"}, "labels": {"background": 0, "road": 1}, "file_ending": ".png"}"#.to_vec(),
    ];
    let parse_ds = |b: &[u8]| {
        std::str::from_utf8(b).is_ok_and(|t| medsegdiff::data::nnunet::parse_meta(t, Path::new("dataset.json")).is_ok())
    };
    fuzz_with("nnunet-dataset-json", &ds_seeds, mutate_json, parse_ds);
    let train_seeds = vec![serde_json::to_vec(&train).unwrap()];
    let parse_train =
        |b: &[u8]| serde_json::from_slice::<medsegdiff::train::TrainConfig>(b).is_ok_and(|c| c.validate().is_ok());
    fuzz_with("train-config", &train_seeds, mutate_json, parse_train);
}

#[test]
fn image_and_mask_decoders() {
    let gray = image::GrayImage::from_fn(13, 9, |x, y| image::Luma([(x * 19 + y * 7) as u8]));
    let mask = image::GrayImage::from_fn(13, 9, |x, _| image::Luma([u8::from(x > 5)]));
    let rgb = image::RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 200]));
    let deep = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(6, 6, |x, y| image::Luma([(x * 9000 + y) as u16]));
    let enc = |img: image::DynamicImage, f: image::ImageFormat| {
        let mut c = std::io::Cursor::new(Vec::new());
        img.write_to(&mut c, f).unwrap();
        c.into_inner()
    };
    let seeds = vec![
        enc(gray.clone().into(), image::ImageFormat::Png),
        enc(mask.into(), image::ImageFormat::Png),
        enc(rgb.into(), image::ImageFormat::Png),
        enc(deep.into(), image::ImageFormat::Png),
        enc(gray.clone().into(), image::ImageFormat::Jpeg),
        enc(gray.into(), image::ImageFormat::Tiff),
    ];
    let p = Path::new("fuzz.png");
    let decode = |b: &[u8]| {
        let image = folder::image_from_bytes(b, p, 1).is_ok();
        let rgb = folder::image_from_bytes(b, p, 3).is_ok();
        let mask = folder::mask_from_bytes(b, p).is_ok();
        image && rgb && mask
    };
    fuzz("image", &seeds, decode);
}

//! Datasets of (image, mask) pairs, all resized to one square size, and the batcher that feeds training.
//!
//! Four sources, one in-memory form ([`Dataset`]): the embedded [`synthetic`] set (the default when no data is
//! given), a [`folder`] of `images/` + `masks/` with matching stems, [`nifti`] volumes sliced into 2-D pairs, and
//! [`nnunet`] raw datasets (`dataset.json`, `imagesTr/CASE_0000...`, `labelsTr/`), 2-D or volumes, multi-channel.
//! Images are (C, S, S) in [0, 1]; a sample's mask is (S, S) class indices (0 background, 1..=N, [`labels`]),
//! batched as N one-hot mask channels: (N, S, S) in {0, 1}, N = 1 for a binary set.
//!
//! Batching is a pure function of (seed, step): the order of epoch e is a shuffle seeded by (seed, e), and the
//! flips of a batch are seeded by (seed, step). So a run resumed at step k sees exactly the batches the
//! uninterrupted run saw, with no iterator state to save.

pub mod folder;
pub mod labels;
pub mod nifti;
pub mod nnunet;
pub mod synthetic;
pub mod volume;

use crate::rng::Rng;
use crate::{Result, Tensor};

/// Group files by case, nnU-Net style: `CASE_0000`, `CASE_0001`, ... are the input channels of case `CASE`, in
/// that order; a name without a 4-digit channel suffix, or one that `whole` says is a case by its full name
/// (`patient_0001` with a label `patient_0001`), is a one-channel case of its own. `files` are (stem, path).
/// A case whose channel numbers are not 0, 1, ... without gaps is an error naming it.
/// `CASE_0003` -> ("CASE", 3): a stem's nnU-Net channel suffix (an underscore and exactly 4 digits), if any.
pub fn channel_suffix(stem: &str) -> Option<(&str, usize)> {
    let (case, d) = stem.rsplit_once('_')?;
    (d.len() == 4 && d.bytes().all(|b| b.is_ascii_digit())).then(|| (case, d.parse().expect("4 digits")))
}

pub fn group_cases(
    files: Vec<(String, std::path::PathBuf)>,
    whole: impl Fn(&str) -> bool,
) -> Result<std::collections::BTreeMap<String, Vec<std::path::PathBuf>>> {
    let mut by_case: std::collections::BTreeMap<String, Vec<(usize, std::path::PathBuf)>> = Default::default();
    for (stem, path) in files {
        let (case, ch) = match channel_suffix(&stem) {
            Some((c, ch)) if !whole(&stem) => (c.to_string(), ch),
            _ => (stem, 0),
        };
        by_case.entry(case).or_default().push((ch, path));
    }
    let mut out = std::collections::BTreeMap::new();
    for (case, mut v) in by_case {
        v.sort();
        if let Some((i, (ch, p))) = v.iter().enumerate().find(|(i, (ch, _))| i != ch) {
            let msg = format!("case {case}: channel file _{ch:04} where _{i:04} was expected (channels are _0000, _0001, ... without gaps)");
            return Err(crate::Error::format(p, msg));
        }
        out.insert(case, v.into_iter().map(|(_, p)| p).collect());
    }
    Ok(out)
}

/// Refuse to decode `n` samples of `channels` planes (plus the mask) at `size`×`size` when they would not fit in
/// the memory this machine has available, before allocating any: the error names the count, the bytes, what is
/// available and the largest `--image-size` that fits. Where available memory cannot be read (not Linux), only
/// sizes whose bytes overflow are refused.
pub fn check_host_memory(what: &str, n: usize, size: usize, channels: usize) -> Result<()> {
    let need = |s: usize| n as f64 * (channels + 1) as f64 * (s as f64) * (s as f64) * 4.0;
    let Some(avail) = over_budget(need(size)) else { return Ok(()) };
    let fix = match (1..size).rev().find(|&s| need(s) <= avail * HOST_SHARE) {
        Some(fit) if fit >= 16 => format!("use --image-size {fit} or less, or fewer samples"),
        _ => "use fewer samples (files, or --synthetic-count)".to_string(),
    };
    Err(crate::Error::Config(format!(
        "{what}: {n} sample(s) of {} plane(s) at --image-size {size} need {:.1} GiB of memory once decoded, and \
         this machine has {:.1} GiB available; {fix}",
        channels + 1,
        gib(need(size)),
        gib(avail)
    )))
}

/// Refuse to allocate `bytes` for the contents of `path` when they would not fit in available memory.
pub fn check_host_bytes(path: &std::path::Path, bytes: usize) -> Result<()> {
    match over_budget(bytes as f64) {
        Some(avail) => Err(crate::Error::format(
            path,
            format!(
                "its header describes {:.1} GiB of data, more than the {:.1} GiB of memory available",
                gib(bytes as f64),
                gib(avail)
            ),
        )),
        None => Ok(()),
    }
}

/// The share of available memory one load may take.
const HOST_SHARE: f64 = 0.9;

/// The bytes available (Linux's MemAvailable) when `bytes` is over [`HOST_SHARE`] of them; None when it fits or
/// the available memory is unknown.
fn over_budget(bytes: f64) -> Option<f64> {
    let avail = available_memory()? as f64;
    (bytes > avail * HOST_SHARE).then_some(avail)
}

fn gib(bytes: f64) -> f64 {
    bytes / (1u64 << 30) as f64
}

/// Bytes of memory available to new allocations (Linux's MemAvailable), when known.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A case of an input folder: its name and its files, one per channel (or one for all).
pub type Case = (String, Vec<std::path::PathBuf>);

/// One example: image (channels·size·size) and mask (size·size, class indices 0..=classes), row-major.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub image: Vec<f32>,
    pub mask: Vec<f32>,
    /// Height and width as stored, before resizing (what the planner's fingerprint reads).
    pub stored: [usize; 2],
    /// For a slice of a volume: which one, and its pixel spacing.
    pub slice: Option<SliceOf>,
}

/// Where a sample sits in a volume: slice `index` (the sample is named `<volume>_s<index>`), its stored pixels
/// `spacing` = (rows, cols) apart in the volume's units (millimetres for most scans).
#[derive(Clone, Debug, PartialEq)]
pub struct SliceOf {
    pub index: usize,
    pub spacing: [f32; 2],
}

#[derive(Clone, Debug)]
pub struct Dataset {
    pub samples: Vec<Sample>,
    pub channels: usize,
    pub size: usize,
    /// Foreground classes (1: binary): the mask channels a batch has.
    pub classes: usize,
    /// The value each class had in the stored label maps when they were not 1..N (else empty).
    pub label_values: Vec<i64>,
    /// Where it came from, e.g. "synthetic(n=256, seed=0)" or the folder path.
    pub source: String,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Refuse a dataset none of whose masks has a foreground pixel (`where_` names the mask folder or file set).
    pub fn refuse_all_empty_masks(&self, where_: &std::path::Path) -> Result<()> {
        if self.samples.iter().any(|s| s.mask.iter().any(|&v| v != 0.0)) {
            return Ok(());
        }
        Err(crate::Error::Config(format!(
            "{}: all {} masks have no foreground pixel (after resizing to {}x{}). Masks are read as label maps: \
             0 is background and any other value is foreground, so this set would only teach the empty mask. \
             Check that the masks/labels belong to these images",
            where_.display(),
            self.samples.len(),
            self.size,
            self.size
        )))
    }

    /// FNV-1a over names, sizes and values: a checkpoint records it so resuming on other data is refused.
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h ^= b as u64;
                h = h.wrapping_mul(0x100_0000_01b3);
            }
        };
        eat(&(self.channels as u64).to_le_bytes());
        eat(&(self.size as u64).to_le_bytes());
        if self.classes > 1 {
            eat(&(self.classes as u64).to_le_bytes()); // binary sets keep the fingerprints they always had
        }
        for s in &self.samples {
            eat(s.name.as_bytes());
            eat(bytemuck::cast_slice(&s.image));
            eat(bytemuck::cast_slice(&s.mask));
        }
        format!("{h:016x}")
    }

    /// Deterministic train/validation split: a seeded shuffle, the last `val_fraction` (at least 1 when
    /// there are 2 or more samples) for validation.
    pub fn split(&self, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed ^ 0x5311_7000).shuffle(&mut idx);
        let n_val = if self.len() < 2 {
            0
        } else {
            ((self.len() as f64 * val_fraction).round() as usize).clamp(1, self.len() - 1)
        };
        let val = idx.split_off(self.len() - n_val);
        (idx, val)
    }

    /// Stack samples `idx` into (images (B, C, S, S), masks (B, N, S, S) one-hot over the N classes), flipping
    /// each with `flips`.
    pub fn batch(&self, idx: &[usize], flips: Option<&mut Rng>) -> Result<(Tensor, Tensor)> {
        let (c, s, n) = (self.channels, self.size, self.classes.max(1));
        let mut images = Vec::with_capacity(idx.len() * c * s * s);
        let mut masks = Vec::with_capacity(idx.len() * n * s * s);
        let mut flips = flips;
        for &i in idx {
            let smp = &self.samples[i];
            let (fh, fv) = match flips.as_deref_mut() {
                Some(r) => (r.uniform() < 0.5, r.uniform() < 0.5),
                None => (false, false),
            };
            let px = |plane: &[f32], y: usize, x: usize| {
                let (yy, xx) = (if fv { s - 1 - y } else { y }, if fh { s - 1 - x } else { x });
                plane[yy * s + xx]
            };
            for ch in 0..c {
                let plane = &smp.image[ch * s * s..(ch + 1) * s * s];
                for y in 0..s {
                    for x in 0..s {
                        images.push(px(plane, y, x));
                    }
                }
            }
            let flipped: Vec<f32> = (0..s * s).map(|i| px(&smp.mask, i / s, i % s)).collect();
            masks.extend(labels::one_hot(&flipped, n));
        }
        let b = idx.len();
        Ok((Tensor::from_slice(&images, &[b, c, s, s])?, Tensor::from_slice(&masks, &[b, n, s, s])?))
    }
}

/// Indices of the batch at `step`: epoch-wise shuffles of `train`, seeded by (seed, epoch).
pub fn batch_indices(train: &[usize], batch: usize, step: u64, seed: u64) -> Vec<usize> {
    let n = train.len().max(1);
    let start = step as usize * batch;
    // a batch spans at most a few epochs: shuffle each one once, not once per sample
    let mut order: Option<(usize, Vec<usize>)> = None;
    (start..start + batch)
        .map(|k| {
            let (epoch, pos) = (k / n, k % n);
            if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                let mut o = train.to_vec();
                Rng::new(seed.wrapping_mul(0x9E37_79B9).wrapping_add(epoch as u64)).shuffle(&mut o);
                order = Some((epoch, o));
            }
            order.as_ref().expect("set above").1[pos]
        })
        .collect()
}

/// Bilinear resize of one (h, w) plane to (s, s) (`nearest` for masks).
pub fn resize_plane(src: &[f32], h: usize, w: usize, s: usize, nearest: bool) -> Vec<f32> {
    resize(src, h, w, s, s, nearest)
}

/// [`resize_plane`] (bilinear) of each of the `channels` (h, w) planes of `src`, one after another.
pub fn resize_planes(src: &[f32], channels: usize, h: usize, w: usize, s: usize) -> Vec<f32> {
    (0..channels).flat_map(|c| resize_plane(&src[c * h * w..(c + 1) * h * w], h, w, s, false)).collect()
}

/// Bilinear (or `nearest`) resize of one (h, w) plane to (oh, ow), pixel-centre aligned (align_corners =
/// false): the model's (S, S) outputs go back to a scan's own width and height with it.
pub fn resize(src: &[f32], h: usize, w: usize, oh: usize, ow: usize, nearest: bool) -> Vec<f32> {
    if h == oh && w == ow {
        return src.to_vec();
    }
    let mut out = vec![0.0; oh * ow];
    for y in 0..oh {
        for x in 0..ow {
            let fy = ((y as f32 + 0.5) * h as f32 / oh as f32 - 0.5).clamp(0.0, (h - 1) as f32);
            let fx = ((x as f32 + 0.5) * w as f32 / ow as f32 - 0.5).clamp(0.0, (w - 1) as f32);
            out[y * ow + x] = if nearest {
                src[(fy.round() as usize) * w + fx.round() as usize]
            } else {
                let (y0, x0) = (fy.floor() as usize, fx.floor() as usize);
                let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
                let (dy, dx) = (fy - y0 as f32, fx - x0 as f32);
                let top = src[y0 * w + x0] * (1.0 - dx) + src[y0 * w + x1] * dx;
                let bot = src[y1 * w + x0] * (1.0 - dx) + src[y1 * w + x1] * dx;
                top * (1.0 - dy) + bot * dy
            };
        }
    }
    out
}

/// `--shard i/n`: this process takes batches i, i + n, i + 2n, ... (0 ≤ i < n) of the sorted inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("{s:?} is not i/n (e.g. 0/4)"))?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|e| format!("{i:?}: {e}"))?,
            n.trim().parse().map_err(|e| format!("{n:?}: {e}"))?,
        );
        if count == 0 || index >= count {
            return Err(format!("{s:?}: need 0 <= i < n"));
        }
        Ok(Shard { index, count })
    }
}

/// Which batches of `len` items (in batches of `batch`) this shard runs: batch numbers i, i + n, ...
/// Whole batches, so every shard's batches are the ones one process would run, and its masks are the same bits.
pub fn shard_batches(len: usize, batch: usize, shard: Option<Shard>) -> Vec<std::ops::Range<usize>> {
    let batch = batch.max(1);
    let sh = shard.unwrap_or(Shard { index: 0, count: 1 });
    (0..len.div_ceil(batch))
        .filter(|k| k % sh.count == sh.index)
        .map(|k| k * batch..((k + 1) * batch).min(len))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_a_function_of_step() {
        let train: Vec<usize> = (0..10).collect();
        assert_eq!(batch_indices(&train, 4, 3, 7), batch_indices(&train, 4, 3, 7));
        // every sample appears once per epoch
        let mut epoch: Vec<usize> = (0..5).flat_map(|s| batch_indices(&train, 2, s, 7)).collect();
        epoch.sort();
        assert_eq!(epoch, train);
    }

    #[test]
    fn resize_back_to_a_non_square_geometry() {
        // a 4x4 mask back to a 240x180 scan (h = 180, w = 240): nearest keeps {0, 1} and the quadrant layout
        let m: Vec<f32> = (0..16).map(|i| if i % 4 < 2 { 1.0 } else { 0.0 }).collect();
        let r = resize(&m, 4, 4, 180, 240, true);
        assert_eq!(r.len(), 180 * 240);
        assert!(r.iter().all(|&v| v == 0.0 || v == 1.0));
        assert_eq!((r[0], r[119], r[120], r[239]), (1.0, 1.0, 0.0, 0.0));
        // bilinear on a ramp stays monotone along x and within the source range
        let ramp: Vec<f32> = (0..16).map(|i| (i % 4) as f32 / 3.0).collect();
        let b = resize(&ramp, 4, 4, 7, 9, false);
        assert!(b[..9].windows(2).all(|p| p[0] <= p[1]) && b.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }

    #[test]
    fn resize_keeps_constant_planes_and_nearest_keeps_binary_values() {
        let p = vec![0.25; 6 * 4];
        assert!(resize_plane(&p, 6, 4, 5, false).iter().all(|&v| (v - 0.25).abs() < 1e-6));
        let m: Vec<f32> = (0..36).map(|i| (i % 2) as f32).collect();
        assert!(resize_plane(&m, 6, 6, 4, true).iter().all(|&v| v == 0.0 || v == 1.0));
    }
}

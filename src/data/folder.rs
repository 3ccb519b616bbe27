//! A dataset folder (SPEC §6): `images/` and `masks/` with matching file stems; PNG, JPEG or TIFF; grayscale or
//! RGB images (converted to the model's channel count); everything resized to `size`. A bad or unmatched file is
//! an error naming it, or, with `skip_bad`, a warning and a skip.
//!
//! Masks are **label maps**: 0 is background and any other stored value is foreground, whatever the bit depth
//! (0/1 and 0/255 masks give the same training data), as for NIfTI labels; with `--classes N` the values are
//! classes ([`super::labels`]). JPEG is lossy, so its "zeros" come back as small values near edges: a JPEG mask
//! is split at half its own largest value instead (one class only). A mask set with no foreground pixel anywhere
//! is refused: training on it would learn the empty mask.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::labels::{self, Classes};
use super::{resize_plane, Dataset, Sample};
use crate::{Error, Result};

pub const EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "tif", "tiff"];

/// The image files of `dir` (one of [`EXTENSIONS`], any case) as (stem, path), in directory order.
fn image_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        let ext = p.extension().and_then(|e| e.to_str()).map(str::to_lowercase);
        if ext.as_deref().is_some_and(|e| EXTENSIONS.contains(&e)) {
            if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                out.push((stem.to_string(), p.clone()));
            }
        }
    }
    Ok(out)
}

/// Whether a dataset folder's images carry colour: a pixel whose channels differ, in the first 32 images by
/// name (an RGB file of a grayscale scan is gray). A planned run gives colour data 3 input channels.
pub fn has_colour(dir: &Path) -> Result<bool> {
    if !dir.join("images").is_dir() {
        return Ok(false); // not a dataset folder: `load` says what one needs
    }
    let mut files = image_files(&dir.join("images"))?;
    files.sort();
    for (_, p) in files.iter().take(32) {
        let (img, _) = decode(&read(p)?, p, "image")?;
        if img.color().has_color() && img.to_rgb8().pixels().any(|px| px.0[0] != px.0[1] || px.0[1] != px.0[2]) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn list(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for (stem, p) in image_files(dir)? {
        if let Some(prev) = out.insert(stem, p.clone()) {
            return Err(Error::format(&p, format!("has the same stem as {}; stems must be unique", prev.display())));
        }
    }
    Ok(out)
}

/// What `sample --input` segments: (name, files) per case, sorted by name. One file per case; or, for a
/// multi-channel model, a folder in nnU-Net's form (`CASE_0000`, `CASE_0001`, ...) when that is unambiguous:
/// every stem has a channel suffix and every case has one file per channel (numbered frames `f_0000 … f_0099`
/// of RGB scans stay one image each).
pub fn cases(input: &Path, channels: usize) -> Result<Vec<(String, Vec<PathBuf>)>> {
    if !input.is_dir() {
        let stem = input.file_stem().and_then(|x| x.to_str()).unwrap_or("image").to_string();
        return Ok(vec![(stem, vec![input.to_path_buf()])]);
    }
    let mut files = image_files(input)?;
    files.sort();
    if channels > 1 && files.iter().all(|(s, _)| super::channel_suffix(s).is_some()) {
        if let Ok(cases) = super::group_cases(files.clone(), |_| false) {
            if cases.values().all(|f| f.len() == channels) {
                return Ok(cases.into_iter().collect());
            }
        }
    }
    Ok(files.into_iter().map(|(s, p)| (s, vec![p])).collect())
}

/// One case as `channels` planes at its own (h, w): one file converted to the channel count (gray or RGB), or
/// one grayscale file per channel, all of one size.
pub fn read_channels(files: &[PathBuf], channels: usize) -> Result<(Vec<f32>, usize, usize)> {
    if let [one] = files {
        return read_image(one, channels);
    }
    if files.len() != channels {
        let msg = format!("the case has {} channel files but the model takes {channels} channels", files.len());
        return Err(Error::format(&files[0], msg));
    }
    let mut out = Vec::new();
    let mut hw = None;
    for f in files {
        let (img, h, w) = read_image(f, 1)?;
        if hw.is_some_and(|d| d != (h, w)) {
            return Err(Error::format(f, format!("is {w}x{h}, unlike the case's other channels")));
        }
        hw = Some((h, w));
        out.extend(img);
    }
    let (h, w) = hw.expect("at least one file");
    Ok((out, h, w))
}

/// Largest width or height a scan may have, and the most memory one decode may take: a header claiming more is
/// refused before the decoder allocates (hostile or corrupt files).
pub const MAX_SIDE: u32 = 32_768;
const MAX_DECODE_BYTES: u64 = 1 << 30;

/// Decode an image file's bytes (`what` names it in the error: "image", "mask"), with the format it was in.
fn decode(bytes: &[u8], path: &Path, what: &str) -> Result<(image::DynamicImage, Option<image::ImageFormat>)> {
    let mut reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| Error::io(path, e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let format = reader.format();
    let img = reader.decode().map_err(|e| Error::format(path, format!("cannot decode {what}: {e}")))?;
    Ok((img, format))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Decode an image file into `channels` planes in [0, 1] plus its (h, w).
pub fn read_image(path: &Path, channels: usize) -> Result<(Vec<f32>, usize, usize)> {
    image_from_bytes(&read(path)?, path, channels)
}

/// [`read_image`] of a file's bytes (`path` names it in errors).
pub fn image_from_bytes(bytes: &[u8], path: &Path, channels: usize) -> Result<(Vec<f32>, usize, usize)> {
    let (img, _) = decode(bytes, path, "image")?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data = match channels {
        1 => img.to_luma32f().into_raw(),
        3 => {
            let rgb = img.to_rgb32f().into_raw();
            // interleaved RGB -> planar (3, h, w)
            (0..3).flat_map(|c| rgb.iter().skip(c).step_by(3).copied().collect::<Vec<_>>()).collect()
        }
        n => {
            return Err(Error::format(
                path,
                format!("cannot be read as {n} channels (input_img_channels must be 1 or 3)"),
            ))
        }
    };
    Ok((data, h, w))
}

/// Read a mask file as a label map (see the module doc): `(values, h, w)` as stored (0 is background; the largest
/// colour channel of an RGB file), a JPEG's split into {0, 1} at half its peak.
pub fn read_mask(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    mask_from_bytes(&read(path)?, path)
}

/// [`read_mask`] of a file's bytes (`path` names it in errors).
pub fn mask_from_bytes(bytes: &[u8], path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let (img, format) = decode(bytes, path, "mask")?;
    let lossy = format == Some(image::ImageFormat::Jpeg);
    let (w, h) = (img.width() as usize, img.height() as usize);
    // the largest colour channel, as stored: 8-bit values as 0..255, 16-bit as 0..65535, float as themselves
    // (alpha ignored)
    let c = img.color();
    let bits = c.bits_per_pixel() / u16::from(c.channel_count());
    let raw: Vec<f32> = match bits {
        0..=8 => img.to_rgb8().pixels().map(|p| f32::from(p.0[0].max(p.0[1]).max(p.0[2]))).collect(),
        9..=16 => img.to_rgb16().pixels().map(|p| f32::from(p.0[0].max(p.0[1]).max(p.0[2]))).collect(),
        _ => img
            .to_rgb32f()
            .pixels()
            .map(|p| p.0[0].max(p.0[1]).max(p.0[2]))
            .map(|v| if v.is_finite() { v } else { 0.0 })
            .collect(),
    };
    if lossy {
        let cut = raw.iter().copied().fold(0.0, f32::max) / 2.0;
        return Ok((raw.iter().map(|&v| f32::from(u8::from(v > cut))).collect(), h, w));
    }
    Ok((raw, h, w))
}

fn load_pair(img_path: &Path, mask_path: &Path, size: usize, channels: usize) -> Result<Sample> {
    let (img, h, w) = read_image(img_path, channels)?;
    let (bin, mh, mw) = read_mask(mask_path)?;
    if (h, w) != (mh, mw) {
        return Err(Error::format(
            mask_path,
            format!(
                "is {mw}x{mh} but its image {} is {w}x{h}; an image and its mask must have the same size",
                img_path.display()
            ),
        ));
    }
    Ok(Sample {
        name: String::new(),
        image: super::resize_planes(&img, channels, h, w, size),
        mask: resize_plane(&bin, h, w, size, true),
        stored: [h, w],
        slice: None,
    })
}

/// A binary dataset folder ([`load_with`] with the source's own class count, one).
pub fn load(dir: &Path, size: usize, channels: usize, skip_bad: bool) -> Result<Dataset> {
    load_with(dir, size, channels, skip_bad, Classes::Auto, false)
}

/// The dataset folder `dir` at `size`, its label maps read as `classes`. `eval`: a set to score, which may lack
/// a class (a training set may not).
pub fn load_with(
    dir: &Path,
    size: usize,
    channels: usize,
    skip_bad: bool,
    classes: Classes,
    eval: bool,
) -> Result<Dataset> {
    let (idir, mdir) = (dir.join("images"), dir.join("masks"));
    for d in [&idir, &mdir] {
        if !d.is_dir() {
            return Err(Error::Config(format!(
                "{} is not a folder; a dataset folder needs images/ and masks/ with matching file stems",
                d.display()
            )));
        }
    }
    let (images, masks) = (list(&idir)?, list(&mdir)?);
    let mut problems = Vec::new();
    for stem in masks.keys().filter(|s| !images.contains_key(*s)) {
        problems.push(Error::format(&masks[stem], "has no matching image in images/"));
    }
    super::check_host_memory(&dir.display().to_string(), images.len(), size, channels)?;
    let mut samples = Vec::new();
    for (stem, ip) in &images {
        let Some(mp) = masks.get(stem) else {
            problems.push(Error::format(ip, "has no matching mask in masks/"));
            continue;
        };
        match load_pair(ip, mp, size, channels) {
            Ok(smp) => samples.push(Sample { name: stem.clone(), ..smp }),
            Err(e) => problems.push(e),
        }
    }
    if let Some(first) = problems.first() {
        if !skip_bad {
            let n = problems.len();
            return Err(Error::Config(format!(
                "{first}{}\n(use --skip-bad to skip bad or unmatched files with a warning)",
                if n > 1 { format!(" (and {} more problems)", n - 1) } else { String::new() }
            )));
        }
        for p in &problems {
            eprintln!("warning: skipping: {p}");
        }
    }
    if samples.is_empty() {
        return Err(Error::Config(format!(
            "{}: no usable image/mask pairs found (extensions: {})",
            dir.display(),
            EXTENSIONS.join(", ")
        )));
    }
    let mut ds =
        Dataset { samples, channels, size, classes: 1, label_values: Vec::new(), source: dir.display().to_string() };
    ds.refuse_all_empty_masks(&mdir)?;
    let (n, values, note) = labels::assign(&mut ds.samples, classes, None, !eval, &ds.source)?;
    (ds.classes, ds.label_values) = (n, values);
    ds.source = labels::describe(ds.source, n, &note);
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("msd-folder-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("images")).unwrap();
        std::fs::create_dir_all(d.join("masks")).unwrap();
        d
    }

    fn png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u8) {
        image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)])).save(path).unwrap();
    }

    #[test]
    fn loads_resizes_and_binarises() {
        let d = tmpdir("ok");
        png(&d.join("images/a.png"), 20, 10, |x, _| (x * 10) as u8);
        png(&d.join("masks/a.png"), 20, 10, |x, _| if x < 10 { 255 } else { 0 });
        let ds = load(&d, 8, 3, false).unwrap();
        assert_eq!((ds.len(), ds.channels, ds.size), (1, 3, 8));
        assert_eq!(ds.samples[0].image.len(), 3 * 64);
        assert!(ds.samples[0].mask.iter().all(|&v| v == 0.0 || v == 1.0));
        assert_eq!(ds.samples[0].mask[0], 1.0);
        assert_eq!(ds.samples[0].mask[7], 0.0);
    }

    #[test]
    fn masks_are_label_maps_whatever_their_values() {
        // 0/1, 0/255 and multi-label (0/1/2) PNGs all give the same binary mask; so does a 16-bit one
        let masks: Vec<Vec<f32>> = [1u16, 255, 2, 300]
            .iter()
            .map(|&fg| {
                let d = tmpdir(&format!("label{fg}"));
                png(&d.join("images/a.png"), 8, 8, |x, _| (x * 30) as u8);
                let f = |x: u32, y: u32| if (2..6).contains(&x) && y < 4 { fg } else { 0 };
                if fg > 255 {
                    image::ImageBuffer::<image::Luma<u16>, _>::from_fn(8, 8, |x, y| image::Luma([f(x, y)]))
                        .save(d.join("masks/a.png"))
                        .unwrap();
                } else if fg == 2 {
                    // a label map whose other class is 1, in the other half
                    png(&d.join("masks/a.png"), 8, 8, |x, y| if y >= 4 && x < 2 { 1 } else { f(x, y) as u8 });
                } else {
                    png(&d.join("masks/a.png"), 8, 8, |x, y| f(x, y) as u8);
                }
                load(&d, 8, 1, false).unwrap().samples[0].mask.clone()
            })
            .collect();
        let want: Vec<f32> = (0..64).map(|i| if (2..6).contains(&(i % 8)) && i / 8 < 4 { 1.0 } else { 0.0 }).collect();
        assert_eq!(masks[0], want, "0/1 mask");
        assert_eq!(masks[1], want, "0/255 mask");
        assert_eq!(masks[3], want, "16-bit mask");
        let extra: Vec<f32> =
            want.iter().enumerate().map(|(i, &v)| if i / 8 >= 4 && i % 8 < 2 { 1.0 } else { v }).collect();
        assert_eq!(masks[2], extra, "label map: every non-zero label is foreground");
    }

    #[test]
    fn lossy_jpeg_masks_split_at_half_their_peak() {
        let d = tmpdir("jpeg");
        png(&d.join("images/a.png"), 16, 16, |x, _| (x * 10) as u8);
        image::GrayImage::from_fn(16, 16, |x, _| image::Luma([if x < 8 { 1 } else { 0 }]))
            .save(d.join("masks/a.jpg"))
            .unwrap();
        let m = &load(&d, 16, 1, false).unwrap().samples[0].mask;
        let fg = m.iter().filter(|&&v| v == 1.0).count();
        assert!((96..=160).contains(&fg), "about half the pixels are foreground, got {fg}");
        assert_eq!(m[0], 1.0);
        assert_eq!(m[15], 0.0);
    }

    #[test]
    fn an_all_empty_mask_set_is_refused() {
        let d = tmpdir("empty");
        for n in ["a", "b"] {
            png(&d.join(format!("images/{n}.png")), 8, 8, |x, _| x as u8);
            png(&d.join(format!("masks/{n}.png")), 8, 8, |_, _| 0);
        }
        let e = load(&d, 8, 1, false).unwrap_err().to_string();
        assert!(e.contains("masks") && e.contains("no foreground") && e.contains("2 masks"), "{e}");
    }

    #[test]
    fn malformed_inputs_are_named() {
        let d = tmpdir("bad");
        let err = |d: &Path| load(d, 8, 1, false).unwrap_err().to_string();
        assert!(err(&d).contains("no usable image/mask pairs"), "empty folder");
        png(&d.join("images/a.png"), 8, 8, |_, _| 0);
        let e = err(&d);
        assert!(e.contains("a.png") && e.contains("no matching mask"), "{e}");
        png(&d.join("masks/a.png"), 9, 8, |_, _| 0);
        let e = err(&d);
        assert!(e.contains("masks/a.png") && e.contains("same size"), "{e}");
        png(&d.join("masks/a.png"), 8, 8, |x, _| (x > 3) as u8);
        std::fs::write(d.join("images/b.png"), &std::fs::read(d.join("images/a.png")).unwrap()[..40]).unwrap();
        png(&d.join("masks/b.png"), 8, 8, |x, _| (x > 3) as u8);
        let e = err(&d);
        assert!(e.contains("images/b.png") && e.contains("cannot decode"), "{e}");
        // --skip-bad keeps the good pair
        assert_eq!(load(&d, 8, 1, true).unwrap().len(), 1);
        let e = load(&d.join("nope"), 8, 1, false).unwrap_err().to_string();
        assert!(e.contains("is not a folder"), "{e}");
    }
}

//! A dataset folder (SPEC §6): `images/` and `masks/` with matching file stems; PNG, JPEG or TIFF; grayscale or
//! RGB images (converted to the model's channel count); masks binarised at half their value range; everything
//! resized to `size`. A bad or unmatched file is an error naming it, or, with `skip_bad`, a warning and a skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{resize_plane, Dataset, Sample};
use crate::{Error, Result};

pub const EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "tif", "tiff"];

fn list(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = BTreeMap::new();
    for entry in rd {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        let ext = p.extension().and_then(|e| e.to_str()).map(str::to_lowercase);
        if ext.as_deref().is_some_and(|e| EXTENSIONS.contains(&e)) {
            if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                if let Some(prev) = out.insert(stem.to_string(), p.clone()) {
                    return Err(Error::format(
                        &p,
                        format!("has the same stem as {}; stems must be unique", prev.display()),
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// Decode an image file into `channels` planes in [0, 1] plus its (h, w).
pub fn read_image(path: &Path, channels: usize) -> Result<(Vec<f32>, usize, usize)> {
    let img = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|e| Error::format(path, format!("cannot decode image: {e}")))?;
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

fn load_pair(img_path: &Path, mask_path: &Path, size: usize, channels: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let (img, h, w) = read_image(img_path, channels)?;
    let (mask, mh, mw) = read_image(mask_path, 1)?;
    if (h, w) != (mh, mw) {
        return Err(Error::format(
            mask_path,
            format!(
                "is {mw}x{mh} but its image {} is {w}x{h}; an image and its mask must have the same size",
                img_path.display()
            ),
        ));
    }
    let mut image = Vec::with_capacity(channels * size * size);
    for c in 0..channels {
        image.extend(resize_plane(&img[c * h * w..(c + 1) * h * w], h, w, size, false));
    }
    let bin: Vec<f32> = mask.iter().map(|&v| if v >= 0.5 { 1.0 } else { 0.0 }).collect();
    Ok((image, resize_plane(&bin, h, w, size, true)))
}

pub fn load(dir: &Path, size: usize, channels: usize, skip_bad: bool) -> Result<Dataset> {
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
    let mut samples = Vec::new();
    for (stem, ip) in &images {
        let Some(mp) = masks.get(stem) else {
            problems.push(Error::format(ip, "has no matching mask in masks/"));
            continue;
        };
        match load_pair(ip, mp, size, channels) {
            Ok((image, mask)) => samples.push(Sample { name: stem.clone(), image, mask }),
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
    Ok(Dataset { samples, channels, size, source: dir.display().to_string() })
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
        png(&d.join("masks/a.png"), 8, 8, |_, _| 0);
        std::fs::write(d.join("images/b.png"), &std::fs::read(d.join("images/a.png")).unwrap()[..40]).unwrap();
        png(&d.join("masks/b.png"), 8, 8, |_, _| 0);
        let e = err(&d);
        assert!(e.contains("images/b.png") && e.contains("cannot decode"), "{e}");
        // --skip-bad keeps the good pair
        assert_eq!(load(&d, 8, 1, true).unwrap().len(), 1);
        let e = load(&d.join("nope"), 8, 1, false).unwrap_err().to_string();
        assert!(e.contains("is not a folder"), "{e}");
    }
}

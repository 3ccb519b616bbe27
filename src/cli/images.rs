//! PNG output: masks, overlays, uncertainty maps and sample grids.

use std::path::Path;

use anyhow::{Context, Result};
use image::{GrayImage, Rgb, RgbImage};

/// An (h, w) plane in [0, 1] as an 8-bit grayscale PNG.
pub fn save_gray(path: &Path, plane: &[f32], h: usize, w: usize) -> Result<()> {
    let img = GrayImage::from_fn(w as u32, h as u32, |x, y| {
        image::Luma([(plane[y as usize * w + x as usize].clamp(0.0, 1.0) * 255.0).round() as u8])
    });
    img.save(path).with_context(|| format!("writing {}", path.display()))
}

/// A label map (h, w) of class values 0..=255 as an 8-bit PNG of those values (nnU-Net's label format).
pub fn save_labels(path: &Path, labels: &[f32], h: usize, w: usize) -> Result<()> {
    let img = GrayImage::from_fn(w as u32, h as u32, |x, y| {
        image::Luma([labels[y as usize * w + x as usize].clamp(0.0, 255.0) as u8])
    });
    img.save(path).with_context(|| format!("writing {}", path.display()))
}

/// Tints of classes 1, 2, ... in overlays (red for a binary mask), repeating after eight.
const TINTS: [[f32; 3]; 8] = [
    [1.0, 0.0, 0.0],
    [0.0, 0.8, 0.0],
    [0.2, 0.4, 1.0],
    [1.0, 0.8, 0.0],
    [1.0, 0.0, 1.0],
    [0.0, 0.9, 0.9],
    [1.0, 0.5, 0.0],
    [0.6, 0.3, 1.0],
];

/// The image's first channel with each labelled pixel (label k > 0; a binary mask's 1) tinted by its class,
/// both (h, w).
pub fn overlay(image: &[f32], labels: &[f32], h: usize, w: usize) -> RgbImage {
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        let g = image[i].clamp(0.0, 1.0) * 255.0;
        match labels[i].round() as usize {
            0 => Rgb([g as u8; 3]),
            k => {
                let t = TINTS[(k - 1) % TINTS.len()];
                Rgb(t.map(|c| (0.5 * g + 127.0 * c) as u8))
            }
        }
    })
}

/// Variance (at most 0.25 for values in [0, 1]) of an (h, w) plane as a black-to-yellow heat map.
pub fn heat(var: &[f32], h: usize, w: usize) -> RgbImage {
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let v = (var[y as usize * w + x as usize] / 0.25).clamp(0.0, 1.0);
        Rgb([(255.0 * v.sqrt()) as u8, (255.0 * v) as u8, 0])
    })
}

/// Rows of [image | truth | prediction] tiles, scaled up to at least 96 px per tile.
pub fn grid(rows: &[(Vec<f32>, Vec<f32>, Vec<f32>)], s: usize) -> RgbImage {
    let zoom = (96 / s).max(1);
    let t = s * zoom;
    let mut img = RgbImage::new((3 * t + 4) as u32, (rows.len() * (t + 2)) as u32);
    for (r, (im, truth, pred)) in rows.iter().enumerate() {
        for (c, plane) in [im, truth, pred].iter().enumerate() {
            for y in 0..t {
                for x in 0..t {
                    let v = (plane[(y / zoom) * s + x / zoom].clamp(0.0, 1.0) * 255.0) as u8;
                    img.put_pixel((c * (t + 2) + x) as u32, (r * (t + 2) + y) as u32, Rgb([v, v, v]));
                }
            }
        }
    }
    img
}

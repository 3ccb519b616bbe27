//! `sample`: ensembles of masks for a folder of scans (or an nnU-Net imagesTs/ folder, or NIfTI volumes) at each
//! scan's own size and in its own format, in batches, shardable over processes.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::images;
use super::inputs::bar;
use super::model::{load_model, AtSize, Loaded, ModelArgs};
use crate::data::volume::{self, Kind};
use crate::data::{folder, shard_batches, Shard};

#[derive(Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// An image file or a folder of images (PNG, JPEG, TIFF). For a multi-channel model, a folder in nnU-Net's
    /// form (CASE_0000.png, CASE_0001.png, ...: an imagesTs/) is read one case per image, channels stacked.
    /// A NIfTI volume (.nii, .nii.gz) or a folder of them is sampled slice by slice along --axis and written
    /// as volumes with the scan's own header (shape, voxel size, affine).
    #[arg(long)]
    pub input: PathBuf,
    /// For NIfTI input: the slicing axis (0, 1 or 2; 2 = axial for RAS volumes), as in training.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub axis: u8,
    /// Output folder: <stem>_mask.png, <stem>_soft.png, <stem>_overlay.png, <stem>_uncertainty.png. For a
    /// multi-class model _mask.png is the label map (pixel value = class, 0 background, as nnU-Net writes
    /// labels) and each class k has its own _soft_<k>.png; the overlay colours each class.
    #[arg(long, default_value = "samples")]
    pub out: PathBuf,
    /// Images per sampling pass (× --ensemble rows); refused if over the adapter's limits.
    #[arg(long, default_value_t = 4, value_parser = super::at_least_one)]
    pub batch_size: usize,
    /// Sample only this process's share, i/n (0 ≤ i < n): n processes (a job array, one per GPU) together write
    /// exactly the files one process writes.
    #[arg(long)]
    pub shard: Option<Shard>,
}

pub fn sample(a: SampleArgs) -> Result<()> {
    let m = load_model(&a.model)?;
    let cfg = &m.unet.cfg;
    let c = cfg.input_img_channels;
    if let Some(cases) = volume::cases(&a.input, c)? {
        return sample_volumes(&a, &m, &cases);
    }
    let cases = folder::cases(&a.input, c)?;
    if cases.is_empty() {
        bail!("{}: no PNG/JPEG/TIFF images found", a.input.display());
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let batches = shard_batches(cases.len(), a.batch_size, a.shard);
    let total: usize = batches.iter().map(|r| r.len()).sum();
    let pb = bar(total as u64, "sample");
    for range in batches {
        let part = &cases[range];
        let originals =
            part.iter().map(|(_, files)| folder::read_channels(files, c)).collect::<crate::Result<Vec<_>>>()?;
        let seeds: Vec<u64> =
            part.iter().map(|(name, _)| crate::diffusion::ensemble::image_seed(a.model.seed, name)).collect();
        let views: Vec<_> = originals.iter().map(|(img, h, w)| (img.as_slice(), *h, *w)).collect();
        let outs = m.segment_at(&views, &a.model, &seeds, &pb)?;
        for (((name, _), (img, h, w)), o) in part.iter().zip(&originals).zip(outs) {
            write_pngs(&a.out, name, &img[..h * w], *h, *w, &o, &m)?;
            pb.inc(1);
        }
    }
    pb.finish();
    let of = shard_note(a.shard, cases.len());
    println!("wrote masks, overlays and uncertainty maps for {total} image(s){of} to {}", a.out.display());
    Ok(())
}

/// NIfTI in, NIfTI out: every slice of each volume along --axis (empty ones too) sampled in batches, each mask
/// brought back to its slice's size, and <case>_mask.nii.gz (labels: 0/1, or the class of a multi-class model),
/// <case>_soft.nii.gz (ensemble mean; _soft_<k> per class) and <case>_uncertainty.nii.gz (variance) written with
/// the scan's header. Slice k of a case is seeded by the name
/// <case>_s<k> (as `eval` names it); --shard splits whole volumes.
fn sample_volumes(a: &SampleArgs, m: &Loaded, cases: &[(String, Vec<PathBuf>)]) -> Result<()> {
    let (c, axis) = (m.unet.cfg.input_img_channels, a.axis as usize);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mine: Vec<usize> = shard_batches(cases.len(), 1, a.shard).into_iter().flatten().collect();
    let pb = bar(mine.len() as u64, "volumes");
    for &i in &mine {
        let (name, files) = &cases[i];
        let vols = volume::read_case(files)?;
        if vols.len() != 1 && vols.len() != c {
            bail!("{}: case {name} has {} channel volumes but the model takes {c}", files[0].display(), vols.len());
        }
        let (planes, h, w) = volume::planes(&vols, axis, c);
        let n = m.unet.cfg.mask_channels;
        let (mut labels, mut softs, mut vars) = (Vec::new(), vec![Vec::new(); n], Vec::new());
        for start in (0..planes.len()).step_by(a.batch_size) {
            let part = &planes[start..(start + a.batch_size).min(planes.len())];
            let views: Vec<_> = part.iter().map(|p| (p.as_slice(), h, w)).collect();
            let seeds: Vec<u64> = (start..start + part.len())
                .map(|k| crate::diffusion::ensemble::image_seed(a.model.seed, &format!("{name}_s{k:03}")))
                .collect();
            pb.set_message(format!("{name}: slices {}-{} of {}", start + 1, start + part.len(), planes.len()));
            for o in m.segment_at(&views, &a.model, &seeds, &pb)? {
                labels.push(m.stored(&o.labels));
                for (k, soft) in o.soft.into_iter().enumerate() {
                    softs[k].push(soft);
                }
                vars.push(o.uncertainty);
            }
        }
        let dims = vols[0].dims;
        let write = |suffix: String, slices: &[Vec<f32>], kind| {
            let path = a.out.join(format!("{name}_{suffix}.nii.gz"));
            volume::write_like(&path, &vols[0], &volume::assemble(dims, axis, slices), kind)
        };
        write("mask".into(), &labels, Kind::Labels)?;
        for (k, soft) in softs.iter().enumerate() {
            write(if n == 1 { "soft".into() } else { format!("soft_{}", k + 1) }, soft, Kind::Float)?;
        }
        write("uncertainty".into(), &vars, Kind::Float)?;
        pb.inc(1);
    }
    pb.finish();
    let of = shard_note(a.shard, cases.len());
    println!(
        "wrote label, soft and uncertainty volumes for {} case(s){of} to {} (each with its scan's header)",
        mine.len(),
        a.out.display()
    );
    Ok(())
}

/// An image's PNGs: the mask (0/255; the label map of a multi-class model), each class's soft mask, the overlay
/// on the image's first channel, and the uncertainty heat map.
fn write_pngs(
    out: &std::path::Path,
    name: &str,
    image: &[f32],
    h: usize,
    w: usize,
    o: &AtSize,
    m: &Loaded,
) -> Result<()> {
    let save = |img: image::RgbImage, file: String| {
        let p = out.join(file);
        img.save(&p).with_context(|| format!("writing {}", p.display()))
    };
    if let [soft] = o.soft.as_slice() {
        images::save_gray(&out.join(format!("{name}_mask.png")), &o.labels, h, w)?;
        images::save_gray(&out.join(format!("{name}_soft.png")), soft, h, w)?;
    } else {
        images::save_labels(&out.join(format!("{name}_mask.png")), &m.stored(&o.labels), h, w)?;
        for (k, soft) in o.soft.iter().enumerate() {
            images::save_gray(&out.join(format!("{name}_soft_{}.png", k + 1)), soft, h, w)?;
        }
    }
    save(images::overlay(image, &o.labels, h, w), format!("{name}_overlay.png"))?;
    save(images::heat(&o.uncertainty, h, w), format!("{name}_uncertainty.png"))
}

/// " (shard i/n of total)" when sampling a shard.
pub(super) fn shard_note(shard: Option<Shard>, total: usize) -> String {
    shard.map_or(String::new(), |sh| format!(" (shard {}/{} of {total})", sh.index, sh.count))
}

//! NIfTI-1 volumes (`.nii` / `.nii.gz`), BraTS-style: a folder with `images/` and `labels/` (or `masks/`) holding
//! volumes of matching names. Each volume is sliced along `axis` (0, 1 or 2; 2 = axial for RAS volumes); slices
//! whose label has foreground are kept. Image intensities are scaled per volume to [0, 1] between the 1st and
//! 99th percentile; labels are label maps, 0 background and any other value foreground (as for the folder loader's
//! masks).
//!
//! The reader handles the 348-byte NIfTI-1 header in either byte order, the data types u8, i8, i16, u16, i32,
//! u32, f32 and f64, and `scl_slope`/`scl_inter`.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{resize_plane, Dataset, Sample};
use crate::{Error, Result};

/// A volume: dims (x, y, z) and values, x fastest (NIfTI order), with the header it was read with (so an output
/// volume can carry the input's geometry: [`super::volume::write_like`]).
pub struct Volume {
    pub dims: [usize; 3],
    pub data: Vec<f32>,
    /// Voxel size along x, y, z (pixdim[1..=3], in the header's units: millimetres for most scans).
    pub spacing: [f32; 3],
    /// The 348 header bytes as stored, and their byte order.
    pub header: Vec<u8>,
    pub little_endian: bool,
}

pub fn read_volume(path: &Path) -> Result<Volume> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_volume(&raw, path)
}

/// [`read_volume`] of a file's bytes (`path` names it in errors). A `.nii.gz` is decompressed only as far as its
/// header says the volume reaches, into a buffer reserved for exactly that after checking it fits in available
/// memory (where the OS says: Linux's MemAvailable), so a hostile header or a gzip bomb is an error.
pub fn parse_volume(raw: &[u8], path: &Path) -> Result<Volume> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return parse_uncompressed(raw, path);
    }
    let gz_err = |e: std::io::Error| Error::format(path, format!("bad gzip data: {e}"));
    let mut dec = flate2::read::GzDecoder::new(raw);
    let mut bytes = Vec::new();
    (&mut dec).take(352).read_to_end(&mut bytes).map_err(gz_err)?;
    let need = header_extent(&bytes, path)?;
    super::check_host_bytes(path, need)?;
    // the whole extent up front (an error, not an abort, if it cannot be had), so the read never grows the buffer
    bytes.try_reserve_exact(need.saturating_sub(bytes.len())).map_err(|_| {
        Error::format(path, format!("its header describes {need} bytes of data, more than can be allocated"))
    })?;
    dec.take(need.saturating_sub(352) as u64).read_to_end(&mut bytes).map_err(gz_err)?;
    parse_uncompressed(&bytes, path)
}

/// Bytes a NIfTI-1 file must have for the volume its header describes (header errors as in `parse_uncompressed`).
fn header_extent(bytes: &[u8], path: &Path) -> Result<usize> {
    let h = Header::parse(bytes, path)?;
    Ok(h.vox_offset.saturating_add(h.n.saturating_mul(h.width)))
}

struct Header {
    le: bool,
    dims: [usize; 3],
    /// pixdim[1..=3]; 1 where a value is missing, zero or not finite
    spacing: [f32; 3],
    datatype: i16,
    vox_offset: usize,
    slope: f32,
    inter: f32,
    n: usize,
    width: usize,
}

impl Header {
    fn parse(bytes: &[u8], path: &Path) -> Result<Header> {
        let bad = |m: String| Error::format(path, m);
        if bytes.len() < 352 {
            return Err(bad(format!("{} bytes is too short for a NIfTI-1 file (header is 348 bytes)", bytes.len())));
        }
        let word: [u8; 4] = bytes[0..4].try_into().expect("4 bytes");
        let le = i32::from_le_bytes(word) == 348;
        if !le && i32::from_be_bytes(word) != 348 {
            return Err(bad("not a NIfTI-1 file (sizeof_hdr is not 348)".into()));
        }
        let i16_at = |o: usize| {
            let b = [bytes[o], bytes[o + 1]];
            if le {
                i16::from_le_bytes(b)
            } else {
                i16::from_be_bytes(b)
            }
        };
        let f32_at = |o: usize| {
            let b: [u8; 4] = bytes[o..o + 4].try_into().expect("4 bytes");
            if le {
                f32::from_le_bytes(b)
            } else {
                f32::from_be_bytes(b)
            }
        };
        let ndim = i16_at(40);
        if !(2..=7).contains(&ndim) {
            return Err(bad(format!("dim[0] = {ndim} is not a valid dimension count")));
        }
        let dim = |i: usize| if i as i16 <= ndim { i16_at(40 + 2 * i).max(1) as usize } else { 1 };
        let extra: usize = (4..=ndim as usize).map(dim).product();
        if extra > 1 {
            return Err(bad(format!(
                "has {ndim} dimensions with more than one volume; only 3-D volumes are supported"
            )));
        }
        let dims = [dim(1), dim(2), dim(3)];
        let datatype = i16_at(70);
        let width = match datatype {
            2 | 256 => 1,
            4 | 512 => 2,
            8 | 16 | 768 => 4,
            64 => 8,
            t => {
                return Err(bad(format!(
                    "NIfTI datatype {t} is not supported (u8, i8, i16, u16, i32, u32, f32, f64 are)"
                )))
            }
        };
        let off = f32_at(108);
        if !(off.is_finite() && (0.0..=1e12).contains(&off)) {
            return Err(bad(format!("vox_offset {off} is not a byte offset")));
        }
        let spacing =
            [1, 2, 3].map(|i| f32_at(76 + 4 * i).abs()).map(|d| if d.is_finite() && d > 0.0 { d } else { 1.0 });
        Ok(Header {
            le,
            dims,
            spacing,
            datatype,
            vox_offset: (off as usize).max(352),
            slope: f32_at(112),
            inter: f32_at(116),
            n: dims[0] * dims[1] * dims[2], // each at most 32,767: no overflow
            width,
        })
    }
}

fn parse_uncompressed(bytes: &[u8], path: &Path) -> Result<Volume> {
    let Header { le, dims, spacing, datatype, vox_offset, slope, inter, n, width } = Header::parse(bytes, path)?;
    let body = bytes.get(vox_offset..vox_offset + n * width).ok_or_else(|| {
        Error::format(path, format!("truncated: {n} voxels of {width} bytes do not fit after offset {vox_offset}"))
    })?;
    let mut data = Vec::with_capacity(n);
    for c in body.chunks_exact(width) {
        let v = match (datatype, le) {
            (2, _) => c[0] as f64,
            (256, _) => c[0] as i8 as f64,
            (4, true) => i16::from_le_bytes([c[0], c[1]]) as f64,
            (4, false) => i16::from_be_bytes([c[0], c[1]]) as f64,
            (512, true) => u16::from_le_bytes([c[0], c[1]]) as f64,
            (512, false) => u16::from_be_bytes([c[0], c[1]]) as f64,
            (8, true) => i32::from_le_bytes(c.try_into().unwrap()) as f64,
            (8, false) => i32::from_be_bytes(c.try_into().unwrap()) as f64,
            (768, true) => u32::from_le_bytes(c.try_into().unwrap()) as f64,
            (768, false) => u32::from_be_bytes(c.try_into().unwrap()) as f64,
            (16, true) => f32::from_le_bytes(c.try_into().unwrap()) as f64,
            (16, false) => f32::from_be_bytes(c.try_into().unwrap()) as f64,
            (64, true) => f64::from_le_bytes(c.try_into().unwrap()),
            _ => f64::from_be_bytes(c.try_into().unwrap()),
        };
        data.push(v as f32);
    }
    if slope != 0.0 && slope.is_finite() && (slope != 1.0 || inter != 0.0) {
        data.iter_mut().for_each(|v| *v = *v * slope + inter);
    }
    Ok(Volume { dims, data, spacing, header: bytes[..348].to_vec(), little_endian: le })
}

pub(super) fn stem(p: &Path) -> Option<String> {
    let name = p.file_name()?.to_str()?;
    name.strip_suffix(".nii.gz").or_else(|| name.strip_suffix(".nii")).map(str::to_string)
}

pub(super) fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| stem(&p).map(|s| (s, p)))
        .collect();
    v.sort();
    Ok(v)
}

/// The volume index of row r, column c of slice k along `axis` (what [`slice`] reads there).
pub(crate) fn voxel(dims: [usize; 3], axis: usize, k: usize, r: usize, c: usize) -> usize {
    let [nx, ny, nz] = dims;
    let at = |x: usize, y: usize, z: usize| x + nx * (y + ny * z);
    match axis {
        0 => at(k, c, nz - 1 - r),
        1 => at(c, k, nz - 1 - r),
        _ => at(c, ny - 1 - r, k),
    }
}

/// One 2-D slice (rows, cols) of a volume along `axis`.
pub(crate) fn slice(v: &Volume, axis: usize, k: usize) -> (Vec<f32>, usize, usize) {
    let (h, w) = plane_shape(v.dims, axis);
    let plane = (0..h).flat_map(|r| (0..w).map(move |c| (r, c))).map(|(r, c)| v.data[voxel(v.dims, axis, k, r, c)]);
    (plane.collect(), h, w)
}

/// (rows, cols) of a slice along `axis`: rows run from the top (the last z, or the last y for axial slices).
pub(crate) fn plane_shape(dims: [usize; 3], axis: usize) -> (usize, usize) {
    let [nx, ny, nz] = dims;
    match axis {
        0 => (nz, ny),
        1 => (nz, nx),
        _ => (ny, nx),
    }
}

/// `all`: every slice, also those whose label is empty (what evaluation needs: false positives there count);
/// otherwise only slices with foreground (what training uses).
pub fn load(dir: &Path, size: usize, channels: usize, axis: usize, skip_bad: bool, all: bool) -> Result<Dataset> {
    load_with(dir, size, channels, axis, skip_bad, all, super::labels::Classes::Auto)
}

/// [`load`] with the label maps read as `classes` ([`super::labels`]; binary by default).
pub fn load_with(
    dir: &Path,
    size: usize,
    channels: usize,
    axis: usize,
    skip_bad: bool,
    all: bool,
    classes: super::labels::Classes,
) -> Result<Dataset> {
    let idir = dir.join("images");
    let ldir = if dir.join("labels").is_dir() { dir.join("labels") } else { dir.join("masks") };
    if !idir.is_dir() || !ldir.is_dir() {
        return Err(Error::Config(format!(
            "{}: a NIfTI dataset folder needs images/ and labels/ (or masks/) with matching .nii/.nii.gz names",
            dir.display()
        )));
    }
    let labels: std::collections::HashMap<String, PathBuf> = list(&ldir)?.into_iter().collect();
    // `CASE_0001` is channel 1 of CASE only when CASE has a label and `CASE_0001` itself has none (a case named
    // `patient_0001`, labelled or not, stays whole)
    let whole = |stem: &str| {
        labels.contains_key(stem) || super::channel_suffix(stem).is_none_or(|(case, _)| !labels.contains_key(case))
    };
    let cases = super::group_cases(list(&idir)?, whole)?;
    let mut samples = load_cases(&cases, &labels, size, channels, axis, skip_bad, all)?;
    if samples.is_empty() {
        return Err(Error::Config(format!(
            "{}: no slice of any label volume has a foreground voxel (labels are label maps: 0 is background, \
             any other value foreground), so there is nothing to learn; check that labels/ belongs to images/",
            dir.display()
        )));
    }
    let source = dir.display().to_string();
    let (classes, label_values, note) = super::labels::assign(&mut samples, classes, None, !all, &source)?;
    Ok(Dataset {
        samples,
        channels,
        size,
        classes,
        label_values,
        source: super::labels::describe(source, classes, &note),
    })
}

/// Slice every case (its modality volumes, in channel order, and its label volume from `labels` by case name)
/// into 2-D samples of `channels` planes. A case with one volume fills every channel with it; otherwise it needs
/// exactly `channels` volumes.
pub(super) fn load_cases(
    cases: &std::collections::BTreeMap<String, Vec<PathBuf>>,
    labels: &std::collections::HashMap<String, PathBuf>,
    size: usize,
    channels: usize,
    axis: usize,
    skip_bad: bool,
    all: bool,
) -> Result<Vec<Sample>> {
    if axis > 2 {
        return Err(Error::Config(format!("--axis {axis} must be 0, 1 or 2")));
    }
    let mut samples = Vec::new();
    for (name, files) in cases {
        let result = (|| -> Result<Vec<Sample>> {
            let lp = labels.get(name).ok_or_else(|| Error::format(&files[0], "has no matching label volume"))?;
            if files.len() != 1 && files.len() != channels {
                return Err(Error::format(
                    &files[0],
                    format!(
                        "case {name} has {} modality volumes ({name}_0000 ...) but the model takes {channels} input \
                         channels",
                        files.len()
                    ),
                ));
            }
            let lab = read_volume(lp)?;
            let mut vols = Vec::new();
            for f in files {
                let v = read_volume(f)?;
                if v.dims != lab.dims {
                    return Err(Error::format(f, format!("has dims {:?} but its label has {:?}", v.dims, lab.dims)));
                }
                vols.push(v);
            }
            super::check_host_memory(&files[0].display().to_string(), samples.len() + lab.dims[axis], size, channels)?;
            Ok(volume_slices(name, &vols, &lab, axis, size, channels, all))
        })();
        match result {
            Ok(s) => samples.extend(s),
            Err(e) if skip_bad => eprintln!("warning: skipping: {e}"),
            Err(e) => return Err(e),
        }
    }
    Ok(samples)
}

/// The slices along `axis` (all of them, or those whose label has foreground): each modality scaled to [0, 1] between its own 1st and
/// 99th percentile over the volume, resized to `size`, stacked in channel order (one volume fills all channels).
fn volume_slices(
    name: &str,
    vols: &[Volume],
    lab: &Volume,
    axis: usize,
    size: usize,
    channels: usize,
    all: bool,
) -> Vec<Sample> {
    let ranges = intensity_ranges(vols);
    let mut out = Vec::new();
    for k in 0..lab.dims[axis] {
        let (m, h, w) = slice(lab, axis, k);
        if !all && !m.iter().any(|&v| v != 0.0) {
            continue;
        }
        let planes: Vec<Vec<f32>> = vols
            .iter()
            .zip(&ranges)
            .map(|(v, &(lo, scale))| {
                let (im, _, _) = slice(v, axis, k);
                let im: Vec<f32> = im.iter().map(|&x| ((x - lo) * scale).clamp(0.0, 1.0)).collect();
                resize_plane(&im, h, w, size, false)
            })
            .collect();
        // label values as stored (rounded: a float volume's 2.0000001 is label 2); classes come later
        let raw: Vec<f32> = m.iter().map(|&v| if v.is_finite() { v.round() } else { 0.0 }).collect();
        let mask = resize_plane(&raw, h, w, size, true);
        let image =
            (0..channels).flat_map(|c| if planes.len() == 1 { &planes[0] } else { &planes[c] }).copied().collect();
        let sp = lab.spacing;
        let spacing = match axis {
            0 => [sp[2], sp[1]],
            1 => [sp[2], sp[0]],
            _ => [sp[1], sp[0]],
        };
        let slice = Some(super::SliceOf { index: k, spacing });
        out.push(Sample { name: format!("{name}_s{k:03}"), image, mask, stored: [h, w], slice });
    }
    out
}

/// Per volume (lo, 1 / (hi − lo)) with lo, hi its 1st and 99th percentile: x ↦ (x − lo)·scale maps it to [0, 1].
pub(crate) fn intensity_ranges(vols: &[Volume]) -> Vec<(f32, f32)> {
    vols.iter()
        .map(|v| {
            let mut sorted = v.data.clone();
            sorted.sort_by(f32::total_cmp);
            let (lo, hi) = (sorted[sorted.len() / 100], sorted[(sorted.len() * 99) / 100]);
            (lo, if hi > lo { 1.0 / (hi - lo) } else { 1.0 })
        })
        .collect()
}

/// Write a little-endian f32 NIfTI-1 volume (for tests and tools).
pub fn write_f32(path: &Path, dims: [usize; 3], data: &[f32]) -> Result<()> {
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    let d = [3i16, dims[0] as i16, dims[1] as i16, dims[2] as i16, 1, 1, 1, 1];
    for (i, v) in d.iter().enumerate() {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&v.to_le_bytes());
    }
    h[70..72].copy_from_slice(&16i16.to_le_bytes());
    h[72..74].copy_from_slice(&32i16.to_le_bytes());
    h[108..112].copy_from_slice(&352f32.to_le_bytes());
    h[112..116].copy_from_slice(&1f32.to_le_bytes());
    h[344..348].copy_from_slice(b"n+1\0");
    h.extend_from_slice(bytemuck::cast_slice(data));
    std::fs::write(path, h).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_with_foreground_and_gzip() {
        let d = std::env::temp_dir().join(format!("msd-nifti-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("images")).unwrap();
        std::fs::create_dir_all(d.join("labels")).unwrap();
        let dims = [6, 5, 4];
        let img: Vec<f32> = (0..120).map(|i| i as f32).collect();
        let lab: Vec<f32> = (0..120).map(|i| if i / 30 == 2 && i % 6 == 1 { 1.0 } else { 0.0 }).collect(); // only z = 2
        write_f32(&d.join("images/case1.nii"), dims, &img).unwrap();
        write_f32(&d.join("labels/case1.nii"), dims, &lab).unwrap();
        let ds = load(&d, 8, 1, 2, false, false).unwrap();
        assert_eq!(ds.len(), 1);
        assert_eq!(ds.samples[0].name, "case1_s002");
        // evaluation reads every slice, empty ones too, each knowing its index and pixel spacing
        let all = load(&d, 8, 1, 2, false, true).unwrap();
        let idx: Vec<usize> = all.samples.iter().map(|s| s.slice.as_ref().unwrap().index).collect();
        assert_eq!(idx, vec![0, 1, 2, 3]);
        assert_eq!(all.samples[0].slice.as_ref().unwrap().spacing, [1.0, 1.0], "no pixdim: 1 per voxel");
        assert_eq!(all.samples[0].stored, [5, 6]);
        // gzip round trip reads the same volume
        let raw = std::fs::read(d.join("images/case1.nii")).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &raw).unwrap();
        std::fs::write(d.join("img.nii.gz"), enc.finish().unwrap()).unwrap();
        assert_eq!(read_volume(&d.join("img.nii.gz")).unwrap().data, img);
        // truncated file: named error
        std::fs::write(d.join("images/case2.nii"), &raw[..400]).unwrap();
        std::fs::copy(d.join("labels/case1.nii"), d.join("labels/case2.nii")).unwrap();
        let e = load(&d, 8, 1, 2, false, false).unwrap_err().to_string();
        assert!(e.contains("case2.nii") && e.contains("truncated"), "{e}");
        assert_eq!(load(&d, 8, 1, 2, true, false).unwrap().len(), 1);
    }
}

//! Volumes in and out of sampling: the planes of every slice of a case (empty ones too), and label, soft and
//! uncertainty volumes written with the input scan's own header, so they keep its shape, voxel size, byte order
//! and affine (qform and sform), and open aligned over the scan in any NIfTI viewer.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::nifti::{intensity_ranges, list, plane_shape, read_volume, slice, stem, voxel, Volume};
use crate::{Error, Result};

/// The NIfTI cases of a sampling input: one `.nii`/`.nii.gz` file, or a folder of them (for a `channels`-channel
/// model whose files all carry a suffix, `CASE_0000`, `CASE_0001`, … are one case, and a case without all its
/// channels is an error; files without one are cases of their own, filling every channel); `None` when `input`
/// holds no NIfTI files (images, then).
pub fn cases(input: &Path, channels: usize) -> Result<Option<Vec<super::Case>>> {
    if !input.is_dir() {
        return Ok(stem(input).map(|s| vec![(s, vec![input.to_path_buf()])]));
    }
    let files = list(input)?;
    if files.is_empty() {
        return Ok(None);
    }
    if channels > 1 && files.iter().all(|(s, _)| super::channel_suffix(s).is_some()) {
        // a volume is one channel: CASE_000k files are the modalities of CASE, and all must be there
        let cases = super::group_cases(files, |_| false)?;
        if let Some((case, f)) = cases.iter().find(|(_, f)| f.len() != channels) {
            let msg = format!("case {case} has {} channel volumes but the model takes {channels}", f.len());
            return Err(Error::format(&f[0], msg));
        }
        return Ok(Some(cases.into_iter().collect()));
    }
    Ok(Some(files.into_iter().map(|(s, p)| (s, vec![p])).collect()))
}

/// A case's volumes (one per channel file), all of one shape: the error names the file that differs.
pub fn read_case(files: &[PathBuf]) -> Result<Vec<Volume>> {
    let vols = files.iter().map(|f| read_volume(f)).collect::<Result<Vec<_>>>()?;
    if let Some((f, v)) = files.iter().zip(&vols).find(|(_, v)| v.dims != vols[0].dims) {
        return Err(Error::format(f, format!("is {:?} but {} is {:?}", v.dims, files[0].display(), vols[0].dims)));
    }
    Ok(vols)
}

/// What an output volume holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Labels 0..=255 (a mask's 0/1, or classes), stored as u8.
    Labels,
    /// Values such as probabilities, stored as f32.
    Float,
}

/// Every slice of a case along `axis`: its `channels` planes stacked (one volume fills them all; otherwise one
/// volume per channel), each scaled to [0, 1] between its volume's 1st and 99th percentile, as training reads
/// them; and the slices' (rows, cols).
pub fn planes(vols: &[Volume], axis: usize, channels: usize) -> (Vec<Vec<f32>>, usize, usize) {
    let dims = vols[0].dims;
    let (h, w) = plane_shape(dims, axis);
    let ranges = intensity_ranges(vols);
    let out = (0..dims[axis])
        .map(|k| {
            let scaled: Vec<Vec<f32>> = vols
                .iter()
                .zip(&ranges)
                .map(|(v, &(lo, scale))| {
                    slice(v, axis, k).0.iter().map(|&x| ((x - lo) * scale).clamp(0.0, 1.0)).collect()
                })
                .collect();
            (0..channels).flat_map(|c| scaled[if scaled.len() == 1 { 0 } else { c }].iter().copied()).collect()
        })
        .collect();
    (out, h, w)
}

/// A volume of `dims` from its slices along `axis` (each rows × cols, as [`planes`] gives them).
pub fn assemble(dims: [usize; 3], axis: usize, slices: &[Vec<f32>]) -> Vec<f32> {
    let (h, w) = plane_shape(dims, axis);
    let mut out = vec![0.0f32; dims.iter().product()];
    for (k, p) in slices.iter().enumerate() {
        for r in 0..h {
            for c in 0..w {
                out[voxel(dims, axis, k, r, c)] = p[r * w + c];
            }
        }
    }
    out
}

/// Write `data` (in `like`'s voxel order) as a NIfTI-1 file with `like`'s header: dims, pixdim, qform, sform,
/// units, description and byte order kept; data type, scaling, offset and the one-file magic set for `kind`. A
/// path ending in `.gz` is gzip-compressed.
pub fn write_like(path: &Path, like: &Volume, data: &[f32], kind: Kind) -> Result<()> {
    let n: usize = like.dims.iter().product();
    if data.len() != n {
        return Err(Error::format(path, format!("{} values for a volume of {:?} ({n} voxels)", data.len(), like.dims)));
    }
    let le = like.little_endian;
    let mut h = like.header.clone();
    let i16s = |v: i16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let f32s = |v: f32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let d = [3, like.dims[0] as i16, like.dims[1] as i16, like.dims[2] as i16, 1, 1, 1, 1];
    for (i, v) in d.iter().enumerate() {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&i16s(*v));
    }
    let (datatype, bitpix, cal_max) = match kind {
        Kind::Labels => (2i16, 8i16, 1.0f32),
        Kind::Float => (16, 32, 0.0),
    };
    h[70..72].copy_from_slice(&i16s(datatype));
    h[72..74].copy_from_slice(&i16s(bitpix));
    h[108..112].copy_from_slice(&f32s(352.0)); // vox_offset: the header and an empty extension flag
    h[112..116].copy_from_slice(&f32s(1.0)); // scl_slope
    h[116..120].copy_from_slice(&f32s(0.0)); // scl_inter
    h[124..128].copy_from_slice(&f32s(cal_max));
    h[128..132].copy_from_slice(&f32s(0.0)); // cal_min
    h[344..348].copy_from_slice(b"n+1\0");
    h.extend_from_slice(&[0; 4]);
    h.reserve(n * if kind == Kind::Labels { 1 } else { 4 });
    match kind {
        Kind::Labels => h.extend(data.iter().map(|&v| v.round().clamp(0.0, 255.0) as u8)),
        Kind::Float => h.extend(data.iter().flat_map(|&v| f32s(v))),
    }
    let gz = path.to_str().is_some_and(|p| p.ends_with(".gz"));
    let bytes = if gz {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&h).and_then(|_| enc.finish()).map_err(|e| Error::io(path, e))?
    } else {
        h
    };
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::nifti::write_f32;

    #[test]
    fn slices_reassemble_and_outputs_keep_the_input_geometry() {
        let d = std::env::temp_dir().join(format!("msd-volume-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let dims = [5, 4, 3];
        let vol: Vec<f32> = (0..60).map(|i| (i * 7 % 60) as f32).collect();
        let src = d.join("scan.nii");
        write_f32(&src, dims, &vol).unwrap();
        // a scan with its own voxel size and sform
        let mut bytes = std::fs::read(&src).unwrap();
        for (i, v) in [0.5f32, 0.7, 2.0].iter().enumerate() {
            bytes[80 + 4 * i..84 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        bytes[254..256].copy_from_slice(&1i16.to_le_bytes()); // sform_code
        for (i, v) in [0.5f32, 0.0, 0.0, -10.0, 0.0, 0.7, 0.0, 20.0, 0.0, 0.0, 2.0, 30.0].iter().enumerate() {
            bytes[280 + 4 * i..284 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        std::fs::write(&src, &bytes).unwrap();
        let v = read_volume(&src).unwrap();
        assert_eq!(v.spacing, [0.5, 0.7, 2.0]);
        for axis in 0..3 {
            let slices: Vec<Vec<f32>> = (0..dims[axis]).map(|k| slice(&v, axis, k).0).collect();
            assert_eq!(assemble(dims, axis, &slices), vol, "axis {axis}");
        }
        let labels: Vec<f32> = vol.iter().map(|&x| if x > 30.0 { 1.0 } else { 0.0 }).collect();
        for (name, kind) in [("mask.nii.gz", Kind::Labels), ("soft.nii", Kind::Float)] {
            let out = d.join(name);
            write_like(&out, &v, &labels, kind).unwrap();
            let back = read_volume(&out).unwrap();
            assert_eq!((back.dims, back.spacing), (dims, v.spacing), "{name}");
            assert_eq!(back.data, labels, "{name}");
            assert_eq!(back.header[252..344], v.header[252..344], "{name}: qform and sform kept");
        }
        // the fields written for the output, in the scan's byte order: a big-endian scan stays big-endian
        let mut be = v.header.clone();
        for o in (0..348).step_by(2).filter(|&o| (40..56).contains(&o) || o == 70 || o == 72) {
            be.swap(o, o + 1);
        }
        for o in [0, 76, 80, 84, 88, 108, 112, 116, 124, 128].into_iter().chain((280..328).step_by(4)) {
            be[o..o + 4].reverse();
        }
        let big = Volume { header: be, little_endian: false, ..read_volume(&src).unwrap() };
        write_like(&d.join("be.nii"), &big, &labels, Kind::Labels).unwrap();
        let raw = std::fs::read(d.join("be.nii")).unwrap();
        assert_eq!(i32::from_be_bytes(raw[0..4].try_into().unwrap()), 348);
        assert_eq!(i16::from_be_bytes([raw[70], raw[71]]), 2, "datatype u8");
        assert_eq!(i16::from_be_bytes([raw[72], raw[73]]), 8, "bitpix");
        assert_eq!(f32::from_be_bytes(raw[108..112].try_into().unwrap()), 352.0, "vox_offset");
        assert_eq!(f32::from_be_bytes(raw[112..116].try_into().unwrap()), 1.0, "scl_slope");
        assert_eq!(&raw[344..348], b"n+1\0");
        let back = read_volume(&d.join("be.nii")).unwrap();
        assert_eq!((back.dims, back.spacing, back.little_endian), (dims, v.spacing, false));
        assert_eq!(back.data, labels);
        let e = write_like(&d.join("bad.nii"), &v, &labels[..10], Kind::Labels).unwrap_err().to_string();
        assert!(e.contains("bad.nii") && e.contains("[5, 4, 3]"), "{e}");
        let (p, h, w) = planes(&[v], 2, 2);
        assert_eq!((p.len(), h, w, p[0].len()), (3, 4, 5, 40), "two channels from one volume");
    }
}

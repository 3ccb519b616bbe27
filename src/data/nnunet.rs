//! nnU-Net raw datasets (`nnUNet_raw/Dataset001_Name`): `dataset.json` with `channel_names`, `labels` and
//! `file_ending`; `imagesTr/CASE_0000<ending>`, `CASE_0001<ending>`, ... (one file per input channel, stacked in
//! that order); `labelsTr/CASE<ending>` (a label map); `imagesTs/` for test cases.
//!
//! 2-D endings (`.png`, `.tif`, `.tiff`, `.jpg`) are read like the folder loader's images and masks: a grayscale
//! file is one channel, an RGB file three (nnU-Net's natural-image datasets keep R, G, B in one `_0000.png`).
//! Volume endings (`.nii.gz`, `.nii`) are sliced along `--axis` as the NIfTI loader does, each modality scaled
//! by its own percentiles. Labels are label maps: each label value `dataset.json` lists is a class, in ascending
//! order ([`super::labels`]); `--classes 1` merges them into one foreground. Region-based labels (lists of
//! values) contribute their values: BraTS's regions over 1, 2, 3 train the three labels as classes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::labels::{self, Classes};
use super::{folder, nifti, resize_plane, Dataset, Sample};
use crate::{Error, Result};

/// Whether `dir` is an nnU-Net raw dataset (it has `dataset.json` and `imagesTr/`).
pub fn is_dataset(dir: &Path) -> bool {
    dir.join("dataset.json").is_file() && dir.join("imagesTr").is_dir()
}

/// What `dataset.json` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// Channel names in channel order ("0", "1", ... keys).
    pub channels: Vec<String>,
    /// Label names by value (background first), as listed; a region by its first value.
    pub labels: Vec<(String, i64)>,
    /// Every label value the labels name (regions' lists too), ascending, without background.
    pub values: Vec<i64>,
    pub file_ending: String,
}

pub fn read_meta(dir: &Path) -> Result<Meta> {
    let path = dir.join("dataset.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    parse_meta(&text, &path)
}

/// [`read_meta`] of `dataset.json`'s text (`path` names it in errors).
pub fn parse_meta(text: &str, path: &Path) -> Result<Meta> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::format(path, format!("is not JSON: {e}")))?;
    let bad = |m: String| Error::format(path, m);
    let names = v
        .get("channel_names")
        .or_else(|| v.get("modality")) // nnU-Net v1's key
        .and_then(|c| c.as_object())
        .ok_or_else(|| bad("has no `channel_names` object (e.g. {\"0\": \"T1\", \"1\": \"T2\"})".into()))?;
    let mut channels = vec![None; names.len()];
    for (k, name) in names {
        let i: usize = k.parse().map_err(|_| bad(format!("channel_names key {k:?} is not a channel number")))?;
        let slot = channels.get_mut(i).ok_or_else(|| {
            bad(format!("channel_names has {} entries but a key {i}: keys must be 0..{}", names.len(), names.len()))
        })?;
        if slot.replace(name.as_str().map_or_else(|| name.to_string(), str::to_string)).is_some() {
            return Err(bad(format!("channel_names has channel {i} twice (key {k:?})")));
        }
    }
    // n keys, each in 0..n, none twice: every slot is filled
    let channels: Vec<String> = channels.into_iter().flatten().collect();
    if channels.is_empty() {
        return Err(bad("channel_names is empty".into()));
    }
    let object = v
        .get("labels")
        .and_then(|l| l.as_object())
        .ok_or_else(|| bad("has no `labels` object (e.g. {\"background\": 0, \"tumour\": 1})".into()))?;
    let mut values: Vec<i64> = object
        .values()
        .flat_map(|val| match val.as_array() {
            Some(a) => a.iter().filter_map(|x| x.as_i64()).collect(),
            None => val.as_i64().into_iter().collect::<Vec<_>>(),
        })
        .filter(|&x| x != 0)
        .collect();
    values.sort_unstable();
    values.dedup();
    let mut labels: Vec<(String, i64)> = object
        .iter()
        .map(|(name, val)| {
            // a value, or a list of values for nnU-Net's region-based labels: the first names the region
            let n = val.as_i64().or_else(|| val.as_array().and_then(|a| a.first()).and_then(|x| x.as_i64()));
            n.map(|n| (name.clone(), n)).ok_or_else(|| bad(format!("label {name:?} has no integer value")))
        })
        .collect::<Result<_>>()?;
    labels.sort_by_key(|l| l.1);
    let file_ending = v
        .get("file_ending")
        .and_then(|f| f.as_str())
        .ok_or_else(|| bad("has no `file_ending` (e.g. \".png\" or \".nii.gz\")".into()))?
        .to_string();
    Ok(Meta { channels, labels, values, file_ending })
}

/// Files of `dir` ending in `ending`, as (stem, path), sorted.
fn list(dir: &Path, ending: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            name.strip_suffix(ending).map(|s| (s.to_string(), p.clone()))
        })
        .collect();
    v.sort();
    Ok(v)
}

fn is_volume(ending: &str) -> bool {
    ending == ".nii.gz" || ending == ".nii"
}

/// The training cases of an nnU-Net raw dataset, resized to `size`, with as many channels as `channel_names`.
/// `all`: for volumes, every slice (evaluation), not only those with foreground (training). `classes`: the label
/// values as classes, dataset.json's by default.
pub fn load(dir: &Path, size: usize, axis: usize, skip_bad: bool, all: bool, classes: Classes) -> Result<Dataset> {
    let meta = read_meta(dir)?;
    let (idir, ldir) = (dir.join("imagesTr"), dir.join("labelsTr"));
    if !ldir.is_dir() {
        return Err(Error::Config(format!("{}: an nnU-Net dataset needs labelsTr/ beside imagesTr/", dir.display())));
    }
    let ending = meta.file_ending.as_str();
    let labels: HashMap<String, PathBuf> = list(&ldir, ending)?.into_iter().collect();
    // nnU-Net always suffixes the channel, even for one channel: never read a whole stem as a case
    let cases = super::group_cases(list(&idir, ending)?, |_| false)?;
    if cases.is_empty() {
        return Err(Error::Config(format!(
            "{}: no `*_0000{ending}` files (file_ending from dataset.json)",
            idir.display()
        )));
    }
    let channels = meta.channels.len();
    super::check_host_memory(&dir.display().to_string(), cases.len(), size, channels)?;
    let mut samples = if is_volume(ending) {
        // every case must have one file per channel (the NIfTI loader alone may fill channels from one file)
        if let Some((case, files)) = cases.iter().find(|(_, f)| f.len() != channels) {
            return Err(missing_channels(&idir, case, files.len(), channels, ending));
        }
        nifti::load_cases(&cases, &labels, size, channels, axis, skip_bad, all)?
    } else {
        load_2d(&cases, &labels, size, channels, skip_bad, &idir, ending)?
    };
    let names: Vec<String> = meta.labels.iter().filter(|l| l.1 != 0).map(|l| format!("{}={}", l.0, l.1)).collect();
    if samples.is_empty() {
        return Err(Error::Config(format!(
            "{}: no case has a foreground label ({}), so there is nothing to learn",
            dir.display(),
            names.join(", ")
        )));
    }
    let (n, label_values, note) =
        labels::assign(&mut samples, classes, Some(&meta.values), !all, &dir.display().to_string())?;
    let what = if n == 1 { "foreground = any of" } else { "classes" };
    let source =
        format!("{} (nnU-Net: channels {}; {what} {})", dir.display(), meta.channels.join(", "), names.join(", "));
    let source = if note.is_empty() { source } else { format!("{source}; values {note}") };
    Ok(Dataset { samples, channels, size, classes: n, label_values, source })
}

fn missing_channels(idir: &Path, case: &str, found: usize, want: usize, ending: &str) -> Error {
    Error::format(
        idir.join(format!("{case}_{found:04}{ending}")),
        format!("case {case} has {found} channel file(s) but dataset.json's channel_names lists {want}"),
    )
}

fn load_2d(
    cases: &BTreeMap<String, Vec<PathBuf>>,
    labels: &HashMap<String, PathBuf>,
    size: usize,
    channels: usize,
    skip_bad: bool,
    idir: &Path,
    ending: &str,
) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for (case, files) in cases {
        let one = || -> Result<Sample> {
            let lp = labels.get(case).ok_or_else(|| Error::format(&files[0], "has no label in labelsTr/"))?;
            let (mask, mh, mw) = folder::read_mask(lp)?;
            // one RGB file holds three channels; otherwise one grayscale file per channel
            let per_file = if files.len() == 1 && channels == 3 { 3 } else { 1 };
            if files.len() * per_file != channels {
                return Err(missing_channels(idir, case, files.len(), channels, ending));
            }
            let (planes, h, w) = folder::read_channels(files, channels)?;
            if (h, w) != (mh, mw) {
                let msg = format!("is {w}x{h} but its label {} is {mw}x{mh}", lp.display());
                return Err(Error::format(&files[0], msg));
            }
            let image = super::resize_planes(&planes, channels, h, w, size);
            Ok(Sample {
                name: case.clone(),
                image,
                mask: resize_plane(&mask, mh, mw, size, true),
                stored: [h, w],
                slice: None,
            })
        };
        match one() {
            Ok(s) => samples.push(s),
            Err(e) if skip_bad => eprintln!("warning: skipping: {e}"),
            Err(e) => return Err(e),
        }
    }
    if !samples.iter().any(|s| s.mask.iter().any(|&v| v != 0.0)) {
        samples.clear(); // the caller says why
    }
    Ok(samples)
}

//! What `train`, `sample`, `eval` and the benches share: the dataset the flags name, progress bars, and the
//! note on unverified weights.

use std::path::Path;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::DataArgs;
use crate::data::labels::Classes;
use crate::data::{folder, nifti, nnunet, synthetic, Dataset};
use crate::model::weights::TensorFile;

/// The dataset the flags name at `size`. `all_slices`: evaluation, so volumes give every slice, not only those
/// with foreground, and a class may be absent (training needs them all).
/// `trained`: the mask channels of a network that exists already (resume, eval), which fix the classes.
pub(super) fn load_data(
    a: &DataArgs,
    size: usize,
    channels: usize,
    seed: u64,
    all_slices: bool,
    trained: Option<usize>,
) -> Result<Dataset> {
    let classes = match (a.classes, trained) {
        (Some(c), Some(t)) if c != t => {
            bail!("--classes {c}, but the network has {t} mask channel(s), one per class; give --classes {t}")
        }
        (Some(c), _) | (None, Some(c)) => Classes::Count(c),
        (None, None) => Classes::Auto,
    };
    let synthetic_classes = match classes {
        Classes::Count(c) if c > 2 && a.data.is_none() && a.nifti.is_none() => {
            bail!(
                "--classes {c}: the synthetic set has 1 or 2 classes (bright and dark lesions); give --data or --nifti"
            )
        }
        Classes::Count(c) => c,
        Classes::Auto => 1,
    };
    Ok(match (&a.data, &a.nifti) {
        (Some(d), _) if nnunet::is_dataset(d) => nnunet::load(d, size, a.axis, a.skip_bad, all_slices, classes)?,
        (Some(d), _) => folder::load_with(d, size, channels, a.skip_bad, classes, all_slices)?,
        (None, Some(d)) => nifti::load_with(d, size, channels, a.axis, a.skip_bad, all_slices, classes)?,
        (None, None) => {
            crate::data::check_host_memory("the synthetic dataset", a.synthetic_count, size, channels)?;
            synthetic::generate_classes(a.synthetic_count, size, channels, seed, synthetic_classes)
        }
    })
}

pub(super) fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} {{msg}} [{{elapsed_precise}} < {{eta_precise}}, {{per_sec}}]"
        ))
        .expect("valid template"),
    );
    pb
}

/// Weights without per-tensor checksums (an older medsegdiff's, or exported from PyTorch) load, with a note.
pub(super) fn unverified_note(file: &TensorFile, path: &Path) {
    if !file.verified {
        eprintln!(
            "note: {} carries no tensor checksums (written by an older medsegdiff or another tool): its bytes \
             are loaded unverified",
            path.display()
        );
    }
}

//! Label maps to classes: what the loaders read (a mask's stored values, 0 = background) becomes class indices
//! 0..=N in [`Sample::mask`], and [`Dataset::batch`](super::Dataset::batch) turns those into N one-hot mask
//! channels, the network's `mask_channels`.
//!
//! - **Binary** (N = 1, the default for image folders and NIfTI folders): every non-zero value is foreground.
//! - **N classes** (`--classes N`, or an nnU-Net dataset whose `dataset.json` lists N foreground labels):
//!   - with `dataset.json`, its label values in ascending order are classes 1..N (BraTS's 1, 2, 4 become 1, 2, 3),
//!     and a value it does not list is an error naming the case;
//!   - otherwise values 1..N are classes 1..N; masks whose distinct non-zero values are not within 1..N but are
//!     exactly N of them (0/127/255 gray-level masks) are ranked in ascending order, and the mapping is reported;
//!   - every class must occur somewhere: a class no mask holds would only learn to be empty.
//!
//! One-hot, not softmax: each class is its own diffusion channel, and a pixel's label is the class whose fused
//! mask is set with the highest mean ([`crate::diffusion::fusion::label_map`]).

use super::Sample;
use crate::{Error, Result};

/// How many classes a dataset's label maps are read as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Classes {
    /// The source's own: dataset.json's labels for nnU-Net, else binary.
    #[default]
    Auto,
    /// N classes (1: binary, every foreground label merged).
    Count(usize),
}

/// Largest class count: label-map PNGs and NIfTI label volumes are written as 8-bit values.
pub const MAX_CLASSES: usize = 255;

/// Replace each sample's stored label values with class indices (see the module doc); `listed` is dataset.json's
/// label values (background included or not). `every_class`: refuse a class no mask holds (training; an
/// evaluation set may lack one). Returns the class count, the stored value of each class when they are not
/// 1..N (empty otherwise: what `sample` writes back), and a description of the mapping ("127→1, 255→2") for the
/// dataset's source line.
pub fn assign(
    samples: &mut [Sample],
    want: Classes,
    listed: Option<&[i64]>,
    every_class: bool,
    source: &str,
) -> Result<(usize, Vec<i64>, String)> {
    let listed: Option<Vec<i64>> = listed.map(|l| {
        let mut v: Vec<i64> = l.iter().copied().filter(|&x| x != 0).collect();
        v.sort_unstable();
        v.dedup();
        v
    });
    let n = match want {
        Classes::Count(n) => n,
        Classes::Auto => listed.as_ref().map_or(1, |l| l.len().max(1)),
    };
    if n == 0 || n > MAX_CLASSES {
        return Err(Error::Config(format!("--classes {n}: the class count must be 1 to {MAX_CLASSES}")));
    }
    if n == 1 {
        for s in samples.iter_mut() {
            s.mask.iter_mut().for_each(|v| *v = if *v != 0.0 { 1.0 } else { 0.0 });
        }
        return Ok((1, Vec::new(), String::new()));
    }
    // the distinct non-zero values, ascending (a set, not every pixel: masks can hold 10⁸ of them)
    let set: std::collections::BTreeSet<i64> =
        samples.iter().flat_map(|s| s.mask.iter().map(|&v| v.round() as i64)).filter(|&v| v != 0).collect();
    let found: Vec<i64> = set.into_iter().collect();
    let (values, note): (Vec<i64>, String) = match &listed {
        Some(l) if l.len() != n => {
            return Err(Error::Config(format!(
                "{source}: --classes {n}, but dataset.json lists {} foreground label(s) ({}); give --classes {} or \
                 --classes 1 (all foreground as one class)",
                l.len(),
                join(l),
                l.len()
            )))
        }
        Some(l) => {
            if let Some(v) = found.iter().find(|v| !l.contains(v)) {
                let who = samples.iter().find(|s| s.mask.iter().any(|&x| x.round() as i64 == *v)).map(|s| &s.name);
                return Err(Error::Config(format!(
                    "{source}: case {} has label value {v}, which dataset.json's labels ({}) do not list",
                    who.map_or("?", |n| n.as_str()),
                    join(l)
                )));
            }
            let note = if l.iter().enumerate().all(|(i, &v)| v == i as i64 + 1) { String::new() } else { arrows(l) };
            (l.clone(), note)
        }
        None if found.iter().all(|&v| (1..=n as i64).contains(&v)) => ((1..=n as i64).collect(), String::new()),
        None if found.len() == n => (found.clone(), arrows(&found)),
        None => {
            return Err(Error::Config(format!(
                "{source}: --classes {n}, but the masks hold {} distinct foreground value(s) ({}): a label map for {n} \
                 classes stores 1..{n} (or exactly {n} distinct values, ranked in ascending order)",
                found.len(),
                join(&found[..found.len().min(12)])
            )))
        }
    };
    for s in samples.iter_mut() {
        for v in s.mask.iter_mut() {
            let raw = v.round() as i64;
            *v =
                if raw == 0 { 0.0 } else { (values.iter().position(|&x| x == raw).expect("checked above") + 1) as f32 };
        }
    }
    let stored = if note.is_empty() { Vec::new() } else { values.clone() };
    for (k, v) in values.iter().enumerate().filter(|_| every_class) {
        if !found.contains(v) {
            return Err(Error::Config(format!(
                "{source}: class {} (label value {v}) has no pixel in any mask, so the network could only learn to \
                 leave it empty; check --classes ({n})",
                k + 1
            )));
        }
    }
    Ok((n, stored, note))
}

/// A dataset's source line with its class count (and value mapping) when it has more than one class.
pub fn describe(source: String, classes: usize, note: &str) -> String {
    match (classes, note) {
        (1, _) => source,
        (n, "") => format!("{source} ({n} classes)"),
        (n, m) => format!("{source} ({n} classes: {m})"),
    }
}

fn join(v: &[i64]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

fn arrows(values: &[i64]) -> String {
    values.iter().enumerate().map(|(i, v)| format!("{v}→{}", i + 1)).collect::<Vec<_>>().join(", ")
}

/// The one-hot planes of a class-index map (S·S values in 0..=n): n planes, plane k − 1 set where the label is k.
pub fn one_hot(labels: &[f32], n: usize) -> Vec<f32> {
    (1..=n).flat_map(|k| labels.iter().map(move |&v| if v == k as f32 { 1.0 } else { 0.0 })).collect()
}

/// The binary plane of class k (1-based) in a label map.
pub fn class_plane(labels: &[f32], k: usize) -> Vec<f32> {
    labels.iter().map(|&v| if v == k as f32 { 1.0 } else { 0.0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(masks: &[&[f32]]) -> Vec<Sample> {
        masks
            .iter()
            .enumerate()
            .map(|(i, m)| Sample {
                name: format!("s{i}"),
                image: vec![0.0; m.len()],
                mask: m.to_vec(),
                stored: [1, m.len()],
                slice: None,
            })
            .collect()
    }

    #[test]
    fn binary_merges_every_label_and_counts_pick_values() {
        let mut s = samples(&[&[0.0, 2.0, 255.0, 1.0]]);
        assert_eq!(assign(&mut s, Classes::Auto, None, true, "d").unwrap().0, 1);
        assert_eq!(s[0].mask, [0.0, 1.0, 1.0, 1.0]);
        // values 1..N are the classes
        let mut s = samples(&[&[0.0, 2.0, 1.0], &[3.0, 0.0, 0.0]]);
        assert_eq!(assign(&mut s, Classes::Count(3), None, true, "d").unwrap(), (3, vec![], String::new()));
        assert_eq!((s[0].mask.clone(), s[1].mask.clone()), (vec![0.0, 2.0, 1.0], vec![3.0, 0.0, 0.0]));
        // gray levels 127/255 are ranked, and the mapping is said
        let mut s = samples(&[&[0.0, 127.0, 255.0]]);
        let (n, stored, note) = assign(&mut s, Classes::Count(2), None, true, "d").unwrap();
        assert_eq!((n, note.as_str(), s[0].mask.clone()), (2, "127→1, 255→2", vec![0.0, 1.0, 2.0]));
        assert_eq!(stored, [127, 255], "the values sample writes back");
    }

    #[test]
    fn dataset_json_fixes_the_values_and_errors_name_the_problem() {
        // BraTS: 1, 2, 4 -> 1, 2, 3
        let mut s = samples(&[&[0.0, 4.0, 2.0, 1.0]]);
        let (n, _, note) = assign(&mut s, Classes::Auto, Some(&[0, 1, 2, 4]), true, "d").unwrap();
        assert_eq!((n, note.as_str(), s[0].mask.clone()), (3, "1→1, 2→2, 4→3", vec![0.0, 3.0, 2.0, 1.0]));
        let e =
            assign(&mut samples(&[&[0.0, 3.0]]), Classes::Auto, Some(&[0, 1, 2]), true, "d").unwrap_err().to_string();
        assert!(e.contains("case s0") && e.contains("label value 3"), "{e}");
        let e =
            assign(&mut samples(&[&[1.0]]), Classes::Count(3), Some(&[0, 1, 2]), true, "d").unwrap_err().to_string();
        assert!(e.contains("--classes 3") && e.contains("lists 2"), "{e}");
        // a class no mask holds
        let e = assign(&mut samples(&[&[0.0, 1.0]]), Classes::Count(2), None, true, "d").unwrap_err().to_string();
        assert!(e.contains("class 2") && e.contains("no pixel"), "{e}");
        // too many distinct values
        let e = assign(&mut samples(&[&[5.0, 6.0, 7.0]]), Classes::Count(2), None, true, "d").unwrap_err().to_string();
        assert!(e.contains("3 distinct") && e.contains("5, 6, 7"), "{e}");
        let e = assign(&mut samples(&[&[1.0]]), Classes::Count(0), None, true, "d").unwrap_err().to_string();
        assert!(e.contains("1 to 255"), "{e}");
    }

    #[test]
    fn label_maps_round_trip_through_one_hot() {
        let labels = [0.0, 1.0, 2.0, 2.0, 0.0, 1.0];
        let oh = one_hot(&labels, 2);
        assert_eq!(oh, [0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(crate::diffusion::fusion::label_map(&oh, &oh, 2), labels);
        assert_eq!(class_plane(&labels, 2), [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    }
}

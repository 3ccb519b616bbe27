//! nnU-Net raw datasets: 2-D PNG and NIfTI volumes, input channels stacked from `CASE_0000`, `CASE_0001`, ...;
//! dataset.json's labels are the classes (`--classes 1` merges them); missing or gapped channels are refused by
//! name; `train --data` takes one and adopts its channel and class counts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use medsegdiff::data::labels::Classes;
use medsegdiff::data::{nifti, nnunet, resize_plane};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("msd-nnunet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("imagesTr")).unwrap();
    std::fs::create_dir_all(d.join("labelsTr")).unwrap();
    d
}

fn dataset_json(dir: &Path, ending: &str) {
    let j = format!(
        r#"{{"channel_names": {{"0": "T1", "1": "FLAIR"}}, "labels": {{"background": 0, "edema": 1, "tumour": 2}},
            "numTraining": 4, "file_ending": "{ending}"}}"#
    );
    std::fs::write(dir.join("dataset.json"), j).unwrap();
}

/// 4 cases of 20×14: channel 0 a ramp, channel 1 its inverse; labels 0 / 1 / 2 in bands.
fn png_dataset(dir: &Path) {
    dataset_json(dir, ".png");
    for c in 0..4u32 {
        let ramp = image::GrayImage::from_fn(20, 14, |x, y| image::Luma([(x * 12 + y + c * 3) as u8]));
        let inv = image::GrayImage::from_fn(20, 14, |x, y| image::Luma([255 - (x * 12 + y + c * 3) as u8]));
        let lab = image::GrayImage::from_fn(20, 14, |x, _| {
            image::Luma([if x < 5 {
                2
            } else if x < 9 {
                1
            } else {
                0
            }])
        });
        ramp.save(dir.join(format!("imagesTr/case{c:03}_0000.png"))).unwrap();
        inv.save(dir.join(format!("imagesTr/case{c:03}_0001.png"))).unwrap();
        lab.save(dir.join(format!("labelsTr/case{c:03}.png"))).unwrap();
    }
}

#[test]
fn png_cases_stack_their_channels_and_labels_are_classes() {
    let dir = tmp("png");
    png_dataset(&dir);
    let ds = nnunet::load(&dir, 16, 2, false, false, Classes::Auto).unwrap();
    assert_eq!((ds.len(), ds.channels, ds.size, ds.classes), (4, 2, 16, 2));
    assert!(ds.source.contains("T1, FLAIR") && ds.source.contains("tumour=2"), "{}", ds.source);
    let s = &ds.samples[0];
    let (t1, h, w) = medsegdiff::data::folder::read_image(&dir.join("imagesTr/case000_0000.png"), 1).unwrap();
    let (flair, _, _) = medsegdiff::data::folder::read_image(&dir.join("imagesTr/case000_0001.png"), 1).unwrap();
    assert_eq!(s.image[..256], resize_plane(&t1, h, w, 16, false)[..], "channel 0 is _0000");
    assert_eq!(s.image[256..], resize_plane(&flair, h, w, 16, false)[..], "channel 1 is _0001");
    // the label map as stored: 2 in the first 5 of 20 columns, 1 in the next 4
    let (lab, _, _) = medsegdiff::data::folder::read_mask(&dir.join("labelsTr/case000.png")).unwrap();
    assert_eq!(
        (lab.iter().filter(|&&v| v == 2.0).count(), lab.iter().filter(|&&v| v == 1.0).count()),
        (5 * 14, 4 * 14)
    );
    // classes 1 and 2 are dataset.json's edema and tumour; the batch has one one-hot channel per class
    let want = resize_plane(&lab, 14, 20, 16, true);
    assert_eq!(s.mask, want);
    let (_, masks) = ds.batch(&[0], None).unwrap();
    assert_eq!(masks.shape(), [1, 2, 16, 16]);
    let m = masks.to_vec();
    let plane = |k: f32| want.iter().map(|&v| f32::from(u8::from(v == k))).collect::<Vec<_>>();
    assert_eq!((m[..256].to_vec(), m[256..].to_vec()), (plane(1.0), plane(2.0)));
    // --classes 1: both labels are foreground, x < 9 of 20 columns
    let one = nnunet::load(&dir, 16, 2, false, false, Classes::Count(1)).unwrap();
    assert_eq!(one.classes, 1);
    assert_eq!(one.samples[0].mask, want.iter().map(|&v| f32::from(u8::from(v != 0.0))).collect::<Vec<_>>());
    let e = nnunet::load(&dir, 16, 2, false, false, Classes::Count(3)).err().unwrap().to_string();
    assert!(e.contains("--classes 3") && e.contains("lists 2"), "{e}");

    // a case missing a channel, and a gap in the numbering, are refused by name
    std::fs::remove_file(dir.join("imagesTr/case002_0001.png")).unwrap();
    let e = nnunet::load(&dir, 16, 2, false, false, Classes::Auto).err().unwrap().to_string();
    assert!(e.contains("case002") && e.contains("channel_names lists 2"), "{e}");
    std::fs::copy(dir.join("imagesTr/case002_0000.png"), dir.join("imagesTr/case002_0002.png")).unwrap();
    let e = nnunet::load(&dir, 16, 2, false, false, Classes::Auto).err().unwrap().to_string();
    assert!(e.contains("case002") && e.contains("_0002 where _0001 was expected"), "{e}");
}

fn gz_volume(path: &Path, dims: [usize; 3], data: &[f32]) {
    let plain = path.with_extension("tmp");
    nifti::write_f32(&plain, dims, data).unwrap();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&std::fs::read(&plain).unwrap()).unwrap();
    std::fs::write(path, e.finish().unwrap()).unwrap();
    std::fs::remove_file(plain).unwrap();
}

#[test]
fn nifti_cases_are_sliced_with_each_modality_scaled_on_its_own() {
    let dir = tmp("nii");
    dataset_json(&dir, ".nii.gz");
    let dims = [6, 5, 4];
    let n = 6 * 5 * 4;
    for c in 0..2 {
        let t1: Vec<f32> = (0..n).map(|i| (i * 7 % 23) as f32 + c as f32).collect();
        let flair: Vec<f32> = t1.iter().map(|v| 1000.0 - 40.0 * v).collect(); // another scale, inverted
                                                                              // foreground (label 2) in slices z = 1 and 2 only
        let lab: Vec<f32> = (0..n).map(|i| if (1..3).contains(&(i / 30)) && i % 6 < 3 { 2.0 } else { 0.0 }).collect();
        gz_volume(&dir.join(format!("imagesTr/p{c}_0000.nii.gz")), dims, &t1);
        gz_volume(&dir.join(format!("imagesTr/p{c}_0001.nii.gz")), dims, &flair);
        gz_volume(&dir.join(format!("labelsTr/p{c}.nii.gz")), dims, &lab);
    }
    // only label 2 (tumour) occurs, so the two classes dataset.json names cannot train: merged, they can
    let e = nnunet::load(&dir, 8, 2, false, false, Classes::Auto).err().unwrap().to_string();
    assert!(e.contains("class 1 (label value 1) has no pixel"), "{e}");
    let ds = nnunet::load(&dir, 8, 2, false, false, Classes::Count(1)).unwrap();
    assert_eq!((ds.len(), ds.channels), (4, 2), "2 cases × 2 slices with foreground");
    for s in &ds.samples {
        let (a, b) = s.image.split_at(64);
        // per-modality scaling: FLAIR is an inverted rescale of T1, so after scaling each is 1 − the other
        // (up to the percentile clipping, which is the same on both)
        let worst = a.iter().zip(b).map(|(x, y)| (x + y - 1.0).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{}: channels are not scaled on their own ({worst})", s.name);
        assert!(s.mask.contains(&1.0));
    }
}

#[test]
fn the_nifti_folder_form_stacks_modalities_too_and_keeps_numbered_case_names_whole() {
    let dir = std::env::temp_dir().join(format!("msd-nifti-mod-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("labels")).unwrap();
    let dims = [4, 4, 3];
    let vol: Vec<f32> = (0..48).map(|i| i as f32).collect();
    let lab: Vec<f32> = (0..48).map(|i| if i % 5 == 0 { 1.0 } else { 0.0 }).collect();
    nifti::write_f32(&dir.join("images/a_0000.nii"), dims, &vol).unwrap();
    nifti::write_f32(&dir.join("images/a_0001.nii"), dims, &vol.iter().map(|v| -v).collect::<Vec<_>>()).unwrap();
    nifti::write_f32(&dir.join("labels/a.nii"), dims, &lab).unwrap();
    // `patient_0001` is a case of its own: its label has the full name
    nifti::write_f32(&dir.join("images/patient_0001.nii"), dims, &vol).unwrap();
    nifti::write_f32(&dir.join("labels/patient_0001.nii"), dims, &lab).unwrap();
    let ds = nifti::load(&dir, 8, 2, 2, false, false).unwrap();
    let names: Vec<&str> = ds.samples.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.iter().any(|n| n.starts_with("a_s")) && names.iter().any(|n| n.starts_with("patient_0001_s")),
        "{names:?}"
    );
    let a = ds.samples.iter().find(|s| s.name.starts_with("a_s")).unwrap();
    assert_ne!(a.image[..64], a.image[64..], "a's two channels are its two modalities");
    let p = ds.samples.iter().find(|s| s.name.starts_with("patient")).unwrap();
    assert_eq!(p.image[..64], p.image[64..], "a one-volume case fills both channels");
}

#[test]
fn train_takes_an_nnunet_dataset_and_its_channel_count() {
    let dir = tmp("cli");
    png_dataset(&dir);
    let run = dir.join("run");
    // (a planned run: it times candidates, without tuning here so the user's tune cache stays untouched)
    let out = Command::new(env!("CARGO_BIN_EXE_medsegdiff"))
        .env("MEDSEGDIFF_TUNE", "off")
        .args(["train", "--data", dir.to_str().unwrap(), "--image-size", "16", "--steps", "1", "--batch-size", "2"])
        .args(["--val-every", "0", "--out", run.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model"]["input_img_channels"], 2, "{cfg}");
    assert_eq!(cfg["model"]["mask_channels"], 2, "dataset.json's two labels, one mask channel each: {cfg}");
}

#[test]
fn a_dataset_json_with_a_channel_twice_is_an_error_not_a_panic() {
    let p = Path::new("dataset.json");
    let e = nnunet::parse_meta(
        r#"{"channel_names": {"0": "T1", "00": "T2"}, "labels": {"background": 0}, "file_ending": ".png"}"#,
        p,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("channel 0 twice"), "{e}");
    let m = nnunet::parse_meta(
        r#"{"channel_names": {"1": "T2", "0": "T1"}, "labels": {"bg": 0, "a": [2, 1]}, "file_ending": ".png"}"#,
        p,
    )
    .unwrap();
    assert_eq!(m.channels, ["T1", "T2"]);
}

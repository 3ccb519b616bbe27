//! Multi-class label maps end to end: `--classes` trains one mask channel per class; `sample` writes a label-map
//! PNG (and a NIfTI label volume) with a soft mask per class; `eval` scores each class and each volume per class;
//! label maps that cannot be read as the classes asked for, and networks whose mask channels disagree, are
//! refused by name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use medsegdiff::data::folder::read_mask;
use medsegdiff::data::nifti::{read_volume, write_f32};
use medsegdiff::data::synthetic::generate_classes;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("msd-classes-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn medsegdiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medsegdiff")).env("MEDSEGDIFF_TUNE", "off").args(args).output().unwrap()
}

fn run(args: &[&str]) -> String {
    let out = medsegdiff(args);
    let (so, se) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{args:?} failed:\n{so}\n{se}");
    so.into_owned()
}

fn fails(args: &[&str]) -> String {
    let out = medsegdiff(args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A folder dataset of `n` 20×20 two-class scans: bright lesions stored as 127, dark ones as 255 (gray-level
/// label maps, which `--classes 2` ranks).
fn two_class_folder(dir: &Path, n: usize) {
    let ds = generate_classes(n, 20, 1, 5, 2);
    for sub in ["images", "masks"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for s in &ds.samples {
        let img =
            image::GrayImage::from_fn(20, 20, |x, y| image::Luma([(s.image[(y * 20 + x) as usize] * 255.0) as u8]));
        img.save(dir.join(format!("images/{}.png", s.name))).unwrap();
        let value = |v: f32| [0u8, 127, 255][v as usize];
        let m = image::GrayImage::from_fn(20, 20, |x, y| image::Luma([value(s.mask[(y * 20 + x) as usize])]));
        m.save(dir.join(format!("masks/{}.png", s.name))).unwrap();
    }
}

#[test]
fn two_classes_train_sample_and_score_per_class() {
    let dir = tmp("all");
    let data = dir.join("data");
    two_class_folder(&data, 8);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (ds, runp) = (s(&data), dir.join("run"));
    let runs = s(&runp);
    let mut args = vec!["train", "--data", &ds, "--classes", "2", "--preset", "tiny", "--out", &runs];
    args.extend(["--image-size", "16", "--steps", "2", "--batch-size", "2", "--val-every", "0"]);
    let out = run(&args);
    assert!(out.contains("2 classes: 127→1, 255→2"), "the ranked values are said: {out}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runp.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model"]["mask_channels"], 2, "{cfg}");
    let weights = s(&runp.join("last.safetensors"));

    // sample: a label map at the scan's size with values 0..=2, a soft mask per class, no binary soft mask
    let out = dir.join("out");
    let sampled = ["--sampling-steps", "2", "--ensemble", "2"];
    let (input, outs) = (s(&data.join("images")), s(&out));
    let mut args = vec!["sample", "--weights", &weights, "--input", &input, "--out", &outs];
    args.extend(sampled);
    run(&args);
    let name = "synthetic_00000";
    let (labels, h, w) = read_mask(&out.join(format!("{name}_mask.png"))).unwrap();
    assert_eq!((h, w), (20, 20));
    // the classes come back as the values the training masks stored them with
    assert!(labels.iter().all(|&v| v == 0.0 || v == 127.0 || v == 255.0), "label values 0, 127, 255");
    assert!(labels.iter().any(|&v| v != 0.0), "the untrained network labels some pixels (seeded: always the same)");
    for f in ["soft_1", "soft_2", "overlay", "uncertainty"] {
        assert!(out.join(format!("{name}_{f}.png")).is_file(), "{f}");
    }
    assert!(!out.join(format!("{name}_soft.png")).exists());

    // eval: one row per image and class, means per class and over classes
    let csv = dir.join("scores.csv");
    let csvs = s(&csv);
    let args = ["eval", "--weights", &weights, "--data", &ds, "--csv", &csvs, "--sampling-steps", "2"];
    let out = run(&args);
    assert!(out.contains("class 1: mean of") && out.contains("class 2: mean of"), "{out}");
    assert!(out.contains("mean Dice over 2 classes"), "{out}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("image,dice,iou,hd95,hd95_mm,tp,fp,fn,slice,class\n"), "{text}");
    let classes: Vec<&str> = text.lines().skip(1).map(|l| l.rsplit(',').next().unwrap()).collect();
    assert_eq!(classes.len(), 16, "8 images × 2 classes");
    assert_eq!(classes.iter().filter(|&&c| c == "2").count(), 8);
    // the merge reads them back, per class
    let merged = run(&["eval", "--merge", &csvs]);
    assert!(merged.contains("mean Dice over 2 classes"), "{merged}");

    // a NIfTI volume in: its label volume holds classes, and each class has a soft volume
    let vol = dir.join("scan.nii");
    let img: Vec<f32> = (0..20 * 20 * 3).map(|i| ((i * 37) % 101) as f32).collect();
    write_f32(&vol, [20, 20, 3], &img).unwrap();
    let vout = dir.join("vout");
    let (vs, vos) = (s(&vol), s(&vout));
    let mut args = vec!["sample", "--weights", &weights, "--input", &vs, "--out", &vos];
    args.extend(sampled);
    run(&args);
    let lab = read_volume(&vout.join("scan_mask.nii.gz")).unwrap();
    assert_eq!(lab.dims, [20, 20, 3]);
    assert!(lab.data.iter().all(|&v| v == 0.0 || v == 127.0 || v == 255.0));
    assert!(lab.data.iter().any(|&v| v != 0.0), "the untrained network labels some voxels (seeded: always the same)");
    for k in [1, 2] {
        assert_eq!(read_volume(&vout.join(format!("scan_soft_{k}.nii.gz"))).unwrap().dims, [20, 20, 3]);
    }

    // the network fixes the classes: eval --classes 1 on it is refused, naming both counts
    let e = fails(&["eval", "--weights", &weights, "--data", &ds, "--classes", "1"]);
    assert!(e.contains("--classes 1") && e.contains("2 mask channel"), "{e}");
}

#[test]
fn label_maps_and_configs_that_disagree_with_the_classes_are_refused() {
    let dir = tmp("bad");
    let data = dir.join("data");
    two_class_folder(&data, 4);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let ds = s(&data);
    // a config whose mask_channels is 1 for a two-class set
    let cfg = dir.join("model.json");
    std::fs::write(&cfg, serde_json::to_string(&common::micro().0).unwrap()).unwrap();
    let c = s(&cfg);
    let e =
        fails(&["train", "--data", &ds, "--classes", "2", "--config", &c, "--steps", "1", "--out", &s(&dir.join("r"))]);
    assert!(e.contains("2 class(es)") && e.contains("mask_channels = 1"), "{e}");
    // three stored values for two classes
    let m = image::GrayImage::from_fn(20, 20, |x, _| image::Luma([[0u8, 50, 100, 200][(x / 5) as usize]]));
    m.save(data.join("masks/synthetic_00000.png")).unwrap();
    let e = fails(&[
        "train",
        "--data",
        &ds,
        "--classes",
        "2",
        "--preset",
        "tiny",
        "--steps",
        "1",
        "--out",
        &s(&dir.join("r")),
    ]);
    assert!(e.contains("distinct foreground value") && e.contains("50, 100"), "{e}");
    // the synthetic set has two classes at most
    let e = fails(&["train", "--classes", "3", "--steps", "1", "--out", &s(&dir.join("r"))]);
    assert!(e.contains("--classes 3") && e.contains("1 or 2 classes"), "{e}");
    let e = fails(&["train", "--classes", "0"]);
    assert!(e.contains("at least 1"), "{e}");
}

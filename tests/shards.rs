//! `sample` and `eval` with `--shard i/n`: n processes write exactly the files (and score rows) one process
//! writes, bit for bit, because each image's noise is seeded by its name and shards run whole batches;
//! `eval --merge` combines the shards' CSVs. And `sample` reads an nnU-Net imagesTs/ folder one case per
//! image for a multi-channel model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use medsegdiff::data::synthetic;
use medsegdiff::model::UnetConfig;
use medsegdiff::train::Trainer;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("msd-shards-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_medsegdiff")).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn sharded_sample_and_eval_equal_one_process() {
    let dir = tmp("one");
    let (model, cfg) = common::micro();
    let weights = dir.join("w.safetensors");
    Trainer::new(&model, cfg, synthetic::generate(6, 16, 1, 3)).unwrap().save(&weights).unwrap();
    let w = weights.to_str().unwrap();
    // 5 scans of different sizes, with masks, as a folder dataset
    for d in ["ds/images", "ds/masks"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    for i in 0..5u32 {
        let (wd, ht) = (14 + 3 * i, 12 + i);
        image::GrayImage::from_fn(wd, ht, |x, y| image::Luma([((x * 9 + y * 5 + i * 40) % 256) as u8]))
            .save(dir.join(format!("ds/images/scan{i}.png")))
            .unwrap();
        image::GrayImage::from_fn(wd, ht, |x, y| image::Luma([u8::from(x + y < 10 + i)]))
            .save(dir.join(format!("ds/masks/scan{i}.png")))
            .unwrap();
    }
    let images = dir.join("ds/images");
    let (full, parts) = (dir.join("full"), dir.join("parts"));
    let common = ["--weights", w, "--sampling-steps", "3", "--ensemble", "2", "--eta", "0.5", "--batch-size", "2"];
    run(&[&["sample", "--input", images.to_str().unwrap(), "--out", full.to_str().unwrap()][..], &common].concat());
    for sh in ["0/2", "1/2"] {
        let args = ["sample", "--input", images.to_str().unwrap(), "--out", parts.to_str().unwrap(), "--shard", sh];
        run(&[&args[..], &common].concat());
    }
    let (a, b) = (files(&full), files(&parts));
    assert_eq!(a.len(), 20, "4 files per scan: {:?}", a.keys());
    assert!(a == b, "shards wrote other files or other bytes than one process");

    let ds = dir.join("ds");
    let csv = |name: &str| dir.join(name).to_str().unwrap().to_string();
    run(&[&["eval", "--data", ds.to_str().unwrap(), "--csv", &csv("full.csv")][..], &common].concat());
    for (sh, out) in [("0/2", "s0.csv"), ("1/2", "s1.csv")] {
        let args = ["eval", "--data", ds.to_str().unwrap(), "--csv", &csv(out), "--shard", sh];
        run(&[&args[..], &common].concat());
    }
    run(&["eval", "--merge", &csv("s0.csv"), &csv("s1.csv"), "--csv", &csv("merged.csv")]);
    let (full_rows, merged) =
        (std::fs::read_to_string(csv("full.csv")).unwrap(), std::fs::read_to_string(csv("merged.csv")).unwrap());
    assert_eq!(full_rows.lines().count(), 6, "{full_rows}");
    assert_eq!(full_rows, merged, "merged shard scores differ from one process's");
    // overlapping shards are refused by name
    let out = Command::new(env!("CARGO_BIN_EXE_medsegdiff"))
        .args(["eval", "--merge", &csv("s0.csv"), &csv("full.csv")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("the shards overlap"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_medsegdiff"))
        .args(["sample", "--input", "x", "--shard", "2/2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--shard") && err.contains("0 <= i < n"), "{err}");
}

#[test]
fn sample_reads_an_nnunet_images_ts_folder_one_case_per_image() {
    let dir = tmp("nnunet");
    let (micro, cfg) = common::micro();
    let model = UnetConfig { input_img_channels: 2, ..micro };
    let weights = dir.join("w.safetensors");
    Trainer::new(&model, cfg, synthetic::generate(6, 16, 2, 3)).unwrap().save(&weights).unwrap();
    let ts = dir.join("imagesTs");
    std::fs::create_dir_all(&ts).unwrap();
    for case in ["a", "b"] {
        for ch in 0..2u32 {
            image::GrayImage::from_fn(20, 18, |x, y| image::Luma([((x + y) * (ch + 3)) as u8]))
                .save(ts.join(format!("{case}_{ch:04}.png")))
                .unwrap();
        }
    }
    let out = dir.join("out");
    run(&[
        "sample",
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        ts.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--sampling-steps",
        "2",
    ]);
    let names: Vec<String> = files(&out).into_keys().collect();
    assert!(names.contains(&"a_mask.png".to_string()) && names.contains(&"b_mask.png".to_string()), "{names:?}");
    assert_eq!(names.len(), 8, "one case per image, not one per channel file: {names:?}");
    let m = image::open(out.join("a_mask.png")).unwrap();
    assert_eq!((m.width(), m.height()), (20, 18), "the mask is at the case's own size");
}

//! Volumes in and out, and weights out: `sample` on a NIfTI volume writes label/soft/uncertainty volumes with the
//! scan's header; `eval --nifti` scores every slice (empty ones too) and each volume in 3-D, with HD95 in
//! millimetres, also across shards; DPM-Solver++ and STAPLE run from the CLI; `export` writes a state_dict that
//! `sample` takes without flags and whose settings it defends.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::micro;
use medsegdiff::data::nifti::{read_volume, write_f32};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("msd-volumes-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_medsegdiff")).args(args).output().unwrap();
    let (so, se) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{args:?} failed:\n{so}\n{se}");
    so.into_owned()
}

/// A 12x10x5 volume with 2 x 3 x 4 mm voxels and an sform; label foreground in slices z = 1..3 only.
fn volume_pair(dir: &Path, name: &str) -> PathBuf {
    let dims = [12, 10, 5];
    let img: Vec<f32> = (0..600).map(|i| ((i * 37) % 101) as f32).collect();
    let lab: Vec<f32> = (0..600).map(|i| f32::from((1..4).contains(&(i / 120)) && i % 12 < 6)).collect();
    let ip = dir.join(format!("images/{name}.nii"));
    for (p, v) in [(&ip, &img), (&dir.join(format!("labels/{name}.nii")), &lab)] {
        write_f32(p, dims, v).unwrap();
        let mut b = std::fs::read(p).unwrap();
        for (i, s) in [2.0f32, 3.0, 4.0].iter().enumerate() {
            b[80 + 4 * i..84 + 4 * i].copy_from_slice(&s.to_le_bytes());
        }
        b[254..256].copy_from_slice(&1i16.to_le_bytes());
        for (i, s) in [2.0f32, 0.0, 0.0, 5.0, 0.0, 3.0, 0.0, 6.0, 0.0, 0.0, 4.0, 7.0].iter().enumerate() {
            b[280 + 4 * i..284 + 4 * i].copy_from_slice(&s.to_le_bytes());
        }
        std::fs::write(p, b).unwrap();
    }
    ip
}

#[test]
fn volumes_in_volumes_out_and_weights_out() {
    let dir = tmp("all");
    let cfg = dir.join("model.json");
    std::fs::write(&cfg, serde_json::to_string(&micro().0).unwrap()).unwrap();
    let runp = dir.join("run");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    run(&["train", "--config", &s(&cfg), "--steps", "2", "--batch-size", "2", "--synthetic-count", "6"]
        .iter()
        .copied()
        .chain(["--val-every", "0", "--out", &s(&runp)])
        .collect::<Vec<_>>());
    let weights = runp.join("last.safetensors");
    let ds = dir.join("nifti");
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(ds.join(sub)).unwrap();
    }
    let scan = volume_pair(&ds, "case1");
    volume_pair(&ds, "case2");

    // sample a volume: three volumes out, each with the scan's shape, voxel size and sform
    let out = dir.join("out");
    run(&[
        "sample",
        "--weights",
        &s(&weights),
        "--input",
        &s(&scan),
        "--sampler",
        "dpmpp",
        "--sampling-steps",
        "3",
        "--ensemble",
        "3",
        "--fusion",
        "staple",
        "--batch-size",
        "2",
        "--out",
        &s(&out),
    ]);
    let src = read_volume(&scan).unwrap();
    for suffix in ["mask", "soft", "uncertainty"] {
        let v = read_volume(&out.join(format!("case1_{suffix}.nii.gz"))).unwrap();
        assert_eq!((v.dims, v.spacing), (src.dims, src.spacing), "{suffix}");
        assert_eq!(v.header[252..344], src.header[252..344], "{suffix}: qform and sform are the scan's");
        if suffix == "mask" {
            assert!(v.data.iter().all(|&x| x == 0.0 || x == 1.0), "labels are 0/1");
        } else {
            assert!(v.data.iter().all(|&x| (0.0..=1.0).contains(&x)), "{suffix} in [0, 1]");
        }
    }

    // eval on the volumes: every slice scored (5 per volume, 2 of them with empty truth), 3-D Dice per volume
    let csv = dir.join("all.csv");
    let table = run(&[
        "eval",
        "--weights",
        &s(&weights),
        "--nifti",
        &s(&ds),
        "--sampling-steps",
        "2",
        "--batch-size",
        "3",
        "--csv",
        &s(&csv),
    ]);
    assert!(table.contains("volume (3-D)") && table.contains("case1") && table.contains("HD95 mm"), "{table}");
    let rows = medsegdiff::metrics::read_score_csvs(std::slice::from_ref(&csv)).unwrap();
    assert_eq!(rows.len(), 10, "every slice of both volumes");
    assert!(rows.iter().all(|r| r.hd95_mm.is_some() && r.overlap.is_some() && r.slice.is_some()));
    let vols = medsegdiff::metrics::per_volume(&rows);
    assert_eq!((vols.len(), vols[0].slices), (2, 5));
    // shards split volumes between processes; merged, the volumes score the same
    let shard_csv: Vec<String> = (0..2).map(|i| s(&dir.join(format!("s{i}.csv")))).collect();
    for (i, c) in shard_csv.iter().enumerate() {
        let shard = format!("{i}/2");
        run(&["eval", "--weights", &s(&weights), "--nifti", &s(&ds), "--sampling-steps", "2", "--batch-size", "3"]
            .iter()
            .copied()
            .chain(["--shard", &shard, "--csv", c])
            .collect::<Vec<_>>());
    }
    let merged =
        medsegdiff::metrics::read_score_csvs(&shard_csv.iter().map(PathBuf::from).collect::<Vec<_>>()).unwrap();
    assert_eq!(medsegdiff::metrics::per_volume(&merged), vols, "sharded volumes differ from one process's");

    // export: a plain state_dict with its settings, that sample takes without --config, refusing contradictions
    let exported = dir.join("model.safetensors");
    run(&["export", "--weights", &s(&weights), "--out", &s(&exported)]);
    let kwargs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.kwargs.json")).unwrap()).unwrap();
    assert_eq!(kwargs["unet"]["dim"], 8, "{kwargs}");
    assert_eq!(kwargs["diffusion"]["timesteps"], 1000);
    assert!(std::fs::read_to_string(&cfg).unwrap().starts_with("{\"dim\":8"), "the --config file is untouched");
    // an export onto its own checkpoint is refused
    let bad = Command::new(env!("CARGO_BIN_EXE_medsegdiff"))
        .args(["export", "--weights", &s(&weights), "--out", &s(&weights)])
        .output()
        .unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("would replace the checkpoint"));
    let file = medsegdiff::model::weights::TensorFile::read(&exported).unwrap();
    assert!(file.tensors.keys().all(|k| !k.contains('.') || !k.starts_with("ema.")), "package names, no prefixes");
    // (--config keeps the tiny preset's training settings: pred_x0)
    assert_eq!(file.metadata.get("objective").map(String::as_str), Some("pred_x0"));
    let out2 = dir.join("out2");
    run(&["sample", "--weights", &s(&exported), "--input", &s(&scan), "--sampling-steps", "2", "--out", &s(&out2)]);
    assert!(out2.join("case1_mask.nii.gz").exists());
    let bad = Command::new(env!("CARGO_BIN_EXE_medsegdiff"))
        .args(["sample", "--weights", &s(&exported), "--input", &s(&scan), "--objective", "pred_v"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("exported with objective pred_x0"), "{err}");
    // the EMA weights are what was exported
    let ck = medsegdiff::model::weights::TensorFile::read(&weights).unwrap();
    let (name, t) = file.tensors.iter().next().unwrap();
    assert_eq!(ck.tensors[&format!("ema.{name}")].data, t.data);
}

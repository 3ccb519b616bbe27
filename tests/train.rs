//! Training runs end to end on a micro model: resume is bit-identical, checkpoints are checked, the CLI's
//! train / sample / eval commands produce their files.

use std::path::PathBuf;
use std::process::Command;

mod common;

use common::micro;
use medsegdiff::data::synthetic;
use medsegdiff::train::Trainer;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("msd-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn resume_gives_bit_identical_losses() {
    let (model, cfg) = micro();
    let data = || synthetic::generate(12, 16, 1, 5);
    let mut full = Trainer::new(&model, cfg.clone(), data()).unwrap();
    let straight: Vec<u32> = (0..6).map(|_| full.train_step().unwrap().to_bits()).collect();

    let dir = tmp("resume");
    let ckpt = dir.join("ckpt.safetensors");
    let mut first = Trainer::new(&model, cfg.clone(), data()).unwrap();
    let mut resumed: Vec<u32> = (0..3).map(|_| first.train_step().unwrap().to_bits()).collect();
    first.save(&ckpt).unwrap();
    drop(first);
    let mut second = Trainer::resume(&ckpt, data(), None).unwrap();
    assert_eq!(second.step, 3);
    resumed.extend((0..3).map(|_| second.train_step().unwrap().to_bits()));
    assert_eq!(straight, resumed, "losses (as bits) of an uninterrupted run vs a run resumed at step 3");
    // the weights, the AdamW moments and the EMA (which the loss never sees) must match bit for bit too
    let bits = |ts: &[medsegdiff::Tensor]| ts.iter().flat_map(|t| t.to_vec()).map(f32::to_bits).collect::<Vec<_>>();
    let params = |t: &Trainer| t.unet.params().iter().map(|(_, p)| p.clone()).collect::<Vec<_>>();
    assert!(bits(&params(&full)) == bits(&params(&second)), "weights differ after resume");
    assert!(
        bits(&full.adam.m) == bits(&second.adam.m) && bits(&full.adam.v) == bits(&second.adam.v),
        "AdamW moments differ"
    );
    assert!(bits(&full.ema.shadow) == bits(&second.ema.shadow), "EMA weights differ after resume");
}

#[test]
fn resume_refuses_other_data_and_broken_files() {
    let (model, cfg) = micro();
    let dir = tmp("refuse");
    let ckpt = dir.join("ckpt.safetensors");
    Trainer::new(&model, cfg, synthetic::generate(6, 16, 1, 1)).unwrap().save(&ckpt).unwrap();
    let e = Trainer::resume(&ckpt, synthetic::generate(6, 16, 1, 2), None).err().unwrap().to_string();
    assert!(e.contains("trained on other data"), "{e}");
    let bytes = std::fs::read(&ckpt).unwrap();
    let broken = dir.join("broken.safetensors");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let e = Trainer::resume(&broken, synthetic::generate(6, 16, 1, 1), None).err().unwrap().to_string();
    assert!(e.contains("broken.safetensors") && e.contains("not a valid safetensors"), "{e}");
    // every tensor's bytes carry a CRC-32: a flipped bit or a zeroed block in the data is refused, naming the
    // file and the tensor
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut flipped = bytes.clone();
    flipped[header + 100] ^= 0x10;
    let mut zeroed = bytes.clone();
    zeroed[bytes.len() - 4096..].fill(0);
    for (name, b) in [("flipped", flipped), ("zeroed", zeroed)] {
        let p = dir.join(format!("{name}.safetensors"));
        std::fs::write(&p, b).unwrap();
        let e = Trainer::resume(&p, synthetic::generate(6, 16, 1, 1), None).err().unwrap().to_string();
        assert!(
            e.contains(&format!("{name}.safetensors")) && e.contains("tensor ") && e.contains("checksum"),
            "{name}: {e}"
        );
    }
    // a file without checksums (an older medsegdiff's) still loads, marked unverified
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut md = meta.metadata().clone().unwrap();
    assert!(md.remove("crc32").is_some(), "checkpoints carry a crc32 entry");
    let old = dir.join("old.safetensors");
    std::fs::write(&old, safetensors::serialize(st.tensors(), Some(md)).unwrap()).unwrap();
    let (file, _) = medsegdiff::train::checkpoint::load(&old).unwrap();
    assert!(!file.verified);
    assert!(medsegdiff::train::checkpoint::load(&ckpt).unwrap().0.verified);
    assert!(Trainer::resume(&old, synthetic::generate(6, 16, 1, 1), None).is_ok());
    // no temp file left behind by the atomic write
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn cli_train_sample_eval_write_their_outputs() {
    let dir = tmp("cli");
    let bin = env!("CARGO_BIN_EXE_medsegdiff");
    let cfg_path = dir.join("model.json");
    std::fs::write(&cfg_path, serde_json::to_string(&micro().0).unwrap()).unwrap();
    let run = dir.join("run");
    let out = Command::new(bin)
        .args([
            "train",
            "--config",
            cfg_path.to_str().unwrap(),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--synthetic-count",
            "8",
        ])
        .args(["--val-every", "2", "--out", run.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "train failed: {}", String::from_utf8_lossy(&out.stderr));
    for f in ["last.safetensors", "best.safetensors", "loss.csv", "config.json", "samples.png"] {
        assert!(run.join(f).exists(), "train did not write {f}");
    }
    let csv = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    // no terminal here: plain progress lines, the first one after step 1
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("step 1/2: loss") && stdout.contains("step 2/2: loss"), "{stdout}");

    // resuming cuts loss.csv back to the checkpoint's step (here: a row a crashed run wrote after it)
    std::fs::write(run.join("loss.csv"), csv.clone() + "3,0.5,0.001\n").unwrap();
    let out = Command::new(bin)
        .args(["train", "--resume", run.join("last.safetensors").to_str().unwrap(), "--steps", "3"])
        .args(["--synthetic-count", "8"])
        .output()
        .unwrap();
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    let resumed = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    let steps: Vec<&str> = resumed.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(steps, ["1", "2", "3"], "{resumed}");
    assert!(!resumed.contains("3,0.5,0.001"), "{resumed}");

    // a tiny folder dataset to sample and evaluate on
    let ds = dir.join("ds");
    std::fs::create_dir_all(ds.join("images")).unwrap();
    std::fs::create_dir_all(ds.join("masks")).unwrap();
    // non-square scans (24 wide, 18 high) with a 0/255 mask and a 0/1 mask (the common uint8 label format)
    for i in 0..2u32 {
        image::GrayImage::from_fn(24, 18, |x, y| image::Luma([((x * 7 + y * 3 + i * 50) % 255) as u8]))
            .save(ds.join(format!("images/c{i}.png")))
            .unwrap();
        let fg = if i == 0 { 255 } else { 1 };
        image::GrayImage::from_fn(24, 18, |x, _| image::Luma([if x < 10 { fg } else { 0 }]))
            .save(ds.join(format!("masks/c{i}.png")))
            .unwrap();
    }
    let weights = run.join("last.safetensors");
    let samples = dir.join("samples");
    let out = Command::new(bin)
        .args(["sample", "--weights", weights.to_str().unwrap(), "--input", ds.join("images").to_str().unwrap()])
        .args(["--ensemble", "2", "--sampling-steps", "2", "--out", samples.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "sample failed: {}", String::from_utf8_lossy(&out.stderr));
    for f in ["c0_mask.png", "c0_soft.png", "c0_overlay.png", "c0_uncertainty.png", "c1_mask.png"] {
        assert!(samples.join(f).exists(), "sample did not write {f}");
        // every output is at the scan's geometry, not the model's 32x32
        let dims = image::image_dimensions(samples.join(f)).unwrap();
        assert_eq!(dims, (24, 18), "{f} is not at the input's width x height");
    }
    let mask = image::open(samples.join("c0_mask.png")).unwrap().to_luma8();
    assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255), "the mask PNG stays binary after resizing");
    // a checkpoint carries its diffusion settings: flags for plain state_dicts are refused, not silently ignored
    let out = Command::new(bin)
        .args(["sample", "--weights", weights.to_str().unwrap(), "--input", ds.join("images").to_str().unwrap()])
        .args(["--objective", "pred_v", "--out", samples.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--objective") && err.contains("plain state_dict"), "{err}");
    let json = dir.join("scores.json");
    let out = Command::new(bin)
        .args(["eval", "--weights", weights.to_str().unwrap(), "--data", ds.to_str().unwrap(), "--sampling-steps", "2"])
        .args(["--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "eval failed: {}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["images"].as_array().unwrap().len(), 2);
    assert!(j["mean"]["dice"].as_f64().unwrap() >= 0.0);

    // a diverging run stops with a message and leaves the last good checkpoint alone
    let diverge = dir.join("diverge");
    let out = Command::new(bin)
        .args(["train", "--config", cfg_path.to_str().unwrap(), "--steps", "6", "--batch-size", "2"])
        .args(["--synthetic-count", "8", "--val-every", "0", "--checkpoint-every", "1", "--lr", "1e30"])
        .args(["--out", diverge.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && (err.contains("non-finite") || err.contains("loss became")), "{err}");
    // whatever was saved holds finite weights
    if let Ok(file) = medsegdiff::model::weights::TensorFile::read(&diverge.join("last.safetensors")) {
        let params = file.tensors.iter().filter(|(n, _)| n.starts_with("param."));
        assert!(
            params.into_iter().all(|(_, t)| t.data.iter().all(|v| v.is_finite())),
            "a saved checkpoint is not finite"
        );
    }

    // clear errors for bad input
    let out = Command::new(bin)
        .args(["sample", "--weights", "/nonexistent.safetensors", "--input", "x.png"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("/nonexistent.safetensors"), "{err}");
    // flags are checked at parse time, before any work: non-finite or out-of-range values are refused by name
    for (args, flag) in [
        (&["train", "--lr", "nan"][..], "--lr"),
        (&["train", "--lr=-1"][..], "--lr"),
        (&["train", "--batch-size", "0"][..], "--batch-size"),
        (&["train", "--steps", "0"][..], "--steps"),
        (&["sample", "--weights", "w", "--input", "x", "--eta", "inf"][..], "--eta"),
        (&["sample", "--weights", "w", "--input", "x", "--ensemble", "0"][..], "--ensemble"),
        (&["bench", "--workload", "tiny", "--batch-size", "0"][..], "--batch-size"),
        (&["profile", "--image-size", "0"][..], "--image-size"),
    ] {
        let out = Command::new(bin).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(flag) && err.contains("invalid value"), "{args:?}: {err}");
    }
    let out = Command::new(bin).args(["train", "--preset", "huge"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unknown preset \"huge\""), "{err}");
    // sizes the adapter or the machine cannot hold are refused before anything is allocated (these panicked
    // inside wgpu, or aborted allocating 40 GB): the message names the tensor, the limit and a setting that fits
    // (sizes past every adapter's limits and every machine's memory, so the test means the same anywhere)
    let mut cases = vec![(["--image-size", "100000", "--synthetic-count", "2"], "or less at this batch")];
    if cfg!(target_os = "linux") {
        // the host check reads Linux's MemAvailable; elsewhere only sizes whose bytes overflow are refused
        cases.push((["--image-size", "16", "--synthetic-count", "1000000000"], "GiB available; use fewer samples"));
    }
    for (flags, want) in cases {
        let out = Command::new(bin)
            .args(["train", "--steps", "1", "--batch-size", "2"])
            .args(flags)
            .args(["--out", dir.join("too-big").to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let ok = !out.status.success() && err.contains(want) && !err.contains("panicked");
        assert!(ok, "{flags:?}: {err}");
    }
}

/// A resumed run with a larger --steps keeps its learning rate continuous (a half cosine from the rate at the
/// checkpoint to the floor at the new total), records that in its checkpoints, and resuming it again with the
/// same total continues bit for bit.
#[test]
fn resume_with_more_steps_follows_one_schedule() {
    let (model, cfg) = micro();
    let data = || synthetic::generate(12, 16, 1, 5);
    let dir = tmp("more-steps");
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    let mut first = Trainer::new(&model, cfg.clone(), data()).unwrap();
    for _ in 0..4 {
        first.train_step().unwrap();
    }
    let before = first.lr_schedule().at(4);
    first.save(&a).unwrap();
    let mut longer = Trainer::resume(&a, data(), Some(12)).unwrap();
    assert_eq!(longer.cfg.lr_restart, Some((4, before)));
    assert_eq!(longer.lr_schedule().at(4), before, "continuous at the resume step");
    assert!((longer.lr_schedule().at(12) - cfg.lr * 0.1).abs() < 1e-9, "the floor at the new total");
    longer.train_step().unwrap();
    longer.save(&b).unwrap();
    let straight: Vec<u32> = (0..4).map(|_| longer.train_step().unwrap().to_bits()).collect();
    let mut again = Trainer::resume(&b, data(), Some(12)).unwrap();
    assert_eq!(again.cfg.lr_restart, Some((4, before)), "the same total keeps the recorded schedule");
    let resumed: Vec<u32> = (0..4).map(|_| again.train_step().unwrap().to_bits()).collect();
    assert_eq!(straight, resumed);
    assert!(Trainer::resume(&b, data(), Some(3)).is_err(), "a total below the checkpoint's step");
}

/// The loop's policy without the CLI: validation keeps the best checkpoint, a stop request ends the run after
/// the step in flight with `last` at that step, and a non-finite loss is an error naming the step.
#[test]
fn the_loop_validates_keeps_the_best_and_stops_on_request() {
    use medsegdiff::train::{Observer, Outcome};
    struct Obs {
        stop_at: u64,
        steps: Vec<u64>,
        vals: Vec<(u64, bool)>,
    }
    impl Observer for Obs {
        fn step(&mut self, s: u64, loss: f32, _lr: f32) -> medsegdiff::Result<()> {
            assert!(loss.is_finite());
            self.steps.push(s);
            Ok(())
        }
        fn validated(&mut self, s: u64, _: &medsegdiff::metrics::Scores, best: bool) {
            self.vals.push((s, best));
        }
        fn stop_requested(&self) -> bool {
            self.steps.last() == Some(&self.stop_at)
        }
    }
    let (model, cfg) = micro();
    let cfg = medsegdiff::train::TrainConfig { val_every: 2, checkpoint_every: 100, ..cfg };
    let dir = tmp("loop");
    let (last, best) = (dir.join("last.safetensors"), dir.join("best.safetensors"));
    let mut t = Trainer::new(&model, cfg.clone(), synthetic::generate(12, 16, 1, 5)).unwrap();
    let mut obs = Obs { stop_at: 5, steps: vec![], vals: vec![] };
    assert_eq!(t.run(&last, &best, &mut obs).unwrap(), Outcome::Stopped { step: 5 });
    assert_eq!(obs.steps, vec![1, 2, 3, 4, 5]);
    assert_eq!(obs.vals.iter().map(|v| v.0).collect::<Vec<_>>(), vec![2, 4], "every 2 steps");
    assert!(obs.vals[0].1, "the first validation is the best so far");
    assert!(best.exists());
    assert_eq!(medsegdiff::train::checkpoint::load(&last).unwrap().1.step, 5, "saved at the stop");
    // to the end: the last checkpoint holds the final step
    let mut t = Trainer::resume(&last, synthetic::generate(12, 16, 1, 5), None).unwrap();
    let mut obs = Obs { stop_at: 0, steps: vec![], vals: vec![] };
    assert_eq!(t.run(&last, &best, &mut obs).unwrap(), Outcome::Finished);
    assert_eq!(obs.steps, vec![6]);
    assert_eq!(medsegdiff::train::checkpoint::load(&last).unwrap().1.step, 6);
    // a diverging step is an error naming it, and the checkpoint stays the last good one
    let lr = medsegdiff::train::TrainConfig { lr: 1e30, steps: 3, val_every: 0, ..cfg };
    let mut t = Trainer::new(&model, lr, synthetic::generate(12, 16, 1, 5)).unwrap();
    let mut obs = Obs { stop_at: 0, steps: vec![], vals: vec![] };
    let e = t.run(&dir.join("d.safetensors"), &best, &mut obs).unwrap_err().to_string();
    assert!(e.contains("loss became") || e.contains("non-finite"), "{e}");
}

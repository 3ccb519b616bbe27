//! `medsegdiff` subcommands (clap). The CLI uses `anyhow` with context; the library returns typed errors.

mod eval;
mod images;
mod inputs;
mod model;
mod run;
mod segment;
mod workload;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::gpu::Gpu;

#[derive(Parser)]
#[command(
    name = "medsegdiff",
    version,
    about = "MedSegDiff (diffusion segmentation) on a from-scratch wgpu/WGSL engine"
)]
pub struct Cli {
    /// Adapter to use: an index from `medsegdiff info` or part of its name (default: MEDSEGDIFF_ADAPTER, else the
    /// high-performance adapter).
    #[arg(long, global = true)]
    pub adapter: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Where training / evaluation data comes from (default: the embedded synthetic set).
#[derive(Args, Clone, Debug, Default)]
pub struct DataArgs {
    /// A dataset folder with images/ and masks/ (matching stems; PNG, JPEG or TIFF), or an nnU-Net raw dataset
    /// (dataset.json, imagesTr/CASE_0000.png|.nii.gz, ..., labelsTr/): its channels are stacked as inputs.
    #[arg(long, conflicts_with = "nifti")]
    pub data: Option<PathBuf>,
    /// A folder of NIfTI volumes: images/ and labels/ (or masks/), sliced into 2-D pairs.
    #[arg(long)]
    pub nifti: Option<PathBuf>,
    /// Slicing axis for --nifti (0, 1 or 2).
    #[arg(long, default_value_t = 2)]
    pub axis: usize,
    /// Skip unreadable or unmatched files with a warning instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
    /// Classes of the label maps, one mask channel each: 1 merges every non-zero label into one foreground;
    /// N > 1 reads values 1..N as classes (or exactly N distinct values, ranked). Default: an nnU-Net dataset's
    /// dataset.json labels, else 1. A trained network's mask channels fix it for --resume and eval.
    #[arg(long, value_parser = class_count)]
    pub classes: Option<usize>,
    /// Number of synthetic examples when no --data/--nifti is given.
    #[arg(long, default_value_t = 512)]
    pub synthetic_count: usize,
}

/// The model of a workload bench or profile: a preset's, or a config file's, at an optional size and batch.
#[derive(Args, Clone, Debug, Default)]
pub struct WorkloadArgs {
    /// A model config (JSON of the package's Unet kwargs) instead of a preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Batch size (default: the preset's, 8 for a config).
    #[arg(long, value_parser = at_least_one)]
    pub batch_size: Option<usize>,
    /// Image size instead of the preset's or the config's (e.g. tiny at 64 px, what `train --data DIR
    /// --image-size 64` runs).
    #[arg(long, value_parser = at_least_one)]
    pub image_size: Option<usize>,
    /// Rows to print per step (the JSON has all of them).
    #[arg(long, default_value_t = 30)]
    pub top: usize,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Print the adapters wgpu sees, the one in use, and its limits.
    ///
    /// Examples: `medsegdiff info`, `medsegdiff --adapter llvmpipe info --config cfg.json`
    Info {
        /// Also build the network of this config (JSON of the package's Unet kwargs) and print its parameter count.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    #[command(verbatim_doc_comment)]
    /// Train a model (no arguments: the tiny preset on the synthetic data, into runs/tiny).
    ///
    /// Examples:
    ///   medsegdiff train
    ///   medsegdiff train --data my_dataset --preset small --steps 5000 --out runs/mine
    ///   medsegdiff train --resume runs/tiny/last.safetensors --steps 3000
    Train(run::TrainArgs),
    #[command(verbatim_doc_comment)]
    /// Segment images with a trained model: mask, overlay and uncertainty PNGs per image.
    ///
    /// Example: medsegdiff sample --weights runs/tiny/best.safetensors --input scan.png --ensemble 5 --out out/
    Sample(segment::SampleArgs),
    #[command(verbatim_doc_comment)]
    /// Write a checkpoint's weights as a plain state_dict for PyTorch (the package's names; EMA weights unless
    /// --no-ema), with the model config and diffusion settings in its metadata, and OUT.kwargs.json beside it:
    /// the Unet(**unet) and MedSegDiff(unet, **diffusion) keyword arguments.
    ///
    /// Example: medsegdiff export --weights runs/tiny/best.safetensors --out tiny.safetensors
    Export {
        #[arg(long)]
        weights: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Export the raw weights instead of the EMA weights.
        #[arg(long)]
        no_ema: bool,
    },
    #[command(verbatim_doc_comment)]
    /// Dice / IoU / HD95 of a model on a dataset, as a table and CSV / JSON.
    ///
    /// Example: medsegdiff eval --weights runs/tiny/best.safetensors --data my_dataset --csv scores.csv
    Eval(eval::EvalArgs),
    #[command(verbatim_doc_comment)]
    /// Benchmark kernels against this adapter's measured peak (FMA GFLOP/s, copy GB/s): matmul rungs, conv,
    /// norms, softmax, FFT, AdamW, and whole training / sampling steps of the presets. With --workload or
    /// --config: every (op, rung, shape) of one training and one sampling step of that model instead.
    ///
    /// Examples:
    ///   medsegdiff bench
    ///   medsegdiff bench --filter matmul --json bench.json
    ///   medsegdiff bench --workload tiny --image-size 64 --json tiny64.json
    ///   medsegdiff bench --config my_unet.json --batch-size 4
    Bench {
        /// Only cases whose "kernel shape" contains this text (e.g. matmul, v5, conv2d, train_step).
        #[arg(long, conflicts_with_all = ["workload", "config"])]
        filter: Option<String>,
        /// Also write the results as JSON (SPEC §6 format; for a workload, every row of both steps).
        #[arg(long)]
        json: Option<PathBuf>,
        /// The workload bench of a preset: tiny, small or paper.
        #[arg(long, conflicts_with = "config")]
        workload: Option<String>,
        /// Workload bench: wall-clock steps per phase, the fastest reported (as `tools/compare_torch.py` takes
        /// PyTorch's best of --reps).
        #[arg(long, default_value_t = 1, value_parser = at_least_one)]
        reps: usize,
        #[command(flatten)]
        model: WorkloadArgs,
    },
    #[command(verbatim_doc_comment)]
    /// Choose the fastest rung per matmul and conv shape of one training step on this adapter (sampling at the
    /// same batch meets the same forward shapes) and keep the choices in the cache file the taped ops read
    /// (MEDSEGDIFF_TUNE=off ignores it). Run it once per adapter, model and batch size.
    ///
    /// Examples: `medsegdiff tune --preset tiny`, `medsegdiff tune --config my_unet.json --image-size 64`
    Tune {
        #[arg(long, default_value = "tiny", conflicts_with = "config")]
        preset: String,
        #[command(flatten)]
        model: WorkloadArgs,
        /// Timed runs per candidate (the median counts), after one warm-up.
        #[arg(long, default_value_t = 3, value_parser = at_least_one)]
        reps: usize,
    },
    /// Per-kernel GPU time of one training step of a preset or a config (timestamp queries), sorted by total
    /// time.
    ///
    /// Examples: `medsegdiff profile --preset small`, `medsegdiff profile --config my_unet.json --image-size 64`
    Profile {
        #[arg(long, default_value = "tiny", conflicts_with = "config")]
        preset: String,
        #[command(flatten)]
        model: WorkloadArgs,
        /// Untimed warm-up steps first (pipeline compilation, pool fill).
        #[arg(long, default_value_t = 1)]
        warmup: usize,
    },
    /// Print the op sequence of one forward + backward (shapes, dispatches, GPU time when available), so a reader
    /// can follow the data through the network.
    ///
    /// Example: medsegdiff trace --preset tiny
    Trace {
        #[arg(long, default_value = "tiny")]
        preset: String,
        #[arg(long, default_value_t = 2)]
        batch_size: usize,
    },
    /// Compare our forward and backward with a PyTorch reference fixture (SPEC §6; tools/export_reference.py).
    ///
    /// Example: `medsegdiff check-reference tests/fixtures/ref_full_attn.safetensors`
    CheckReference {
        file: PathBuf,
        /// Tolerance on the output's relative error.
        #[arg(long, default_value_t = 1e-4)]
        tol_out: f64,
        /// Tolerance on every gradient's relative error.
        #[arg(long, default_value_t = 1e-3)]
        tol_grad: f64,
    },
}

/// `--lr` and other rates: a finite number above 0 (clap calls this at parse time, before any work).
pub(crate) fn positive_f32(v: &str) -> std::result::Result<f32, String> {
    let x: f32 = v.parse().map_err(|_| format!("{v:?} is not a number"))?;
    if !x.is_finite() || x <= 0.0 {
        return Err(format!("{v} must be a finite number above 0"));
    }
    Ok(x)
}

/// `--eta` (DDIM's noise scale): a finite number in [0, 1].
pub(crate) fn unit_f64(v: &str) -> std::result::Result<f64, String> {
    let x: f64 = v.parse().map_err(|_| format!("{v:?} is not a number"))?;
    if !x.is_finite() || !(0.0..=1.0).contains(&x) {
        return Err(format!("{v} must be between 0 and 1 (0 is deterministic DDIM, 1 is DDPM-like)"));
    }
    Ok(x)
}

/// Sizes and counts: a whole number of at least 1.
/// `--classes`: 1 to 255 (label maps are written as 8-bit values).
fn class_count(v: &str) -> std::result::Result<usize, String> {
    match at_least_one(v)? {
        n if n > crate::data::labels::MAX_CLASSES => {
            Err(format!("at most {} classes", crate::data::labels::MAX_CLASSES))
        }
        n => Ok(n),
    }
}

pub(crate) fn at_least_one(v: &str) -> std::result::Result<usize, String> {
    let x: usize = v.parse().map_err(|_| format!("{v:?} is not a whole number"))?;
    if x == 0 {
        return Err("must be at least 1".into());
    }
    Ok(x)
}

pub fn run() -> Result<()> {
    let cli = Cli::parse();
    let adapter = cli.adapter.as_deref();
    match cli.cmd {
        Cmd::Info { config } => info(adapter, config.as_deref()),
        Cmd::Train(a) => {
            Gpu::init(adapter)?;
            run::train(a)
        }
        Cmd::Sample(a) => {
            Gpu::init(adapter)?;
            segment::sample(a)
        }
        Cmd::Eval(a) => {
            Gpu::init(adapter)?;
            eval::eval(a)
        }
        Cmd::Bench { filter: _, json, workload, reps, model } if workload.is_some() || model.config.is_some() => {
            Gpu::init(adapter)?;
            workload::workload(workload.as_deref().unwrap_or("tiny"), &model, json.as_deref(), reps)
        }
        Cmd::Bench { filter, json, reps, .. } => {
            if reps != 1 {
                anyhow::bail!(
                    "--reps {reps}: it applies to the workload bench (--workload or --config), not the kernel cases"
                );
            }
            let g = Gpu::init(adapter)?;
            println!("adapter: {}", g.describe());
            println!("measuring peak (FMA throughput, copy bandwidth) ...");
            let peak = crate::bench::peak();
            let results = crate::bench::suite(filter.as_deref());
            // a case whose tensors exceeded the binding limit timed skipped launches: report, do not print it
            g.check()?;
            print!("{}", crate::bench::table(&results, &peak));
            if let Some(p) = json {
                let text = serde_json::to_string_pretty(&crate::bench::to_json(&results, &peak))?;
                std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
                println!("wrote {}", p.display());
            }
            Ok(())
        }
        Cmd::Profile { preset, model, warmup } => {
            Gpu::init(adapter)?;
            workload::profile(&preset, &model, warmup)
        }
        Cmd::Tune { preset, model, reps } => {
            Gpu::init(adapter)?;
            workload::tune(&preset, &model, reps)
        }
        Cmd::Trace { preset, batch_size } => {
            Gpu::init(adapter)?;
            workload::trace(&preset, batch_size)
        }
        Cmd::CheckReference { file, tol_out, tol_grad } => check_reference(adapter, &file, tol_out, tol_grad),
        Cmd::Export { weights, out, no_ema } => {
            let e = crate::train::checkpoint::export(&weights, &out, no_ema)?;
            println!(
                "wrote {} ({} tensors, {} weights) and {}",
                out.display(),
                e.tensors,
                if no_ema { "raw" } else { "EMA" },
                e.json.display()
            );
            if let Some(n) = e.note {
                eprintln!("note: {n}");
            }
            Ok(())
        }
    }
}

fn check_reference(adapter: Option<&str>, file: &std::path::Path, tol_out: f64, tol_grad: f64) -> Result<()> {
    Gpu::init(adapter)?;
    let report = crate::model::reference::check_reference(file, tol_out, tol_grad)?;
    print!("{}", report.table());
    let failed = report.rows.iter().filter(|r| !r.ok).count();
    println!(
        "{}: {} parameters; output rel {:.2e} (tol {tol_out:e}); worst gradient rel {:.2e} (tol {tol_grad:e})",
        file.display(),
        report.num_params,
        report.rows[0].max_rel,
        report.worst_grad_rel()
    );
    if failed > 0 {
        anyhow::bail!("{failed} tensor(s) beyond tolerance");
    }
    println!("PASS");
    Ok(())
}

fn info(adapter: Option<&str>, config: Option<&std::path::Path>) -> Result<()> {
    let all = Gpu::list_adapters();
    println!("adapters:");
    for a in &all {
        println!("{}", crate::gpu::format_summary(a));
    }
    let g = Gpu::init(adapter)?;
    println!("using: {}", g.describe());
    println!("limits:");
    print!("{}", g.describe_limits());
    if let Some(path) = config {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cfg = crate::model::UnetConfig::from_json(&text).with_context(|| format!("in {}", path.display()))?;
        let unet = crate::model::Unet::new(&cfg, 0)?;
        println!("model: {} parameters ({} tensors)", unet.num_params(), unet.params().len());
    }
    Ok(())
}

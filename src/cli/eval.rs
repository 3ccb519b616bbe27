//! `eval`: sample a labelled dataset with a trained network and score it (per image, per slice and per volume;
//! per class for a multi-class network), or merge the CSVs of sharded runs.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::inputs::{bar, load_data};
use super::model::{load_model, ModelArgs};
use super::DataArgs;
use crate::data::{shard_batches, Shard};
use crate::metrics;

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Images per sampling batch.
    #[arg(long, default_value_t = 8, value_parser = super::at_least_one)]
    pub batch_size: usize,
    /// Evaluate only this process's share, i/n (0 ≤ i < n), in whole batches: the rows n shards write are
    /// exactly one process's rows (merge their CSVs with --merge).
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Combine per-image CSVs written by `eval --csv` (e.g. one per shard) instead of evaluating: prints the
    /// table and the means, and writes --csv / --json for all of them.
    #[arg(long, num_args = 1..)]
    pub merge: Vec<PathBuf>,
    /// Write per-image scores as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write per-image scores and the means as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The means of a set of rows: the headline mean over what it always was (every 2-D image, and the slices whose
/// truth has foreground, as training's validation), the mean over all rows (empty-truth slices too, where false
/// positives count), and HD95 in millimetres where the spacing is known.
struct Means {
    counted: usize,
    mean: metrics::Scores,
    all: metrics::Scores,
    mm: Option<f64>,
}

fn means<'a>(rows: impl Iterator<Item = &'a metrics::Row> + Clone) -> Means {
    let counted: Vec<_> = rows.clone().filter(|r| !r.empty_truth_slice()).map(|r| r.scores).collect();
    let mm: Vec<f64> = rows.clone().filter(|r| !r.empty_truth_slice()).filter_map(|r| r.hd95_mm).collect();
    Means {
        counted: counted.len(),
        mean: metrics::mean(&counted),
        all: metrics::mean(&rows.map(|r| r.scores).collect::<Vec<_>>()),
        mm: (!mm.is_empty()).then(|| mm.iter().sum::<f64>() / mm.len() as f64),
    }
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let rows = if a.merge.is_empty() { evaluate(&a)? } else { metrics::read_score_csvs(&a.merge)? };
    let mut classes: Vec<usize> = rows.iter().filter_map(|r| r.class).collect();
    classes.sort_unstable();
    classes.dedup();
    let m = means(rows.iter());
    let mm_col = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:>9.2}"));
    let name = |r: &metrics::Row| r.class.map_or_else(|| r.image.clone(), |k| format!("{} [class {k}]", r.image));
    println!(
        "{:<32} {:>8} {:>8} {:>8}{}",
        "image",
        "Dice",
        "IoU",
        "HD95",
        if m.mm.is_some() { "  HD95 mm" } else { "" }
    );
    for r in &rows {
        let sc = r.scores;
        println!("{:<32} {:>8.4} {:>8.4} {:>8.2}{}", name(r), sc.dice, sc.iou, sc.hd95, mm_col(r.hd95_mm));
    }
    let line = |what: String, m: &Means, total: usize| {
        println!("{what:<32} {:>8.4} {:>8.4} {:>8.2}{}", m.mean.dice, m.mean.iou, m.mean.hd95, mm_col(m.mm));
        if m.counted < total {
            let label = format!("  all {total} (empty truth too)");
            println!("{label:<32} {:>8.4} {:>8.4} {:>8.2}", m.all.dice, m.all.iou, m.all.hd95);
        }
    };
    let per_class: Vec<(usize, Means)> =
        classes.iter().map(|&k| (k, means(rows.iter().filter(move |r| r.class == Some(k))))).collect();
    for (k, cm) in &per_class {
        line(format!("class {k}: mean of {}", cm.counted), cm, rows.iter().filter(|r| r.class == Some(*k)).count());
    }
    if per_class.is_empty() {
        line(format!("mean of {}", m.counted), &m, rows.len());
    } else {
        let over = per_class.iter().map(|(_, cm)| cm.mean.dice).sum::<f64>() / per_class.len() as f64;
        println!("{:<32} {over:>8.4}", format!("mean Dice over {} classes", per_class.len()));
    }
    // volumes: 3-D overlap summed over every slice, empty ones included (per class for a multi-class model)
    let vols = metrics::per_volume(&rows);
    if !vols.is_empty() {
        println!(
            "\n{:<32} {:>8} {:>8} {:>7} {:>22}",
            "volume (3-D)", "Dice", "IoU", "slices", "empty-truth slices w/ FP"
        );
        for v in &vols {
            let (o, part) = (v.overlap, if v.complete { "" } else { "  (partial: slices missing)" });
            println!(
                "{:<32} {:>8.4} {:>8.4} {:>7} {:>22}{part}",
                v.volume,
                o.dice(),
                o.iou(),
                v.slices,
                v.false_positive_slices
            );
        }
        let mv = vols.iter().map(|v| v.overlap.dice()).sum::<f64>() / vols.len() as f64;
        println!("{:<32} {mv:>8.4}", format!("mean of {} volumes", vols.len()));
    }
    if let Some(p) = &a.csv {
        let text: Vec<String> =
            std::iter::once(metrics::CSV_HEADER.to_string()).chain(rows.iter().map(|r| r.csv())).collect();
        std::fs::write(p, text.join("\n") + "\n").with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &a.json {
        let per: Vec<_> = rows
            .iter()
            .map(|r| {
                let sc = r.scores;
                serde_json::json!({"image": r.image, "class": r.class, "dice": sc.dice, "iou": sc.iou, "hd95": sc.hd95, "hd95_mm": r.hd95_mm})
            })
            .collect();
        let volumes: Vec<_> = vols
            .iter()
            .map(|v| serde_json::json!({"volume": v.volume, "dice": v.overlap.dice(), "iou": v.overlap.iou(), "slices": v.slices, "complete": v.complete, "empty_truth_slices_with_false_positives": v.false_positive_slices}))
            .collect();
        let json = |m: &Means| serde_json::json!({"dice": m.mean.dice, "iou": m.mean.iou, "hd95": m.mean.hd95, "hd95_mm": m.mm, "images": m.counted});
        let all = |m: &Means| serde_json::json!({"dice": m.all.dice, "iou": m.all.iou, "hd95": m.all.hd95});
        let classes: Vec<_> = per_class
            .iter()
            .map(|(k, cm)| serde_json::json!({"class": k, "mean": json(cm), "mean_all_slices": all(cm)}))
            .collect();
        let j = serde_json::json!({
            "images": per,
            "volumes": volumes,
            "mean": json(&m),
            "mean_all_slices": {"dice": m.all.dice, "iou": m.all.iou, "hd95": m.all.hd95, "images": rows.len()},
            "classes": classes,
            "weights": a.model.weights,
        });
        std::fs::write(p, serde_json::to_string_pretty(&j)?).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Sample and score this shard's images: a row per image (per slice for volumes, empty slices included).
fn evaluate(a: &EvalArgs) -> Result<Vec<metrics::Row>> {
    let m = load_model(&a.model)?;
    let cfg = m.unet.cfg.clone();
    let data = load_data(&a.data, cfg.image_size, cfg.input_img_channels, 1, true, Some(cfg.mask_channels))?;
    if data.channels != cfg.input_img_channels {
        bail!("{} has {} input channels but the model takes {}", data.source, data.channels, cfg.input_img_channels);
    }
    let s = cfg.image_size;
    let batches = shard_batches(data.len(), a.batch_size, a.shard);
    let pb = bar(batches.iter().map(|r| r.len() as u64).sum(), "eval");
    let mut rows = Vec::new();
    for range in batches {
        let chunk: Vec<usize> = range.collect();
        let (images, _) = data.batch(&chunk, None)?;
        let seeds: Vec<u64> = chunk
            .iter()
            .map(|&i| crate::diffusion::ensemble::image_seed(a.model.seed, &data.samples[i].name))
            .collect();
        let ens = m.segment(&images, &a.model, &seeds, &pb)?;
        let n = cfg.mask_channels;
        for (&i, e) in chunk.iter().zip(&ens) {
            let smp = &data.samples[i];
            // class k's planes of the predicted and the true label map (for one class, the masks themselves)
            for k in 1..=n {
                let (pred, truth) =
                    (crate::data::labels::class_plane(&e.labels, k), crate::data::labels::class_plane(&smp.mask, k));
                // a slice's pixels at the model's size are (stored / size) times its stored spacing apart
                let hd95_mm = smp.slice.as_ref().map(|sl| {
                    let [h, w] = smp.stored;
                    let spacing =
                        [sl.spacing[0] as f64 * h as f64 / s as f64, sl.spacing[1] as f64 * w as f64 / s as f64];
                    metrics::hd95_spaced(&pred, &truth, s, s, spacing)
                });
                rows.push(metrics::Row {
                    image: smp.name.clone(),
                    scores: metrics::scores(&pred, &truth, s, s),
                    hd95_mm,
                    overlap: Some(metrics::Overlap::of(&pred, &truth)),
                    slice: smp.slice.as_ref().map(|sl| sl.index),
                    class: (n > 1).then_some(k),
                });
            }
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish();
    Ok(rows)
}

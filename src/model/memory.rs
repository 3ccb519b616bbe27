//! Tensor sizes of one training step, known before anything is allocated: the largest activations (and their
//! gradients, which have the same shapes) by where they occur, from the config and the batch alone. A run
//! checks them against the adapter's limits up front, so an image size or batch the adapter cannot hold is
//! refused with the tensor, its size, the limit and the largest setting that fits — not discovered by a kernel
//! half way through a step. `tests/memory.rs` checks the estimate against the largest buffer a real step asks
//! the pool for.

use super::UnetConfig;
use crate::ops::attention;

/// One tensor of a step: where it occurs and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSize {
    pub what: String,
    pub shape: Vec<usize>,
}

impl TensorSize {
    pub fn bytes(&self) -> u64 {
        self.shape.iter().fold(4u64, |acc, &d| acc.saturating_mul(d as u64))
    }
}

/// The step's large tensors (activations, attention scores where the composed path runs, FFT spectra, the
/// largest parameter), unordered. Small ones (time embeddings, norms' statistics) are left out.
pub fn step_tensors(cfg: &UnetConfig, batch: usize) -> Vec<TensorSize> {
    // saturating products: the batch comes from a flag, and a refusal must not overflow computing its message
    let m = |a: usize, b: usize| a.saturating_mul(b);
    let b = batch;
    let s = cfg.image_size;
    let (heads, dh) = (cfg.attn_heads, cfg.attn_dim_head);
    let mut out = Vec::new();
    let mut add = |what: String, shape: Vec<usize>| out.push(TensorSize { what, shape });
    let in_out = cfg.in_out();
    let fmaps = cfg.fmap_sizes();
    let skips = if cfg.skip_connect_condition_fmaps { 2 } else { 1 };
    add("final block input (concat with the init conv)".into(), vec![b, m(2, cfg.dim), s, s]);
    for (i, (&(din, dout), &r)) in in_out.iter().zip(&fmaps).enumerate() {
        add(format!("level {i} activation"), vec![b, din, r, r]);
        add(format!("level {i} attention qkv"), vec![b, m(m(3, heads), dh), r, r]);
        if cfg.full_self_attn[i] && !attention::fused_applies(dh) {
            add(format!("level {i} attention scores"), vec![m(b, heads), m(r, r), m(r, r)]);
        }
        // ff-parser: the complex spectrum (re, im) of the level's features, and its learned map
        add(format!("level {i} conditioning spectrum"), vec![b, din, r, r, 2]);
        add(format!("level {i} ff-parser map (a parameter)"), vec![din, r, r]);
        if cfg.dynamic_ff_parser_attn_map {
            add(format!("level {i} dynamic-map spectra"), vec![b, m(4, din), r, r]);
        }
        // decoder block1 input: upsampled features concatenated with this level's skip(s)
        add(format!("level {i} decoder input (concat with the skip)"), vec![b, dout + m(skips, din), r, r]);
        // the weight gradient of that block's 3×3 conv in the Winograd domain (16 planes)
        add(format!("level {i} decoder conv weight gradient (Winograd domain)"), vec![16, dout, dout + m(skips, din)]);
    }
    let mid = *cfg.dims().last().expect("at least one level");
    let rm = *fmaps.last().expect("at least one level");
    add("mid transformer feed-forward".into(), vec![b, m(4, mid), rm, rm]);
    if !attention::fused_applies(dh) {
        add("mid transformer attention scores".into(), vec![m(b, heads), m(rm, rm), m(rm, rm)]);
    }
    out
}

/// The largest of [`step_tensors`].
pub fn largest(cfg: &UnetConfig, batch: usize) -> TensorSize {
    step_tensors(cfg, batch).into_iter().max_by_key(TensorSize::bytes).expect("a step has tensors")
}

/// The flags a refusal suggests: the one that sets the image size (None when the run cannot change it, e.g.
/// sampling a trained model) and the one that sets the batch (`--batch-size`, or `--ensemble` when sampling).
pub struct Flags<'a> {
    pub size: Option<&'a str>,
    pub batch: &'a str,
}

/// Why a config does not fit an adapter whose largest binding holds `limit` bytes, with the largest image size
/// (a valid one for this network) and batch that do; None when it fits.
pub fn does_not_fit(cfg: &UnetConfig, batch: usize, flags: Flags, limit: u64, adapter: &str) -> Option<String> {
    let big = largest(cfg, batch);
    if big.bytes() <= limit {
        return None;
    }
    let step = 1usize << cfg.dim_mults.len().saturating_sub(1);
    let fits = |size: usize, b: usize| {
        let c = UnetConfig { image_size: size, ..cfg.clone() };
        c.validate().is_ok() && largest(&c, b).bytes() <= limit
    };
    let size_fit = flags.size.and_then(|f| {
        (1..=cfg.image_size / step).rev().map(|k| k * step).find(|&sz| fits(sz, batch)).map(|sz| (f, sz))
    });
    // the largest fitting batch, by bisection (sizes grow with the batch; a flag may ask for a billion)
    let batch_fit = fits(cfg.image_size, 1).then(|| {
        let (mut lo, mut hi) = (1, batch); // fits(lo), !fits(hi)
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(cfg.image_size, mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    });
    let mut fix = Vec::new();
    if let Some((f, sz)) = size_fit {
        fix.push(format!("{f} {sz} or less at this batch"));
    }
    if let Some(b) = batch_fit {
        fix.push(format!("{} {b} or less at this image size", flags.batch));
    }
    if fix.is_empty() {
        fix.push("an adapter with a larger limit (`medsegdiff info` lists them)".into());
    }
    Some(format!(
        "at image size {} and batch {batch}, the {} {:?} needs {:.1} MiB, more than the {} MiB one storage binding \
         holds on {adapter}; use {}",
        cfg.image_size,
        big.what,
        big.shape,
        big.bytes() as f64 / 1048576.0,
        limit >> 20,
        fix.join(", or ")
    ))
}

//! # medsegdiff-wgpu
//!
//! A GPU compute engine written from scratch on wgpu with hand-written WGSL kernels, and the MedSegDiff
//! diffusion segmentation model trained and sampled on it. No ML framework underneath: every op is a WGSL
//! kernel next to its backward kernel and an f64 CPU reference.
//!
//! ## Map of the crate (bottom to top; each layer calls only the layers above it in this table)
//! | module | owns | may call |
//! |---|---|---|
//! | [`gpu`] | device and adapter choice, buffer pool, pipeline cache, dispatch recording, readback, timestamps | wgpu only |
//! | [`rng`] | seeded, serialisable random numbers (host side) | nothing |
//! | [`tensor`] | `Tensor`: shape + pooled GPU buffer; upload/download; creation | `gpu`, `autograd` |
//! | [`autograd`] | the tape, `backward`, `no_grad`, op tracing | `tensor`, `ops::elementwise` (gradient sums) |
//! | [`ops`] | one file per op family: WGSL launches, backward, f64 CPU reference, tests | `gpu`, `tensor`, `autograd` |
//! | [`nn`] | layers with PyTorch's parameter names and init (Conv2d, ResnetBlock, Attention, ...) | `ops`, `tensor` |
//! | [`model`] | MedSegDiff: config, FF-Parser conditioning, U-Net, safetensors weights, reference check | `nn`, `ops` |
//! | [`diffusion`] | schedules, q_sample, objectives, loss, DDPM / DDIM / DPM-Solver++ sampling, ensembles and their fusion | `model`, `ops` |
//! | [`optim`] | AdamW, gradient clipping, LR schedule, EMA | `ops::optim` kernels |
//! | [`data`] | synthetic, folder, NIfTI and nnU-Net datasets; deterministic batching; volumes out | `tensor` |
//! | [`metrics`] | Dice, IoU, HD95 (host side) | nothing |
//! | [`plan`] | the planned recipe for user data: fingerprint, timed candidates, the budget's choices | `train` |
//! | [`train`] | the training loop and its policy; checkpoints that resume exactly, and export | everything above |
//! | [`cli`] | the `medsegdiff` command (train / sample / eval / bench / profile / trace / info) | everything above |
//!
//! `nn`, `model`, `diffusion`, `train` and `cli` never touch wgpu types. Kernels live in
//! `shaders/<family>/*.wgsl`; each opens with what it computes, its math, its layout and its workgroup shape.
//! The README's "How it works" follows one training step through these modules.

pub mod autograd;
pub mod bench;
pub mod cli;
pub mod data;
pub mod diffusion;
pub mod error;
pub mod gpu;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod plan;
pub mod rng;
pub mod tensor;
#[doc(hidden)]
pub mod testing;
pub mod train;

pub use error::{Error, Result};
pub use tensor::Tensor;

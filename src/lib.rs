//! # medsegdiff-wgpu
//!
//! A GPU compute engine written from scratch on wgpu with hand-written WGSL kernels, and (in later chapters)
//! the MedSegDiff diffusion segmentation model trained and sampled on it. No ML framework underneath.
//!
//! ## Map of the crate (read in this order)
//! | module | owns | may call |
//! |---|---|---|
//! | [`gpu`] | device, buffer pool, pipeline cache, dispatch recording, readback, timestamps | wgpu only |
//! | [`tensor`] | `Tensor`: shape + pooled GPU buffer; upload/download; creation | `gpu`, `autograd` |
//! | [`autograd`] | the tape, `backward`, `no_grad` | `tensor`, `ops::elementwise` (gradient sums) |
//! | [`ops`] | one file per op family: WGSL launches, backward, f64 CPU reference, tests | `gpu`, `tensor`, `autograd` |
//! | [`rng`] | seeded, serialisable random numbers (host side) | nothing |
//!
//! Kernels live in `shaders/<family>/*.wgsl`; each opens with what it computes, its math, layout and grid.

pub mod autograd;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod diffusion;
pub mod error;
pub mod gpu;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod optim;
pub mod ops;
pub mod rng;
pub mod tensor;
pub mod train;
#[doc(hidden)]
pub mod testing;

pub use error::{Error, Result};
pub use tensor::Tensor;

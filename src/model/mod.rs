//! MedSegDiff (SPEC §4): the configuration, the conditioning block (FF-Parser + attentive fusion), the U-Net,
//! and weights I/O with the PyTorch package's parameter names.

pub mod conditioning;
pub mod config;
pub mod memory;
pub mod reference;
pub mod unet;
pub mod weights;

pub use config::UnetConfig;
pub use unet::Unet;

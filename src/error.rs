//! The library's error type: every message names the op, shape, file or flag that is wrong.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An op was given shapes it cannot use, e.g. "conv2d: input has 3 channels but weight [8, 4, 3, 3] expects 4".
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A file that exists but whose content is wrong (bad safetensors, truncated PNG, wrong tensor shapes).
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// An invalid configuration or flag, with the fix when it is known.
    #[error("{0}")]
    Config(String),
    /// Backward of a taped op failed; `entry` is its index on the tape.
    #[error("backward of {op} (tape entry {entry}): {source}")]
    Backward { op: &'static str, entry: usize, source: Box<Error> },
}

pub type Result<T> = std::result::Result<T, Error>;

/// `shape_err!("conv2d", "input has {} channels", c)` builds an `Err(Error::Shape { .. })`.
#[macro_export]
macro_rules! shape_err {
    ($op:expr, $($arg:tt)*) => {
        Err($crate::Error::Shape { op: $op, msg: format!($($arg)*) })
    };
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
        Error::Format { path: path.into(), msg: msg.into() }
    }
}

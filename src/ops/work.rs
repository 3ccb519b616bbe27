//! What each dispatch was for: the workload log behind `medsegdiff bench --workload` and `profile`.
//!
//! An op opens a [`scope`] with its name, its shape and its FLOP count; every dispatch recorded until the scope
//! ends belongs to that call. Scopes nest (a Winograd conv runs plane GEMMs through the matmul): the outermost
//! one owns the dispatches, so a conv is counted once, with the direct convolution's FLOPs, as PyTorch's flop
//! counter counts it. A dispatch outside every scope (an elementwise op, a norm, a copy) is a call of its own,
//! named by its kernel, with the shapes of its tensors and no FLOPs: such kernels are memory-bound, and their
//! rows are judged by bytes.
//!
//! `bytes` of a call is the sum, over its dispatches, of the sizes of the tensors each binds: the traffic when
//! every bound buffer is read or written once per dispatch (a lower bound for one kernel, an upper bound on the
//! compulsory traffic of a chain whose intermediates stay in cache).
//!
//! Nothing is logged unless [`start`] was called on this thread; off, a scope costs one thread-local read.

use std::cell::RefCell;
use std::ops::Range;

use crate::tensor::Tensor;

/// One op call (or one unscoped dispatch) of a logged run.
#[derive(Clone, Debug)]
pub struct OpCall {
    /// The op ("matmul", "conv2d.fwd", ...) or, unscoped, the kernel's label without its overrides.
    pub op: String,
    /// Its shapes, e.g. "b16 1024x16·16x1024" or "(8,32,32,32)->(8,32,32,32)".
    pub shape: String,
    pub flops: f64,
    pub bytes: f64,
    /// The kernels it ran (shader:entry and override constants), in first-use order: the rung it took.
    pub kernels: Vec<String>,
    /// Its dispatches, as indices of the runtime's dispatch counter (with the runtime's own, e.g. the NaN
    /// fills of fresh buffers in test builds).
    pub dispatches: Range<u64>,
    /// Kernel launches the op itself recorded.
    pub launches: u64,
}

struct Frame {
    op: &'static str,
    shape: String,
    flops: f64,
    bytes: f64,
    kernels: Vec<String>,
    launches: u64,
    start: u64,
}

#[derive(Default)]
struct Log {
    calls: Vec<OpCall>,
    open: Vec<Frame>,
}

thread_local! {
    static LOG: RefCell<Option<Log>> = const { RefCell::new(None) };
}

/// Start logging op calls on this thread (dropping any earlier log).
pub fn start() {
    LOG.with(|l| *l.borrow_mut() = Some(Log::default()));
}

/// Stop logging and return the calls since [`start`], in recording order.
pub fn stop() -> Vec<OpCall> {
    LOG.with(|l| l.borrow_mut().take().map(|log| log.calls).unwrap_or_default())
}

/// Whether a log is open on this thread ([`on_launch`] wants to hear about launches; `launch` builds no label
/// otherwise).
pub(crate) fn active() -> bool {
    LOG.with(|l| l.borrow().is_some())
}

fn dispatch_count() -> u64 {
    crate::gpu::gpu().counters().0
}

/// Ends its op call when dropped (see [`scope`]).
pub(crate) struct Scope(bool);

/// Attribute every dispatch until the guard drops to one call of `op` with `flops`; `shape` is only built
/// while logging.
pub(crate) fn scope(op: &'static str, shape: impl FnOnce() -> String, flops: f64) -> Scope {
    if !active() {
        return Scope(false);
    }
    let frame =
        Frame { op, shape: shape(), flops, bytes: 0.0, kernels: Vec::new(), launches: 0, start: dispatch_count() };
    LOG.with(|l| l.borrow_mut().as_mut().map(|log| log.open.push(frame)));
    Scope(true)
}

impl Drop for Scope {
    fn drop(&mut self) {
        if !self.0 {
            return;
        }
        let end = dispatch_count();
        LOG.with(|l| {
            let mut l = l.borrow_mut();
            let Some(log) = l.as_mut() else { return };
            let Some(f) = log.open.pop() else { return };
            if log.open.is_empty() {
                log.calls.push(OpCall {
                    op: f.op.to_string(),
                    shape: f.shape,
                    flops: f.flops,
                    bytes: f.bytes,
                    kernels: f.kernels,
                    dispatches: f.start..end,
                    launches: f.launches,
                });
            } else {
                // nested: the enclosing call owns these dispatches, and counts its own FLOPs
                let outer = log.open.last_mut().expect("not empty");
                outer.bytes += f.bytes;
                outer.launches += f.launches;
                for k in f.kernels {
                    if !outer.kernels.contains(&k) {
                        outer.kernels.push(k);
                    }
                }
            }
        });
    }
}

fn fmt_shape(s: &[usize]) -> String {
    format!("({})", s.iter().map(usize::to_string).collect::<Vec<_>>().join(","))
}

/// Called by [`super::launch`] around each dispatch while logging: `before` is the dispatch counter before it.
pub(crate) fn on_launch(name: String, kernel: String, inputs: &[&Tensor], outputs: &[&Tensor], before: u64) {
    let bytes: f64 = inputs.iter().chain(outputs).map(|t| 4.0 * t.numel() as f64).sum();
    let end = dispatch_count();
    LOG.with(|l| {
        let mut l = l.borrow_mut();
        let Some(log) = l.as_mut() else { return };
        if let Some(f) = log.open.last_mut() {
            f.bytes += bytes;
            f.launches += 1;
            if !f.kernels.contains(&kernel) {
                f.kernels.push(kernel);
            }
            return;
        }
        let ins: Vec<String> = inputs.iter().map(|t| fmt_shape(t.shape())).collect();
        let outs: Vec<String> = outputs.iter().map(|t| fmt_shape(t.shape())).collect();
        log.calls.push(OpCall {
            op: name,
            shape: format!("{}->{}", ins.join(","), outs.join(",")),
            flops: 0.0,
            bytes,
            kernels: vec![kernel],
            dispatches: before..end,
            launches: 1,
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{elementwise, matmul};

    #[test]
    fn scopes_own_their_dispatches_and_nest_into_the_outermost() {
        let a = Tensor::full(&[2, 8, 12], 1.0);
        let b = Tensor::full(&[2, 12, 16], 1.0);
        start();
        let c = matmul::matmul(&a, &b).unwrap();
        {
            let _outer = scope("outer", || "x".into(), 5.0);
            matmul::matmul(&a, &b).unwrap(); // nested: its FLOPs are the outer call's business
        }
        elementwise::add_untaped(&c, &c).unwrap();
        let calls = stop();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert_eq!(calls[0].op, "matmul");
        assert_eq!(calls[0].flops, 2.0 * 2.0 * 8.0 * 16.0 * 12.0);
        assert!(calls[0].dispatches.end > calls[0].dispatches.start);
        assert!(calls[0].kernels.iter().all(|k| k.starts_with("matmul/")), "{:?}", calls[0].kernels);
        assert_eq!((calls[1].op.as_str(), calls[1].flops), ("outer", 5.0));
        assert!(!calls[1].kernels.is_empty() && calls[1].bytes > 0.0);
        // an unscoped dispatch is its own call, named by its kernel, with its tensors' shapes
        assert!(calls[2].op.starts_with("elementwise/"), "{}", calls[2].op);
        assert_eq!(calls[2].shape, "(2,8,16),(2,8,16)->(2,8,16)");
        assert_eq!(calls[2].bytes, 3.0 * 4.0 * 256.0);
        // (the dispatch counter is the process's: tests on other threads may dispatch in between)
        assert!(calls[1].dispatches.end <= calls[2].dispatches.start);
        // off: nothing is kept
        matmul::matmul(&a, &b).unwrap();
        assert!(stop().is_empty());
    }
}

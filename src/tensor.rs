//! `Tensor`: an N-d, contiguous, row-major f32 array living in one GPU buffer.
//!
//! A `Tensor` is a cheap handle (`Rc`): cloning it shares the buffer and keeps the same [`TensorId`], which is
//! how the autograd tape names it. `reshape` shares the buffer under a new id. Data moves between host and
//! device only through [`Tensor::from_slice`] (upload) and [`Tensor::to_vec`] (download, which flushes the
//! recorded GPU work). Random tensors are drawn on the host from a seeded [`Rng`] and uploaded, so the same
//! seed gives the same numbers on every adapter.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::gpu::{gpu, GpuBuffer};
use crate::rng::Rng;
use crate::{autograd, shape_err, Result};

pub type TensorId = u64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Clone)]
pub struct Tensor(Rc<Inner>);

struct Inner {
    id: TensorId,
    shape: Vec<usize>,
    buf: Rc<GpuBuffer>,
    requires_grad: Cell<bool>,
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    fn wrap(shape: Vec<usize>, buf: Rc<GpuBuffer>) -> Tensor {
        Tensor(Rc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape,
            buf,
            requires_grad: Cell::new(false),
        }))
    }

    /// A tensor whose contents are undefined: for op outputs that a kernel fully overwrites.
    pub fn uninit(shape: &[usize]) -> Tensor {
        Tensor::wrap(shape.to_vec(), Rc::new(GpuBuffer::uninit_shaped(numel(shape), shape, true)))
    }

    /// [`Tensor::uninit`] for an op's scratch that the op sizes to the adapter's limits (it takes another rung
    /// when the scratch would not fit a binding: Winograd transforms, split partials, packed operands), so it
    /// never decides whether a run fits and `PoolStats::largest` leaves it out.
    pub fn scratch(shape: &[usize]) -> Tensor {
        Tensor::wrap(shape.to_vec(), Rc::new(GpuBuffer::uninit_shaped(numel(shape), shape, false)))
    }

    /// Upload `data` with `shape`; errors when the lengths disagree.
    pub fn from_slice(data: &[f32], shape: &[usize]) -> Result<Tensor> {
        if data.len() != numel(shape) {
            return shape_err!(
                "from_slice",
                "{} values cannot fill shape {:?} ({} elements)",
                data.len(),
                shape,
                numel(shape)
            );
        }
        Ok(Tensor::wrap(shape.to_vec(), Rc::new(GpuBuffer::from_slice(data))))
    }

    /// A zeroed slab of `len` values that [`Tensor::view`]s share (not pooled: it lives until its last view
    /// drops). The model's parameters, gradients and optimizer state live in slabs, so the optimizer updates
    /// them with a few dispatches per slab instead of a few per tensor.
    pub fn slab(len: usize) -> Tensor {
        Tensor::wrap(vec![len], Rc::new(GpuBuffer::slab(len)))
    }

    /// `shape` values of the slab this tensor is (or is a view of), from value `start` of the slab, which must be
    /// a multiple of [`VIEW_ALIGN`](crate::gpu::VIEW_ALIGN).
    pub fn view(&self, start: usize, shape: &[usize]) -> Result<Tensor> {
        match self.0.buf.view(start, numel(shape)) {
            Some(b) => Ok(Tensor::wrap(shape.to_vec(), Rc::new(b))),
            None => shape_err!(
                "view",
                "cannot view {:?} at value {start} of {:?}: not a slab, a start not a multiple of {}, or past its end",
                shape,
                self.shape(),
                crate::gpu::VIEW_ALIGN
            ),
        }
    }

    /// (slab id, first value in the slab) of a slab or a view of one; None for a pooled tensor.
    pub fn slab_slot(&self) -> Option<(u64, usize)> {
        self.0.buf.slab_slot()
    }

    /// Overwrite the values with `data` (same length), recorded in order with the dispatches.
    pub fn write(&self, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() {
            return shape_err!("write", "{} values cannot fill {:?}", data.len(), self.shape());
        }
        self.0.buf.upload(data);
        Ok(())
    }

    pub fn scalar(v: f32) -> Tensor {
        Tensor::from_slice(&[v], &[1]).expect("one value")
    }

    pub fn full(shape: &[usize], value: f32) -> Tensor {
        crate::ops::elementwise::fill(shape, value)
    }

    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 0.0)
    }

    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    /// Standard normal values from `rng` (host-generated: identical on every adapter).
    pub fn randn(shape: &[usize], rng: &mut Rng) -> Tensor {
        Tensor::from_slice(&rng.normal_vec(numel(shape)), shape).expect("length matches")
    }

    /// Uniform values in [lo, hi) from `rng`.
    pub fn rand_uniform(shape: &[usize], lo: f32, hi: f32, rng: &mut Rng) -> Tensor {
        Tensor::from_slice(&rng.uniform_vec(numel(shape), lo, hi), shape).expect("length matches")
    }

    pub fn id(&self) -> TensorId {
        self.0.id
    }

    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }

    pub fn numel(&self) -> usize {
        numel(&self.0.shape)
    }

    /// Size of dimension `d`; negative counts from the end.
    pub fn dim(&self, d: isize) -> usize {
        let r = self.rank() as isize;
        self.0.shape[(if d < 0 { r + d } else { d }) as usize]
    }

    pub fn buf(&self) -> &GpuBuffer {
        &self.0.buf
    }

    /// Download the values (flushes all recorded GPU work).
    pub fn to_vec(&self) -> Vec<f32> {
        gpu().read(&self.0.buf)[..self.numel()].to_vec()
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> f32 {
        assert_eq!(self.numel(), 1, "item() on a tensor of shape {:?}", self.shape());
        self.to_vec()[0]
    }

    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.get()
    }

    /// Mark as a leaf whose gradient `autograd::backward` should return (parameters, inputs under test).
    pub fn with_grad(self) -> Tensor {
        self.0.requires_grad.set(true);
        self
    }

    pub(crate) fn set_requires_grad(&self, v: bool) {
        self.0.requires_grad.set(v);
    }

    /// Same buffer, new id, outside the tape.
    pub fn detach(&self) -> Tensor {
        Tensor::wrap(self.0.shape.clone(), self.0.buf.clone())
    }

    /// Same buffer viewed with another shape of the same element count (taped: backward reshapes back).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return shape_err!(
                "reshape",
                "cannot view {:?} ({} elements) as {:?} ({} elements)",
                self.shape(),
                self.numel(),
                shape,
                numel(shape)
            );
        }
        let out = Tensor::wrap(shape.to_vec(), self.0.buf.clone());
        let back = self.shape().to_vec();
        autograd::record("reshape", &[self], &out, move |g, _| Ok(vec![Some(g.reshape(&back)?)]));
        Ok(out)
    }

    /// Whether this handle is the only one to its tensor and its buffer (no clone, no reshape view): then
    /// writing into the buffer in place is invisible to everyone else.
    pub fn is_unique(&self) -> bool {
        Rc::strong_count(&self.0) == 1 && Rc::strong_count(&self.0.buf) == 1
    }

    /// Whether two handles share one buffer (reshape views do).
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Rc::ptr_eq(&self.0.buf, &other.0.buf)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor(id={}, shape={:?}{})",
            self.id(),
            self.shape(),
            if self.requires_grad() { ", grad" } else { "" }
        )
    }
}

//! Reverse-mode automatic differentiation on a tape, in the spirit of micrograd's `engine.py`.
//!
//! Each taped op pushes one [`Node`]: its name, the ids of its inputs, the id of its output, which inputs
//! need a gradient, and a backward closure that captures whatever the forward saved. [`backward`] seeds
//! d(loss)/d(loss) = 1 and walks the tape in reverse; each node turns the gradient of its output into
//! gradients of its inputs.
//!
//! **The accumulation rule:** gradients are summed (`+=`), never assigned, because one tensor can feed
//! several ops (a residual connection, a weight shared by two paths). The store a gradient goes into is
//! zeroed only explicitly: [`backward`] starts from an empty [`Grads`]; [`backward_into`] adds to an existing
//! one (gradient accumulation over micro-batches) until the caller calls [`Grads::zero`].
//!
//! The tape is per thread. Ops are recorded only when an input requires a gradient and grad mode is on;
//! [`no_grad`] turns it off for sampling. Backward closures run GPU kernels directly and are not themselves
//! taped (no higher-order gradients).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::tensor::{Tensor, TensorId};
use crate::{Error, Result};

/// The backward of one op: (gradient of the output, which inputs need one) -> one `Option` per input.
pub type BackwardFn = Box<dyn FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>>>;

pub struct Node {
    pub op: &'static str,
    pub inputs: Vec<TensorId>,
    pub needs: Vec<bool>,
    pub output: TensorId,
    backward: BackwardFn,
    /// Set by [`record_slab`]: the output is a slab of the single input, so its gradient goes into that slab.
    slab: Option<Slab>,
}

/// Where a narrowed output sits in its input: `start..start + len` along `axis` of an input of `shape`.
struct Slab {
    axis: usize,
    start: usize,
    shape: Vec<usize>,
}

thread_local! {
    static TAPE: RefCell<Vec<Node>> = const { RefCell::new(Vec::new()) };
    static GRAD_ON: Cell<bool> = const { Cell::new(true) };
    static TRACE: RefCell<Option<Vec<TraceEntry>>> = const { RefCell::new(None) };
}

/// One line of `medsegdiff trace`: a taped op (or the backward of one) with its shapes, and the number of
/// GPU dispatches recorded so far when it finished (so the dispatches since the previous entry are its own).
#[derive(Clone, Debug)]
pub struct TraceEntry {
    pub op: String,
    pub inputs: Vec<Vec<usize>>,
    pub output: Vec<usize>,
    pub dispatch_end: u64,
}

/// Start (or stop and return) the trace of taped ops.
pub fn set_trace(on: bool) -> Vec<TraceEntry> {
    TRACE.with(|t| std::mem::replace(&mut *t.borrow_mut(), on.then(Vec::new)).unwrap_or_default())
}

fn trace(op: String, inputs: Vec<Vec<usize>>, output: Vec<usize>) {
    TRACE.with(|t| {
        if let Some(log) = t.borrow_mut().as_mut() {
            log.push(TraceEntry { op, inputs, output, dispatch_end: crate::gpu::gpu().counters().0 });
        }
    });
}

/// Record `output = op(inputs)` if any input requires a gradient. Marks `output` as requiring one.
pub fn record(
    op: &'static str,
    inputs: &[&Tensor],
    output: &Tensor,
    backward: impl FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + 'static,
) {
    let needs: Vec<bool> = inputs.iter().map(|t| t.requires_grad()).collect();
    if !GRAD_ON.with(Cell::get) || !needs.iter().any(|&n| n) {
        return;
    }
    output.set_requires_grad(true);
    trace(op.to_string(), inputs.iter().map(|t| t.shape().to_vec()).collect(), output.shape().to_vec());
    let node = Node {
        op,
        inputs: inputs.iter().map(|t| t.id()).collect(),
        needs,
        output: output.id(),
        backward: Box::new(backward),
        slab: None,
    };
    TAPE.with(|t| t.borrow_mut().push(node));
}

/// Record `output = input[.., start..start+len, ..]` along `axis` (narrow, chunk). Its backward is a scatter,
/// which the tape does itself: the output's gradient is added into that slab of the input's gradient in
/// place (a zeroed buffer the first time), instead of the op building a zero-padded full-size tensor that the
/// tape then adds. For a chunk into n parts that is one zero fill and n slab adds instead of n fills, n copies
/// and n − 1 full-size adds.
pub fn record_slab(op: &'static str, input: &Tensor, output: &Tensor, axis: usize, start: usize) {
    let before = tape_len();
    record(op, &[input], output, |g, _| Ok(vec![Some(g.clone())]));
    if tape_len() > before {
        let shape = input.shape().to_vec();
        TAPE.with(|t| t.borrow_mut().last_mut().expect("just recorded").slab = Some(Slab { axis, start, shape }));
    }
}

/// `prev + g` for a gradient slot: g is a whole gradient, or with `slab` the gradient of a slab of it.
fn accumulate_into(prev: Option<Tensor>, g: Tensor, slab: Option<&Slab>) -> Result<Tensor> {
    let Some(s) = slab else {
        return match prev {
            Some(prev) => crate::ops::elementwise::add_untaped(&prev, &g),
            None => Ok(g),
        };
    };
    // in place only into a buffer nobody else holds (a gradient may be shared, e.g. add hands g to both sides)
    let into = match prev {
        Some(prev) if prev.is_unique() => prev,
        Some(prev) => crate::ops::elementwise::add_untaped(&prev, &Tensor::zeros(&s.shape))?,
        None => Tensor::zeros(&s.shape),
    };
    crate::ops::layout::place_raw(&g, &into, s.axis, s.start, true)?;
    Ok(into)
}

/// Gradients by tensor id.
#[derive(Default)]
pub struct Grads {
    map: HashMap<TensorId, Tensor>,
}

impl Grads {
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.map.get(&t.id())
    }
    pub fn get_id(&self, id: TensorId) -> Option<&Tensor> {
        self.map.get(&id)
    }
    /// Forget every gradient (the explicit zeroing of the module doc).
    pub fn zero(&mut self) {
        self.map.clear();
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    fn accumulate(&mut self, id: TensorId, g: Tensor, slab: Option<&Slab>) -> Result<()> {
        let sum = accumulate_into(self.map.remove(&id), g, slab)?;
        self.map.insert(id, sum);
        Ok(())
    }
}

/// Gradients of `loss` (any shape: seeded with ones) with respect to every taped tensor that requires one.
/// Consumes the tape.
pub fn backward(loss: &Tensor) -> Result<Grads> {
    let mut grads = Grads::default();
    backward_into(loss, &mut grads)?;
    Ok(grads)
}

/// Like [`backward`], adding into `grads` (see the accumulation rule above).
pub fn backward_into(loss: &Tensor, grads: &mut Grads) -> Result<()> {
    let tape = TAPE.with(|t| std::mem::take(&mut *t.borrow_mut()));
    // Gradients of intermediate tensors live here and are dropped once used; leaves go into `grads`.
    let mut inner: HashMap<TensorId, Tensor> = HashMap::new();
    let produced: std::collections::HashSet<TensorId> = tape.iter().map(|n| n.output).collect();
    inner.insert(loss.id(), Tensor::ones(loss.shape()));
    for (entry, node) in tape.into_iter().enumerate().rev() {
        let Some(g) = inner.remove(&node.output) else { continue };
        let (op, needs, inputs, slab) = (node.op, node.needs, node.inputs, node.slab);
        let gshape = g.shape().to_vec();
        let ins = (node.backward)(&g, &needs).map_err(|e| Error::Backward { op, entry, source: Box::new(e) })?;
        trace(
            format!("backward {op}"),
            vec![gshape],
            ins.iter().flatten().next().map(|t| t.shape().to_vec()).unwrap_or_default(),
        );
        for ((id, need), gi) in inputs.into_iter().zip(needs).zip(ins) {
            let Some(gi) = gi.filter(|_| need) else { continue };
            if produced.contains(&id) {
                let sum = accumulate_into(inner.remove(&id), gi, slab.as_ref())?;
                inner.insert(id, sum);
            } else {
                grads.accumulate(id, gi, slab.as_ref())?;
            }
        }
    }
    Ok(())
}

/// Drop the tape without computing gradients (e.g. after a forward used only for its value).
pub fn clear() {
    TAPE.with(|t| t.borrow_mut().clear());
}

/// Number of recorded entries (for `medsegdiff trace` and tests).
pub fn tape_len() -> usize {
    TAPE.with(|t| t.borrow().len())
}

/// Names of the recorded ops, in order.
pub fn tape_ops() -> Vec<&'static str> {
    TAPE.with(|t| t.borrow().iter().map(|n| n.op).collect())
}

/// While the guard lives, ops are not taped (sampling, evaluation).
pub struct NoGrad(bool);

pub fn no_grad() -> NoGrad {
    NoGrad(GRAD_ON.with(|g| g.replace(false)))
}

impl Drop for NoGrad {
    fn drop(&mut self) {
        GRAD_ON.with(|g| g.set(self.0));
    }
}

pub fn grad_enabled() -> bool {
    GRAD_ON.with(Cell::get)
}

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
    };
    TAPE.with(|t| t.borrow_mut().push(node));
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
    fn accumulate(&mut self, id: TensorId, g: Tensor) -> Result<()> {
        let sum = match self.map.remove(&id) {
            Some(prev) => crate::ops::elementwise::add_untaped(&prev, &g)?,
            None => g,
        };
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
        let (op, needs, inputs) = (node.op, node.needs, node.inputs);
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
                let sum = match inner.remove(&id) {
                    Some(prev) => crate::ops::elementwise::add_untaped(&prev, &gi)?,
                    None => gi,
                };
                inner.insert(id, sum);
            } else {
                grads.accumulate(id, gi)?;
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

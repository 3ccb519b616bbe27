//! Layers built from the op set, with PyTorch's parameter names and default initialisation.
//!
//! A [`VarBuilder`] hands out parameters under dotted paths (`downs.0.0.block1.proj.weight`), exactly the
//! names of the PyTorch package's `state_dict()`, so a state_dict saved as safetensors loads unchanged.
//! Layers hold their parameter tensors and never touch wgpu: they call `crate::ops` only.
//!
//! Initialisation follows PyTorch's defaults: `Conv2d`/`Linear` weights kaiming-uniform with a = √5, which is
//! U(−1/√fan_in, 1/√fan_in), biases U(−1/√fan_in, 1/√fan_in); norm gains 1, biases 0.

mod blocks;
mod layers;

pub use blocks::{
    Attention, AttentionKind, Block, Downsample, FeedForward, LinearAttention, ResnetBlock, TimeMlp, Transformer,
    Upsample,
};
pub use layers::{Conv2d, GroupNorm, LayerNorm, Linear};

use std::cell::RefCell;
use std::rc::Rc;

use crate::rng::Rng;
use crate::tensor::{numel, Tensor};

/// How a new parameter is filled.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    Zeros,
    Ones,
    /// U(−bound, bound)
    Uniform(f32),
}

/// Every parameter of a model, in creation order, by PyTorch name.
#[derive(Default)]
pub struct VarStore {
    pub params: Vec<(String, Tensor)>,
}

impl VarStore {
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    pub fn num_params(&self) -> usize {
        self.params.iter().map(|(_, t)| t.numel()).sum()
    }
}

/// Where parameters live: views into slabs of `SLAB_VALUES` (a larger parameter gets a slab of its own), each
/// starting on a 256-byte boundary, so the optimizer can treat a slab's parameters as one tensor.
#[derive(Default)]
struct ParamArena {
    /// (slab, values used)
    slabs: Vec<(Tensor, usize)>,
}

/// Values per parameter slab (16 MiB): the tiny and small presets fit one, the paper preset a few.
const SLAB_VALUES: usize = 4 << 20;

impl ParamArena {
    fn alloc(&mut self, shape: &[usize]) -> Tensor {
        let n = numel(shape);
        let padded = n.max(1).div_ceil(crate::gpu::VIEW_ALIGN) * crate::gpu::VIEW_ALIGN;
        let fits = self.slabs.last().is_some_and(|(s, used)| used + padded <= s.numel());
        if !fits {
            self.slabs.push((Tensor::slab(SLAB_VALUES.max(padded)), 0));
        }
        let (slab, used) = self.slabs.last_mut().expect("just ensured");
        let t = slab.view(*used, shape).expect("aligned and inside the slab by construction");
        *used += padded;
        t
    }
}

/// Creates parameters under a name prefix; cheap to clone, shares the store, the slabs and the init RNG.
#[derive(Clone)]
pub struct VarBuilder {
    store: Rc<RefCell<VarStore>>,
    arena: Rc<RefCell<ParamArena>>,
    rng: Rc<RefCell<Rng>>,
    prefix: String,
}

impl VarBuilder {
    pub fn new(seed: u64) -> VarBuilder {
        VarBuilder {
            store: Rc::default(),
            arena: Rc::default(),
            rng: Rc::new(RefCell::new(Rng::new(seed))),
            prefix: String::new(),
        }
    }

    /// A builder one level down: `vb.pp("downs").pp(0)` names `downs.0.*`.
    pub fn pp(&self, name: impl std::fmt::Display) -> VarBuilder {
        let prefix = if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) };
        VarBuilder { store: self.store.clone(), arena: self.arena.clone(), rng: self.rng.clone(), prefix }
    }

    /// Create (and register) a parameter `prefix.name` of `shape`.
    pub fn var(&self, name: &str, shape: &[usize], init: Init) -> Tensor {
        let data: Vec<f32> = match init {
            Init::Zeros => vec![0.0; numel(shape)],
            Init::Ones => vec![1.0; numel(shape)],
            Init::Uniform(b) => self.rng.borrow_mut().uniform_vec(numel(shape), -b, b),
        };
        let t = self.arena.borrow_mut().alloc(shape);
        t.write(&data).expect("length matches");
        let t = t.with_grad();
        let full = self.pp(name).prefix;
        self.store.borrow_mut().params.push((full, t.clone()));
        t
    }

    pub fn store(&self) -> Rc<RefCell<VarStore>> {
        self.store.clone()
    }
}

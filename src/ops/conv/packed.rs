//! Packed and Winograd-transformed weights kept for the length of a scope ([`keep_packed_weights`]). Sampling
//! runs the same network once per step with weights that cannot change, so each conv's weight packing (v5, v9)
//! and Winograd transform (v6, v8) runs once per sampling call instead of once per step: one launch fewer per
//! conv and step. Only parameters are kept (tensors marked as leaves with gradients, the model's weights,
//! whose ids are stable); weights computed on the fly are packed every time. Outside a scope nothing is kept.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::tensor::TensorId;
use crate::Tensor;

thread_local! {
    static KEPT: RefCell<Option<HashMap<(TensorId, &'static str), Tensor>>> = const { RefCell::new(None) };
}

/// While alive, packed weights are kept (see the module doc); dropping the outermost guard frees them. The
/// caller promises the parameters do not change meanwhile (no optimiser step, no weight load).
pub struct KeepPacked {
    outermost: bool,
}

pub fn keep_packed_weights() -> KeepPacked {
    KEPT.with(|k| {
        let mut k = k.borrow_mut();
        let outermost = k.is_none();
        if outermost {
            *k = Some(HashMap::new());
        }
        KeepPacked { outermost }
    })
}

impl Drop for KeepPacked {
    fn drop(&mut self) {
        if self.outermost {
            KEPT.with(|k| *k.borrow_mut() = None);
        }
    }
}

/// The `kind` packing of weight `w`: `make()`'s result, kept for the scope when one is active and `w` is a
/// parameter. `kind` names the layout (rung and tile), which with `w`'s shape fixes the packed tensor.
pub(super) fn packed(w: &Tensor, kind: &'static str, make: impl FnOnce() -> Tensor) -> Tensor {
    if !w.requires_grad() {
        return make();
    }
    let key = (w.id(), kind);
    match KEPT.with(|k| k.borrow().as_ref().map(|m| m.get(&key).cloned())) {
        None => make(),
        Some(Some(t)) => t,
        Some(None) => {
            let t = make();
            KEPT.with(|k| {
                if let Some(m) = k.borrow_mut().as_mut() {
                    m.insert(key, t.clone());
                }
            });
            t
        }
    }
}

//! The tape end to end: gradients through a chain of ops, accumulation when a tensor is used twice,
//! explicit zeroing, and no-grad mode.

use medsegdiff::autograd::{self, backward, backward_into, no_grad, Grads};
use medsegdiff::ops::{elementwise as ew, matmul::matmul, reduce};
use medsegdiff::rng::Rng;
use medsegdiff::testing::{check_grads, Input};
use medsegdiff::Tensor;

/// loss-style chain: mean(gelu(x·W + b) ⊙ x·W) — x·W feeds two ops, so its gradient must be a sum.
#[test]
fn chain_with_reused_tensor_matches_finite_differences() {
    let (n, k, m) = (5, 7, 3);
    let ins = [
        Input::uniform(&[n, k], -1.0, 1.0, 1),
        Input::uniform(&[k, m], -1.0, 1.0, 2),
        Input::uniform(&[m], -0.5, 0.5, 3),
    ];
    check_grads(
        "mlp chain",
        &ins,
        |x| {
            let h = matmul(&x[0], &x[1])?;
            let a = ew::gelu(&ew::add(&h, &x[2])?);
            reduce::mean(&ew::mul(&a, &h)?, &[1], false)
        },
        |x| {
            use medsegdiff::ops::elementwise::{cpu as ecpu, UnaryOp};
            let h = medsegdiff::ops::matmul::cpu::matmul(&x[0], &[n, k], false, &x[1], &[k, m], false);
            (0..n)
                .map(|i| {
                    (0..m).map(|j| ecpu::unary(UnaryOp::Gelu, h[i * m + j] + x[2][j]) * h[i * m + j]).sum::<f64>()
                        / m as f64
                })
                .collect()
        },
    );
}

#[test]
fn backward_into_accumulates_until_zeroed() {
    let w = Tensor::from_slice(&[1.0, 2.0, 3.0], &[3]).unwrap().with_grad();
    let mut grads = Grads::default();
    for _ in 0..2 {
        let loss = reduce::sum_all(&ew::scale(&w, 2.0)).unwrap(); // d/dw = 2
        backward_into(&loss, &mut grads).unwrap();
    }
    assert_eq!(grads.get(&w).unwrap().to_vec(), vec![4.0, 4.0, 4.0], "two backward passes add up");
    grads.zero();
    assert!(grads.get(&w).is_none());
    let loss = reduce::sum_all(&ew::square(&w)).unwrap(); // d/dw = 2w
    backward_into(&loss, &mut grads).unwrap();
    assert_eq!(grads.get(&w).unwrap().to_vec(), vec![2.0, 4.0, 6.0]);
}

#[test]
fn no_grad_records_nothing_and_constants_get_no_gradient() {
    autograd::clear();
    let w = Tensor::randn(&[4, 4], &mut Rng::new(1)).with_grad();
    {
        let _g = no_grad();
        let y = ew::silu(&matmul(&w, &w).unwrap());
        assert_eq!(autograd::tape_len(), 0);
        assert!(!y.requires_grad());
    }
    let c = Tensor::ones(&[4, 4]);
    let y = ew::mul(&w, &c).unwrap();
    assert_eq!(autograd::tape_ops(), vec!["mul"]);
    let grads = backward(&reduce::sum_all(&y).unwrap()).unwrap();
    assert!(grads.get(&c).is_none(), "a constant has no gradient");
    assert_eq!(grads.get(&w).unwrap().to_vec(), vec![1.0; 16]);
    assert_eq!(autograd::tape_len(), 0, "backward consumes the tape");
}

#[test]
fn backward_error_names_the_op_and_tape_entry() {
    // A taped op whose backward fails: the tape must wrap the error with the op's name and its entry index.
    autograd::clear();
    let w = Tensor::ones(&[3]).with_grad();
    let y = ew::scale(&w, 2.0); // entry 0
    let z = ew::silu(&y); // entry 1: its recorded backward is replaced by a failing one below
    let broken = Tensor::zeros(&[3]);
    autograd::record("broken_op", &[&z], &broken, |_, _| Err(medsegdiff::Error::Config("boom".into()))); // entry 2
    let e = backward(&broken).err().expect("backward must fail").to_string();
    assert_eq!(e, "backward of broken_op (tape entry 2): boom");
}

//! Elementwise ops: binary with broadcasting (add, sub, mul, div), unary (scale/affine, SiLU, GELU, exp,
//! sqrt, clamp, square, sigmoid) and fill.
//!
//! Forward: `out = a ⊙ b` (shaders/elementwise/binary.wgsl) and `y = f(x)` (unary.wgsl).
//! Backward:
//! - add: da = g, db = g;  sub: da = g, db = −g;  mul: da = g·b, db = g·a;  div: da = g/b, db = −g·a/b²
//!   each then summed over the axes where that operand was broadcast (`sum_to_shape`).
//! - unary: dx = g·f'(x) (unary_backward.wgsl); f' for each function is written in that shader's header.
//!
//! Forward saves the operands it needs (a, b for mul/div; x for unary).

use bytemuck::{Pod, Zeroable};

use super::{groups_1d, launch};
use crate::gpu::Shader;
use crate::ops::reduce::sum_to_shape;
use crate::tensor::{numel, Tensor};
use crate::{autograd, shader, shape_err, Result};

const BINARY: Shader = shader!("elementwise/binary.wgsl");
const BINARY_VEC4: Shader = shader!("elementwise/binary_vec4.wgsl");
const BINARY_ROWS_VEC4: Shader = shader!("elementwise/binary_rows_vec4.wgsl");
const UNARY: Shader = shader!("elementwise/unary.wgsl");
const UNARY_BACKWARD: Shader = shader!("elementwise/unary_backward.wgsl");
const FILL: Shader = shader!("elementwise/fill.wgsl");

/// Mirrors `struct Params` in binary.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct BinaryParams {
    shape: [u32; 4],
    sa: [u32; 4],
    sb: [u32; 4],
    n: u32,
    _pad: [u32; 3],
}

/// Mirrors `struct Params` in unary.wgsl / unary_backward.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct UnaryParams {
    n: u32,
    alpha: f32,
    beta: f32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct FillParams {
    n: u32,
    value: f32,
    _pad: [u32; 2],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
}

impl BinaryOp {
    fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// alpha·x + beta
    Affine {
        alpha: f32,
        beta: f32,
    },
    Silu,
    Gelu,
    Exp,
    Sqrt,
    Clamp {
        lo: f32,
        hi: f32,
    },
    Square,
    Sigmoid,
}

impl UnaryOp {
    fn code_and_args(self) -> (u32, f32, f32, &'static str) {
        match self {
            UnaryOp::Affine { alpha, beta } => (0, alpha, beta, "affine"),
            UnaryOp::Silu => (1, 0.0, 0.0, "silu"),
            UnaryOp::Gelu => (2, 0.0, 0.0, "gelu"),
            UnaryOp::Exp => (3, 0.0, 0.0, "exp"),
            UnaryOp::Sqrt => (4, 0.0, 0.0, "sqrt"),
            UnaryOp::Clamp { lo, hi } => (5, lo, hi, "clamp"),
            UnaryOp::Square => (6, 0.0, 0.0, "square"),
            UnaryOp::Sigmoid => (7, 0.0, 0.0, "sigmoid"),
        }
    }
}

/// NumPy broadcasting of two shapes; error names both shapes.
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return shape_err!(op, "shapes {a:?} and {b:?} do not broadcast (dimension {i}: {da} vs {db})"),
        };
    }
    Ok(out)
}

/// Strides of `shape` (right-aligned into `out`'s rank) in out's index space: 0 where broadcast.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let r = out.len();
    let mut strides = vec![0; r];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        let oi = i + r - shape.len();
        strides[oi] = if shape[i] == 1 && out[oi] != 1 { 0 } else { s };
        s *= shape[i];
    }
    strides
}

/// The 4-D index space of out with a's and b's broadcast strides (see `index::pack4`).
fn coalesce4(op: &'static str, out: &[usize], sa: &[usize], sb: &[usize]) -> Result<([u32; 4], [u32; 4], [u32; 4])> {
    let dims: Vec<(usize, [usize; 2])> = (0..out.len()).map(|i| (out[i], [sa[i], sb[i]])).collect();
    let sp = super::index::pack4(op, &dims)?;
    Ok((sp.shape, sp.strides[0], sp.strides[1]))
}

/// Encode `a ⊙ b` without taping.
pub(crate) fn binary_raw(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let shape = broadcast_shape(op.name(), a.shape(), b.shape())?;
    let out = Tensor::uninit(&shape);
    let n = numel(&shape);
    let ov = [("OP", op as u32 as f64)];
    if a.shape() == b.shape() && n.is_multiple_of(4) {
        let p = [n as u32 / 4, 0, 0, 0];
        launch(BINARY_VEC4, "main", &ov, &p, &[a, b], &[&out], groups_1d(n / 4).div_ceil(2));
    } else if a.shape() == b.shape() {
        let p = BinaryParams { shape: [0; 4], sa: [0; 4], sb: [0; 4], n: n as u32, _pad: [0; 3] };
        launch(BINARY, "main_same", &ov, &p, &[a, b], &[&out], groups_1d(n));
    } else if let Some((full, row, swap, l)) = rows_operands(a, b) {
        // one operand per row of the other (a per-channel scale on (N, C, H, W)), rows of whole vec4s
        let p = [(n / 4) as u32, (l / 4) as u32, 0, 0];
        let ov = [("OP", op as u32 as f64), ("SWAP", f64::from(u8::from(swap)))];
        launch(BINARY_ROWS_VEC4, "main", &ov, &p, &[full, row], &[&out], groups_1d(n / 4));
    } else {
        let (s, sa, sb) =
            coalesce4(op.name(), &shape, &broadcast_strides(a.shape(), &shape), &broadcast_strides(b.shape(), &shape))?;
        let p = BinaryParams { shape: s, sa, sb, n: n as u32, _pad: [0; 3] };
        launch(BINARY, "main", &ov, &p, &[a, b], &[&out], groups_1d(n));
    }
    Ok(out)
}

/// When one of a, b is full-size and the other is constant along the full one's trailing axes (right-aligned
/// shape = the full shape's first k axes, then 1s: (N, C, 1, 1) against (N, C, H, W)), with rows of a whole
/// number of vec4s: (full, row, row operand is the left one, row length).
fn rows_operands<'a>(a: &'a Tensor, b: &'a Tensor) -> Option<(&'a Tensor, &'a Tensor, bool, usize)> {
    let rows_of = |full: &[usize], row: &[usize]| -> Option<usize> {
        if row.len() > full.len() || row.iter().product::<usize>() == 0 {
            return None;
        }
        let padded: Vec<usize> = std::iter::repeat_n(1, full.len() - row.len()).chain(row.iter().copied()).collect();
        // k = the number of leading axes the row operand shares; everything after must be 1 in it
        let k = padded.iter().rposition(|&d| d != 1).map_or(0, |i| i + 1);
        let same_lead = padded[..k] == full[..k];
        let len: usize = full[k..].iter().product();
        (same_lead && len > 1 && len.is_multiple_of(4)).then_some(len)
    };
    if let Some(l) = rows_of(a.shape(), b.shape()) {
        Some((a, b, false, l))
    } else {
        rows_of(b.shape(), a.shape()).map(|l| (b, a, true, l))
    }
}

/// Encode `f(x)` without taping.
fn unary_raw(op: UnaryOp, x: &Tensor) -> Tensor {
    let (code, alpha, beta, _) = op.code_and_args();
    let out = Tensor::uninit(x.shape());
    let p = UnaryParams { n: x.numel() as u32, alpha, beta, _pad: 0 };
    launch(UNARY, "main", &[("OP", code as f64)], &p, &[x], &[&out], groups_1d(x.numel()));
    out
}

/// Encode `dy · f'(x)`.
fn unary_backward_raw(op: UnaryOp, x: &Tensor, dy: &Tensor) -> Tensor {
    let (code, alpha, beta, _) = op.code_and_args();
    let dx = Tensor::uninit(x.shape());
    let p = UnaryParams { n: x.numel() as u32, alpha, beta, _pad: 0 };
    launch(UNARY_BACKWARD, "main", &[("OP", code as f64)], &p, &[x, dy], &[&dx], groups_1d(x.numel()));
    dx
}

/// `a ⊙ b` with broadcasting, taped.
pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = binary_raw(op, a, b)?;
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    let (a2, b2) = (a.clone(), b.clone());
    autograd::record(op.name(), &[a, b], &out, move |g, needs| {
        let (da, db) = match op {
            BinaryOp::Add => (needs[0].then(|| g.clone()), needs[1].then(|| g.clone())),
            BinaryOp::Sub => (
                needs[0].then(|| g.clone()),
                needs[1].then(|| unary_raw(UnaryOp::Affine { alpha: -1.0, beta: 0.0 }, g)),
            ),
            BinaryOp::Mul => (
                if needs[0] { Some(binary_raw(BinaryOp::Mul, g, &b2)?) } else { None },
                if needs[1] { Some(binary_raw(BinaryOp::Mul, g, &a2)?) } else { None },
            ),
            BinaryOp::Div => {
                let da = binary_raw(BinaryOp::Div, g, &b2)?; // g / b
                let db = if needs[1] {
                    // −g·a/b² = −(g/b)·(a/b)
                    let q = binary_raw(BinaryOp::Div, &a2, &b2)?;
                    Some(unary_raw(UnaryOp::Affine { alpha: -1.0, beta: 0.0 }, &binary_raw(BinaryOp::Mul, &da, &q)?))
                } else {
                    None
                };
                (needs[0].then_some(da), db)
            }
        };
        Ok(vec![da.map(|t| sum_to_shape(&t, &sa)).transpose()?, db.map(|t| sum_to_shape(&t, &sb)).transpose()?])
    });
    Ok(out)
}

pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Add, a, b)
}
pub fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Sub, a, b)
}
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Mul, a, b)
}
pub fn div(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Div, a, b)
}

/// `a + b` outside the tape (gradient accumulation, optimizer internals).
pub fn add_untaped(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary_raw(BinaryOp::Add, a, b)
}

/// `a · b` outside the tape.
pub fn mul_untaped(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary_raw(BinaryOp::Mul, a, b)
}

/// `f(x)`, taped.
pub fn unary(op: UnaryOp, x: &Tensor) -> Tensor {
    let out = unary_raw(op, x);
    let x2 = x.clone();
    autograd::record(op.code_and_args().3, &[x], &out, move |g, _| Ok(vec![Some(unary_backward_raw(op, &x2, g))]));
    out
}

pub fn scale(x: &Tensor, alpha: f32) -> Tensor {
    unary(UnaryOp::Affine { alpha, beta: 0.0 }, x)
}
pub fn affine(x: &Tensor, alpha: f32, beta: f32) -> Tensor {
    unary(UnaryOp::Affine { alpha, beta }, x)
}
pub fn silu(x: &Tensor) -> Tensor {
    unary(UnaryOp::Silu, x)
}
pub fn gelu(x: &Tensor) -> Tensor {
    unary(UnaryOp::Gelu, x)
}
pub fn exp(x: &Tensor) -> Tensor {
    unary(UnaryOp::Exp, x)
}
pub fn sqrt(x: &Tensor) -> Tensor {
    unary(UnaryOp::Sqrt, x)
}
pub fn clamp(x: &Tensor, lo: f32, hi: f32) -> Tensor {
    unary(UnaryOp::Clamp { lo, hi }, x)
}
pub fn square(x: &Tensor) -> Tensor {
    unary(UnaryOp::Square, x)
}
pub fn sigmoid(x: &Tensor) -> Tensor {
    unary(UnaryOp::Sigmoid, x)
}

/// A tensor of `shape` filled with `value` (not taped: constants have no gradient).
pub fn fill(shape: &[usize], value: f32) -> Tensor {
    let out = Tensor::uninit(shape);
    let n = numel(shape);
    launch(FILL, "main", &[], &FillParams { n: n as u32, value, _pad: [0; 2] }, &[], &[&out], groups_1d(n));
    out
}

/// The f64 reference: the spec the kernels are tested against.
pub mod cpu {
    use super::{BinaryOp, UnaryOp};

    pub fn erf(x: f64) -> f64 {
        // Taylor series for |x| < 2.5 (alternating terms, ~1e-15 relative); continued fraction for erfc beyond.
        let a = x.abs();
        let r = if a < 2.5 {
            let (mut term, mut sum, x2) = (a, a, a * a);
            for k in 1..200 {
                term *= -x2 / k as f64;
                let add = term / (2 * k + 1) as f64;
                sum += add;
                if add.abs() < 1e-17 * sum.abs() {
                    break;
                }
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(a) = exp(−a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + …))))), evaluated bottom-up
            let mut f = a;
            for k in (1..60).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
        };
        r.copysign(x)
    }

    pub fn unary(op: UnaryOp, x: f64) -> f64 {
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        match op {
            UnaryOp::Affine { alpha, beta } => alpha as f64 * x + beta as f64,
            UnaryOp::Silu => x * sig(x),
            UnaryOp::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Clamp { lo, hi } => x.max(lo as f64).min(hi as f64),
            UnaryOp::Square => x * x,
            UnaryOp::Sigmoid => sig(x),
        }
    }

    /// out = a ⊙ b with broadcasting: walk out's index space and map each index into a and b.
    pub fn binary(op: BinaryOp, a: &[f64], sa: &[usize], b: &[f64], sb: &[usize]) -> (Vec<f64>, Vec<usize>) {
        let out = super::broadcast_shape("cpu", sa, sb).expect("broadcastable");
        let (stra, strb) = (super::broadcast_strides(sa, &out), super::broadcast_strides(sb, &out));
        let n: usize = out.iter().product();
        let mut res = Vec::with_capacity(n);
        for i in 0..n {
            let (mut rem, mut ia, mut ib) = (i, 0, 0);
            for d in (0..out.len()).rev() {
                let c = rem % out[d];
                rem /= out[d];
                ia += c * stra[d];
                ib += c * strb[d];
            }
            let (x, y) = (a[ia], b[ib]);
            res.push(match op {
                BinaryOp::Add => x + y,
                BinaryOp::Sub => x - y,
                BinaryOp::Mul => x * y,
                BinaryOp::Div => x / y,
            });
        }
        (res, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, check_grads, Input};

    const ALL_UNARY: [UnaryOp; 8] = [
        UnaryOp::Affine { alpha: -1.5, beta: 0.25 },
        UnaryOp::Silu,
        UnaryOp::Gelu,
        UnaryOp::Exp,
        UnaryOp::Sqrt,
        UnaryOp::Clamp { lo: -0.5, hi: 0.7 },
        UnaryOp::Square,
        UnaryOp::Sigmoid,
    ];
    const ALL_BINARY: [BinaryOp; 4] = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div];

    /// (a shape, b shape) cases: same shape, scalar, per-channel bias, both sides broadcast, odd sizes, rank 5.
    const BROADCAST_CASES: &[(&[usize], &[usize])] = &[
        (&[3, 5, 7], &[3, 5, 7]),
        (&[3, 5, 4], &[3, 5, 4]), // numel % 4 == 0: binary_vec4.wgsl, 15 vec4s (odd, one partial workgroup)
        (&[2, 3, 5, 7], &[1]),
        (&[2, 3, 5, 7], &[1, 3, 1, 1]),
        (&[4, 1, 6], &[1, 5, 1]),
        (&[1], &[257]),
        (&[2, 1, 3, 1, 5], &[2, 4, 1, 1, 5]),
        (&[2, 1031, 4], &[2, 1031, 4]), // binary_vec4.wgsl over 5 workgroups, the last one partial
        (&[2, 3, 4, 4], &[2, 3, 1, 1]), // a per-(sample, channel) scale: binary_rows_vec4.wgsl
        (&[3, 1, 1], &[3, 5, 8]),       // the row operand on the left (SWAP, matters for sub and div)
        (&[5, 3, 4, 2], &[3, 1, 1]),    // leading axes broadcast too: not rows, binary.wgsl `main`
        (&[2, 3, 300], &[2, 3, 1]),     // 75 vec4 per row, rows spanning workgroups
    ];

    #[test]
    fn debug_add_prints_values() {
        let a = Tensor::from_slice(&[1.0, 2.0, 3.0], &[3]).unwrap();
        let b = Tensor::from_slice(&[10.0], &[1]).unwrap();
        let c = add(&a, &b).unwrap().to_vec();
        println!("[1,2,3] + [10] = {c:?}");
        assert_eq!(c, vec![11.0, 12.0, 13.0]);
    }

    #[test]
    fn binary_matches_cpu_on_broadcast_cases() {
        let mut rng = crate::rng::Rng::new(1);
        for &(sa, sb) in BROADCAST_CASES {
            let av = rng.uniform_vec(numel(sa), 0.5, 2.0);
            let bv = rng.uniform_vec(numel(sb), 0.5, 2.0);
            let (a, b) = (Tensor::from_slice(&av, sa).unwrap(), Tensor::from_slice(&bv, sb).unwrap());
            for op in ALL_BINARY {
                let got = binary(op, &a, &b).unwrap();
                let a64: Vec<f64> = av.iter().map(|&v| v as f64).collect();
                let b64: Vec<f64> = bv.iter().map(|&v| v as f64).collect();
                let (want, shape) = cpu::binary(op, &a64, sa, &b64, sb);
                assert_eq!(got.shape(), &shape[..]);
                assert_close(&got.to_vec(), &want, 1e-6, 1e-6, &format!("{op:?} {sa:?} {sb:?}"));
            }
        }
    }

    #[test]
    fn binary_rejects_incompatible_shapes_with_both_shapes_named() {
        let a = Tensor::zeros(&[2, 3]);
        let b = Tensor::zeros(&[4]);
        let err = add(&a, &b).unwrap_err().to_string();
        assert!(err.contains("[2, 3]") && err.contains("[4]"), "{err}");
    }

    #[test]
    fn unary_matches_cpu() {
        let mut rng = crate::rng::Rng::new(2);
        let xv = rng.uniform_vec(1000, -4.0, 4.0);
        for op in ALL_UNARY {
            let xs: Vec<f32> =
                if op == UnaryOp::Sqrt { xv.iter().map(|v| v.abs() + 0.01).collect() } else { xv.clone() };
            let got = unary(op, &Tensor::from_slice(&xs, &[10, 100]).unwrap()).to_vec();
            let want: Vec<f64> = xs.iter().map(|&v| cpu::unary(op, v as f64)).collect();
            assert_close(&got, &want, 2e-6, 2e-6, &format!("{op:?}"));
        }
    }

    #[test]
    fn cpu_erf_known_values() {
        // erf values from Abramowitz & Stegun table 7.1
        for (x, e) in [
            (0.0, 0.0),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (3.0, 0.9999779095030014),
        ] {
            assert!((cpu::erf(x) - e).abs() < 1e-14, "erf({x}) = {} != {e}", cpu::erf(x));
            assert!((cpu::erf(-x) + e).abs() < 1e-14);
        }
    }

    #[test]
    fn unary_gradients_match_finite_differences() {
        for op in ALL_UNARY {
            let lo = if op == UnaryOp::Sqrt { 0.2 } else { -2.0 };
            // clamp: keep points away from the kinks at lo/hi, where the derivative jumps
            let input = Input::uniform(&[3, 7], lo, 2.0, 11).avoid(&[-0.5, 0.7], 0.05);
            check_grads(
                &format!("{op:?}"),
                &[input],
                |x| Ok(unary(op, &x[0])),
                |x| x[0].iter().map(|&v| cpu::unary(op, v)).collect(),
            );
        }
    }

    #[test]
    fn binary_gradients_match_finite_differences_with_broadcasting() {
        // the first six cases and the two binary_rows_vec4.wgsl ones (rows on the right, then on the left)
        for &(sa, sb) in BROADCAST_CASES.iter().take(6).chain(&BROADCAST_CASES[8..10]) {
            for op in ALL_BINARY {
                let ins = [Input::uniform(sa, 0.5, 2.0, 3), Input::uniform(sb, 0.5, 2.0, 4)];
                check_grads(
                    &format!("{op:?} {sa:?} {sb:?}"),
                    &ins,
                    |x| binary(op, &x[0], &x[1]),
                    |x| cpu::binary(op, &x[0], sa, &x[1], sb).0,
                );
            }
        }
    }

    #[test]
    fn elementwise_over_65535_workgroups() {
        // 256·65,536 + 3 elements: 65,537 workgroups, folded into y by the launcher.
        let n = 256 * 65_536 + 3;
        let x = Tensor::full(&[n], 2.0);
        let y = Tensor::full(&[1], 0.5);
        let z = mul(&x, &y).unwrap();
        let v = unary(UnaryOp::Affine { alpha: 1.0, beta: 0.5 }, &z).to_vec();
        assert_eq!(v.len(), n);
        let bad = v.iter().position(|&e| e != 1.5);
        assert!(bad.is_none(), "element {bad:?} = {}", v[bad.unwrap()]);
    }

    #[test]
    fn same_shape_vec4_path_at_the_binding_limit() {
        // binary_vec4.wgsl covers 512 vec4s (2,048 floats) per workgroup, so more than 65,535 workgroups would
        // need 512 MiB operands: above llvmpipe's 128 MiB storage-binding limit (the launcher turns that into
        // an error, tested below). This runs the largest operand the adapter binds, capped at 65,536
        // workgroups + 3 vec4s; the linear-id folding itself is covered by elementwise_over_65535_workgroups.
        // Values vary with the index (i mod 7), so a wrong or skipped vec4 shows.
        let limit = crate::gpu::gpu().limits.max_storage_buffer_binding_size as usize;
        let n = (limit / 4).min(2048 * 65_536 + 12) / 4 * 4;
        let av: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
        let a = Tensor::from_slice(&av, &[n]).unwrap();
        let b = Tensor::full(&[n], 0.5);
        let v = add(&a, &b).unwrap().to_vec();
        crate::gpu::gpu().check().expect("at the limit, not over it");
        let bad = v.iter().enumerate().position(|(i, &e)| e != (i % 7) as f32 + 0.5);
        assert!(bad.is_none(), "element {bad:?} = {}", v[bad.unwrap()]);
    }

    #[test]
    fn a_tensor_over_the_binding_limit_is_an_error_not_a_panic() {
        // wgpu panics in create_bind_group past max_storage_buffer_binding_size (128 MiB on llvmpipe); the
        // launcher skips such a launch and `Gpu::check` reports it once, naming the kernel and the sizes.
        let g = crate::gpu::gpu();
        g.check().expect("no earlier oversize launch");
        let limit = g.limits.max_storage_buffer_binding_size;
        let a = Tensor::uninit(&[(limit / 4 + 4) as usize]);
        let _ = add_untaped(&a, &a).unwrap();
        let err = g.check().expect_err("the add was over the limit").to_string();
        let named = err.contains("binary_vec4") && err.contains(&limit.to_string()) && err.contains("--batch-size");
        assert!(named, "{err}");
        g.check().expect("the error is reported once");
    }

    #[test]
    fn a_tensor_over_max_buffer_size_or_u32_elements_is_an_error_not_a_panic_or_a_no_op() {
        // 2^32 elements: wgpu would panic creating the buffer, and a workgroup count computed in u32 from
        // the element count wraps to 0 (a launch that silently did nothing). A stand-in is made instead, every
        // use of it is skipped, and `Gpu::check` names the tensor's shape and the limit.
        let g = crate::gpu::gpu();
        g.check().expect("no earlier error on this thread");
        // (past max_buffer_size on every adapter: llvmpipe allows 2 GiB, NVIDIA up to 2^52 bytes)
        let n = (1usize << 32).max((g.limits.max_buffer_size / 4 + 64) as usize);
        let a = Tensor::uninit(&[n]);
        let b = add_untaped(&a, &a).unwrap();
        let err = g.check().expect_err("the tensor cannot exist").to_string();
        let named = err.contains(&format!("[{n}]")) && err.contains("max_buffer_size") && err.contains("--batch-size");
        assert!(named, "{err}");
        assert!(b.buf().is_stand_in(), "the output cannot exist either");
        g.check().expect("reported once");
    }
}

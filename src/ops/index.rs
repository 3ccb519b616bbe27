//! Index-space helpers shared by the kernels that walk strided tensors (elementwise broadcasting, reductions,
//! strided copies): row-major strides, and packing an N-d walk into the ≤ 4-D space those kernels take.

use crate::{shape_err, Result};

/// Row-major element strides of a contiguous `shape`.
pub fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        st[i] = st[i + 1] * shape[i + 1];
    }
    st
}

/// (outer, len, inner) of `shape` around `axis`: outer = Π dims before it, inner = Π dims after it. Every op that
/// works along one axis (softmax, concat, narrow) views its tensor this way.
pub fn split3(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

/// A ≤ 4-D index space for a kernel: axis sizes and, per operand, its element stride along each axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space4<const K: usize> {
    pub shape: [u32; 4],
    pub strides: [[u32; 4]; K],
}

/// Pack (size, strides of K operands) axes, outermost first, into a right-aligned 4-D space: size-1 axes are
/// dropped, and an axis is merged into its outer neighbour when every operand is contiguous across the pair
/// (outer stride = inner size · inner stride). Errors when more than 4 independent axes remain.
pub fn pack4<const K: usize>(op: &'static str, dims: &[(usize, [usize; K])]) -> Result<Space4<K>> {
    let mut merged: Vec<(usize, [usize; K])> = Vec::new();
    for &(n, st) in dims.iter().filter(|d| d.0 != 1) {
        match merged.last_mut() {
            Some(last) if (0..K).all(|k| last.1[k] == n * st[k]) => *last = (last.0 * n, st),
            _ => merged.push((n, st)),
        }
    }
    if merged.len() > 4 {
        return shape_err!(
            op,
            "needs {} independent axes after merging contiguous ones; at most 4 are supported",
            merged.len()
        );
    }
    let mut space = Space4 { shape: [1; 4], strides: [[0; 4]; K] };
    let off = 4 - merged.len();
    for (i, (n, st)) in merged.into_iter().enumerate() {
        space.shape[off + i] = n as u32;
        for (dst, &s) in space.strides.iter_mut().zip(st.iter()) {
            dst[off + i] = s as u32;
        }
    }
    Ok(space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_axes_merge_and_broadcast_axes_stay() {
        assert_eq!(strides_of(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(split3(&[2, 3, 4, 5], 1), (2, 3, 20));
        assert_eq!(split3(&[7], 0), (1, 7, 1));
        // (2, 3, 4) contiguous in both operands: one axis of 24
        let s = pack4("t", &[(2, [12, 12]), (3, [4, 4]), (4, [1, 1])]).unwrap();
        assert_eq!((s.shape, s.strides), ([1, 1, 1, 24], [[0, 0, 0, 1], [0, 0, 0, 1]]));
        // second operand broadcast along the middle axis: three axes remain
        let s = pack4("t", &[(2, [12, 4]), (3, [4, 0]), (4, [1, 1])]).unwrap();
        assert_eq!(s.shape, [1, 2, 3, 4]);
        assert_eq!(s.strides[1], [0, 4, 0, 1]);
        let e = pack4("t", &[(2, [1]), (3, [100]), (2, [1000]), (3, [7]), (2, [50000])]).unwrap_err().to_string();
        assert!(e.contains("5 independent axes"), "{e}");
    }
}

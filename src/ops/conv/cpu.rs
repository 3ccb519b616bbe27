//! The f64 reference: the formulas of the module doc as plain loops. Shapes are [N, Cin, H, W] for x,
//! [Cout, Cin, KH, KW] for w; x reads as 0 outside the image (`at`).

/// x[n, c, iy, ix] with zero padding outside the image.
fn at(x: &[f64], xs: [usize; 4], n: usize, c: usize, iy: isize, ix: isize) -> f64 {
    if iy < 0 || ix < 0 || iy >= xs[2] as isize || ix >= xs[3] as isize {
        return 0.0;
    }
    x[((n * xs[1] + c) * xs[2] + iy as usize) * xs[3] + ix as usize]
}

fn out_hw(xs: [usize; 4], ws: [usize; 4], padding: usize) -> (usize, usize) {
    (xs[2] + 2 * padding + 1 - ws[2], xs[3] + 2 * padding + 1 - ws[3])
}

/// y[n, co, oy, ox] = b\[co\] + Σ_ci,ky,kx w[co, ci, ky, kx] · x[n, ci, oy + ky − p, ox + kx − p]
pub fn conv2d(x: &[f64], xs: [usize; 4], w: &[f64], ws: [usize; 4], b: Option<&[f64]>, padding: usize) -> Vec<f64> {
    let [n_, cin, _, _] = xs;
    let [cout, _, kh, kw] = ws;
    let (ho, wo) = out_hw(xs, ws, padding);
    let p = padding as isize;
    let mut y = vec![0.0; n_ * cout * ho * wo];
    for n in 0..n_ {
        for co in 0..cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = b.map_or(0.0, |b| b[co]);
                    for ci in 0..cin {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let xv = at(x, xs, n, ci, (oy + ky) as isize - p, (ox + kx) as isize - p);
                                acc += w[((co * cin + ci) * kh + ky) * kw + kx] * xv;
                            }
                        }
                    }
                    y[((n * cout + co) * ho + oy) * wo + ox] = acc;
                }
            }
        }
    }
    y
}

/// dx[n, ci, y, x] = Σ_co Σ_ky,kx g[n, co, y + p − ky, x + p − kx] · w[co, ci, ky, kx] (g = 0 outside)
pub fn conv2d_backward_input(g: &[f64], w: &[f64], xs: [usize; 4], ws: [usize; 4], padding: usize) -> Vec<f64> {
    let [n_, cin, h, wd] = xs;
    let [cout, _, kh, kw] = ws;
    let (ho, wo) = out_hw(xs, ws, padding);
    let gs = [n_, cout, ho, wo];
    let p = padding as isize;
    let mut dx = vec![0.0; n_ * cin * h * wd];
    for n in 0..n_ {
        for ci in 0..cin {
            for y in 0..h {
                for x in 0..wd {
                    let mut acc = 0.0;
                    for co in 0..cout {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let (gy, gx) = (y as isize + p - ky as isize, x as isize + p - kx as isize);
                                let gv = at(g, gs, n, co, gy, gx);
                                acc += gv * w[((co * cin + ci) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    dx[((n * cin + ci) * h + y) * wd + x] = acc;
                }
            }
        }
    }
    dx
}

/// dw[co, ci, ky, kx] = Σ_n,y,x g[n, co, y, x] · x[n, ci, y + ky − p, x + kx − p]
pub fn conv2d_backward_weight(g: &[f64], x: &[f64], xs: [usize; 4], ws: [usize; 4], padding: usize) -> Vec<f64> {
    let [n_, cin, _, _] = xs;
    let [cout, _, kh, kw] = ws;
    let (ho, wo) = out_hw(xs, ws, padding);
    let p = padding as isize;
    let mut dw = vec![0.0; cout * cin * kh * kw];
    for co in 0..cout {
        for ci in 0..cin {
            for ky in 0..kh {
                for kx in 0..kw {
                    let mut acc = 0.0;
                    for n in 0..n_ {
                        for y in 0..ho {
                            for xx in 0..wo {
                                let xv = at(x, xs, n, ci, (y + ky) as isize - p, (xx + kx) as isize - p);
                                acc += g[((n * cout + co) * ho + y) * wo + xx] * xv;
                            }
                        }
                    }
                    dw[((co * cin + ci) * kh + ky) * kw + kx] = acc;
                }
            }
        }
    }
    dw
}

/// db\[co\] = Σ_n,y,x g[n, co, y, x]
pub fn conv2d_backward_bias(g: &[f64], gs: [usize; 4]) -> Vec<f64> {
    let [n_, cout, ho, wo] = gs;
    let hw = ho * wo;
    (0..cout).map(|co| (0..n_).map(|n| g[(n * cout + co) * hw..][..hw].iter().sum::<f64>()).sum()).collect()
}

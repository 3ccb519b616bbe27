//! Fusing an ensemble's N sampled masks into one: the mean soft mask thresholded at ½, the majority vote of
//! the binarised members, or STAPLE (Warfield, Zou & Wells, 2004).
//!
//! STAPLE treats each member j as a rater with unknown sensitivity p_j and specificity q_j and the true mask T
//! as hidden, and runs EM over the binarised members D_ij (pixel i, member j):
//!
//!   E:  W_i = f·∏_j p_j^{D_ij}(1 − p_j)^{1−D_ij} / (that + (1 − f)·∏_j q_j^{1−D_ij}(1 − q_j)^{D_ij})
//!   M:  p_j = Σ_i W_i D_ij / Σ_i W_i,   q_j = Σ_i (1 − W_i)(1 − D_ij) / Σ_i (1 − W_i)
//!
//! with the prior f the members' mean foreground share, W starting at the vote share, products taken as sums
//! of logs, and p, q kept in [10⁻⁶, 1 − 10⁻⁶]. It stops when no W_i moves by more than 10⁻⁶, or after
//! [`STAPLE_ITERS`]. A member that disagrees with the rest gets a low p or q and counts for less than in a vote.

/// How an ensemble's masks become one binary mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fusion {
    /// The mean soft mask ≥ ½ (the package's behaviour).
    #[default]
    Mean,
    /// At least half of the members (each binarised at ½) say foreground.
    Vote,
    /// STAPLE's posterior W ≥ ½.
    Staple,
}

impl std::str::FromStr for Fusion {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "mean" => Ok(Fusion::Mean),
            "vote" => Ok(Fusion::Vote),
            "staple" => Ok(Fusion::Staple),
            _ => Err(crate::Error::Config(format!("unknown fusion {s:?}; use mean, vote or staple"))),
        }
    }
}

pub const STAPLE_ITERS: usize = 100;

/// STAPLE over binary member masks (each of equal length, values 0 or 1): the posterior foreground probability
/// per pixel, and each member's (sensitivity, specificity).
pub fn staple(members: &[Vec<f32>]) -> (Vec<f32>, Vec<(f64, f64)>) {
    let n = members.len();
    let len = members.first().map_or(0, Vec::len);
    let on = |j: usize, i: usize| members[j][i] >= 0.5;
    let mut w: Vec<f64> = (0..len).map(|i| (0..n).filter(|&j| on(j, i)).count() as f64 / n.max(1) as f64).collect();
    let f = (w.iter().sum::<f64>() / len.max(1) as f64).clamp(1e-6, 1.0 - 1e-6);
    let mut pq = vec![(0.99, 0.99); n];
    for _ in 0..STAPLE_ITERS {
        // M: each member's sensitivity and specificity against the current W
        let (sw, sn) = (w.iter().sum::<f64>(), w.iter().map(|x| 1.0 - x).sum::<f64>());
        for (j, r) in pq.iter_mut().enumerate() {
            let tp: f64 = (0..len).filter(|&i| on(j, i)).map(|i| w[i]).sum();
            let tn: f64 = (0..len).filter(|&i| !on(j, i)).map(|i| 1.0 - w[i]).sum();
            let clamp = |v: f64| v.clamp(1e-6, 1.0 - 1e-6);
            *r = (clamp(if sw > 0.0 { tp / sw } else { 1.0 }), clamp(if sn > 0.0 { tn / sn } else { 1.0 }));
        }
        // E: the posterior of each pixel
        let mut moved = 0.0f64;
        for (i, wi) in w.iter_mut().enumerate() {
            let (mut la, mut lb) = (f.ln(), (1.0 - f).ln());
            for (j, &(p, q)) in pq.iter().enumerate() {
                if on(j, i) {
                    la += p.ln();
                    lb += (1.0 - q).ln();
                } else {
                    la += (1.0 - p).ln();
                    lb += q.ln();
                }
            }
            let new = 1.0 / (1.0 + (lb - la).exp());
            moved = moved.max((new - *wi).abs());
            *wi = new;
        }
        if moved < 1e-6 {
            break;
        }
    }
    (w.iter().map(|&x| x as f32).collect(), pq)
}

/// The fused binary mask of `samples` (soft masks in [0, 1]) whose mean is `mean`.
pub fn fuse(samples: &[Vec<f32>], mean: &[f32], fusion: Fusion) -> Vec<f32> {
    let bin = |v: f32| if v >= 0.5 { 1.0 } else { 0.0 };
    match fusion {
        Fusion::Mean => mean.iter().map(|&m| bin(m)).collect(),
        Fusion::Vote => {
            let n = samples.len();
            (0..mean.len()).map(|i| bin(samples.iter().filter(|s| s[i] >= 0.5).count() as f32 / n as f32)).collect()
        }
        Fusion::Staple => {
            let members: Vec<Vec<f32>> = samples.iter().map(|s| s.iter().map(|&v| bin(v)).collect()).collect();
            staple(&members).0.into_iter().map(bin).collect()
        }
    }
}

/// A label map from n per-class planes (n·S·S each): pixel p is the class k whose `binary` plane is set there
/// with the highest `mean`, or 0 (background) where no plane is set. For n = 1 it is the binary mask itself.
pub fn label_map(binary: &[f32], mean: &[f32], n: usize) -> Vec<f32> {
    let len = binary.len() / n.max(1);
    (0..len)
        .map(|p| {
            let best = (0..n).filter(|&k| binary[k * len + p] >= 0.5).max_by(|&a, &b| {
                mean[a * len + p].total_cmp(&mean[b * len + p]).then(b.cmp(&a)) // ties: the lower class
            });
            best.map_or(0.0, |k| (k + 1) as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn label_maps_take_the_set_class_with_the_highest_mean() {
        // both classes set: the higher mean wins, ties go to the lower class; neither set: background
        let (bin, mean) = ([1.0, 1.0, 0.0, 1.0, 1.0, 0.0], [0.6, 0.9, 0.2, 0.8, 0.9, 0.3]);
        assert_eq!(label_map(&bin, &mean, 2), [2.0, 1.0, 0.0]);
        assert_eq!(label_map(&[1.0, 0.0], &[0.7, 0.1], 1), [1.0, 0.0], "one class: the binary mask");
    }

    /// Five raters of a known truth, with known error rates: STAPLE recovers each rater's sensitivity and
    /// specificity, and its mask beats the vote when two raters are poor.
    #[test]
    fn staple_recovers_rater_quality_and_beats_the_vote() {
        let mut rng = Rng::new(3);
        let len = 20_000;
        let truth: Vec<bool> = (0..len).map(|_| rng.uniform() < 0.3).collect();
        let rates = [(0.95, 0.97), (0.9, 0.99), (0.97, 0.95), (0.55, 0.8), (0.6, 0.75)];
        let raters: Vec<Vec<f32>> = rates
            .iter()
            .map(|&(p, q)| {
                truth
                    .iter()
                    .map(|&t| {
                        let u = rng.uniform();
                        let says = if t { u < p } else { u >= q };
                        if says {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let (w, pq) = staple(&raters);
        for (&(p, q), &(ep, eq)) in rates.iter().zip(&pq) {
            assert!((p - ep).abs() < 0.03 && (q - eq).abs() < 0.03, "({p}, {q}) estimated as ({ep:.3}, {eq:.3})");
        }
        let errors = |m: &[f32]| m.iter().zip(&truth).filter(|(&v, &t)| (v >= 0.5) != t).count();
        let mean: Vec<f32> = (0..len).map(|i| raters.iter().map(|r| r[i]).sum::<f32>() / 5.0).collect();
        let (e_staple, e_vote) = (errors(&w), errors(&fuse(&raters, &mean, Fusion::Vote)));
        assert!(e_staple < e_vote, "STAPLE {e_staple} errors vs vote {e_vote}");
        assert_eq!(
            fuse(&raters, &mean, Fusion::Staple),
            w.iter().map(|&x| if x >= 0.5 { 1.0 } else { 0.0 }).collect::<Vec<_>>()
        );
    }

    #[test]
    fn fusions_of_agreeing_members_agree() {
        let s = vec![vec![0.9, 0.1, 0.6], vec![0.8, 0.2, 0.7]];
        let mean = vec![0.85, 0.15, 0.65];
        for f in [Fusion::Mean, Fusion::Vote, Fusion::Staple] {
            assert_eq!(fuse(&s, &mean, f), vec![1.0, 0.0, 1.0], "{f:?}");
        }
        // a vote of 2 members that split counts as foreground (at least half), like the mean at exactly ½
        assert_eq!(fuse(&[vec![1.0], vec![0.0]], &[0.5], Fusion::Vote), vec![1.0]);
    }
}

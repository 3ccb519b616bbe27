//! The rung table of each op family, per adapter: which rung the taped ops run for a given shape.
//!
//! Every family has a default rule (the heuristic measured on llvmpipe: `ConvKernel::pick`,
//! `MatmulKernel::DEFAULT` with its fallbacks, `FftKernel::pick`). `medsegdiff tune --preset/--config` runs one
//! training step of the model, collects every distinct matmul, conv and FFT shape it met, times each applicable
//! rung on this adapter (a conv's forward, dx and dw each under a key of their own; for FFTs the FF-Parser;
//! the candidates interleaved round by round, the median of each kept), and writes the fastest per shape to a
//! cache file per adapter and driver under the user's cache directory. The taped ops consult that table first
//! and fall back to the rule for shapes it does not hold. The step runs again after each round of choices
//! ([`tune_step`]): a rung that runs on the matmul brings matmul shapes the rung it replaced did not.
//!
//! `MEDSEGDIFF_TUNE=off` ignores the cache (the rules only); `MEDSEGDIFF_TUNE_CACHE=FILE` names another file.
//! Tuning is explicit, not at first use inside a run: a rung chosen half-way through a run would change the
//! float summation order of later steps, and a resumed run must repeat the original's losses bit for bit. (So
//! re-tuning between a run and its `--resume` changes the resumed losses in the last bits: tune first.)

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use super::conv::{self, ConvKernel};
use super::fft::{self, FftKernel};
use super::matmul::{self, MatmulKernel};
use crate::rng::Rng;
use crate::{Result, Tensor};

/// One shape of one family, as the taped op sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// C = op(A)·op(B) on stored shapes `a`, `b`.
    Matmul { a: Vec<usize>, ta: bool, b: Vec<usize>, tb: bool },
    /// y = conv(x, w) + bias.
    Conv { x: Vec<usize>, w: Vec<usize>, padding: usize, bias: bool },
    /// dx of that conv (a forward conv of g with flipped weights), chosen apart from the forward's rung: the
    /// best forward and the best backward differ by shape and adapter.
    ConvDx { x: Vec<usize>, w: Vec<usize>, padding: usize },
    /// dw of that conv, chosen apart from the forward's and the dx's rung.
    ConvDw { x: Vec<usize>, w: Vec<usize>, padding: usize },
    /// The 2-D FFTs of a real (B, C, H, W) image stack (fft2, its channel and complex forms, the FF-Parser),
    /// timed on the FF-Parser: one rung for both axes, each axis then routed by the rung's `for_len`.
    Fft { x: Vec<usize> },
}

impl Key {
    /// The table's key: family and shapes, one line.
    pub fn id(&self) -> String {
        match self {
            Key::Matmul { a, ta, b, tb } => format!("matmul {a:?}{} {b:?}{}", t(*ta), t(*tb)),
            Key::Conv { x, w, padding, bias } => {
                format!("conv2d x{x:?} w{w:?} pad{padding}{}", if *bias { " bias" } else { "" })
            }
            Key::ConvDx { x, w, padding } => format!("conv2d.dx x{x:?} w{w:?} pad{padding}"),
            Key::ConvDw { x, w, padding } => format!("conv2d.dw x{x:?} w{w:?} pad{padding}"),
            Key::Fft { x } => format!("fft2 x{x:?}"),
        }
    }

    /// The rungs worth timing for this shape: the CPU-class and GPU-class ones that apply (the naive teaching
    /// rungs are left out: seconds per call on big shapes).
    pub fn candidates(&self) -> Vec<&'static str> {
        match self {
            Key::Matmul { .. } => {
                [MatmulKernel::Blocked, MatmulKernel::RegBlock, MatmulKernel::Vec4, MatmulKernel::Uniform]
                    .map(MatmulKernel::name)
                    .to_vec()
            }
            Key::Conv { w, .. } | Key::ConvDx { w, .. } => {
                let (kh, kw) = (w[2], w[3]);
                let mut v = vec![ConvKernel::Blocked, ConvKernel::Vec4, ConvKernel::Uniform];
                if kh == 1 && kw == 1 {
                    v.push(ConvKernel::Gemm);
                }
                if kh == 3 && kw == 3 {
                    v.push(ConvKernel::Winograd4);
                }
                v.into_iter().map(ConvKernel::name).collect()
            }
            // dw: v5's and v9's direct dw, v6's Winograd dw for 3×3, the GEMM for an unpadded 1×1
            Key::ConvDw { w, padding, .. } => {
                let mut v = vec![ConvKernel::Vec4, ConvKernel::Uniform];
                if w[2] == 3 && w[3] == 3 {
                    v.push(ConvKernel::Winograd);
                }
                if conv::gemm_dw_applies(w, *padding) {
                    v.push(ConvKernel::Gemm);
                }
                v.into_iter().map(ConvKernel::name).collect()
            }
            Key::Fft { .. } => [FftKernel::Stockham, FftKernel::Private, FftKernel::Mixed, FftKernel::PrivateMixed]
                .map(FftKernel::name)
                .to_vec(),
        }
    }
}

fn t(x: bool) -> &'static str {
    if x {
        "ᵀ"
    } else {
        ""
    }
}

/// The cache file of this adapter and driver.
pub fn cache_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MEDSEGDIFF_TUNE_CACHE") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let g = crate::gpu::gpu();
    let id = format!("{}-{:?}-{}-{}", g.info.name, g.info.backend, g.info.driver, g.info.driver_info);
    let slug: String = id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
    Some(base.join("medsegdiff").join(format!("tune-{slug}.json")))
}

/// Off with `MEDSEGDIFF_TUNE=off`, and in this crate's unit tests (a developer's cache must not change them;
/// a test that wants an entry sets it).
pub fn enabled() -> bool {
    !cfg!(test) && std::env::var("MEDSEGDIFF_TUNE").map_or(true, |v| v != "off")
}

/// The entries of a cache file (empty when absent or unreadable).
fn read_entries(path: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| serde_json::from_value(v.get("entries")?.clone()).ok())
        .unwrap_or_default()
}

/// Key id -> rung name: the cache file's entries (empty when off, absent or unreadable).
fn table() -> &'static Mutex<BTreeMap<String, String>> {
    static TABLE: OnceLock<Mutex<BTreeMap<String, String>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let entries = enabled().then(cache_path).flatten().map(|p| read_entries(&p)).unwrap_or_default();
        Mutex::new(entries)
    })
}

thread_local! {
    /// Keys met while collecting (see [`collect`]), in first-use order.
    static SEEN: RefCell<Option<Vec<Key>>> = const { RefCell::new(None) };
}

/// The rung the table holds for `key`, if any (and note the key when collecting).
pub fn lookup(key: Key) -> Option<String> {
    let id = key.id();
    SEEN.with(|s| {
        if let Some(v) = s.borrow_mut().as_mut() {
            if !v.contains(&key) {
                v.push(key);
            }
        }
    });
    table().lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id).cloned()
}

/// Whether the table holds a choice for `key` (without noting it as seen).
pub fn has(key: &Key) -> bool {
    table().lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(&key.id())
}

/// Run `f` and return the distinct keys the taped ops looked up while it ran.
pub fn collect(f: impl FnOnce() -> Result<()>) -> Result<Vec<Key>> {
    SEEN.with(|s| *s.borrow_mut() = Some(Vec::new()));
    let r = f();
    let keys = SEEN.with(|s| s.borrow_mut().take()).unwrap_or_default();
    r.map(|_| keys)
}

/// Put a choice in this process's table (what `tune` measured, or a test's).
pub fn set(key: &Key, rung: &str) {
    table().lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key.id(), rung.to_string());
}

/// Write this process's table to the cache file (merged over what the file holds).
pub fn save() -> Result<PathBuf> {
    let path = cache_path().ok_or_else(|| {
        crate::Error::Config("no cache directory: set HOME, XDG_CACHE_HOME or MEDSEGDIFF_TUNE_CACHE".into())
    })?;
    let g = crate::gpu::gpu();
    // the file as it is now (another model's tune may have written it since this process read it), with this
    // process's choices over it
    let mut entries = read_entries(&path);
    entries.extend(table().lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone());
    let j = serde_json::json!({"adapter": g.describe(), "entries": entries});
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| crate::Error::io(d, e))?;
    }
    crate::model::weights::write_atomic(&path, serde_json::to_string_pretty(&j).expect("json").as_bytes())?;
    Ok(path)
}

/// One candidate's run: the op on fixed operands, recorded and left to the caller to sync.
type Run<'a> = Box<dyn Fn() -> Result<()> + 'a>;

/// Median wall time (ms) of each run over `reps` rounds after one warm-up each (pipeline builds, first-touch),
/// every call synced. The rounds interleave the candidates (A B C, A B C, ...) so that a burst of other load
/// on a shared machine slows every candidate of a round, not the one that happened to be timed during it.
fn time_interleaved(reps: usize, runs: &[(&'static str, Run<'_>)]) -> Result<Vec<(&'static str, f64)>> {
    let g = crate::gpu::gpu();
    for (_, f) in runs {
        f()?;
        g.sync();
    }
    let mut ms = vec![Vec::with_capacity(reps); runs.len()];
    for _ in 0..reps.max(1) {
        for ((_, f), m) in runs.iter().zip(&mut ms) {
            let t0 = std::time::Instant::now();
            f()?;
            g.sync();
            m.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    g.check()?;
    Ok(runs
        .iter()
        .zip(ms)
        .map(|((name, _), mut m)| {
            m.sort_by(f64::total_cmp);
            (*name, m[m.len() / 2])
        })
        .collect())
}

/// [`time_interleaved`] of each candidate's run, as `make` builds it from the rung's name, in candidate order.
fn time_candidates<'a>(
    reps: usize,
    names: &[&'static str],
    make: impl Fn(&'static str) -> Run<'a>,
) -> Result<Vec<(&'static str, f64)>> {
    let runs: Vec<(&'static str, Run<'a>)> = names.iter().map(|&name| (name, make(name))).collect();
    time_interleaved(reps, &runs)
}

/// Time every candidate of `key` on random operands of its shapes: (rung, ms) in candidate order.
pub fn measure(key: &Key, reps: usize) -> Result<Vec<(&'static str, f64)>> {
    let _ng = crate::autograd::no_grad();
    let mut rng = Rng::new(7);
    let names = key.candidates();
    match key {
        Key::Matmul { a, ta, b, tb } => {
            let (a, b) = (Tensor::randn(a, &mut rng), Tensor::randn(b, &mut rng));
            let (a, b) = (&a, &b);
            time_candidates(reps, &names, |name| {
                let k = MatmulKernel::ALL.into_iter().find(|k| k.name() == name).expect("a matmul rung");
                Box::new(move || matmul::matmul_with(k, a, *ta, b, *tb).map(drop))
            })
        }
        Key::Conv { x, w, padding, bias } => {
            let (xt, wt) = (Tensor::randn(x, &mut rng), Tensor::randn(w, &mut rng));
            let (xt, wt) = (&xt, &wt);
            let bt = bias.then(|| Tensor::randn(&[w[0]], &mut rng));
            let bt = bt.as_ref();
            time_candidates(reps, &names, |name| {
                let k = ConvKernel::named(name).expect("a conv rung");
                Box::new(move || conv::conv2d_with(k, xt, wt, bt, *padding).map(drop))
            })
        }
        Key::ConvDx { x, w, padding } | Key::ConvDw { x, w, padding } => {
            let (xt, wt) = (Tensor::randn(x, &mut rng), Tensor::randn(w, &mut rng));
            let (xt, wt) = (&xt, &wt);
            // g: random values of the output's shape
            let y = conv::conv2d_with(ConvKernel::Uniform, xt, wt, None, *padding)?;
            let g = Tensor::randn(y.shape(), &mut rng);
            let g = &g;
            let dx = matches!(key, Key::ConvDx { .. });
            time_candidates(reps, &names, |name| {
                let k = ConvKernel::named(name).expect("a conv rung");
                Box::new(move || match dx {
                    true => conv::conv2d_backward_input(k, g, wt, *padding, x).map(drop),
                    false => conv::conv2d_backward_weight(k, g, xt, *padding, w).map(drop),
                })
            })
        }
        Key::Fft { x } => {
            let (xt, map) = (Tensor::randn(x, &mut rng), Tensor::randn(&x[1..], &mut rng));
            let (xt, map) = (&xt, &map);
            time_candidates(reps, &names, |name| {
                let k = FftKernel::named(name).expect("an FFT rung");
                Box::new(move || fft::ff_parser_with(k, xt, map).map(drop))
            })
        }
    }
}

/// One shape's measurement: every candidate's time, the fastest, and the rule's choice.
pub struct Choice {
    pub key: Key,
    pub times: Vec<(&'static str, f64)>,
    pub best: &'static str,
    pub rule: &'static str,
}

/// Time every candidate of every key, put the fastest in the table (call [`save`] to keep it) and return the
/// measurements, in `keys` order.
pub fn choose(keys: &[Key], reps: usize) -> Result<Vec<Choice>> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let times = measure(key, reps)?;
        let best = times.iter().min_by(|a, b| a.1.total_cmp(&b.1)).expect("every family has candidates").0;
        let rule = match key {
            Key::Matmul { .. } => MatmulKernel::DEFAULT.name(),
            Key::Conv { w, .. } | Key::ConvDx { w, .. } => ConvKernel::pick(w).name(),
            Key::ConvDw { w, padding, .. } => conv::dw_rule(w, *padding, ConvKernel::pick(w)).name(),
            Key::Fft { .. } => FftKernel::pick().name(),
        };
        set(key, best);
        out.push(Choice { key: key.clone(), times, best, rule });
    }
    Ok(out)
}

/// Rounds of [`tune_step`] at most: each new choice can bring the shapes of the ops it runs on.
const MAX_ROUNDS: usize = 4;

/// Collect the keys `step` looks up, time them ([`choose`]), and run `step` again for the keys the new
/// choices bring, until a round meets none (at most `MAX_ROUNDS`): a rung that runs on the matmul (Winograd's
/// plane GEMMs, the GEMM dw) looks up matmul shapes the rung it replaced did not. With `skip_known`, keys the
/// table already holds are not timed again (a planned run tunes only what its cache lacks).
pub fn tune_step(mut step: impl FnMut() -> Result<()>, reps: usize, skip_known: bool) -> Result<Vec<Choice>> {
    let mut timed: Vec<Key> = Vec::new();
    let mut out = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let keys = collect(&mut step)?;
        let new: Vec<Key> = keys.into_iter().filter(|k| !(timed.contains(k) || skip_known && has(k))).collect();
        if new.is_empty() {
            break;
        }
        out.extend(choose(&new, reps)?);
        timed.extend(new);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_repeats_the_step_for_the_shapes_its_choices_bring() {
        // a step that meets matmul B only once A is in the table (as a Winograd or GEMM rung brings its GEMMs'
        // shapes): round 1 times A, round 2 times B, round 3 meets nothing new
        let mut rng = Rng::new(3);
        let (a, b) = (Tensor::randn(&[2, 7, 5], &mut rng), Tensor::randn(&[2, 5, 6], &mut rng));
        let (c, d) = (Tensor::randn(&[2, 7, 6], &mut rng), Tensor::randn(&[2, 6, 3], &mut rng));
        let ka = Key::Matmul { a: vec![2, 7, 5], ta: false, b: vec![2, 5, 6], tb: false };
        let kb = Key::Matmul { a: vec![2, 7, 6], ta: false, b: vec![2, 6, 3], tb: false };
        let mut runs = 0;
        let step = || -> Result<()> {
            runs += 1;
            matmul::matmul_t(&a, false, &b, false)?;
            if has(&ka) {
                matmul::matmul_t(&c, false, &d, false)?;
            }
            Ok(())
        };
        let choices = tune_step(step, 1, false).unwrap();
        assert_eq!(choices.iter().map(|c| c.key.clone()).collect::<Vec<_>>(), vec![ka.clone(), kb.clone()]);
        assert_eq!(runs, 3);
        // skip_known: nothing left to time
        assert!(tune_step(|| matmul::matmul_t(&a, false, &b, false).map(drop), 1, true).unwrap().is_empty());
    }

    #[test]
    fn candidates_are_timed_in_interleaved_rounds() {
        let log = RefCell::new(Vec::new());
        let runs: Vec<(&'static str, Run)> = ["a", "b", "c"]
            .into_iter()
            .map(|name| {
                let log = &log;
                let run = move || {
                    log.borrow_mut().push(name);
                    Ok(())
                };
                (name, Box::new(run) as Run)
            })
            .collect();
        let times = time_interleaved(2, &runs).unwrap();
        assert_eq!(times.iter().map(|t| t.0).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(times.iter().all(|t| t.1.is_finite() && t.1 >= 0.0), "{times:?}");
        // one warm-up each, then two rounds of all three
        drop(runs);
        assert_eq!(log.into_inner().concat(), "abcabcabc");
    }

    #[test]
    fn every_candidate_is_timed_and_the_table_decides_the_taped_ops_rung() {
        // shapes no other test uses: the table is process-wide
        let mm = Key::Matmul { a: vec![3, 24, 40], ta: false, b: vec![3, 40, 36], tb: false };
        let times = measure(&mm, 1).unwrap();
        assert_eq!(times.iter().map(|t| t.0).collect::<Vec<_>>(), mm.candidates());
        assert!(times.iter().all(|t| t.1.is_finite() && t.1 >= 0.0), "{times:?}");
        let cv = Key::Conv { x: vec![2, 5, 11, 9], w: vec![7, 5, 3, 3], padding: 1, bias: true };
        let times = measure(&cv, 1).unwrap();
        assert!(times.iter().any(|t| t.0 == "v8_winograd4") && times.len() == 4, "{times:?}");

        let mut rng = Rng::new(1);
        let (a, b) = (Tensor::randn(&[3, 24, 40], &mut rng), Tensor::randn(&[3, 40, 36], &mut rng));
        assert_eq!(matmul::pick(&a, false, &b, false), MatmulKernel::DEFAULT, "no entry: the rule");
        set(&mm, "v3_blocked");
        assert_eq!(matmul::pick(&a, false, &b, false), MatmulKernel::Blocked, "an entry: the table");
        let (x, w) = (Tensor::randn(&[2, 5, 11, 9], &mut rng), Tensor::randn(&[7, 5, 3, 3], &mut rng));
        let bias = Tensor::randn(&[7], &mut rng);
        assert_eq!(conv::pick_tuned(&x, &w, Some(&bias), 1), ConvKernel::pick(w.shape()));
        set(&cv, "v3_blocked");
        assert_eq!(conv::pick_tuned(&x, &w, Some(&bias), 1), ConvKernel::Blocked);
        assert_eq!(conv::pick_tuned(&x, &w, None, 1), ConvKernel::pick(w.shape()), "the bias is part of the key");
        // collecting sees the taped op's lookups, once per shape
        let keys = collect(|| {
            crate::ops::matmul::matmul_t(&a, false, &b, false)?;
            crate::ops::matmul::matmul_t(&a, false, &b, false)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(keys, vec![mm]);

        // the FFT family: every fast rung timed on the FF-Parser, the table's entry decides the taped op's rung
        // (forward and backward), and the FF-Parser's lookup is collected; 8×16 keeps both axes on the named
        // rung (powers of two: v2 takes them under Stockham, v5 under PrivateMixed)
        let xf = Tensor::randn(&[1, 2, 8, 16], &mut rng).with_grad();
        let map = Tensor::randn(&[2, 8, 16], &mut rng);
        let ff = Key::Fft { x: vec![1, 2, 8, 16] };
        let times = measure(&ff, 1).unwrap();
        assert_eq!(times.iter().map(|t| t.0).collect::<Vec<_>>(), ff.candidates());
        assert_eq!(FftKernel::pick_for(xf.shape()), FftKernel::pick(), "no entry: the rule");
        let ff_step = || -> Result<()> {
            crate::autograd::clear();
            let y = fft::ff_parser(&xf, &map)?;
            crate::autograd::backward(&crate::ops::reduce::sum(&y, &[0, 1, 2, 3], false)?)?;
            Ok(())
        };
        assert_eq!(collect(ff_step).unwrap(), vec![ff.clone()]);
        for (rung, kernel) in [("v2_stockham", "fft_v2"), ("v5_private_mixed", "fft_v5")] {
            set(&ff, rung);
            assert_eq!(FftKernel::pick_for(xf.shape()).name(), rung);
            crate::ops::work::start();
            ff_step().unwrap();
            let ran: Vec<String> = crate::ops::work::stop().into_iter().flat_map(|c| c.kernels).collect();
            assert!(ran.iter().filter(|k| k.contains("fft_v")).all(|k| k.contains(kernel)), "{rung}: {ran:?}");
            assert!(ran.iter().any(|k| k.contains(kernel)), "{rung}: {ran:?}");
        }

        // a conv's dx and dw rungs are keys of their own, met in the backward, each timed for its candidates,
        // and the table's entries decide which kernels dx and dw run whatever the forward's rung: a 1×1 conv
        // (dw: GEMM or v9) and a 3×3 one (dx: Winograd F(4×4) or v9, dw: Winograd F(2×2) or v5)
        for (xs, ws, pad, dx_rungs, dw_rungs) in [
            (
                [2, 6, 8, 12],
                [5, 6, 1, 1],
                0,
                [("v7_gemm", "matmul"), ("v9_uniform", "conv_v9")],
                [("v7_gemm", "matmul"), ("v9_uniform", "dw_v9")],
            ),
            (
                [2, 5, 12, 8],
                [6, 5, 3, 3],
                1,
                [("v8_winograd4", "winograd4"), ("v9_uniform", "conv_v9")],
                [("v6_winograd", "winograd_transforms"), ("v5_vec4", "dw_v5")],
            ),
        ] {
            let (x, w) = (Tensor::randn(&xs, &mut rng).with_grad(), Tensor::randn(&ws, &mut rng).with_grad());
            let dx = Key::ConvDx { x: xs.to_vec(), w: ws.to_vec(), padding: pad };
            let dw = Key::ConvDw { x: xs.to_vec(), w: ws.to_vec(), padding: pad };
            let step = || -> Result<()> {
                crate::autograd::clear();
                let y = conv::conv2d(&x, &w, None, pad)?;
                crate::autograd::backward(&crate::ops::reduce::sum(&y, &[0, 1, 2, 3], false)?)?;
                Ok(())
            };
            let seen = collect(step).unwrap();
            assert!(seen.contains(&dx) && seen.contains(&dw), "{seen:?}");
            for key in [&dx, &dw] {
                let times = measure(key, 1).unwrap();
                assert_eq!(times.iter().map(|t| t.0).collect::<Vec<_>>(), key.candidates());
                assert!(times.iter().all(|t| t.1.is_finite() && t.1 >= 0.0), "{times:?}");
            }
            for (key, op, rungs) in [(&dx, "conv2d.dx", dx_rungs), (&dw, "conv2d.dw", dw_rungs)] {
                for (rung, kernel) in rungs {
                    set(key, rung);
                    crate::ops::work::start();
                    step().unwrap();
                    let ran = crate::ops::work::stop();
                    let of_op: Vec<_> = ran.iter().filter(|c| c.op == op).flat_map(|c| c.kernels.iter()).collect();
                    assert!(!of_op.is_empty() && of_op.iter().any(|k| k.contains(kernel)), "{op} {rung}: {of_op:?}");
                }
            }
        }
    }
}

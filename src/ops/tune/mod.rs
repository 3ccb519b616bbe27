//! The rung table of each op family, per adapter: which rung the taped ops run for a given shape.
//!
//! Every family has a default rule (the heuristic measured on llvmpipe: `ConvKernel::pick`,
//! `matmul::rule`, `FftKernel::pick`, `flash::default_width`). `medsegdiff tune
//! --preset/--config` runs one training step of the model, collects every distinct matmul, conv, FFT and fused
//! attention shape it met, times each applicable rung on this adapter (a conv's forward, dx and dw each under a
//! key of their own; for FFTs the FF-Parser; for attention the forward's and the backward's rows per invocation;
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

use super::attention::flash;
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
    /// Fused softmax attention's forward over qkv (B, 3·heads·d, H, W): the queries each invocation owns.
    Flash { qkv: Vec<usize>, heads: usize },
    /// Its backward (dq, dk, dv): the queries and keys each invocation owns.
    FlashBwd { qkv: Vec<usize>, heads: usize },
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
            Key::Flash { qkv, heads } => format!("attention.flash qkv{qkv:?} heads{heads}"),
            Key::FlashBwd { qkv, heads } => format!("attention.flash.bwd qkv{qkv:?} heads{heads}"),
        }
    }

    /// The rungs worth timing for this shape: the CPU-class and GPU-class ones that apply (the naive teaching
    /// rungs are left out: seconds per call on big shapes).
    pub fn candidates(&self) -> Vec<&'static str> {
        match self {
            Key::Matmul { .. } => {
                // every rung from v3 on (v1 and v2 are the teaching rungs)
                MatmulKernel::ALL[2..].iter().map(|k| k.name()).collect()
            }
            Key::Conv { w, .. } | Key::ConvDx { w, .. } => {
                // a malformed weight (the op reports it) has no kernel size: no candidates beyond the direct ones
                let (kh, kw) = (w.get(2).copied().unwrap_or(0), w.get(3).copied().unwrap_or(0));
                let mut v = vec![ConvKernel::Blocked, ConvKernel::Vec4, ConvKernel::Uniform];
                if kh == 1 && kw == 1 {
                    v.push(ConvKernel::Gemm);
                }
                if kh == 3 && kw == 3 {
                    v.push(ConvKernel::Winograd4);
                }
                v.into_iter().map(ConvKernel::name).collect()
            }
            // dw: v5's and v9's direct dw, v10's for square kernels up to 7×7, v6's (Winograd) for 3×3, the GEMM for an
            // unpadded 1×1
            Key::ConvDw { w, padding, .. } => {
                let mut v = vec![ConvKernel::Vec4, ConvKernel::Uniform];
                if conv::reuse_dw_applies(w) {
                    v.push(ConvKernel::Reuse);
                }
                if w.get(2) == Some(&3) && w.get(3) == Some(&3) {
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
            Key::Flash { qkv, heads } => {
                flash::fitting(&flash::QUERY_RUNGS, head_dim(qkv, *heads)).iter().map(|r| r.0).collect()
            }
            Key::FlashBwd { qkv, heads } => {
                flash::fitting(&flash::ROW_RUNGS, head_dim(qkv, *heads)).iter().map(|r| r.0).collect()
            }
        }
    }
}

/// dim_head of a qkv (B, 3·heads·dim_head, H, W).
/// dim_head of a (B, 3·heads·d, n) qkv (0 for a malformed one: the op reports it)
fn head_dim(qkv: &[usize], heads: usize) -> usize {
    qkv.get(1).copied().unwrap_or(0) / (3 * heads).max(1)
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

/// A choice: the rung, and the candidates it was timed against (joined by commas). A choice made before a rung
/// was added to its family is stale: [`lookup`] ignores it, so the rule (or a new `tune`) decides.
type Chosen = (String, String);

/// The entries of a cache file (empty when absent or unreadable): `entries` (key id -> rung) with `among`
/// (key id -> the candidates); a file without `among` (written before it existed) has none that count.
fn read_entries(path: &std::path::Path) -> BTreeMap<String, Chosen> {
    let v = std::fs::read_to_string(path).ok().and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
    let map = |k: &str| -> BTreeMap<String, String> {
        v.as_ref().and_then(|v| serde_json::from_value(v.get(k)?.clone()).ok()).unwrap_or_default()
    };
    let among = map("among");
    map("entries")
        .into_iter()
        .map(|(id, rung)| (id.clone(), (rung, among.get(&id).cloned().unwrap_or_default())))
        .collect()
}

/// Key id -> choice: the cache file's entries (empty when off, absent or unreadable).
fn table() -> &'static Mutex<BTreeMap<String, Chosen>> {
    static TABLE: OnceLock<Mutex<BTreeMap<String, Chosen>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let entries = enabled().then(cache_path).flatten().map(|p| read_entries(&p)).unwrap_or_default();
        Mutex::new(entries)
    })
}

thread_local! {
    /// Keys met while collecting (see [`collect`]), in first-use order.
    static SEEN: RefCell<Option<Vec<Key>>> = const { RefCell::new(None) };
}

/// The rung the table holds for `key`, if it was chosen among today's candidates (and note the key when
/// collecting).
pub fn lookup(key: Key) -> Option<String> {
    let chosen = table().lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key.id()).cloned();
    let current = chosen.filter(|c| c.1 == key.candidates().join(",")).map(|c| c.0);
    SEEN.with(|s| {
        if let Some(v) = s.borrow_mut().as_mut() {
            if !v.contains(&key) {
                v.push(key);
            }
        }
    });
    current
}

/// Whether the table holds a current choice for `key` (without noting it as seen).
pub fn has(key: &Key) -> bool {
    let chosen = table().lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key.id()).cloned();
    chosen.is_some_and(|c| c.1 == key.candidates().join(","))
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
    let choice = (rung.to_string(), key.candidates().join(","));
    table().lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key.id(), choice);
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
    let rungs: BTreeMap<&String, &String> = entries.iter().map(|(id, c)| (id, &c.0)).collect();
    let among: BTreeMap<&String, &String> = entries.iter().map(|(id, c)| (id, &c.1)).collect();
    let j = serde_json::json!({"adapter": g.describe(), "entries": rungs, "among": among});
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
        Key::Flash { qkv, heads } => {
            let xt = Tensor::randn(qkv, &mut rng);
            let (xt, d) = (&xt, head_dim(qkv, *heads));
            time_candidates(reps, &names, |name| {
                let q = flash::width_of(&flash::QUERY_RUNGS, name).expect("a flash rung");
                Box::new(move || {
                    flash::forward_with(xt, *heads, d, q);
                    Ok(())
                })
            })
        }
        Key::FlashBwd { qkv, heads } => {
            let xt = Tensor::randn(qkv, &mut rng);
            let d = head_dim(qkv, *heads);
            let saved = flash::save_forward(&xt, *heads, d);
            let gout = Tensor::randn(&[qkv[0], heads * d, qkv[2], qkv[3]], &mut rng);
            let (saved, gout) = (&saved, &gout);
            time_candidates(reps, &names, |name| {
                let rows = flash::width_of(&flash::ROW_RUNGS, name).expect("a flash backward rung");
                Box::new(move || {
                    flash::backward(saved, gout, rows);
                    Ok(())
                })
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
            Key::Matmul { a, ta, b, tb } => matmul::rule(a, *ta, b, *tb).name(),
            Key::Conv { w, .. } | Key::ConvDx { w, .. } => ConvKernel::pick(w).name(),
            Key::ConvDw { w, padding, .. } => conv::dw_rule(w, *padding, ConvKernel::pick(w)).name(),
            Key::Fft { .. } => FftKernel::pick().name(),
            Key::Flash { qkv, heads } => {
                flash::default_rung(&flash::QUERY_RUNGS, qkv[2] * qkv[3], head_dim(qkv, *heads))
            }
            Key::FlashBwd { qkv, heads } => {
                flash::default_rung(&flash::ROW_RUNGS, qkv[2] * qkv[3], head_dim(qkv, *heads))
            }
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
mod tests;

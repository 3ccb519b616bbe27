//! Weights I/O: safetensors files whose tensor names are the PyTorch package's `state_dict()` names
//! (optionally under a prefix, e.g. `param.` in reference fixtures). f32, f64, f16 and bf16 are accepted.
//! Loading checks every name and shape and reports all problems at once, by name.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::gpu::gpu;
use crate::nn::VarStore;
use crate::{Error, Result};

/// A host copy of one tensor.
#[derive(Clone, Debug)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Every tensor of a safetensors file (converted to f32) and its metadata.
pub struct TensorFile {
    pub tensors: BTreeMap<String, HostTensor>,
    pub metadata: HashMap<String, String>,
    /// Whether the file carried a checksum of every tensor's bytes ([`CHECKSUM_KEY`]) and they all matched.
    /// Files written by older versions, or by PyTorch, have none: they load, unverified.
    pub verified: bool,
}

/// Metadata key of the per-tensor checksums: a JSON object from tensor name to the CRC-32 of its stored bytes,
/// as 8 hex digits. safetensors itself has no checksum, so without this a bit flip or a zeroed block in a
/// checkpoint would load silently.
pub const CHECKSUM_KEY: &str = "crc32";

fn crc32_hex(bytes: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(bytes))
}

/// Check every tensor's bytes against the file's [`CHECKSUM_KEY`] entry; Ok(false) when the file has none.
fn verify_checksums(path: &Path, st: &SafeTensors, metadata: &HashMap<String, String>) -> Result<bool> {
    let Some(json) = metadata.get(CHECKSUM_KEY) else { return Ok(false) };
    let sums: BTreeMap<String, String> = serde_json::from_str(json)
        .map_err(|e| Error::format(path, format!("metadata `{CHECKSUM_KEY}` is not a name -> checksum map: {e}")))?;
    let mut names = std::collections::BTreeSet::new();
    for (name, view) in st.tensors() {
        let want = sums.get(&name).ok_or_else(|| {
            Error::format(path, format!("tensor {name} has no checksum in the `{CHECKSUM_KEY}` metadata: the file was altered after it was written"))
        })?;
        let got = crc32_hex(view.data());
        if &got != want {
            return Err(Error::format(
                path,
                format!(
                    "tensor {name}: its bytes do not match their checksum (crc32 {got}, stored {want}): the file is \
                     corrupt (a bit flip, a partial copy, a zeroed block). Use an earlier checkpoint or copy it again"
                ),
            ));
        }
        names.insert(name);
    }
    if let Some(gone) = sums.keys().find(|n| !names.contains(*n)) {
        return Err(Error::format(
            path,
            format!("tensor {gone} has a checksum but is not in the file: the file was altered after it was written"),
        ));
    }
    Ok(true)
}

impl TensorFile {
    pub fn read(path: &Path) -> Result<TensorFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        TensorFile::from_bytes(&bytes, path)
    }

    /// [`TensorFile::read`] of a file's bytes (`path` names it in errors).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<TensorFile> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| Error::format(path, e.to_string()))?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        let verified = verify_checksums(path, &st, &metadata)?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                Dtype::F64 => {
                    raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect()
                }
                Dtype::F16 => raw.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
                Dtype::BF16 => raw.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
                other => {
                    return Err(Error::format(
                        path,
                        format!("tensor {name} has dtype {other:?}; only f32/f64/f16/bf16 are supported"),
                    ))
                }
            };
            tensors.insert(name, HostTensor { shape: view.shape().to_vec(), data });
        }
        Ok(TensorFile { tensors, metadata, verified })
    }

    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.tensors.get(name)
    }

    /// A tensor that must exist, with a message naming the file otherwise.
    pub fn require(&self, name: &str, path: &Path) -> Result<&HostTensor> {
        self.tensors.get(name).ok_or_else(|| Error::format(path, format!("has no tensor named {name}")))
    }
}

/// Overwrite a parameter's values in place (its id, and so its place on the tape, is unchanged).
pub fn write_param(vars: &VarStore, name: &str, data: &[f32]) -> Result<()> {
    let t = vars.get(name).ok_or_else(|| Error::Config(format!("no parameter named {name}")))?;
    if t.numel() != data.len() {
        return Err(Error::Config(format!("parameter {name} has {} values, got {}", t.numel(), data.len())));
    }
    gpu().overwrite(t.buf(), data);
    Ok(())
}

/// Load every parameter of `vars` from `file` (names under `prefix`). Unknown, missing or mis-shaped tensors
/// are all reported, by name, with expected and found shapes; nothing is loaded unless everything matches.
pub fn load_into(vars: &VarStore, file: &TensorFile, prefix: &str, path: &Path) -> Result<()> {
    let mut problems = Vec::new();
    for (name, t) in &vars.params {
        match file.get(&format!("{prefix}{name}")) {
            None => problems.push(format!("missing: {name} (expected shape {:?})", t.shape())),
            Some(h) if h.shape != t.shape() => {
                // PyTorch stores some vectors as (1, C, 1, 1) and others as (C); accept equal element counts only when
                // the shapes agree up to size-1 dims
                let squeeze = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
                if squeeze(&h.shape) != squeeze(t.shape()) {
                    problems.push(format!("shape mismatch: {name} expected {:?}, found {:?}", t.shape(), h.shape));
                }
            }
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> = vars.params.iter().map(|(n, _)| n.as_str()).collect();
    for name in file.tensors.keys() {
        if let Some(n) = name.strip_prefix(prefix) {
            if !known.contains(n) {
                problems.push(format!("unknown: {n} (not a parameter of this model)"));
            }
        }
    }
    if !problems.is_empty() {
        let shown: Vec<&String> = problems.iter().take(20).collect();
        let more =
            if problems.len() > 20 { format!("\n  ... and {} more", problems.len() - 20) } else { String::new() };
        return Err(Error::format(
            path,
            format!(
                "{} problem(s) loading weights{}:\n  {}{more}",
                problems.len(),
                if prefix.is_empty() { String::new() } else { format!(" (names under \"{prefix}\")") },
                shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
            ),
        ));
    }
    for (name, _) in &vars.params {
        write_param(vars, name, &file.tensors[&format!("{prefix}{name}")].data)?;
    }
    Ok(())
}

/// Serialise named f32 tensors (with metadata, to which the [`CHECKSUM_KEY`] entry is added) to safetensors bytes.
pub fn to_safetensors_bytes(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    mut metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let sums: BTreeMap<&str, String> =
        tensors.iter().map(|(n, _, d)| (n.as_str(), crc32_hex(bytemuck::cast_slice(d)))).collect();
    metadata.insert(CHECKSUM_KEY.into(), serde_json::to_string(&sums).expect("a string map serialises"));
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| {
            let v = safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), bytemuck::cast_slice(d))
                .expect("shape matches data");
            (n.clone(), v)
        })
        .collect();
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::Config(format!("safetensors serialisation failed: {e}")))
}

/// Write `bytes` to `path` atomically: a temp file in the same folder, fsync, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("out")));
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    // the rename itself reaches the disk with the directory's entry (best effort: not every platform can
    // open a directory)
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Save the parameters as a state_dict-style safetensors file (names exactly as PyTorch's).
pub fn save_state_dict(vars: &VarStore, path: &Path, metadata: HashMap<String, String>) -> Result<()> {
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> =
        vars.params.iter().map(|(n, t)| (n.clone(), t.shape().to_vec(), t.to_vec())).collect();
    write_atomic(path, &to_safetensors_bytes(&tensors, metadata)?)
}

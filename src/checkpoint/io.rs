//! Reading and writing the safetensors file: the metadata, the parameters as tensors, atomic
//! writes.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use ::safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
use dfdx::prelude::*;

use super::{CheckpointInfo, FORMAT_VERSION, METADATA_KEY, MOMENT1, MOMENT2};
use crate::backend::Backend;
use crate::model::Mvae;
use crate::nn::{ParamMut, ParamVisitor, Parameters};
use crate::{Error, Result};

pub(super) fn ckpt_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The largest safetensors header read (the `safetensors` crate's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// The most tensor bytes a checkpoint may declare: the parameters of the largest model
/// ([`ModelConfig::MAX_PARAMETERS`](crate::model::ModelConfig::MAX_PARAMETERS)) and both of
/// Adam's moments, as `f32`.
const MAX_DATA: u64 = 3 * 4 * crate::model::ModelConfig::MAX_PARAMETERS as u64;

/// Reads the checkpoint file at `path` without reading more than it declares: the header's
/// length and the tensors' extents are checked against the bounds and the file's size before
/// their bytes are read, so a random or endless file (`/dev/urandom`) fails at once.
pub(super) fn read_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |reason: String| {
        ckpt_err(
            path,
            format!("not a readable checkpoint (safetensors file truncated or corrupt?): {reason}"),
        )
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(ckpt_err(path, "is a folder, not a checkpoint file"));
    }
    // A regular file's size bounds what it can declare; a pipe or device has none.
    let size = meta.is_file().then_some(meta.len());
    let mut bytes = Vec::new();
    let mut read_exactly = |n: u64, bytes: &mut Vec<u8>, what: &str| -> Result<()> {
        let got = (&mut file).take(n).read_to_end(bytes).map_err(io)?;
        if (got as u64) < n {
            return Err(bad(format!("the file ends inside its {what}")));
        }
        Ok(())
    };
    read_exactly(8, &mut bytes, "header length")?;
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if n > MAX_HEADER {
        return Err(bad(format!(
            "it declares a header of {n} bytes (at most {MAX_HEADER})"
        )));
    }
    if let Some(size) = size.filter(|&s| 8 + n > s) {
        return Err(bad(format!(
            "it declares a header of {n} bytes but the file has {size} bytes"
        )));
    }
    read_exactly(n, &mut bytes, "header")?;
    let data = data_extent(&bytes[8..]).map_err(bad)?;
    if data > MAX_DATA {
        return Err(bad(format!(
            "it declares {data} bytes of tensors (at most {MAX_DATA})"
        )));
    }
    if let Some(size) = size.filter(|&s| 8 + n + data != s) {
        return Err(bad(format!(
            "it declares {} bytes (header and tensors) but the file has {size}",
            8 + n + data
        )));
    }
    read_exactly(data, &mut bytes, "tensors")?;
    if size.is_none() && file.read(&mut [0u8]).map_err(io)? > 0 {
        return Err(bad(format!(
            "it holds more than the {} bytes it declares",
            8 + n + data
        )));
    }
    Ok(bytes)
}

/// The end of the last tensor's bytes that a safetensors header declares (the length of the
/// data after the header); the header is otherwise checked when the file is parsed.
fn data_extent(header: &[u8]) -> std::result::Result<u64, String> {
    let entries: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| format!("its header is not a JSON object: {e}"))?;
    let mut end = 0u64;
    for (name, entry) in &entries {
        if name == "__metadata__" {
            continue;
        }
        let offsets = entry
            .get("data_offsets")
            .and_then(serde_json::Value::as_array)
            .and_then(|o| o.get(1))
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| format!("tensor {name} has no data_offsets"))?;
        end = end.max(offsets);
    }
    Ok(end)
}

pub(super) fn info_of(path: &Path, bytes: &[u8]) -> Result<CheckpointInfo> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| {
        ckpt_err(
            path,
            format!("not a readable checkpoint (safetensors file truncated or corrupt?): {e:?}"),
        )
    })?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| {
            ckpt_err(
                path,
                format!("not an mvae checkpoint: no {METADATA_KEY:?} entry in __metadata__"),
            )
        })?;
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| ckpt_err(path, format!("metadata is not valid JSON: {e}")))?;
    let version = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| ckpt_err(path, "metadata has no format_version"))?;
    if version > u64::from(FORMAT_VERSION) || version == 0 {
        return Err(ckpt_err(
            path,
            format!(
                "format version {version} is not supported: mvae {} reads versions 1 to \
                 {FORMAT_VERSION} (a newer mvae wrote this file?)",
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    let info: CheckpointInfo = serde_json::from_value(value)
        .map_err(|e| ckpt_err(path, format!("metadata does not parse: {e}")))?;
    let config_err = |e| ckpt_err(path, format!("model config in the checkpoint: {e}"));
    info.model.validate().map_err(config_err)?;
    info.model
        .check_size(info.latent_size)
        .map_err(config_err)?;
    // Every parameter is an f32 tensor in the file: a config that declares more than the file
    // holds is refused before a model of its size is allocated.
    let declared = info
        .model
        .parameter_count(info.latent_size)
        .unwrap_or(usize::MAX);
    if declared.saturating_mul(4) > bytes.len() {
        return Err(ckpt_err(
            path,
            format!(
                "its model config declares {declared} parameters ({} bytes) but the file has \
                 only {} bytes",
                declared.saturating_mul(4),
                bytes.len()
            ),
        ));
    }
    Ok(info)
}

/// Every parameter's path and shape, in visiting order.
pub(super) fn param_shapes<P: Parameters<D>, D: Backend>(
    model: &mut P,
) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let mut f = |name: &str, p: ParamMut<'_, D>| {
        let shape = match p {
            ParamMut::Matrix(t) => vec![t.shape().0, t.shape().1],
            ParamMut::Vector(t) => vec![t.shape().0],
        };
        out.push((name.to_string(), shape));
    };
    model.visit_params(&mut ParamVisitor::new(&mut f));
    out
}

/// Host values of one tensor, checked against the expected dtype and shape and to be finite.
pub(super) fn tensor_values(
    st: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
) -> std::result::Result<Vec<f32>, String> {
    let t = st
        .tensor(name)
        .map_err(|_| format!("tensor {name} is missing"))?;
    if t.dtype() != StDtype::F32 {
        return Err(format!(
            "tensor {name} has dtype {:?}, expected F32",
            t.dtype()
        ));
    }
    if t.shape() != shape {
        return Err(format!(
            "tensor {name} has shape {:?}, the model expects {shape:?}",
            t.shape()
        ));
    }
    let values: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "tensor {name} holds {} at index {i}; the weights must be finite numbers",
            values[i]
        ));
    }
    Ok(values)
}

/// Copies every parameter of `model` from `st`.
pub(super) fn load_params<const L: usize, D: Backend>(
    path: &Path,
    st: &SafeTensors<'_>,
    model: &mut Mvae<L, D>,
) -> Result<()> {
    let mut err = None;
    let mut f = |name: &str, p: ParamMut<'_, D>| {
        if err.is_some() {
            return;
        }
        let shape = match &p {
            ParamMut::Matrix(t) => vec![t.shape().0, t.shape().1],
            ParamMut::Vector(t) => vec![t.shape().0],
        };
        match tensor_values(st, name, &shape) {
            Ok(v) => match p {
                ParamMut::Matrix(t) => t.copy_from(&v),
                ParamMut::Vector(t) => t.copy_from(&v),
            },
            Err(e) => err = Some(e),
        }
    };
    model.visit_params(&mut ParamVisitor::new(&mut f));
    err.map_or(Ok(()), |e| Err(ckpt_err(path, e)))
}

/// Refuses tensors in the file that are not in `expected`.
pub(super) fn check_no_extra(
    path: &Path,
    st: &SafeTensors<'_>,
    expected: &BTreeSet<String>,
) -> Result<()> {
    let mut extra: Vec<&String> = st
        .names()
        .into_iter()
        .filter(|n| !expected.contains(*n))
        .collect();
    extra.sort();
    match extra.first() {
        None => Ok(()),
        Some(n) => Err(ckpt_err(
            path,
            format!(
                "unexpected tensor {n} ({} tensor(s) that the model config does not have)",
                extra.len()
            ),
        )),
    }
}

pub(super) fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        ckpt_err(
            path,
            format!("not a readable checkpoint (safetensors file truncated or corrupt?): {e:?}"),
        )
    })
}

/// Names of the tensors a checkpoint of `shapes` holds (moments only with `moments`).
pub(super) fn expected_names(shapes: &[(String, Vec<usize>)], moments: bool) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = shapes.iter().map(|(n, _)| n.clone()).collect();
    if moments {
        for (n, _) in shapes {
            names.insert(format!("{MOMENT1}{n}"));
            names.insert(format!("{MOMENT2}{n}"));
        }
    }
    names
}

/// Writes the tensors and metadata to `path`, atomically.
pub(super) fn write(
    path: &Path,
    info: &CheckpointInfo,
    tensors: Vec<(String, Vec<usize>, &[f32])>,
) -> Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(StDtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| ckpt_err(path, format!("tensor {n}: {e:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let json = serde_json::to_string(info)
        .map_err(|e| ckpt_err(path, format!("metadata does not serialise: {e}")))?;
    let meta = Some(HashMap::from([(METADATA_KEY.to_string(), json)]));
    let buf = ::safetensors::tensor::serialize(views, &meta)
        .map_err(|e| ckpt_err(path, format!("cannot serialise: {e:?}")))?;
    crate::data::atomic::write_atomically(path, |tmp| {
        std::fs::write(tmp, &buf).map_err(|e| crate::data::DataError::io(tmp, e))
    })
    .map_err(|e| ckpt_err(path, format!("cannot write: {e}")))
}

/// Every parameter of `model` as `(path, shape, values)`.
pub(super) fn param_values<const L: usize, D: Backend>(
    model: &mut Mvae<L, D>,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    let mut f = |name: &str, p: ParamMut<'_, D>| {
        let (shape, v) = match p {
            ParamMut::Matrix(t) => (vec![t.shape().0, t.shape().1], t.as_vec()),
            ParamMut::Vector(t) => (vec![t.shape().0], t.as_vec()),
        };
        out.push((name.to_string(), shape, v));
    };
    model.visit_params(&mut ParamVisitor::new(&mut f));
    out
}

//! A batch on the device: each modality's values plus its per-sample presence mask.
//!
//! This is where host data meets the model: values are checked against each modality's
//! likelihood, missing samples are zero-filled (so a NaN placeholder can never leak through a
//! `0 * NaN`), and masks become `0/1` vectors.

use dfdx::prelude::*;

use crate::backend::{Backend, Vector};
use crate::data::HostBatch;
use crate::modality::{EncoderInput, Modality, ModalitySpec};
use crate::{Error, Result};

pub use crate::likelihood::Input;

/// One modality within a device batch (the host-side column of a data set is
/// [`data::Column`](crate::data::Column)).
#[derive(Clone, Debug)]
pub struct DeviceColumn<D: Backend> {
    /// The values (zero where absent).
    pub input: Input<D>,
    /// `1.0` where the sample has this modality, `0.0` where it is missing, `(batch,)`.
    pub present: Vector<D>,
    /// The same mask on the host.
    pub present_host: Vec<bool>,
}

impl<D: Backend> DeviceColumn<D> {
    /// How many samples have this modality.
    pub fn count(&self) -> usize {
        self.present_host.iter().filter(|&&p| p).count()
    }

    /// The presence mask, or `None` when every sample has the modality (nothing to mask).
    pub fn mask(&self) -> Option<&Vector<D>> {
        (self.count() < self.present_host.len()).then_some(&self.present)
    }
}

/// Host values of one modality for [`Batch::from_host`].
#[derive(Clone, Copy, Debug)]
pub struct HostValues<'a> {
    /// Modality name.
    pub name: &'a str,
    /// `batch * dim` values, row-major; ignored where absent.
    pub values: &'a [f32],
    /// Presence per sample; `None` = every sample has it.
    pub present: Option<&'a [bool]>,
}

/// A batch of samples on the device, one optional [`DeviceColumn`] per model modality (in the
/// model's order; `None` = no sample of the batch has that modality).
#[derive(Clone, Debug)]
pub struct Batch<D: Backend> {
    size: usize,
    columns: Vec<Option<DeviceColumn<D>>>,
}

impl<D: Backend> Batch<D> {
    /// Uploads host values for the model's modalities; modalities not given are missing.
    ///
    /// # Errors
    /// A name the model does not know, a length that is not `batch * dim`, values outside the
    /// likelihood's domain (checked where present), or a sample with no modality at all.
    pub fn from_host(specs: &[ModalitySpec], dev: &D, given: &[HostValues<'_>]) -> Result<Self> {
        let size = batch_size(specs, given)?;
        let mut columns: Vec<Option<DeviceColumn<D>>> = vec![None; specs.len()];
        let mut any = vec![false; size];
        for g in given {
            let idx = specs
                .iter()
                .position(|s| s.name() == g.name)
                .ok_or_else(|| unknown(specs, g.name))?;
            let spec = &specs[idx];
            let dim = spec.kind.dim();
            let present: Vec<bool> = match g.present {
                Some(p) if p.len() != size => {
                    return Err(Error::shape(
                        format!("presence mask of {}", g.name),
                        format!("{size} samples"),
                        p.len(),
                    ))
                }
                Some(p) => p.to_vec(),
                None => vec![true; size],
            };
            let mut values = Vec::with_capacity(size * dim);
            for (i, row) in g.values.chunks_exact(dim).enumerate() {
                if present[i] {
                    spec.kind.check(row).map_err(|e| at_sample(e, i))?;
                    values.extend_from_slice(row);
                    any[i] = true;
                } else {
                    values.extend(std::iter::repeat_n(0.0, dim));
                }
            }
            let input = match spec.kind.encoder_input() {
                EncoderInput::Dense { .. } => {
                    Input::Dense(dev.tensor_from_vec(values, (size, dim)))
                }
                EncoderInput::Embedding { .. } => {
                    let ids = values.iter().map(|&v| v as usize).collect();
                    Input::Classes(dev.tensor_from_vec(ids, (size,)))
                }
            };
            let mask = present.iter().map(|&p| if p { 1.0 } else { 0.0 }).collect();
            columns[idx] = Some(DeviceColumn {
                input,
                present: dev.tensor_from_vec(mask, (size,)),
                present_host: present,
            });
        }
        if let Some(i) = any.iter().position(|&a| !a) {
            return Err(Error::InvalidData {
                what: format!("sample {i} of the batch"),
                reason: "has no modality present".into(),
            });
        }
        Ok(Self { size, columns })
    }

    /// Uploads a [`HostBatch`] from the data layer (columns matched by name).
    ///
    /// # Errors
    /// As [`Batch::from_host`].
    pub fn from_host_batch(specs: &[ModalitySpec], dev: &D, host: &HostBatch) -> Result<Self> {
        let given: Vec<HostValues<'_>> = host
            .columns
            .iter()
            .map(|c| HostValues {
                name: &c.name,
                values: &c.values,
                present: Some(&c.present),
            })
            .collect();
        Self::from_host(specs, dev, &given)
    }

    /// Number of samples.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The column of modality `m` (model order), if any sample has it.
    pub fn column(&self, m: usize) -> Option<&DeviceColumn<D>> {
        self.columns.get(m).and_then(Option::as_ref)
    }

    /// All columns in model order.
    pub fn columns(&self) -> &[Option<DeviceColumn<D>>] {
        &self.columns
    }

    /// Samples `rows` of this batch as a batch of their own (copies on the device); columns
    /// stay where they are, even where no sample of the part has the modality.
    ///
    /// # Panics
    /// If `rows` reaches past the batch.
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Self {
        assert!(
            rows.start <= rows.end && rows.end <= self.size,
            "rows {rows:?} of a batch of {}",
            self.size
        );
        let columns = self
            .columns
            .iter()
            .map(|c| {
                c.as_ref().map(|c| DeviceColumn {
                    input: match &c.input {
                        Input::Dense(x) => Input::Dense(x.clone().slice((rows.clone(), ..))),
                        Input::Classes(ids) => {
                            // dfdx slices float tensors only: ids go through the host.
                            let part = ids.as_vec()[rows.clone()].to_vec();
                            Input::Classes(ids.device().tensor_from_vec(part, (rows.len(),)))
                        }
                    },
                    present: c.present.clone().slice((rows.clone(),)),
                    present_host: c.present_host[rows.clone()].to_vec(),
                })
            })
            .collect();
        Self {
            size: rows.len(),
            columns,
        }
    }
}

impl<D: Backend> Batch<D> {
    /// Each sample repeated `k` times in a row (row `i k + j` is sample `i`): the batch that
    /// `k` latent samples per data point are scored against.
    pub fn repeat_each(&self, k: usize) -> Self {
        if k == 1 {
            return self.clone();
        }
        let n = self.size;
        let columns = self
            .columns
            .iter()
            .map(|c| {
                c.as_ref().map(|c| DeviceColumn {
                    input: match &c.input {
                        Input::Dense(x) => {
                            let d = x.shape().1;
                            Input::Dense(
                                x.clone()
                                    .broadcast_like::<_, Axis<1>>(&(n, k, d))
                                    .reshape_like(&(n * k, d)),
                            )
                        }
                        Input::Classes(ids) => {
                            // dfdx broadcasts float tensors only: ids go through the host.
                            let host: Vec<usize> = ids
                                .as_vec()
                                .iter()
                                .flat_map(|&x| std::iter::repeat_n(x, k))
                                .collect();
                            Input::Classes(ids.device().tensor_from_vec(host, (n * k,)))
                        }
                    },
                    present: c
                        .present
                        .clone()
                        .broadcast_like::<_, Axis<1>>(&(n, k))
                        .reshape_like(&(n * k,)),
                    present_host: c
                        .present_host
                        .iter()
                        .flat_map(|&x| std::iter::repeat_n(x, k))
                        .collect(),
                })
            })
            .collect();
        Self {
            size: n * k,
            columns,
        }
    }
}

fn batch_size(specs: &[ModalitySpec], given: &[HostValues<'_>]) -> Result<usize> {
    let mut size = None;
    for g in given {
        let spec = specs
            .iter()
            .find(|s| s.name() == g.name)
            .ok_or_else(|| unknown(specs, g.name))?;
        let dim = spec.kind.dim();
        if g.values.len() % dim != 0 {
            return Err(Error::shape(
                format!("modality {}", g.name),
                format!("a multiple of {dim} values"),
                g.values.len(),
            ));
        }
        let n = g.values.len() / dim;
        match size {
            None => size = Some(n),
            Some(s) if s != n => {
                return Err(Error::shape(
                    format!("modality {}", g.name),
                    format!("{s} samples like the others"),
                    n,
                ))
            }
            _ => {}
        }
    }
    match size {
        Some(0) | None => Err(Error::InvalidData {
            what: "batch".into(),
            reason: "is empty".into(),
        }),
        Some(n) => Ok(n),
    }
}

fn unknown(specs: &[ModalitySpec], name: &str) -> Error {
    let known: Vec<&str> = specs.iter().map(|s| s.name()).collect();
    Error::InvalidData {
        what: format!("modality {name}"),
        reason: format!("is not in the model (it has {})", known.join(", ")),
    }
}

fn at_sample(e: Error, i: usize) -> Error {
    match e {
        Error::InvalidData { what, reason } => Error::InvalidData {
            what: format!("{what}, sample {i}"),
            reason,
        },
        other => other,
    }
}

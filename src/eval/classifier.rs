//! A small MLP classifier trained by the library itself, to judge generated samples
//! ([`super::coherence`]) and to probe latents ([`super::probe`]):
//! `p(y | x) = softmax(W_out h(x) + b_out)`, trained by Adam on `-mean_i log p(y_i | x_i)`.

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{argmax, in_order};
use crate::backend::{Backend, Ids, Matrix};
use crate::data::{BatchOptions, HostBatch, MultimodalDataset};
use crate::likelihood;
use crate::nn::{Activation, Linear, Mlp, ParamVisitor, Parameters};
use crate::optim::{Adam, AdamSettings};
use crate::{Error, Result};

/// How to build and train a [`Classifier`].
///
/// | Name | Default | Purpose | Range |
/// |---|---|---|---|
/// | `hidden` | `[256]` | hidden layer sizes (`[]` = softmax regression) | each >= 1 |
/// | `activation` | ReLU | between hidden layers | |
/// | `epochs` | 5 | passes over the training data | >= 1 |
/// | `batch_size` | 100 | samples per step | >= 1 |
/// | `adam` | lr 1e-3 | optimizer | |
/// | `seed` | 0 | weights and shuffling | any |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Hidden layer sizes; empty for a linear (softmax-regression) classifier.
    pub hidden: Vec<usize>,
    /// Hidden-layer activation.
    pub activation: Activation,
    /// Passes over the training data.
    pub epochs: usize,
    /// Samples per optimisation step.
    pub batch_size: usize,
    /// Optimizer settings.
    pub adam: AdamSettings,
    /// Seed of the weights and of the shuffling.
    pub seed: u64,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            hidden: vec![256],
            activation: Activation::Relu,
            epochs: 5,
            batch_size: 100,
            adam: AdamSettings::default(),
            seed: 0,
        }
    }
}

impl ClassifierConfig {
    /// A softmax regression (no hidden layer) with learning rate `lr`.
    pub fn linear(epochs: usize, lr: f64) -> Self {
        Self {
            hidden: Vec::new(),
            epochs,
            adam: AdamSettings {
                lr,
                ..AdamSettings::default()
            },
            ..Self::default()
        }
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::config("classifier epochs", 0, "at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("classifier batch_size", 0, "at least 1"));
        }
        if self.hidden.contains(&0) {
            return Err(Error::config(
                "classifier hidden",
                format!("{:?}", self.hidden),
                "sizes >= 1",
            ));
        }
        self.adam.validate()
    }
}

/// An MLP from a dense input to class logits.
#[derive(Clone, Debug)]
pub struct Classifier<D: Backend> {
    /// Hidden layers (none for softmax regression).
    pub hidden: Mlp<D>,
    /// Output layer to the logits.
    pub out: Linear<D>,
}

impl<D: Backend> Parameters<D> for Classifier<D> {
    fn visit_params<'p>(&'p mut self, v: &mut ParamVisitor<'_, 'p, D>) {
        v.scope("hidden", |v| self.hidden.visit_params(v));
        v.scope("out", |v| self.out.visit_params(v));
    }
}

/// Labelled rows of a host batch: inputs `(n, dim)` and classes, for the samples that have both
/// columns.
fn labelled(
    host: &HostBatch,
    input: &str,
    label: &str,
    classes: usize,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let (Some(x), Some(y)) = (host.column(input), host.column(label)) else {
        return Err(Error::InvalidData {
            what: format!("columns {input} and {label}"),
            reason: "are not both in the data".into(),
        });
    };
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for j in 0..host.len() {
        if !(x.present[j] && y.present[j]) {
            continue;
        }
        let c = y.values[j];
        if !(c >= 0.0 && c.fract() == 0.0 && (c as usize) < classes) {
            return Err(Error::InvalidData {
                what: format!("column {label}, sample {}", host.indices[j]),
                reason: format!("value {c} is not a class index in 0..{classes}"),
            });
        }
        let row = &x.values[j * x.dim..(j + 1) * x.dim];
        if let Some(v) = row.iter().find(|v| !v.is_finite()) {
            return Err(Error::InvalidData {
                what: format!("column {input}, sample {}", host.indices[j]),
                reason: format!("value {v} is not finite"),
            });
        }
        xs.extend_from_slice(row);
        ys.push(c as usize);
    }
    Ok((xs, ys))
}

/// The number of classes of column `label`: one more than its largest present value.
///
/// # Errors
/// No such column, no present value, or a value that is not a class index.
pub fn class_count(data: &MultimodalDataset, label: &str) -> Result<usize> {
    let col = data.column(label).ok_or_else(|| Error::InvalidData {
        what: format!("column {label}"),
        reason: "is not in the data".into(),
    })?;
    let mut max = None;
    for (&v, &p) in col.values().iter().zip(col.present()) {
        if !p {
            continue;
        }
        if !(v >= 0.0 && v.fract() == 0.0 && v < 1e6) {
            return Err(Error::InvalidData {
                what: format!("column {label}"),
                reason: format!("value {v} is not a class index"),
            });
        }
        max = max.max(Some(v as usize));
    }
    max.map(|m| m + 1).ok_or_else(|| Error::InvalidData {
        what: format!("column {label}"),
        reason: "has no value".into(),
    })
}

impl<D: Backend> Classifier<D> {
    /// An untrained classifier from `inputs` values to `classes` logits.
    pub fn new(inputs: usize, classes: usize, cfg: &ClassifierConfig, dev: &D) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let hidden = Mlp::new(inputs, &cfg.hidden, cfg.activation, &mut rng, dev);
        let out = Linear::new(hidden.outputs(inputs), classes, true, &mut rng, dev);
        Self { hidden, out }
    }

    /// Trains a classifier of column `label` (class indices `0..classes`) from the dense
    /// column `input`, on the samples of `data` that have both.
    ///
    /// # Errors
    /// A bad config, missing columns, labels that are not class indices, non-finite inputs,
    /// or no labelled sample.
    pub fn fit(
        data: &MultimodalDataset,
        input: &str,
        label: &str,
        classes: usize,
        cfg: &ClassifierConfig,
        dev: &D,
    ) -> Result<Self> {
        cfg.validate()?;
        let dim = data
            .column(input)
            .ok_or_else(|| Error::InvalidData {
                what: format!("column {input}"),
                reason: "is not in the data".into(),
            })?
            .dim();
        if classes == 0 {
            return Err(Error::config("classes", 0, "at least 1"));
        }
        let mut model = Self::new(dim, classes, cfg, dev);
        let mut adam = Adam::new(&cfg.adam)?;
        let mut host = HostBatch::default();
        let mut seen = 0usize;
        for epoch in 0..cfg.epochs {
            let opts = BatchOptions::new(cfg.batch_size, cfg.seed.wrapping_add(epoch as u64));
            let mut batches = data.batches(&opts)?;
            while batches.next_into(&mut host) {
                let (xs, ys) = labelled(&host, input, label, classes)?;
                let n = ys.len();
                if n == 0 {
                    continue;
                }
                seen += n;
                let x: Matrix<D> = dev.tensor_from_vec(xs, (n, dim));
                let y: Ids<D> = dev.tensor_from_vec(ys, (n,));
                let logits = model.logits(x.put_tape(OwnedTape::default()));
                let loss =
                    likelihood::categorical(logits, &y).sum::<Rank0, _>() * (-1.0 / n as f32);
                adam.update(&mut model, loss.backward());
            }
        }
        if seen == 0 {
            return Err(Error::InvalidData {
                what: format!("columns {input} and {label}"),
                reason: "have no sample in common to train on".into(),
            });
        }
        Ok(model)
    }

    /// Class logits for a batch of inputs `(batch, inputs)`.
    pub fn logits<T: Tape<f32, D>>(&self, x: Matrix<D, T>) -> Matrix<D, T> {
        self.out.forward(self.hidden.forward(x))
    }

    /// The most likely class of each row of `x`.
    pub fn predict(&self, x: Matrix<D>) -> Vec<usize> {
        let classes = self.out.outputs();
        self.logits(x)
            .as_vec()
            .chunks_exact(classes)
            .map(argmax)
            .collect()
    }

    /// Accuracy on the samples of `data` that have both `input` and `label`.
    ///
    /// # Errors
    /// As [`Classifier::fit`], or a column width that does not fit the classifier.
    pub fn accuracy(&self, data: &MultimodalDataset, input: &str, label: &str) -> Result<f64> {
        let dim = self.out.inputs();
        let dim = if self.hidden.layers.is_empty() {
            dim
        } else {
            self.hidden.layers[0].inputs()
        };
        let got = data.column(input).map_or(0, |c| c.dim());
        if got != dim {
            return Err(Error::shape(format!("column {input}"), dim, got));
        }
        let dev = self.out.weight.device().clone();
        let (mut right, mut count) = (0usize, 0usize);
        let mut batches = data.batches(&in_order())?;
        let mut host = HostBatch::default();
        while batches.next_into(&mut host) {
            let (xs, ys) = labelled(&host, input, label, self.out.outputs())?;
            if ys.is_empty() {
                continue;
            }
            let pred = self.predict(dev.tensor_from_vec(xs, (ys.len(), dim)));
            right += pred.iter().zip(&ys).filter(|(p, y)| p == y).count();
            count += ys.len();
        }
        if count == 0 {
            return Err(Error::InvalidData {
                what: format!("columns {input} and {label}"),
                reason: "have no sample in common".into(),
            });
        }
        Ok(right as f64 / count as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DatasetBuilder;
    use rand_distr::{Distribution, StandardNormal};

    /// Three well separated blobs in 2-D; sample `i` has class `i % 3`.
    fn blobs(n: usize, seed: u64) -> MultimodalDataset {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = [[2.0f32, 0.0], [-1.0, 1.7], [-1.0, -1.7]];
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let c = i % 3;
            for &centre in &centres[c] {
                let e: f32 = StandardNormal.sample(&mut rng);
                x.push(centre + 0.5 * e);
            }
            y.push(c as f32);
        }
        DatasetBuilder::new()
            .column("x", 2, x)
            .column("y", 1, y)
            .build()
            .unwrap()
    }

    #[test]
    fn mlp_and_softmax_regression_learn_separable_classes() {
        let dev = Cpu::default();
        let (train, test) = (blobs(600, 1), blobs(300, 2));
        for cfg in [
            ClassifierConfig {
                hidden: vec![16],
                epochs: 10,
                batch_size: 50,
                ..Default::default()
            },
            ClassifierConfig::linear(10, 1e-2),
        ] {
            let untrained = Classifier::new(2, 3, &cfg, &dev);
            let before = untrained.accuracy(&test, "x", "y").unwrap();
            let clf = Classifier::fit(&train, "x", "y", 3, &cfg, &dev).unwrap();
            let acc = clf.accuracy(&test, "x", "y").unwrap();
            eprintln!("{:?}: accuracy {before:.3} -> {acc:.3}", cfg.hidden);
            assert!(acc > 0.95, "{acc}");
        }
        assert_eq!(class_count(&train, "y").unwrap(), 3);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let dev = Cpu::default();
        let mut data = blobs(30, 1);
        let cfg = ClassifierConfig::default();
        // a label outside 0..classes
        assert!(Classifier::fit(&data, "x", "y", 2, &cfg, &dev)
            .unwrap_err()
            .to_string()
            .contains("class index"));
        assert!(Classifier::fit(&data, "nope", "y", 3, &cfg, &dev).is_err());
        let bad = ClassifierConfig {
            epochs: 0,
            ..cfg.clone()
        };
        assert!(Classifier::fit(&data, "x", "y", 3, &bad, &dev).is_err());
        let mut y: Vec<f32> = data.column("y").unwrap().values().to_vec();
        y[7] = 0.5;
        data = DatasetBuilder::new()
            .column("x", 2, data.column("x").unwrap().values().to_vec())
            .column("y", 1, y)
            .build()
            .unwrap();
        assert!(class_count(&data, "y").is_err());
    }
}

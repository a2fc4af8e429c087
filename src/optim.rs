//! Adam (and AdamW) over any [`Parameters`]: on the CPU the project's vectorised pass over each
//! parameter's host mirror (`kernels::adam`), elsewhere dfdx's fused Adam kernel on the device.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::kernels::adam::{AdamSlot, Slot};
use crate::kernels::mirror::Mirrors;
use crate::kernels::{deferred, PartGradients};
use crate::nn::{ParamMut, ParamVisitor, Parameters};
use crate::{Error, Result};

/// Settings of the Adam optimizer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamSettings {
    /// Learning rate (the paper: 1e-3).
    pub lr: f64,
    /// Exponential decay of the first and second moments.
    pub betas: [f64; 2],
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 = plain Adam.
    pub weight_decay: f64,
}

impl Default for AdamSettings {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamSettings {
    /// Checks the values.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config("lr", self.lr, "a finite number > 0"));
        }
        if self.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return Err(Error::config(
                "betas",
                format!("{:?}", self.betas),
                "in [0, 1)",
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::config("eps", self.eps, "a finite number > 0"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::config(
                "weight_decay",
                self.weight_decay,
                "a finite number >= 0",
            ));
        }
        Ok(())
    }
}

/// Adam state: step count and both moments of every parameter.
#[derive(Debug)]
pub struct Adam<D: Backend> {
    cfg: AdamConfig,
    step: i32,
    moment1: Gradients<f32, D>,
    moment2: Gradients<f32, D>,
    /// Host copies of the parameters as of the last update, for the CPU dense kernel
    /// ([`crate::kernels::mirror`]; a cache, not state).
    mirrors: Mirrors<D>,
}

impl<D: Backend> Adam<D> {
    /// A fresh optimizer.
    ///
    /// # Errors
    /// If the settings do not validate.
    pub fn new(settings: &AdamSettings) -> Result<Self> {
        settings.validate()?;
        Ok(Self {
            cfg: AdamConfig {
                lr: settings.lr,
                betas: settings.betas,
                eps: settings.eps,
                weight_decay: (settings.weight_decay > 0.0)
                    .then_some(WeightDecay::Decoupled(settings.weight_decay)),
            },
            step: 0,
            moment1: Gradients::leaky(),
            moment2: Gradients::leaky(),
            mirrors: Mirrors::default(),
        })
    }

    /// Updates completed steps so far.
    pub fn steps(&self) -> usize {
        self.step as usize
    }

    /// One update of every parameter of `model` from `grads` (a parameter without gradient
    /// gets a zero gradient, which still decays its moments, as in PyTorch's Adam).
    pub fn update<P: Parameters<D>>(&mut self, model: &mut P, grads: Gradients<f32, D>) {
        self.update_parts(
            model,
            vec![PartGradients {
                grads,
                share: 1.0,
                factors: Vec::new(),
            }],
        );
    }

    /// [`Adam::update`] from the gradients of a batch's parts: the batch's gradient is
    /// `sum_i share_i * grads_i`, formed per parameter right before its update (from the
    /// parts' `PartGradients::factors` where its dense layers deferred it).
    ///
    /// The parameters' gradients and moments are taken out of their stores, so the device's
    /// [`crate::kernels::Kernels::adam_update`] can update parameters side by side (on both
    /// cores of a CPU); then the moments are put back.
    ///
    /// # Panics
    /// If `parts` is empty, or holds several parts on a device that trains each batch in one,
    /// or factors of a weight that is not among `model`'s parameters.
    pub(crate) fn update_parts<P: Parameters<D>>(
        &mut self,
        model: &mut P,
        mut parts: Vec<PartGradients<D>>,
    ) {
        assert!(!parts.is_empty(), "Adam: a batch of no parts");
        self.step += 1;
        let shares: Vec<f32> = parts.iter().map(|p| p.share).collect();
        let mut deferred = deferred::by_weight(
            parts
                .iter_mut()
                .map(|p| (p.share, std::mem::take(&mut p.factors))),
        );
        let (m1, m2) = (&mut self.moment1, &mut self.moment2);
        // Unpublished for the update; those of parameters that have moved since (written by
        // someone else) are dropped below.
        let mut mirrors = self.mirrors.take();
        let mut slots: Vec<AdamSlot<'_, D>> = model
            .params_mut()
            .into_iter()
            .map(|param| {
                // One key names both (only a weight's can have factors).
                let key = D::param_key(&param);
                let factors = key.and_then(|k| deferred.remove(&k)).unwrap_or_default();
                let grads = if factors.is_empty() {
                    parts
                        .iter_mut()
                        .map(|part| take_slot(&mut part.grads, &param))
                        .collect()
                } else {
                    Vec::new()
                };
                AdamSlot {
                    mirror: key.and_then(|k| mirrors.remove(&k)),
                    grads,
                    factors,
                    moment1: take_slot(m1, &param),
                    moment2: take_slot(m2, &param),
                    param,
                }
            })
            .collect();
        assert!(
            deferred.is_empty(),
            "Adam: deferred gradients of weights that are not the model's"
        );
        drop(mirrors);
        D::adam_update(&self.cfg, self.step, &shares, &mut slots).expect("Adam kernel");
        self.mirrors
            .publish(slots.iter_mut().filter_map(|s| s.mirror.take()));
        for s in slots {
            put_slot(m1, &s.param, s.moment1);
            put_slot(m2, &s.param, s.moment2);
        }
    }
}

/// Moves the slot of `p` out of `store` (zeros if it had none), leaving an empty one.
fn take_slot<D: Backend>(store: &mut Gradients<f32, D>, p: &ParamMut<'_, D>) -> Slot<D> {
    let (slot, dev) = match p {
        ParamMut::Matrix(p) => (store.get_or_alloc_mut(*p), p.device()),
        ParamMut::Vector(p) => (store.get_or_alloc_mut(*p), p.device()),
    };
    let slot = slot.expect("device allocation for Adam");
    let empty = Storage::<f32>::try_alloc_len(dev, 0).expect("device allocation for Adam");
    std::mem::replace(slot, empty)
}

/// Puts `values` back as the slot of `p` in `store`.
fn put_slot<D: Backend>(store: &mut Gradients<f32, D>, p: &ParamMut<'_, D>, values: Slot<D>) {
    let slot = match p {
        ParamMut::Matrix(p) => store.get_or_alloc_mut(*p),
        ParamMut::Vector(p) => store.get_or_alloc_mut(*p),
    };
    *slot.expect("the slot taken out") = values;
}

/// Both Adam moments of one parameter, as host values in the parameter's element order.
pub(crate) struct Moments {
    /// First moment (running mean of the gradient).
    pub(crate) first: Vec<f32>,
    /// Second moment (running mean of the squared gradient).
    pub(crate) second: Vec<f32>,
}

impl<D: Backend> Adam<D> {
    /// The moments of every parameter of `model`, by dotted path, in visiting order; empty
    /// before the first update (no moments exist yet).
    pub(crate) fn moments<P: Parameters<D>>(&mut self, model: &mut P) -> Vec<(String, Moments)> {
        if self.step == 0 {
            return Vec::new();
        }
        let (m1, m2) = (&mut self.moment1, &mut self.moment2);
        let mut out = Vec::new();
        let mut f = |name: &str, p: ParamMut<'_, D>| {
            let moments = match p {
                ParamMut::Matrix(p) => read_moments(p, m1, m2),
                ParamMut::Vector(p) => read_moments(p, m1, m2),
            };
            out.push((name.to_string(), moments));
        };
        model.visit_params(&mut ParamVisitor::new(&mut f));
        out
    }

    /// Sets the step count and, when it is above 0, the moments of every parameter of `model`
    /// from `moments(name)` (keyed by the parameters' current tensor ids, so this must be called
    /// with the model the optimizer will update).
    ///
    /// # Errors
    /// A message if the step count does not fit, `moments` fails for a parameter, or the length
    /// of its moments differs from the parameter's.
    pub(crate) fn restore<P: Parameters<D>>(
        &mut self,
        steps: usize,
        model: &mut P,
        mut moments: impl FnMut(&str) -> std::result::Result<Moments, String>,
    ) -> std::result::Result<(), String> {
        self.step = i32::try_from(steps)
            .map_err(|_| format!("adam step count {steps} exceeds {}", i32::MAX))?;
        self.moment1 = Gradients::leaky();
        self.moment2 = Gradients::leaky();
        if steps == 0 {
            return Ok(());
        }
        let (m1, m2) = (&mut self.moment1, &mut self.moment2);
        let mut err = None;
        let mut f = |name: &str, p: ParamMut<'_, D>| {
            if err.is_some() {
                return;
            }
            let r = moments(name).and_then(|m| match p {
                ParamMut::Matrix(p) => write_moments(name, p, m1, m2, &m),
                ParamMut::Vector(p) => write_moments(name, p, m1, m2, &m),
            });
            err = r.err();
        };
        model.visit_params(&mut ParamVisitor::new(&mut f));
        err.map_or(Ok(()), Err)
    }
}

fn read_moments<S: Shape, D: Backend>(
    p: &Tensor<S, f32, D>,
    m1: &mut Gradients<f32, D>,
    m2: &mut Gradients<f32, D>,
) -> Moments {
    // A parameter the optimizer has not seen yet has zero moments.
    m1.try_alloc_for(p).expect("device allocation for Adam");
    m2.try_alloc_for(p).expect("device allocation for Adam");
    Moments {
        first: m1.get(p).as_vec(),
        second: m2.get(p).as_vec(),
    }
}

fn write_moments<S: Shape, D: Backend>(
    name: &str,
    p: &Tensor<S, f32, D>,
    m1: &mut Gradients<f32, D>,
    m2: &mut Gradients<f32, D>,
    m: &Moments,
) -> std::result::Result<(), String> {
    let n = p.shape().num_elements();
    for (which, v) in [("first", &m.first), ("second", &m.second)] {
        if v.len() != n {
            return Err(format!(
                "adam {which} moment of {name} has {} values, the parameter {n}",
                v.len()
            ));
        }
    }
    write_slot(m1, p, &m.first).map_err(|e| format!("adam moments of {name}: {e}"))?;
    write_slot(m2, p, &m.second).map_err(|e| format!("adam moments of {name}: {e}"))
}

/// Sets the slot of `p` in `slots` to `values`.
///
/// dfdx 0.13 gives no public way to write host values into a gradient slot, so on `Cpu` the
/// slot (a `Vec<f32>` underneath) is filled directly, bit for bit. On other devices the values
/// arrive as the gradient of `sum(p * values)`, which is `0 + 1 * values`: exact except that
/// a moment of `-0.0` becomes `+0.0`.
fn write_slot<S: Shape, D: Backend>(
    slots: &mut Gradients<f32, D>,
    p: &Tensor<S, f32, D>,
    values: &[f32],
) -> std::result::Result<(), String> {
    let slot = slots.get_or_alloc_mut(p).map_err(|e| e.to_string())?;
    let any: &mut dyn std::any::Any = slot;
    if let Some(v) = any.downcast_mut::<<Cpu as Storage<f32>>::Vec>() {
        v.copy_from_slice(values);
        return Ok(());
    }
    write_slot_by_gradient(slots, p, values)
}

/// [`write_slot`] for any device: the gradient of `sum(p * values)` with respect to `p`.
fn write_slot_by_gradient<S: Shape, D: Backend>(
    slots: &mut Gradients<f32, D>,
    p: &Tensor<S, f32, D>,
    values: &[f32],
) -> std::result::Result<(), String> {
    let c = p.device().tensor_from_vec(values.to_vec(), *p.shape());
    let mut g = (p.clone().leaky_trace() * c).sum().backward();
    let src = g.get_or_alloc_mut(p).map_err(|e| e.to_string())?;
    std::mem::swap(slots.get_or_alloc_mut(p).map_err(|e| e.to_string())?, src);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Kernels, WeightFactors};

    #[test]
    fn slots_are_written_exactly() {
        let dev = Cpu::default();
        let p: crate::backend::Matrix<Cpu> = dev.tensor_from_vec(vec![1.0; 6], (2, 3));
        let values = [0.5, -0.0, 1e-30, f32::MAX, -3.25, 0.0];
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();

        let mut slots = Gradients::leaky();
        write_slot(&mut slots, &p, &values).unwrap();
        assert_eq!(bits(&slots.get(&p).as_vec()), bits(&values));

        // The any-device path: exact but for the sign of zero.
        let mut slots = Gradients::leaky();
        write_slot_by_gradient(&mut slots, &p, &values).unwrap();
        let mut want = values;
        want[1] = 0.0;
        assert_eq!(bits(&slots.get(&p).as_vec()), bits(&want));
    }

    /// Host values of every parameter of `model`, in visiting order.
    fn values(model: &mut impl Parameters<Cpu>) -> Vec<Vec<f32>> {
        model.params_mut().iter().map(ParamMut::to_vec).collect()
    }

    /// Three updates equal AdamW's closed form in every scalar of a model whose parameters
    /// differ in size, from a batch in one part and in two and three parts (the gradient is
    /// `sum_i share_i * grads_i`), run on one thread and on a pool of two (where the CPU deals
    /// the parameters to both threads). A part that leaves a parameter without gradient counts
    /// as zero; in parts, one weight's gradient comes as deferred factors. `eps` is large enough
    /// that the update depends on the gradient's scale.
    #[test]
    fn update_matches_the_closed_form() {
        use crate::nn::{Activation, Mlp};
        use rand::{Rng, SeedableRng};
        let dev = Cpu::default();
        let settings = AdamSettings {
            lr: 0.01,
            betas: [0.8, 0.95],
            eps: 0.05,
            weight_decay: 0.1,
        };
        let [b1, b2] = settings.betas.map(|b| b as f32);
        let (lr, eps, wd) = (settings.lr as f32, settings.eps as f32, 0.1f32);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for shares in [vec![1.0f32], vec![0.3, 0.7], vec![0.2, 0.5, 0.3]] {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
                let mut model =
                    Mlp::<Cpu>::new(7, &[300, 5, 40], Activation::Swish, &mut rng, &dev);
                let mut want = values(&mut model);
                let mut m: Vec<Vec<f32>> = want.iter().map(|p| vec![0.0; p.len()]).collect();
                let mut v = m.clone();
                let mut adam = Adam::new(&settings).unwrap();
                for t in 1..=3 {
                    // the batch's gradient of each parameter, summed over the parts
                    let mut batch: Vec<Vec<f32>> = m.iter().map(|p| vec![0.0; p.len()]).collect();
                    let mut parts = Vec::new();
                    for (k, &share) in shares.iter().enumerate() {
                        let mut grads = Gradients::leaky();
                        let mut factors = Vec::new();
                        for (i, p) in model.params_mut().iter().enumerate() {
                            if t == 2 && k == 0 && i == want.len() - 1 {
                                continue; // the last bias: no gradient in this part
                            }
                            let mut random = |n: usize| -> Vec<f32> {
                                (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
                            };
                            let key = Cpu::param_key(p);
                            let g = match p {
                                // In parts, the first weight's gradient comes deferred, as
                                // the factors dz and x of dz^T x (3 rows).
                                ParamMut::Matrix(p) if i == 0 && shares.len() > 1 => {
                                    let ((outputs, inputs), rows) = (*p.shape(), 3);
                                    let (dz, x) = (random(rows * outputs), random(rows * inputs));
                                    let g = (0..outputs * inputs)
                                        .map(|j| {
                                            let (o, c) = (j / inputs, j % inputs);
                                            let terms = (0..rows)
                                                .map(|r| dz[r * outputs + o] * x[r * inputs + c]);
                                            terms.sum()
                                        })
                                        .collect();
                                    let weight = key.unwrap();
                                    factors.push(WeightFactors {
                                        weight,
                                        rows,
                                        dz,
                                        x,
                                    });
                                    g
                                }
                                ParamMut::Matrix(p) => {
                                    let g = random(want[i].len());
                                    write_slot(&mut grads, *p, &g).unwrap();
                                    g
                                }
                                ParamMut::Vector(p) => {
                                    let g = random(want[i].len());
                                    write_slot(&mut grads, *p, &g).unwrap();
                                    g
                                }
                            };
                            for (b, g) in batch[i].iter_mut().zip(g) {
                                *b += share * g;
                            }
                        }
                        assert_eq!(factors.len(), usize::from(shares.len() > 1));
                        parts.push(PartGradients {
                            grads,
                            share,
                            factors,
                        });
                    }
                    pool.install(|| {
                        if shares.len() == 1 {
                            let grads = parts.pop().unwrap().grads;
                            adam.update(&mut model, grads);
                        } else {
                            adam.update_parts(&mut model, parts);
                        }
                    });
                    for (i, g) in batch.iter().enumerate() {
                        for j in 0..g.len() {
                            m[i][j] = b1 * m[i][j] + (1.0 - b1) * g[j];
                            v[i][j] = b2 * v[i][j] + (1.0 - b2) * g[j] * g[j];
                            let m_hat = m[i][j] / (1.0 - b1.powi(t));
                            let v_hat = v[i][j] / (1.0 - b2.powi(t));
                            let p = want[i][j];
                            want[i][j] = p - lr * m_hat / (v_hat.sqrt() + eps) - lr * wd * p;
                        }
                    }
                }
                for (i, (got, want)) in values(&mut model).iter().zip(&want).enumerate() {
                    for (j, (a, b)) in got.iter().zip(want).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                            "{threads} threads, shares {shares:?}, parameter {i}[{j}]: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}

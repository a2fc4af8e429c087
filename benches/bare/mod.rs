//! The MVAE paper's MNIST model written directly against dfdx 0.13's compile-time layers, as a
//! user would without `mvae`: encoders run once, three ELBOs in one graph, dfdx's Adam. The
//! baseline that `train_step` compares the library with.

use dfdx::nn::modules::{Embedding, Linear, SplitInto};
use dfdx::optim::{Adam, Optimizer};
use dfdx::prelude::*;

/// Swish, composed from dfdx ops (dfdx 0.13 has no SiLU).
#[derive(Default, Clone, Copy, Debug)]
pub struct Silu;
impl ZeroSizedModule for Silu {}
impl NonMutableModule for Silu {}
impl<S: Shape, D: Device<f32>, T: Tape<f32, D>> Module<Tensor<S, f32, D, T>> for Silu {
    type Output = Tensor<S, f32, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<S, f32, D, T>) -> Result<Self::Output, D::Err> {
        let (x, tape) = x.split_tape();
        let s = x.clone().put_tape(tape).try_sigmoid()?;
        s.try_mul(x)
    }
}

type L<const I: usize, const O: usize, E, D> = Linear<I, O, E, D>;
type Heads<E, D> = SplitInto<(L<512, 64, E, D>, L<512, 64, E, D>)>;
type ImgEnc<E, D> = (
    L<784, 512, E, D>,
    Silu,
    L<512, 512, E, D>,
    Silu,
    Heads<E, D>,
);
type LabEnc<E, D> = (
    Embedding<10, 512, E, D>,
    Silu,
    L<512, 512, E, D>,
    Silu,
    Heads<E, D>,
);
type Dec<const O: usize, E, D> = (
    L<64, 512, E, D>,
    Silu,
    L<512, 512, E, D>,
    Silu,
    (L<512, 512, E, D>, Silu, L<512, O, E, D>),
);

pub struct Model<E: Dtype, D: Device<E>> {
    ie: ImgEnc<E, D>,
    le: LabEnc<E, D>,
    id: Dec<784, E, D>,
    ld: Dec<10, E, D>,
}

impl TensorCollection<f32, Cpu> for Model<f32, Cpu> {
    type To<E2: Dtype, D2: Device<E2>> = Model<E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, f32, Cpu>>(
        v: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        v.visit_fields(
            (
                Self::module("ie", |s| &s.ie, |s| &mut s.ie),
                Self::module("le", |s| &s.le, |s| &mut s.le),
                Self::module("id", |s| &s.id, |s| &mut s.id),
                Self::module("ld", |s| &s.ld, |s| &mut s.ld),
            ),
            |(ie, le, id, ld)| Model { ie, le, id, ld },
        )
    }
}

type Lat = Tensor<(usize, Const<64>), f32, Cpu, OwnedTape<f32, Cpu>>;
type PerSample = Tensor<(usize,), f32, Cpu, OwnedTape<f32, Cpu>>;

pub struct Bare {
    opt: Adam<Model<f32, Cpu>, f32, Cpu>,
    m: Model<f32, Cpu>,
    dev: Cpu,
}

fn build<M: BuildOnDevice<Cpu, f32>>(dev: &Cpu) -> M::Built {
    dev.build_module::<M, f32>()
}

impl Bare {
    pub fn new(dev: &Cpu) -> Self {
        use dfdx::nn::builders as b;
        type BH = SplitInto<(b::Linear<512, 64>, b::Linear<512, 64>)>;
        type BDec<const O: usize> = (
            b::Linear<64, 512>,
            Silu,
            b::Linear<512, 512>,
            Silu,
            (b::Linear<512, 512>, Silu, b::Linear<512, O>),
        );
        let m = Model {
            ie: build::<(b::Linear<784, 512>, Silu, b::Linear<512, 512>, Silu, BH)>(dev),
            le: build::<(b::Embedding<10, 512>, Silu, b::Linear<512, 512>, Silu, BH)>(dev),
            id: build::<BDec<784>>(dev),
            ld: build::<BDec<10>>(dev),
        };
        let opt = Adam::new(&m, AdamConfig::default());
        Self {
            m,
            opt,
            dev: dev.clone(),
        }
    }

    fn elbo_terms(&self, mean: Lat, logvar: Lat) -> (Lat, PerSample) {
        let n = mean.shape().0;
        let eps = self.dev.sample_normal_like(&(n, Const::<64>));
        let var = logvar.with_empty_tape().exp();
        let kl = (var + mean.with_empty_tape().square() - logvar.with_empty_tape() - 1.0)
            .sum::<(usize,), Axis<1>>()
            * 0.5;
        let z = (logvar * 0.5).exp() * eps + mean;
        (z, kl)
    }

    /// Product of the prior with the given (mean, logvar) experts.
    fn poe(experts: Vec<(Lat, Lat)>) -> (Lat, Lat) {
        let mut prec: Option<Lat> = None;
        let mut wsum: Option<Lat> = None;
        for (m, lv) in experts {
            let p = (lv * -1.0).exp();
            let w = p.with_empty_tape() * m;
            prec = Some(match prec {
                None => p + 1.0,
                Some(a) => a + p,
            });
            wsum = Some(match wsum {
                None => w,
                Some(a) => a + w,
            });
        }
        let prec = prec.unwrap();
        let mean = wsum.unwrap() / prec.with_empty_tape();
        (mean, prec.ln() * -1.0)
    }

    pub fn step(
        &mut self,
        x: &Tensor<(usize, Const<784>), f32, Cpu>,
        y: &Tensor<(usize,), usize, Cpu>,
    ) -> f32 {
        let n = x.shape().0;
        let (im, ilv) = self.m.ie.forward(x.clone().leaky_traced());
        let (lm, llv) = self.m.le.forward(y.clone().leaky_traced());
        let copy = |t: &Lat| t.with_empty_tape();
        let mut total: Option<Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>>> = None;
        let joint = Self::poe(vec![(copy(&im), copy(&ilv)), (copy(&lm), copy(&llv))]);
        let img = Self::poe(vec![(im, ilv)]);
        let lab = Self::poe(vec![(lm, llv)]);
        for (k, (mean, logvar)) in [joint, img, lab].into_iter().enumerate() {
            let (z, kl) = self.elbo_terms(mean, logvar);
            let mut per = kl;
            if k != 2 {
                let logits = self.m.id.forward(z.with_empty_tape());
                per = per + logits.bce_with_logits(x.clone()).sum::<(usize,), Axis<1>>();
            }
            if k != 1 {
                let logits = self.m.ld.forward(z.with_empty_tape());
                per = per - logits.log_softmax::<Axis<1>>().select(y.clone()) * 50.0;
            }
            // keep z's own tape (encoders, product, sampling) in the graph
            per = per + z.sum::<(usize,), Axis<1>>() * 0.0;
            let t = per.sum::<Rank0, _>() / n as f32;
            total = Some(match total {
                None => t,
                Some(a) => a + t,
            });
        }
        let loss = total.unwrap();
        let v = loss.array();
        let grads = loss.backward();
        self.opt.update(&mut self.m, &grads).unwrap();
        v
    }
}

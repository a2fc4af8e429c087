//! The contract every way of combining experts keeps, run for each [`AggregationKind`]:
//! a masked-out expert changes nothing, a sample with no expert of the subset gets the prior,
//! parts of a batch give the rows of the whole, the KL in closed form is the mean log-ratio,
//! and the training loss's gradients match finite differences. A new kind is added to
//! `AggregationKind::ALL` and runs through all of it; so does MoPoE with fewer components than
//! subsets (its mixtures over a seeded sample of subsets, [`models`]), and models with a
//! contrastive term.

use dfdx::prelude::*;
use mvae::aggregation::SubsetDraw;
use mvae::likelihood::Variance;
use mvae::model::ContrastiveInput;
use mvae::nn::{ParamMut, ParamVisitor, Parameters};
use mvae::objective::{self, Term};
use mvae::posterior::{normal_draws, standard_normal_log_prob, standard_normal_log_prob_masked};
use mvae::{
    Aggregation, AggregationKind, Batch, Continuous, Experts, HostValues, Image, Label,
    ModalitySpec, ModelConfig, Mvae, Posterior, Subset,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub(crate) const L: usize = 5;
pub(crate) const N: usize = 6;

pub(crate) fn model(kind: AggregationKind) -> Mvae<L, Cpu> {
    Mvae::new(&config(kind), &Cpu::default(), 7).unwrap()
}

/// The contract's models: one per kind, MoPoE mixing 3 of the 7 subsets of a sample that
/// has all three modalities, and the product of experts and MMVAE+ with a contrastive term.
fn models() -> Vec<(AggregationKind, Mvae<L, Cpu>)> {
    let mut out: Vec<_> = AggregationKind::ALL
        .into_iter()
        .map(|k| (k, model(k)))
        .collect();
    let mopoe = AggregationKind::MixtureOfProductsOfExperts;
    let sampled = config(mopoe).components(SAMPLED);
    out.push((mopoe, Mvae::new(&sampled, &Cpu::default(), 7).unwrap()));
    // With the contrastive term in the loss (the mixture of experts' shared part only).
    for kind in [
        AggregationKind::ProductOfExperts,
        AggregationKind::MmvaePlus,
    ] {
        let cfg = config(kind).contrastive(2.0);
        out.push((kind, Mvae::new(&cfg, &Cpu::default(), 7).unwrap()));
    }
    // The term on the posterior means rather than draws.
    let poe = AggregationKind::ProductOfExperts;
    let means = config(poe)
        .contrastive(2.0)
        .contrastive_input(ContrastiveInput::Mean);
    out.push((poe, Mvae::new(&means, &Cpu::default(), 7).unwrap()));
    out
}

/// The components of the sampled MoPoE model of [`models`].
const SAMPLED: usize = 3;

fn config(kind: AggregationKind) -> ModelConfig {
    ModelConfig::new(vec![
        ModalitySpec::new(Image::new("image", 2, 2))
            .encoder_hidden(&[5])
            .decoder_hidden(&[4]),
        ModalitySpec::new(Label::new("label", 3))
            .encoder_hidden(&[4])
            .decoder_hidden(&[5])
            .weight(2.0),
        ModalitySpec::new(Continuous::new("vec", 2, Variance::Learned))
            .encoder_hidden(&[3])
            .decoder_hidden(&[3]),
    ])
    .aggregation(kind)
}

/// Six samples: the label missing in samples 1 and 4, the vector in 2 and 4 (sample 4 has
/// the image only).
pub(crate) fn batch(model: &Mvae<L, Cpu>) -> Batch<Cpu> {
    let img: Vec<f32> = (0..N * 4).map(|i| ((i * 7) % 10) as f32 / 9.0).collect();
    let lab: Vec<f32> = (0..N).map(|i| (i % 3) as f32).collect();
    let vec: Vec<f32> = (0..N * 2).map(|i| (i as f32 - 5.0) / 4.0).collect();
    let lab_present = [true, false, true, true, false, true];
    let vec_present = [true, true, false, true, false, true];
    Batch::from_host(
        model.modalities(),
        model.device(),
        &[
            HostValues {
                name: "image",
                values: &img,
                present: None,
            },
            HostValues {
                name: "label",
                values: &lab,
                present: Some(&lab_present),
            },
            HostValues {
                name: "vec",
                values: &vec,
                present: Some(&vec_present),
            },
        ],
    )
    .unwrap()
}

/// Per sample: the mean (L values), the closed-form KL if any, and log q at a fixed point.
fn summary(q: &Posterior<L, Cpu>) -> Vec<Vec<f64>> {
    let n = q.batch();
    let mean = q.mean().as_vec();
    let kl = q.kl_to_prior().map(|k| k.as_vec());
    let z: Vec<f32> = (0..n * L).map(|i| (i % 5) as f32 / 3.0 - 0.6).collect();
    let log_q = q
        .log_prob(Cpu::default().tensor_from_vec(z, (n, Const::<L>)))
        .as_vec();
    (0..n)
        .map(|i| {
            let mut row: Vec<f64> = mean[i * L..(i + 1) * L].iter().map(|&x| x.into()).collect();
            row.extend(kl.as_ref().map(|k| f64::from(k[i])));
            row.push(log_q[i].into());
            row
        })
        .collect()
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}: {a:?} vs {b:?}"
        );
    }
}

#[test]
fn a_missing_expert_changes_nothing() {
    for (kind, m) in models() {
        let b = batch(&m);
        let all = summary(&m.encode(&b, Subset::all(3)));
        let without_label = summary(&m.encode(&b, Subset::of(&[0, 2])));
        let without_vec = summary(&m.encode(&b, Subset::of(&[0, 1])));
        let image_only = summary(&m.encode(&b, Subset::single(0)));
        close(
            &all[1],
            &without_label[1],
            1e-6,
            &format!("{kind}: sample 1"),
        );
        close(&all[2], &without_vec[2], 1e-6, &format!("{kind}: sample 2"));
        close(&all[4], &image_only[4], 1e-6, &format!("{kind}: sample 4"));
        // and a present expert does change the posterior
        assert!(
            all[0] != image_only[0],
            "{kind}: the label and vector count"
        );
    }
}

#[test]
fn a_sample_without_any_expert_of_the_subset_gets_the_prior() {
    for (kind, m) in models() {
        let b = batch(&m);
        let q = m.encode(&b, Subset::of(&[1, 2]));
        let s = summary(&q);
        // sample 4 has neither label nor vector: N(0, I) (over the dimensions the posterior
        // scores: MMVAE+ leaves out the private slices it draws from their priors)
        let z: Vec<f32> = (4 * L..5 * L).map(|i| (i % 5) as f32 / 3.0 - 0.6).collect();
        let dims = q.scored_dims().map(|d| d.as_vec()[4 * L..5 * L].to_vec());
        if kind == AggregationKind::MmvaePlus {
            let d = dims.as_ref().expect("MMVAE+ scores some dimensions only");
            assert_eq!(
                d,
                &[1.0, 1.0, 0.0, 0.0, 0.0],
                "{kind}: the shared part only"
            );
        }
        let prior = standard_normal_log_prob_masked(&z, L, dims.as_deref())[0];
        let mut want = vec![0.0; L];
        if q.kl_to_prior().is_some() {
            want.push(0.0);
        }
        want.push(prior);
        close(&s[4], &want, 1e-6, &format!("{kind}: prior"));
    }
}

#[test]
fn parts_of_a_batch_give_the_rows_of_the_whole() {
    for (kind, m) in models() {
        let b = batch(&m);
        let whole = summary(&m.encode(&b, Subset::all(3)));
        for rows in [0..2, 2..6, 4..5] {
            let part = summary(&m.encode(&b.rows(rows.clone()), Subset::all(3)));
            for (i, r) in rows.clone().enumerate() {
                // the log-density point of a part is the whole's point of its row only for the
                // first row: compare means and KL, which do not depend on it
                let k = whole[r].len() - 1;
                close(
                    &part[i][..k],
                    &whole[r][..k],
                    1e-6,
                    &format!("{kind}: row {r}"),
                );
            }
        }
    }
}

#[test]
fn closed_form_kl_is_the_mean_log_ratio() {
    for (kind, m) in models() {
        let b = batch(&m);
        let q = m.encode(&b, Subset::all(3));
        let Some(kl) = q.kl_to_prior() else { continue };
        let kl = kl.as_vec();
        let k = 4000;
        let proposal = q.repeat_each(k);
        let eps = normal_draws(N * k * L, &mut ChaCha8Rng::seed_from_u64(1));
        let z = proposal.clone().rsample_with(&eps);
        let log_q = proposal.log_prob(z.clone()).as_vec();
        let log_p = standard_normal_log_prob(&z.as_vec(), L);
        for (i, &exact) in kl.iter().enumerate() {
            let r: Vec<f64> = (i * k..(i + 1) * k)
                .map(|j| f64::from(log_q[j]) - log_p[j])
                .collect();
            let mean = r.iter().sum::<f64>() / k as f64;
            let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / k as f64).sqrt();
            let se = sd / (k as f64).sqrt();
            let exact = f64::from(exact);
            assert!(
                (mean - exact).abs() < 5.0 * se + 1e-4,
                "{kind}: sample {i}: {mean} vs {exact}"
            );
        }
    }
}

#[test]
fn loss_gradients_match_finite_differences() {
    let terms = [
        Term::Joint,
        Term::Subset(Subset::single(0)),
        Term::Subset(Subset::single(1)),
        Term::Subset(Subset::of(&[0, 2])),
    ];
    let loss = |m: &Mvae<L, Cpu>, b: &Batch<Cpu>| {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        objective::loss(m, b, &terms, 0.8, &mut rng).value
    };
    for (kind, mut m) in models() {
        let b = batch(&m);
        let grads = loss(&m, &b).backward();
        let mut params: Vec<(String, Vec<f32>, Vec<f32>)> = Vec::new();
        let mut f = |name: &str, p: ParamMut<'_, Cpu>| {
            let (g, v) = match p {
                ParamMut::Matrix(t) => (grads.get(&*t).as_vec(), t.as_vec()),
                ParamMut::Vector(t) => (grads.get(&*t).as_vec(), t.as_vec()),
            };
            params.push((name.to_string(), g, v));
        };
        m.visit_params(&mut ParamVisitor::new(&mut f));
        for (pi, (name, g, v)) in params.iter().enumerate() {
            let k = v.len() / 2;
            let eps = 1e-2f32;
            let set = |m: &mut Mvae<L, Cpu>, x: f32| {
                let mut i = 0;
                let mut f = |_: &str, p: ParamMut<'_, Cpu>| {
                    if i == pi {
                        let mut w = v.clone();
                        w[k] = x;
                        match p {
                            ParamMut::Matrix(t) => t.copy_from(&w),
                            ParamMut::Vector(t) => t.copy_from(&w),
                        }
                    }
                    i += 1;
                };
                m.visit_params(&mut ParamVisitor::new(&mut f));
            };
            set(&mut m, v[k] + eps);
            let up = f64::from(loss(&m, &b).as_vec()[0]);
            set(&mut m, v[k] - eps);
            let down = f64::from(loss(&m, &b).as_vec()[0]);
            set(&mut m, v[k]);
            let fd = (up - down) / (2.0 * f64::from(eps));
            let err = (fd - f64::from(g[k])).abs() / (1.0 + fd.abs());
            assert!(err < 2e-2, "{kind}: {name}[{k}]: backward {} vs {fd}", g[k]);
        }
    }
}

/// A mixture's log-density equals the brute-force `log (1/k) sum_c N(z; mean_c, var_c)` over
/// the sample's available components, in f64 on the host.
#[test]
fn a_mixture_log_density_is_the_brute_force_sum() {
    for (kind, m) in models() {
        let b = batch(&m);
        let q = m.encode(&b, Subset::all(3));
        let Posterior::Mixture(mix) = &q else {
            continue;
        };
        let z: Vec<f32> = (0..N * L).map(|i| (i % 7) as f32 / 4.0 - 0.7).collect();
        let got = q
            .log_prob(Cpu::default().tensor_from_vec(z.clone(), (N, Const::<L>)))
            .as_vec();
        let comps: Vec<(Vec<f32>, Vec<f32>)> = mix
            .components()
            .iter()
            .map(|g| (g.mean.as_vec(), g.logvar.as_vec()))
            .collect();
        let dims = q.scored_dims().map(|d| d.as_vec());
        let scored = |i: usize, d: usize| dims.as_ref().is_none_or(|m| m[i * L + d] == 1.0);
        for i in 0..N {
            let avail: Vec<usize> = (0..comps.len())
                .filter(|&c| mix.available()[c][i])
                .collect();
            let dens: f64 = avail
                .iter()
                .map(|&c| {
                    let (mu, lv) = &comps[c];
                    (0..L)
                        .filter(|&d| scored(i, d))
                        .map(|d| {
                            let (zd, m, v) = (
                                f64::from(z[i * L + d]),
                                f64::from(mu[i * L + d]),
                                f64::from(lv[i * L + d]).exp(),
                            );
                            (-(zd - m).powi(2) / (2.0 * v)).exp()
                                / (2.0 * std::f64::consts::PI * v).sqrt()
                        })
                        .product::<f64>()
                })
                .sum::<f64>()
                / avail.len() as f64;
            close(
                &[f64::from(got[i])],
                &[dens.ln()],
                1e-5,
                &format!("{kind}: sample {i}"),
            );
        }
        // sample 4 has the image only: one component under moe, one under mopoe
        let k4 = (0..comps.len()).filter(|&c| mix.available()[c][4]).count();
        assert_eq!(k4, 1, "{kind}");
        // sample 0 has all three: 3 components under moe and MMVAE+, 7 under mopoe (or the
        // sampled model's 3)
        let k0 = (0..comps.len()).filter(|&c| mix.available()[c][0]).count();
        let want = if kind == AggregationKind::MixtureOfProductsOfExperts {
            m.config().components.min(7)
        } else {
            3
        };
        assert_eq!(k0, want, "{kind}");
    }
}

/// With one modality every aggregation is a plain VAE: one term, the posterior a single
/// Gaussian (the expert, with the prior expert for the products), and the loss the
/// reconstruction plus beta times the KL of that Gaussian (its log-ratio at the drawn z for the
/// mixture of experts).
#[test]
fn with_one_modality_every_aggregation_is_a_plain_vae() {
    use mvae::objective::{loss_with_noise, Objective, ObjectiveConfig};
    use mvae::posterior::{standard_normal_log_prob_of, Gaussian};
    for kind in AggregationKind::ALL {
        let cfg = ModelConfig::new(vec![ModalitySpec::new(Image::new("image", 2, 2))
            .encoder_hidden(&[5])
            .decoder_hidden(&[4])])
        .aggregation(kind);
        let m = Mvae::<L, Cpu>::new(&cfg, &Cpu::default(), 3).unwrap();
        let img: Vec<f32> = (0..N * 4).map(|i| ((i * 3) % 10) as f32 / 9.0).collect();
        let b = Batch::from_host(
            m.modalities(),
            m.device(),
            &[HostValues {
                name: "image",
                values: &img,
                present: None,
            }],
        )
        .unwrap();
        let obj = ObjectiveConfig::default();
        let plan = obj.plan(&cfg, &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(plan.len(), 1, "{kind}: one term");
        let eps = normal_draws(N * L, &mut ChaCha8Rng::seed_from_u64(4));
        let beta = 0.6;
        let loss = loss_with_noise(
            &obj,
            &m,
            &b,
            &plan,
            beta,
            &objective::Draws::new(&[&eps], &[]),
        );
        // by hand: the single Gaussian, z from eps, decode, KL
        let q = m.encode(&b, Subset::all(1));
        let g: Gaussian<L, Cpu> = match &q {
            Posterior::Gaussian(g) => g.clone(),
            Posterior::Mixture(mix) => {
                assert_eq!(mix.components().len(), 1, "{kind}: one component");
                mix.components()[0].clone()
            }
        };
        let z = g.clone().rsample_with(&eps);
        let col = b.column(0).unwrap();
        let ll = m
            .log_likelihood(0, m.decode(0, z.clone()), &col.input)
            .as_vec();
        let kl = if kind.is_mixture_of_experts() {
            let lq = g.log_prob(z.clone()).as_vec();
            let lp = standard_normal_log_prob_of(z).as_vec();
            lq.iter().zip(&lp).map(|(a, b)| a - b).collect::<Vec<f32>>()
        } else {
            g.clone().kl_to_standard_normal().as_vec()
        };
        let want: f64 = (0..N)
            .map(|i| f64::from(-ll[i] + beta * kl[i]))
            .sum::<f64>()
            / N as f64;
        let got = f64::from(loss.value.as_vec()[0]);
        close(&[got], &[want], 1e-5, &format!("{kind}: loss"));
        if kind.is_mixture_of_experts() {
            // no prior expert: the posterior is the encoder's own Gaussian
            let e = m.expert(0, &col.input, NoneTape);
            assert_eq!(e.mean.as_vec(), g.mean.as_vec());
        }
    }
}

/// Host-side MoPoE component of `members` for sample `i`: the product of their experts, with
/// the prior expert only when `members` is every modality.
fn brute_product(experts: &Experts<L, Cpu>, members: &[usize], i: usize) -> Vec<f64> {
    let mut t = [if members.len() == 3 { 1.0 } else { 0.0 }; L];
    let mut tm = [0.0; L];
    for &m in members {
        let g = &experts.get(m).unwrap().gaussian;
        let (mu, lv) = (g.mean.as_vec(), g.logvar.as_vec());
        for d in 0..L {
            let p = (-f64::from(lv[i * L + d])).exp();
            t[d] += p;
            tm[d] += p * f64::from(mu[i * L + d]);
        }
    }
    (0..L).map(|d| tm[d] / t[d]).collect()
}

/// Which non-empty subsets (bit masks over the 3 modalities) sample `i`'s available
/// components are, identified by their means against every brute-force product.
fn subsets_of_sample(q: &Posterior<L, Cpu>, experts: &Experts<L, Cpu>, i: usize) -> Vec<u32> {
    let Posterior::Mixture(mix) = q else {
        panic!("MoPoE gives a mixture")
    };
    (0..mix.components().len())
        .filter(|&c| mix.available()[c][i])
        .map(|c| {
            let mean: Vec<f64> = mix.components()[c].mean.as_vec()[i * L..(i + 1) * L]
                .iter()
                .map(|&x| x.into())
                .collect();
            let hits: Vec<u32> = (1u32..8)
                .filter(|bits| {
                    let members: Vec<usize> = (0..3).filter(|m| bits & (1 << m) != 0).collect();
                    let want = brute_product(experts, &members, i);
                    mean.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5)
                })
                .collect();
            assert_eq!(hits.len(), 1, "sample {i}: component {c} is one subset");
            hits[0]
        })
        .collect()
}

/// MoPoE with fewer components than a sample has subsets mixes that many distinct products of
/// the experts of subsets of what the sample has, from a sample of them that the seed fixes;
/// a sample with few enough subsets mixes all of them. Over seeds each subset is picked
/// equally often (3 of 7), so the mean of the sampled components' KLs is unbiased.
#[test]
fn mopoe_mixes_a_seeded_uniform_sample_of_subsets() {
    let kind = AggregationKind::MixtureOfProductsOfExperts;
    let m = Mvae::<L, Cpu>::new(&config(kind).components(SAMPLED), &Cpu::default(), 7).unwrap();
    let b = batch(&m);
    let all = Subset::all(3);
    let experts = |seed: u64| {
        m.experts::<NoneTape>(&b, all).with_subsets(SubsetDraw {
            limit: SAMPLED,
            seed,
        })
    };
    let full = model(kind);
    let full_q = full.encode(&b, all);
    // the mean of the components' KLs, sample 0's (it does not depend on the draw)
    let kl0 = |q: Posterior<L, Cpu>| f64::from(q.rsample_with_kl(&[0.0; N * L]).1.as_vec()[0]);
    let full_kl = kl0(full_q);
    let runs = 1000;
    let mut seen = [0usize; 8];
    let mut kl_sum = 0.0;
    for seed in 0..runs {
        let e = experts(seed);
        let q = kind.aggregate(&e, all);
        // sample 0 has all three modalities: 3 distinct subsets of the 7
        let mut s0 = subsets_of_sample(&q, &e, 0);
        assert_eq!(s0.len(), SAMPLED, "seed {seed}");
        for &s in &s0 {
            seen[s as usize] += 1;
        }
        s0.sort_unstable();
        s0.dedup();
        assert_eq!(s0.len(), SAMPLED, "seed {seed}: distinct");
        // sample 1 has image and vector (3 subsets): all of them, in order
        assert_eq!(subsets_of_sample(&q, &e, 1), vec![0b001, 0b100, 0b101]);
        // sample 4 has the image only
        assert_eq!(subsets_of_sample(&q, &e, 4), vec![0b001]);
        if seed < 3 {
            // the seed fixes the sample
            let again = kind.aggregate(&experts(seed), all);
            assert_eq!(
                subsets_of_sample(&again, &e, 0),
                subsets_of_sample(&q, &e, 0)
            );
        }
        kl_sum += kl0(q);
    }
    for (bits, &count) in seen.iter().enumerate().skip(1) {
        let rate = count as f64 / runs as f64;
        assert!(
            (rate - 3.0 / 7.0).abs() < 0.06,
            "subset {bits:03b} picked at rate {rate}"
        );
    }
    // The mean over seeds of the sampled KL against the mean over all 7 components.
    let kl_mean = kl_sum / runs as f64;
    assert!(
        (kl_mean - full_kl).abs() < 0.05 * full_kl.abs().max(1.0),
        "sampled KL {kl_mean} vs all subsets {full_kl}"
    );
}

/// A MoPoE model of 12 modalities (4,095 subsets) builds and trains: each sample mixes the
/// default 1,023 subsets, drawn anew every step.
#[test]
fn mopoe_with_many_modalities_samples_its_subsets() {
    use mvae::{TrainConfig, Trainer};
    let cfg = ModelConfig::new(
        (0..12)
            .map(|i| {
                ModalitySpec::new(Label::new(&format!("m{i}"), 2))
                    .encoder_hidden(&[2])
                    .decoder_hidden(&[2])
            })
            .collect(),
    )
    .aggregation(AggregationKind::MixtureOfProductsOfExperts);
    let m = Mvae::<2, Cpu>::new(&cfg, &Cpu::default(), 0).unwrap();
    let values: Vec<Vec<f32>> = (0..12)
        .map(|j| (0..4).map(|i| ((i + j) % 2) as f32).collect())
        .collect();
    let names: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
    let host: Vec<HostValues> = names
        .iter()
        .zip(&values)
        .map(|(name, v)| HostValues {
            name,
            values: v,
            present: None,
        })
        .collect();
    let b = Batch::from_host(m.modalities(), m.device(), &host).unwrap();
    let Posterior::Mixture(mix) = m.encode(&b, Subset::all(12)) else {
        panic!("MoPoE gives a mixture")
    };
    assert_eq!(mix.components().len(), SubsetDraw::DEFAULT_LIMIT);
    let mut trainer = Trainer::new(m, TrainConfig::default()).unwrap();
    for _ in 0..2 {
        let stats = trainer.step(&b).unwrap();
        assert!(stats.iter().all(|(_, s)| s.loss.is_finite()), "{stats:?}");
    }
}

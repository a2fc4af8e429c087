//! MMVAE+ against its definition: private slices from the experts of the modalities a row has
//! and from the learned priors for the others; each decoder reads the shared part and its own
//! slice; a stratum's density is the paper's `log mean_j q(u | x_j) + log q(w_m | x_m)`,
//! computed here by brute force from the experts.

use dfdx::prelude::*;
use mvae::posterior::normal_draws;
use mvae::{AggregationKind, Mvae, Posterior, Subset};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::aggregation::{batch, model, L, N};

/// `L = 5` with three modalities and private size 1: shared 0..2, slices 2, 3, 4.
const S: usize = 2;

fn mmvae_plus() -> Mvae<L, Cpu> {
    let mut m = model(AggregationKind::MmvaePlus);
    let layout = m.private_layout().expect("MMVAE+ has private latents");
    assert_eq!((layout.shared, layout.private), (S, 1));
    // Priors away from N(0, I), so that using them is visible.
    let dev = Cpu::default();
    m.private_prior[0] = dev.tensor_from_vec(vec![-0.2], (1,));
    m.private_prior[1] = dev.tensor_from_vec(vec![0.7], (1,));
    m.private_prior[2] = dev.tensor_from_vec(vec![-0.4], (1,));
    m
}

/// Host values of expert `j` for the batch: (mean, logvar), `N x L` each.
fn expert(m: &Mvae<L, Cpu>, b: &mvae::Batch<Cpu>, j: usize) -> (Vec<f32>, Vec<f32>) {
    let e = m.expert(j, &b.column(j).unwrap().input, NoneTape);
    (e.mean.as_vec(), e.logvar.as_vec())
}

#[test]
fn private_slices_come_from_the_experts_a_row_has_or_the_learned_priors() {
    let m = mmvae_plus();
    let b = batch(&m);
    let prior = [-0.2f32, 0.7, -0.4];
    let experts: Vec<_> = (0..3).map(|j| expert(&m, &b, j)).collect();
    let present = |j: usize, i: usize| b.column(j).unwrap().present_host[i];
    for given in [Subset::single(0), Subset::of(&[0, 1]), Subset::all(3)] {
        let q = m.encode(&b, given);
        let Posterior::Mixture(mix) = &q else {
            panic!("MMVAE+ gives a mixture")
        };
        let dims = q.scored_dims().expect("scored dimensions").as_vec();
        for (c, g) in mix.components().iter().enumerate() {
            let (mean, logvar) = (g.mean.as_vec(), g.logvar.as_vec());
            for i in (0..N).filter(|&i| mix.available()[c][i]) {
                // the shared part: the component's own expert
                let j = (0..3)
                    .filter(|&j| given.contains(j) && present(j, i))
                    .nth((0..c).filter(|&c2| mix.available()[c2][i]).count())
                    .expect("a component per present modality of the subset");
                for d in 0..S {
                    assert_eq!(
                        mean[i * L + d],
                        experts[j].0[i * L + d],
                        "{given:?} row {i}"
                    );
                    assert_eq!(logvar[i * L + d], experts[j].1[i * L + d]);
                }
                // each private slice: its own expert where the row has it, else the prior
                for n in 0..3 {
                    let d = S + n;
                    let own = given.contains(n) && present(n, i);
                    let (want_mean, want_logvar) = if own {
                        (experts[n].0[i * L + d], experts[n].1[i * L + d])
                    } else {
                        (0.0, prior[n])
                    };
                    assert_eq!(mean[i * L + d], want_mean, "{given:?} row {i} slice {n}");
                    assert!((logvar[i * L + d] - want_logvar).abs() < 1e-6);
                    assert_eq!(dims[i * L + d], f32::from(u8::from(own)));
                }
            }
        }
    }
}

#[test]
fn each_decoder_reads_the_shared_part_and_its_own_slice() {
    let m = mmvae_plus();
    let dev = Cpu::default();
    let z = normal_draws(N * L, &mut ChaCha8Rng::seed_from_u64(3));
    let decode = |n: usize, z: &[f32]| {
        m.decode_mean(n, dev.tensor_from_vec(z.to_vec(), (N, Const::<L>)))
            .as_vec()
    };
    for n in 0..3 {
        let base = decode(n, &z);
        for d in 0..L {
            let mut moved = z.clone();
            for i in 0..N {
                moved[i * L + d] += 1.5;
            }
            let reads = d < S || d == S + n;
            assert_eq!(
                decode(n, &moved) != base,
                reads,
                "decoder {n}, dimension {d}"
            );
        }
    }
}

/// The density a stratum scores, `log q(u, w_m | X)` over the shared part and `m`'s slice,
/// is `log (1/k) sum_j N(u; experts j) + log N(w_m; expert m)` over the `k` experts the
/// row has.
#[test]
fn a_stratum_scores_the_mixture_of_the_shared_parts_and_its_own_private_slice() {
    let m = mmvae_plus();
    let b = batch(&m);
    let experts: Vec<_> = (0..3).map(|j| expert(&m, &b, j)).collect();
    let present = |j: usize, i: usize| b.column(j).unwrap().present_host[i];
    let z = normal_draws(N * L, &mut ChaCha8Rng::seed_from_u64(5));
    let zt = Cpu::default().tensor_from_vec(z.clone(), (N, Const::<L>));
    let all = m.encode(&b, Subset::all(3));
    let log_n = |zd: f32, mean: f32, logvar: f32| {
        let (zd, mean, var) = (f64::from(zd), f64::from(mean), f64::from(logvar).exp());
        -0.5 * ((zd - mean).powi(2) / var + var.ln() + std::f64::consts::TAU.ln())
    };
    for s in 0..3 {
        let own = m.encode(&b, Subset::single(s));
        let got = all.log_prob_on(zt.clone(), own.scored_dims()).as_vec();
        for i in (0..N).filter(|&i| present(s, i)) {
            let js: Vec<usize> = (0..3).filter(|&j| present(j, i)).collect();
            let shared: Vec<f64> = js
                .iter()
                .map(|&j| {
                    (0..S)
                        .map(|d| {
                            log_n(
                                z[i * L + d],
                                experts[j].0[i * L + d],
                                experts[j].1[i * L + d],
                            )
                        })
                        .sum()
                })
                .collect();
            let max = shared.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mix =
                max + (shared.iter().map(|x| (x - max).exp()).sum::<f64>() / js.len() as f64).ln();
            let d = S + s;
            let want = mix
                + log_n(
                    z[i * L + d],
                    experts[s].0[i * L + d],
                    experts[s].1[i * L + d],
                );
            assert!(
                (f64::from(got[i]) - want).abs() < 1e-4 * (1.0 + want.abs()),
                "stratum {s} row {i}: {} vs {want}",
                got[i]
            );
        }
    }
}

/// Generating the image from the label draws the image's private part from its learned
/// prior: its sample variance is `exp(logvar)`.
#[test]
fn cross_modal_samples_draw_the_private_part_from_the_learned_prior() {
    let mut m = mmvae_plus();
    m.private_prior[0] = Cpu::default().tensor_from_vec(vec![1.2], (1,));
    let b = batch(&m);
    let k = 4000;
    let q = m.encode(&b, Subset::single(1)).repeat_each(k);
    let z = q.rsample(&mut ChaCha8Rng::seed_from_u64(9)).as_vec();
    let w: Vec<f64> = z.chunks_exact(L).map(|r| f64::from(r[S])).collect();
    let mean = w.iter().sum::<f64>() / w.len() as f64;
    let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / w.len() as f64;
    let want = 1.2f64.exp();
    assert!(mean.abs() < 0.05, "mean {mean}");
    assert!((var / want - 1.0).abs() < 0.05, "variance {var} vs {want}");
}

/// The private size is checked: MMVAE+ needs one, the others refuse one, and the slices
/// must leave a shared part.
#[test]
fn private_sizes_are_checked() {
    use mvae::{Label, ModalitySpec, ModelConfig};
    let cfg = ModelConfig::new(vec![
        ModalitySpec::new(Label::new("a", 3)),
        ModalitySpec::new(Label::new("b", 3)),
    ])
    .hidden(&[4], &[4]);
    let dev = Cpu::default();
    let plus = cfg.clone().aggregation(AggregationKind::MmvaePlus);
    assert_eq!(plus.private, 1);
    assert!(Mvae::<4, Cpu>::new(&plus.clone().private(1), &dev, 0).is_ok());
    let err = Mvae::<4, Cpu>::new(&plus.clone().private(2), &dev, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("private") && err.contains("shared"), "{err}");
    let err = Mvae::<4, Cpu>::new(&plus.private(0), &dev, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mmvae-plus"), "{err}");
    let err = Mvae::<4, Cpu>::new(&cfg.private(1), &dev, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("poe"), "{err}");
}

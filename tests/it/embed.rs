//! Embeddings: posterior means of any subset by name, per row, with their variances.

use mvae::data::DatasetBuilder;
use mvae::embed::{embed, EmbedOptions};
use mvae::{AggregationKind, Posterior, Subset};

use crate::aggregation::{batch, model, L, N};

/// The test batch of `aggregation.rs` as a data set: the label missing in rows 1 and 4, the
/// vector in rows 2 and 4.
fn data() -> mvae::MultimodalDataset {
    let img: Vec<f32> = (0..N * 4).map(|i| ((i * 7) % 10) as f32 / 9.0).collect();
    let lab: Vec<f32> = (0..N).map(|i| (i % 3) as f32).collect();
    let vec: Vec<f32> = (0..N * 2).map(|i| (i as f32 - 5.0) / 4.0).collect();
    DatasetBuilder::new()
        .column("image", 4, img)
        .column_with_mask("label", 1, lab, vec![true, false, true, true, false, true])
        .column_with_mask("vec", 2, vec, vec![true, true, false, true, false, true])
        .build()
        .unwrap()
}

/// `embed` gives, for each row that has every modality asked for, the mean (and variance) of
/// the posterior the model forms from them, in data order; other rows are left out.
#[test]
fn embeddings_are_the_posterior_means_of_the_rows_that_have_the_subset() {
    for kind in AggregationKind::ALL {
        let m = model(kind);
        let b = batch(&m);
        let d = data();
        let opts = EmbedOptions {
            variances: true,
            limit: None,
        };
        let e = embed(&m, &d, &["vec", "label"], &opts).unwrap();
        assert_eq!(e.given, ["label", "vec"], "{kind}: model order");
        assert_eq!(e.rows, [0, 3, 5], "{kind}: rows with label and vector");
        let q = m.encode(&b, Subset::of(&[1, 2]));
        let (mean, var) = (q.mean().as_vec(), q.variance().as_vec());
        for (i, &r) in e.rows.iter().enumerate() {
            for c in 0..L {
                let (got, want) = (e.mean(i)[c], mean[r * L + c]);
                assert!(
                    (got - want).abs() < 1e-6,
                    "{kind}: row {r}: {got} vs {want}"
                );
                let (got, want) = (e.variances.as_ref().unwrap()[i * L + c], var[r * L + c]);
                assert!((got - want).abs() < 1e-6, "{kind}: row {r} variance");
            }
        }
        let first = embed(
            &m,
            &d,
            &["image"],
            &EmbedOptions {
                variances: false,
                limit: Some(2),
            },
        )
        .unwrap();
        assert_eq!(first.rows, [0, 1], "{kind}: the first two rows");
        assert!(first.variances.is_none());
        let unknown = embed(&m, &d, &["sound"], &opts).unwrap_err().to_string();
        assert!(unknown.contains("sound"), "{unknown}");
        assert!(embed(&m, &d, &[], &opts).is_err());
    }
}

/// A mixture's variance is its components' second moments blended minus its squared mean,
/// computed here on the host from the components it holds.
#[test]
fn a_mixture_variance_is_the_brute_force_moment() {
    for kind in [
        AggregationKind::MixtureOfExperts,
        AggregationKind::MixtureOfProductsOfExperts,
    ] {
        let m = model(kind);
        let q = m.encode(&batch(&m), Subset::all(3));
        let got = q.variance().as_vec();
        let Posterior::Mixture(mix) = &q else {
            panic!("{kind} gives a mixture")
        };
        let comps: Vec<(Vec<f32>, Vec<f32>)> = mix
            .components()
            .iter()
            .map(|g| (g.mean.as_vec(), g.logvar.as_vec()))
            .collect();
        for i in 0..N {
            let avail: Vec<usize> = (0..comps.len())
                .filter(|&c| mix.available()[c][i])
                .collect();
            let w = 1.0 / avail.len() as f64;
            for d in 0..L {
                let at = i * L + d;
                let mean: f64 = avail.iter().map(|&c| w * f64::from(comps[c].0[at])).sum();
                let second: f64 = avail
                    .iter()
                    .map(|&c| {
                        let (mu, lv) = (f64::from(comps[c].0[at]), f64::from(comps[c].1[at]));
                        w * (lv.exp() + mu * mu)
                    })
                    .sum();
                let want = second - mean * mean;
                assert!(
                    (f64::from(got[at]) - want).abs() < 1e-5 * (1.0 + want),
                    "{kind}: sample {i} dim {d}: {} vs {want}",
                    got[at]
                );
            }
        }
    }
}

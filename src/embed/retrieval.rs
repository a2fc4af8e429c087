//! Cross-modal retrieval in the embedding: the embeddings of one subset of modalities (the
//! queries) rank those of another (the gallery), and we ask where each query's own partner —
//! the gallery row of the same data row — lands, and, where the data have classes, how many
//! of the top of the ranking share the query's class.
//!
//! - **recall@k**: the fraction of queries whose partner ranks `k` or better;
//! - **median rank** of the partner (1 = first);
//! - **class mAP**: the mean over queries of the average precision of the ranking, an item
//!   relevant where it has the query's class: `AP = (1/R) sum_{relevant at rank r} (relevant
//!   items in the top r) / r`;
//! - **precision@10**: the fraction of the top 10 with the query's class.
//!
//! Ties in similarity are broken by gallery order (earlier first), so every figure is
//! deterministic.

use serde::{Deserialize, Serialize};

use super::Embeddings;
use crate::{Error, Result};

pub use crate::similarity::Similarity;

/// Recall at one cut-off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecallAt {
    /// The cut-off.
    pub k: usize,
    /// Fraction of queries whose partner ranks `k` or better.
    pub recall: f64,
}

/// How well the queries' embeddings find their partners in the gallery's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetrievalReport {
    /// The modalities of the queries.
    pub query: Vec<String>,
    /// The modalities of the gallery.
    pub gallery: Vec<String>,
    /// How the embeddings were compared.
    pub similarity: Similarity,
    /// Queries scored (those whose data row is in the gallery too).
    pub queries: usize,
    /// Gallery size.
    pub gallery_size: usize,
    /// Recall at 1, 5 and 10.
    pub recall: Vec<RecallAt>,
    /// Median rank of the partner (1 = first).
    pub median_rank: f64,
    /// Class-level mean average precision, where classes were given.
    pub class_map: Option<f64>,
    /// Fraction of the top 10 that share the query's class, where classes were given.
    pub precision_at_10: Option<f64>,
}

/// The cut-offs of [`RetrievalReport::recall`].
pub const RECALL_AT: [usize; 3] = [1, 5, 10];

/// Ranks `gallery` for every query of `queries` whose data row the gallery has, by
/// `similarity` between means. `class_of` gives a data row's class, if the data have classes
/// (a row without one is neither a query for the class figures nor relevant to any).
///
/// # Errors
/// Embeddings of different sizes, or no query whose data row is in the gallery.
pub fn retrieval(
    queries: &Embeddings,
    gallery: &Embeddings,
    similarity: Similarity,
    class_of: Option<&dyn Fn(usize) -> Option<usize>>,
) -> Result<RetrievalReport> {
    if queries.dim != gallery.dim {
        return Err(Error::InvalidData {
            what: "retrieval".into(),
            reason: format!(
                "queries have {} coordinates, the gallery {}",
                queries.dim, gallery.dim
            ),
        });
    }
    let gallery_class: Vec<Option<usize>> = gallery
        .rows
        .iter()
        .map(|&r| class_of.and_then(|f| f(r)))
        .collect();
    let mut ranks = Vec::new();
    let (mut ap_sum, mut p10_sum, mut classed) = (0.0f64, 0.0f64, 0usize);
    let mut order: Vec<usize> = (0..gallery.len()).collect();
    let mut sims = vec![0.0f64; gallery.len()];
    for (qi, &row) in queries.rows.iter().enumerate() {
        // rows are increasing in both: the partner by binary search
        let Ok(partner) = gallery.rows.binary_search(&row) else {
            continue;
        };
        let q = queries.mean(qi);
        for (g, s) in sims.iter_mut().enumerate() {
            *s = similarity.of(q, gallery.mean(g));
        }
        let own = sims[partner];
        let rank = 1 + sims
            .iter()
            .enumerate()
            .filter(|&(g, &s)| s > own || (s == own && g < partner))
            .count();
        ranks.push(rank);
        let Some(class) = class_of.and_then(|f| f(row)) else {
            continue;
        };
        // a stable sort on descending similarity keeps gallery order among ties
        order.sort_by(|&a, &b| sims[b].total_cmp(&sims[a]));
        let relevant = gallery_class.iter().filter(|&&c| c == Some(class)).count();
        let (mut hits, mut ap) = (0usize, 0.0f64);
        for (r, &g) in order.iter().enumerate() {
            if gallery_class[g] == Some(class) {
                hits += 1;
                ap += hits as f64 / (r + 1) as f64;
                if hits == relevant {
                    break;
                }
            }
        }
        ap_sum += ap / relevant as f64;
        let top = order.len().min(10);
        let in_top = order[..top]
            .iter()
            .filter(|&&g| gallery_class[g] == Some(class))
            .count();
        p10_sum += in_top as f64 / top as f64;
        classed += 1;
        order.sort_unstable();
    }
    if ranks.is_empty() {
        return Err(Error::InvalidData {
            what: "retrieval".into(),
            reason: format!(
                "no data row has both {} and {}",
                queries.given.join(", "),
                gallery.given.join(", ")
            ),
        });
    }
    let n = ranks.len() as f64;
    let recall = RECALL_AT
        .iter()
        .map(|&k| RecallAt {
            k,
            recall: ranks.iter().filter(|&&r| r <= k).count() as f64 / n,
        })
        .collect();
    ranks.sort_unstable();
    let mid = ranks.len() / 2;
    let median_rank = if ranks.len() % 2 == 1 {
        ranks[mid] as f64
    } else {
        (ranks[mid - 1] + ranks[mid]) as f64 / 2.0
    };
    Ok(RetrievalReport {
        query: queries.given.clone(),
        gallery: gallery.given.clone(),
        similarity,
        queries: ranks.len(),
        gallery_size: gallery.len(),
        recall,
        median_rank,
        class_map: (classed > 0).then(|| ap_sum / classed as f64),
        precision_at_10: (classed > 0).then(|| p10_sum / classed as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emb(given: &str, rows: &[usize], means: &[[f32; 2]]) -> Embeddings {
        Embeddings {
            given: vec![given.into()],
            rows: rows.to_vec(),
            dim: 2,
            means: means.iter().flatten().copied().collect(),
            variances: None,
        }
    }

    #[test]
    fn similarities_match_their_definitions() {
        let (a, b) = ([3.0f32, 4.0], [4.0f32, 3.0]);
        assert!((Similarity::Cosine.of(&a, &b) - 24.0 / 25.0).abs() < 1e-12);
        assert!((Similarity::Euclidean.of(&a, &b) + 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(Similarity::Cosine.of(&[0.0, 0.0], &b), 0.0);
    }

    /// Four rows in two classes; ranks, recall, median rank, AP and precision worked out by
    /// hand.
    #[test]
    fn figures_match_a_hand_computed_ranking() {
        // gallery: rows 0..4 on the unit circle at angles 0, 90, 180, 270 degrees
        let gallery = emb(
            "g",
            &[0, 1, 2, 3],
            &[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]],
        );
        // queries: row 0 near gallery 0; row 1 near gallery 0 too (its partner, gallery 1,
        // second); row 3 points at gallery 2 (partner 3 ties with 1 for second-to-last...);
        // row 5 has no partner and is skipped
        let queries = emb(
            "q",
            &[0, 1, 3, 5],
            &[[1.0, 0.1], [1.0, 0.9], [-1.0, -0.2], [1.0, 1.0]],
        );
        let class = |r: usize| Some(r % 2);
        let rep = retrieval(&queries, &gallery, Similarity::Cosine, Some(&class)).unwrap();
        assert_eq!(rep.queries, 3);
        assert_eq!(rep.gallery_size, 4);
        // query 0: order 0, 1, 3, 2 -> partner rank 1
        // query 1: order 0 (cos .74), 1 (.67), 3, 2 -> partner rank 2
        // query 3: order 2 (.98), 3 (.196), 1 (-.196), 0 -> partner rank 2
        assert_eq!(
            rep.recall,
            vec![
                RecallAt {
                    k: 1,
                    recall: 1.0 / 3.0
                },
                RecallAt { k: 5, recall: 1.0 },
                RecallAt { k: 10, recall: 1.0 },
            ]
        );
        assert_eq!(rep.median_rank, 2.0);
        // classes: 0 = rows {0, 2}, 1 = rows {1, 3}
        // query 0 (class 0): order 0, 1, 3, 2: relevant at ranks 1 and 4: AP (1 + 2/4) / 2
        // query 1 (class 1): order 0, 1, 3, 2: relevant at ranks 2 and 3: AP (1/2 + 2/3) / 2
        // query 3 (class 1): order 2, 3, 1, 0: relevant at ranks 2 and 3: AP (1/2 + 2/3) / 2
        let want = ((1.0 + 0.5) / 2.0 + 2.0 * (0.5 + 2.0 / 3.0) / 2.0) / 3.0;
        assert!((rep.class_map.unwrap() - want).abs() < 1e-12, "{rep:?}");
        // top 10 is the whole gallery: half of it in each class
        assert!((rep.precision_at_10.unwrap() - 0.5).abs() < 1e-12);
        // without classes, no class figures
        let plain = retrieval(&queries, &gallery, Similarity::Cosine, None).unwrap();
        assert_eq!((plain.class_map, plain.precision_at_10), (None, None));
        assert_eq!(plain.recall, rep.recall);
    }

    #[test]
    fn ties_go_to_the_earlier_gallery_row_and_mismatches_are_errors() {
        let gallery = emb("g", &[0, 1], &[[1.0, 0.0], [1.0, 0.0]]);
        let queries = emb("q", &[0, 1], &[[1.0, 0.0], [1.0, 0.0]]);
        let rep = retrieval(&queries, &gallery, Similarity::Euclidean, None).unwrap();
        // row 0's partner comes first, row 1's second
        assert_eq!(rep.median_rank, 1.5);
        assert_eq!(rep.recall[0].recall, 0.5);
        let apart = emb("q", &[7], &[[1.0, 0.0]]);
        let err = retrieval(&apart, &gallery, Similarity::Cosine, None).unwrap_err();
        assert!(err.to_string().contains("no data row has both"), "{err}");
        let mut wide = queries.clone();
        wide.dim = 1;
        wide.means.truncate(2);
        assert!(retrieval(&wide, &gallery, Similarity::Cosine, None).is_err());
    }
}

//! Counts of (actual class, predicted class) pairs: what a classifier confuses with what.

/// A square table of counts: `count(actual, predicted)`. Rows are the true classes, columns
/// the predictions; the diagonal is what was right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: Vec<String>,
    /// Row-major `[actual][predicted]`.
    counts: Vec<usize>,
}

impl ConfusionMatrix {
    /// An empty matrix over classes named `classes` (class `k` is `classes[k]`).
    pub fn new<S: Into<String>>(classes: impl IntoIterator<Item = S>) -> Self {
        let classes: Vec<String> = classes.into_iter().map(Into::into).collect();
        let n = classes.len();
        Self {
            classes,
            counts: vec![0; n * n],
        }
    }

    /// Adds one batch: `actual[i]` was predicted as `predicted[i]`. Pairs naming a class
    /// outside the matrix are skipped (the objective has already rejected such targets).
    pub fn record(&mut self, actual: &[usize], predicted: &[usize]) {
        let n = self.classes.len();
        for (&a, &p) in actual.iter().zip(predicted) {
            if a < n && p < n {
                self.counts[a * n + p] += 1;
            }
        }
    }

    /// Clears every count, keeping the classes.
    pub fn clear(&mut self) {
        self.counts.fill(0);
    }

    /// The class names.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// How often class `actual` was predicted as `predicted`.
    pub fn count(&self, actual: usize, predicted: usize) -> usize {
        let n = self.classes.len();
        if actual < n && predicted < n {
            self.counts[actual * n + predicted]
        } else {
            0
        }
    }

    /// Items of class `actual`.
    pub fn row_total(&self, actual: usize) -> usize {
        (0..self.classes.len()).map(|p| self.count(actual, p)).sum()
    }

    /// Items counted.
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Fraction on the diagonal (0 when empty).
    pub fn accuracy(&self) -> f64 {
        let right: usize = (0..self.classes.len()).map(|k| self.count(k, k)).sum();
        right as f64 / self.total().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pairs_by_row_and_column() {
        let mut m = ConfusionMatrix::new(["cat", "dog", "bird"]);
        // cat→cat twice, cat→dog, dog→dog, bird→cat; a class 3 pair is ignored.
        m.record(&[0, 0, 0, 1, 2, 3], &[0, 0, 1, 1, 0, 0]);
        assert_eq!(m.count(0, 0), 2);
        assert_eq!(m.count(0, 1), 1);
        assert_eq!(m.count(1, 1), 1);
        assert_eq!(m.count(2, 0), 1);
        assert_eq!(m.count(2, 2), 0);
        assert_eq!((m.row_total(0), m.row_total(2), m.total()), (3, 1, 5));
        assert!((m.accuracy() - 3.0 / 5.0).abs() < 1e-12);
        m.clear();
        assert_eq!((m.total(), m.classes().len()), (0, 3));
    }
}

//! Accuracy, per-class accuracy and the confusion matrix.
use std::fmt;

/// The result of [`Classifier::evaluate`](super::Classifier::evaluate), for
/// any number of classes.
///
/// ```
/// use static_nn::train::Evaluation;
/// let mut e = Evaluation::new(3);
/// e.record(0, 0);
/// e.record(2, 1);
/// assert_eq!(e.accuracy_line("test"), "test accuracy: 50.00% (1/2)");
/// assert_eq!(e.per_class_accuracy(), [100.0, 0.0, 0.0]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// `confusion[true][predicted]`: how many samples of class `true` were
    /// predicted as `predicted`; `classes × classes`.
    pub confusion: Vec<Vec<usize>>,
}

impl Evaluation {
    /// An empty evaluation of `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            confusion: vec![vec![0; classes]; classes],
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.confusion.len()
    }

    /// Records one prediction (ignored if either class is out of range).
    pub fn record(&mut self, truth: usize, predicted: usize) {
        let n = self.classes();
        if truth < n && predicted < n {
            self.confusion[truth][predicted] += 1;
        }
    }

    /// Adds another evaluation's counts (of the same classes) to this one.
    pub fn merge(&mut self, other: &Evaluation) {
        for (row, o) in self.confusion.iter_mut().zip(&other.confusion) {
            for (a, b) in row.iter_mut().zip(o) {
                *a += b;
            }
        }
    }

    /// Number of samples evaluated.
    pub fn total(&self) -> usize {
        self.confusion.iter().flatten().sum()
    }

    /// Number of correct predictions.
    pub fn correct(&self) -> usize {
        (0..self.classes()).map(|c| self.confusion[c][c]).sum()
    }

    /// Accuracy in percent (0 for an empty evaluation).
    pub fn accuracy(&self) -> f64 {
        percent(self.correct(), self.total())
    }

    /// Accuracy of each true class, in percent.
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        (0..self.classes())
            .map(|c| percent(self.confusion[c][c], self.confusion[c].iter().sum()))
            .collect()
    }

    /// The line scripts read: `test accuracy: 98.93% (9893/10000)`.
    pub fn accuracy_line(&self, split: &str) -> String {
        format!(
            "{split} accuracy: {:.2}% ({}/{})",
            self.accuracy(),
            self.correct(),
            self.total()
        )
    }

    /// The per-class accuracy and confusion matrix with class names (those
    /// missing are shown by number).
    pub fn report(&self, names: &[String]) -> String {
        let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
        let w = (0..self.classes())
            .map(|c| name(c).chars().count())
            .max()
            .unwrap_or(1);
        let mut s = String::from("per-class accuracy:\n");
        for (c, acc) in self.per_class_accuracy().iter().enumerate() {
            s += &format!("  {:>w$}: {acc:6.2}%\n", name(c));
        }
        s += "confusion matrix (rows: true, columns: predicted):\n  ";
        s += &" ".repeat(w + 2);
        let cell = self.total().max(1).to_string().len().max(3) + 1;
        for c in 0..self.classes() {
            s += &format!("{c:>cell$}");
        }
        for (t, row) in self.confusion.iter().enumerate() {
            s += &format!("\n  {:>w$}: ", name(t));
            for n in row {
                s += &format!("{n:>cell$}");
            }
        }
        s
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

impl fmt::Display for Evaluation {
    /// The per-class accuracy and the confusion matrix (rows: true class),
    /// classes by number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_line() {
        let mut e = Evaluation::new(10);
        for _ in 0..3 {
            e.record(1, 1);
        }
        e.record(2, 7);
        assert_eq!((e.correct(), e.total()), (3, 4));
        assert_eq!(e.accuracy_line("test"), "test accuracy: 75.00% (3/4)");
        assert_eq!(e.per_class_accuracy()[1], 100.0);
        assert_eq!(e.per_class_accuracy()[2], 0.0);
        assert!(e.to_string().contains("confusion matrix"));
    }
}

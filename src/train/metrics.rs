//! Accuracy, per-class accuracy and the confusion matrix.
use crate::data::NUM_CLASSES;
use std::fmt;

/// The result of [`Classifier::evaluate`](super::Classifier::evaluate).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// `confusion[true][predicted]`: how many samples of class `true` were
    /// predicted as `predicted`.
    pub confusion: [[usize; NUM_CLASSES]; NUM_CLASSES],
}

impl Evaluation {
    /// Records one prediction.
    pub fn record(&mut self, truth: usize, predicted: usize) {
        if truth < NUM_CLASSES && predicted < NUM_CLASSES {
            self.confusion[truth][predicted] += 1;
        }
    }

    /// Number of samples evaluated.
    pub fn total(&self) -> usize {
        self.confusion.iter().flatten().sum()
    }

    /// Number of correct predictions.
    pub fn correct(&self) -> usize {
        (0..NUM_CLASSES).map(|c| self.confusion[c][c]).sum()
    }

    /// Accuracy in percent (0 for an empty evaluation).
    pub fn accuracy(&self) -> f64 {
        percent(self.correct(), self.total())
    }

    /// Accuracy of each true class, in percent.
    pub fn per_class_accuracy(&self) -> [f64; NUM_CLASSES] {
        std::array::from_fn(|c| percent(self.confusion[c][c], self.confusion[c].iter().sum()))
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
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

impl fmt::Display for Evaluation {
    /// The per-class accuracy and the confusion matrix (rows: true class).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "per-class accuracy:")?;
        for (c, acc) in self.per_class_accuracy().iter().enumerate() {
            writeln!(f, "  {c}: {acc:6.2}%")?;
        }
        write!(
            f,
            "confusion matrix (rows: true, columns: predicted):\n     "
        )?;
        for c in 0..NUM_CLASSES {
            write!(f, "{c:>6}")?;
        }
        for (t, row) in self.confusion.iter().enumerate() {
            write!(f, "\n  {t}: ")?;
            for n in row {
                write!(f, "{n:>6}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_line() {
        let mut e = Evaluation::default();
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

//! Model summaries from the types, like `print(model)` plus torchinfo.
use crate::nn::{InferShape, LayerRow};
use dfdx::prelude::Shape;
use std::fmt;

/// A table of a network's layers, each with its per-sample output shape and
/// parameter count, computed from the network type alone (nothing is built).
///
/// ```
/// use static_nn::prelude::*;
/// let s = summary::<LeNetClass, Rank3<1, 28, 28>>();
/// assert_eq!(s.total_params(), 37_106);
/// assert_eq!(s.output(), &[10]);
/// println!("{s}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The per-sample input shape.
    pub input: Vec<usize>,
    /// One row per layer, in order.
    pub rows: Vec<LayerRow>,
}

impl Summary {
    /// Total trainable parameters.
    pub fn total_params(&self) -> usize {
        self.rows.iter().map(|r| r.params).sum()
    }

    /// The per-sample output shape of the network.
    pub fn output(&self) -> &[usize] {
        self.rows.last().map_or(&self.input[..], |r| &r.output[..])
    }
}

/// The summary of network `M` on per-sample inputs of shape `In`.
pub fn summary<M: InferShape<In>, In: Shape + Default>() -> Summary {
    let mut rows = Vec::new();
    M::describe("", &mut rows);
    Summary {
        input: In::default().concrete().into_iter().collect(),
        rows,
    }
}

fn shape(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[B, {}]", inner.join(", "))
}

/// `1234567` → `1,234,567`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_w = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(0)
            .max(5);
        let layer_w = self
            .rows
            .iter()
            .map(|r| r.layer.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        let shape_w = self
            .rows
            .iter()
            .map(|r| shape(&r.output).len())
            .max()
            .unwrap_or(0)
            .max(12);
        let rule = "=".repeat(name_w + layer_w + shape_w + 18);
        writeln!(f, "{rule}")?;
        writeln!(
            f,
            "{:<name_w$}  {:<layer_w$}  {:<shape_w$}  {:>12}",
            "Name", "Layer", "Output shape", "Param #"
        )?;
        writeln!(f, "{rule}")?;
        writeln!(
            f,
            "{:<name_w$}  {:<layer_w$}  {:<shape_w$}  {:>12}",
            "",
            "Input",
            shape(&self.input),
            ""
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<name_w$}  {:<layer_w$}  {:<shape_w$}  {:>12}",
                r.name,
                r.layer,
                shape(&r.output),
                thousands(r.params)
            )?;
        }
        writeln!(f, "{rule}")?;
        writeln!(f, "Total params: {}", thousands(self.total_params()))?;
        write!(f, "Trainable params: {}", thousands(self.total_params()))
    }
}

//! Printing tensors in PyTorch's nested-bracket form.
use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Storage, Tensor};

/// Formats `data` (row-major) of the given `shape` as nested brackets, the
/// way PyTorch prints a tensor (without the `tensor(...)` around it):
/// whole numbers as `19.`, others with 4 decimals, columns aligned, a blank
/// line between the matrices of a 3-D or larger tensor.
///
/// Returns `"[]"`-style output for empty tensors and the bare number for a
/// scalar (`shape == []`). If `data` is shorter than the shape needs, the
/// missing values print as `?`.
///
/// ```
/// use static_nn::tutorial::format_values;
/// assert_eq!(format_values(&[2, 2], &[19.0, 25.0, 37.0, 43.0]), "[[19., 25.],\n [37., 43.]]");
/// assert_eq!(format_values(&[3], &[0.5, -1.0, 0.25]), "[ 0.5000, -1.0000,  0.2500]");
/// ```
pub fn format_values(shape: &[usize], data: &[f32]) -> String {
    format_wrapped(shape, data, LINE_WIDTH)
}

/// PyTorch's default line width: long rows wrap after this many characters.
const LINE_WIDTH: usize = 80;

/// [`format_values`] with rows wrapped to `line_width` characters.
fn format_wrapped(shape: &[usize], data: &[f32], line_width: usize) -> String {
    let n: usize = shape.iter().product();
    let vals = &data[..n.min(data.len())];
    let integral = vals.iter().all(|v| v.is_finite() && v.fract() == 0.0);
    let num = |v: f32| {
        if integral {
            format!("{v:.0}.")
        } else {
            format!("{v:.4}")
        }
    };
    let cells: Vec<String> = (0..n)
        .map(|i| data.get(i).map_or_else(|| "?".to_string(), |&v| num(v)))
        .collect();
    let width = cells.iter().map(|c| c.chars().count()).max().unwrap_or(0);
    // values per line: the brackets take `shape.len()` characters, each value `width + 2`
    let per_line = (line_width.saturating_sub(shape.len()) / (width + 2)).max(1);
    let mut out = String::new();
    let layout = Layout { width, per_line };
    write_nested(&mut out, shape, &cells, &layout, 0);
    out
}

/// How to lay out the values: their common width, and how many per line.
struct Layout {
    width: usize,
    per_line: usize,
}

fn write_nested(out: &mut String, shape: &[usize], cells: &[String], l: &Layout, depth: usize) {
    match shape.split_first() {
        None => {
            if let Some(c) = cells.first() {
                out.push_str(c);
            }
        }
        Some((&n, rest)) => {
            out.push('[');
            let step: usize = rest.iter().product();
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                    if rest.is_empty() && i % l.per_line != 0 {
                        out.push(' ');
                    } else if rest.is_empty() {
                        // wrap a long row
                        out.push('\n');
                        for _ in 0..=depth {
                            out.push(' ');
                        }
                    } else {
                        // one newline, plus a blank line per extra level below
                        for _ in 0..rest.len() {
                            out.push('\n');
                        }
                        for _ in 0..=depth {
                            out.push(' ');
                        }
                    }
                }
                if rest.is_empty() {
                    let c = &cells[i];
                    for _ in c.chars().count()..l.width {
                        out.push(' ');
                    }
                    out.push_str(c);
                } else {
                    let start = (i * step).min(cells.len());
                    let end = ((i + 1) * step).min(cells.len());
                    write_nested(out, rest, &cells[start..end], l, depth + 1);
                }
            }
            out.push(']');
        }
    }
}

/// Formats values of the given shape as PyTorch prints a tensor:
/// `tensor(` + [`format_values`] + `)`, followed by the shape, e.g.
/// `tensor([[19., 25.],\n        [37., 43.]]), shape (2, 2)`.
///
/// ```
/// let s = static_nn::tutorial::show_values(&[1, 2], &[0.0, -1.0]);
/// assert_eq!(s, "tensor([[ 0., -1.]]), shape (1, 2)");
/// ```
pub fn show_values(shape: &[usize], data: &[f32]) -> String {
    const PREFIX: &str = "tensor(";
    let body = format_wrapped(shape, data, LINE_WIDTH - PREFIX.len());
    // indent the lines under the opening bracket; blank lines stay blank
    let body = body
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 || line.is_empty() {
                line.to_string()
            } else {
                format!("{:w$}{line}", "", w = PREFIX.len())
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let dims = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    format!("{PREFIX}{body}), shape {dims}")
}

/// Formats a tensor of any shape with [`show_values`]: its values as
/// nested brackets and its shape, as the notebook shows them (e.g. the edge
/// map `tensor([[[ 0., -1., …]]]), shape (1, 6, 7)`).
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::default();
/// let t = dev.tensor([[1.0f32, 2.0], [3.0, 4.0]]);
/// assert_eq!(static_nn::tutorial::show(&t), "tensor([[1., 2.],\n        [3., 4.]]), shape (2, 2)");
/// ```
pub fn show<S: Shape, D: Storage<f32>, T>(t: &Tensor<S, f32, D, T>) -> String {
    let shape: Vec<usize> = t.shape().concrete().into_iter().collect();
    show_values(&shape, &t.as_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_d_has_blank_lines_between_matrices() {
        let s = format_values(&[2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s, "[[[1., 2.]],\n\n [[3., 4.]]]");
    }

    #[test]
    fn negative_and_fractional_align() {
        let s = format_values(&[1, 3], &[0.0, -1.0, 0.5]);
        assert_eq!(s, "[[ 0.0000, -1.0000,  0.5000]]");
        let s = format_values(&[1, 3], &[0.0, -1.0, 1.0]);
        assert_eq!(s, "[[ 0., -1.,  1.]]");
    }

    #[test]
    fn blank_lines_stay_blank_in_show() {
        let s = show_values(&[2, 1, 1], &[1.0, 2.0]);
        assert_eq!(s, "tensor([[[1.]],\n\n        [[2.]]]), shape (2, 1, 1)");
    }

    #[test]
    fn long_rows_wrap_like_pytorch() {
        // the notebook's img.reshape(1, 1, -1): 8 values per line
        let s = show_values(&[1, 1, 36], &[0.5; 36]);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[0],
            format!("tensor([[[{}", ["0.5000"; 8].join(", ")) + ","
        );
        assert!(lines[1].starts_with("          0.5000,"), "{}", lines[1]);
        assert!(lines.iter().all(|l| l.len() <= 80));
        // four dims: two blank lines between 3-D blocks, as PyTorch
        let s = show_values(&[2, 1, 1, 1], &[1.0, 2.0]);
        assert_eq!(
            s,
            "tensor([[[[1.]]],\n\n\n        [[[2.]]]]), shape (2, 1, 1, 1)"
        );
    }

    #[test]
    fn short_data_and_scalars_do_not_panic() {
        assert_eq!(format_values(&[3], &[1.0]), "[1.,  ?,  ?]");
        assert_eq!(format_values(&[], &[7.0]), "7.");
        assert_eq!(format_values(&[0], &[]), "[]");
    }
}

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
/// use static_nn::vision::format_values;
/// assert_eq!(format_values(&[2, 2], &[19.0, 25.0, 37.0, 43.0]), "[[19., 25.],\n [37., 43.]]");
/// assert_eq!(format_values(&[3], &[0.5, -1.0, 0.25]), "[ 0.5000, -1.0000,  0.2500]");
/// ```
pub fn format_values(shape: &[usize], data: &[f32]) -> String {
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
    let mut out = String::new();
    write_nested(&mut out, shape, &cells, width, 0);
    out
}

fn write_nested(out: &mut String, shape: &[usize], cells: &[String], width: usize, depth: usize) {
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
                    if rest.is_empty() {
                        out.push(' ');
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
                    for _ in c.chars().count()..width {
                        out.push(' ');
                    }
                    out.push_str(c);
                } else {
                    let start = (i * step).min(cells.len());
                    let end = ((i + 1) * step).min(cells.len());
                    write_nested(out, rest, &cells[start..end], width, depth + 1);
                }
            }
            out.push(']');
        }
    }
}

/// Formats a tensor of any shape with [`format_values`], as
/// `tensor([...])` followed by its shape, e.g. for the notebook's edge
/// map `tensor([[[ 0., -1., …]]]), shape (1, 6, 7)`.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::default();
/// let t = dev.tensor([[1.0f32, 2.0], [3.0, 4.0]]);
/// assert_eq!(static_nn::vision::show(&t), "tensor([[1., 2.],\n        [3., 4.]]), shape (2, 2)");
/// ```
pub fn show<S: Shape, D: Storage<f32>, T>(t: &Tensor<S, f32, D, T>) -> String {
    let shape: Vec<usize> = t.shape().concrete().into_iter().collect();
    let body = format_values(&shape, &t.as_vec()).replace('\n', "\n       ");
    // keep blank lines blank
    let body = body.replace("\n       \n", "\n\n");
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let dims = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    format!("tensor({body}), shape {dims}")
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
    fn short_data_and_scalars_do_not_panic() {
        assert_eq!(format_values(&[3], &[1.0]), "[1.,  ?,  ?]");
        assert_eq!(format_values(&[], &[7.0]), "7.");
        assert_eq!(format_values(&[0], &[]), "[]");
    }
}

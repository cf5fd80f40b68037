//! Line plots for loss and accuracy curves.

use super::canvas::{Canvas, Rgb, BLACK, WHITE};
use super::error::PicturesError;
use super::font::{draw_text, text_width, GLYPH};
use super::png::{finite_range, write_png};
use std::path::Path;

/// Picture size of a line plot.
const WIDTH: i64 = 640;
const HEIGHT: i64 = 420;
const GRID: Rgb = [225, 225, 225];
/// matplotlib's `tab10` colours, cycled through for the series.
const PALETTE: [Rgb; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// A "nice" tick step (1, 2 or 5 times a power of ten) splitting `span` into
/// about `target` intervals.
fn nice_step(span: f64, target: f64) -> f64 {
    let raw = span / target;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm < 1.5 {
        1.0
    } else if norm < 3.0 {
        2.0
    } else if norm < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// The y axis: `(lo, hi, ticks, decimals)`, with `lo` and `hi` on ticks.
fn y_axis(lo: f32, hi: f32) -> (f64, f64, Vec<f64>, usize) {
    let (mut lo, mut hi) = (f64::from(lo), f64::from(hi));
    if hi - lo <= hi.abs().max(lo.abs()) * 1e-6 {
        let pad = if hi == 0.0 { 1.0 } else { hi.abs() * 0.1 };
        (lo, hi) = (lo - pad, hi + pad);
    }
    let step = nice_step(hi - lo, 5.0);
    let (a, b) = ((lo / step).floor(), (hi / step).ceil());
    let ticks = (0..=(b - a) as i64)
        .map(|k| (a + k as f64) * step)
        .collect();
    let decimals = (-(step.log10() + 1e-6).floor()).max(0.0) as usize;
    (a * step, b * step, ticks, decimals)
}

/// Tick label; very large or very small numbers in scientific notation.
fn label(v: f64, decimals: usize) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e6 || decimals > 5 {
        format!("{v:.2e}")
    } else {
        format!("{v:.decimals$}")
    }
}

/// Integer x ticks for epochs `1..=n`.
fn x_ticks(n: usize) -> Vec<usize> {
    let step = (nice_step(n.max(2) as f64 - 1.0, 8.0).round() as usize).max(1);
    (1..=n).filter(|k| step == 1 || k % step == 0).collect()
}

/// Saves a line plot of one or more named series over epochs: the `i`-th
/// value of a series is drawn at `x = i + 1`. The plot has a title, axes with
/// numbered ticks and grid lines, an "epoch" label and a legend; series are
/// coloured with matplotlib's `tab10` colours. Non-finite values leave a gap.
/// Series may have different lengths; the x axis runs to the longest.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let train = [2.30, 0.61, 0.35, 0.27, 0.22];
/// let test = [0.70, 0.38, 0.30, 0.26, 0.25];
/// static_nn::pictures::save_line_plot(
///     &dir.path().join("loss.png"),
///     "LeNet on MNIST",
///     &[("train loss", &train), ("test loss", &test)],
/// )?;
/// # Ok::<(), static_nn::pictures::PicturesError>(())
/// ```
pub fn save_line_plot(
    path: &Path,
    title: &str,
    series: &[(&str, &[f32])],
) -> Result<(), PicturesError> {
    let n = series.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
    let all: Vec<f32> = series.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    let (lo, hi) = finite_range(&all).ok_or_else(|| {
        PicturesError::bad(path, "nothing to plot: no finite values in any series")
    })?;
    let (y0, y1, yticks, decimals) = y_axis(lo, hi);
    let ylabels: Vec<String> = yticks.iter().map(|&v| label(v, decimals)).collect();
    let g = GLYPH as i64;

    let label_w = ylabels.iter().map(|l| text_width(l, 1)).max().unwrap_or(0) as i64;
    let (left, right, top, bottom) = (label_w + 16, WIDTH - 24, 3 * g + 8, HEIGHT - 4 * g - 8);
    let (pw, ph) = (right - left, bottom - top);
    // x runs from 1 to n; a single epoch sits in the middle.
    let (x0, x1) = if n > 1 { (1.0, n as f64) } else { (0.0, 2.0) };
    let px = |x: f64| left + ((x - x0) / (x1 - x0) * pw as f64).round() as i64;
    let py = |y: f64| bottom - ((y - y0) / (y1 - y0) * ph as f64).round() as i64;

    let mut c = Canvas::new(WIDTH as u32, HEIGHT as u32, WHITE);
    let tw = text_width(title, 2) as i64;
    draw_text(&mut c, (WIDTH - tw) / 2, g / 2, title, 2, BLACK);

    for (v, l) in yticks.iter().zip(&ylabels) {
        let y = py(*v);
        c.line((left, y), (right, y), 1, GRID);
        c.line((left - 4, y), (left, y), 1, BLACK);
        let lw = text_width(l, 1) as i64;
        draw_text(&mut c, left - 8 - lw, y - g / 2 + 1, l, 1, BLACK);
    }
    for k in x_ticks(n) {
        let x = px(k as f64);
        c.line((x, top), (x, bottom), 1, GRID);
        c.line((x, bottom), (x, bottom + 4), 1, BLACK);
        let l = k.to_string();
        let lw = text_width(&l, 1) as i64;
        draw_text(&mut c, x - lw / 2, bottom + 8, &l, 1, BLACK);
    }
    let xl = "epoch";
    draw_text(
        &mut c,
        left + (pw - text_width(xl, 1) as i64) / 2,
        bottom + 2 * g + 8,
        xl,
        1,
        BLACK,
    );
    c.frame_around(left, top, pw + 1, ph + 1, 1, BLACK);

    for (i, (_, s)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let pt = |j: usize| (px(j as f64 + 1.0), py(f64::from(s[j])));
        for j in 0..s.len() {
            if !s[j].is_finite() {
                continue;
            }
            if j + 1 < s.len() && s[j + 1].is_finite() {
                c.line(pt(j), pt(j + 1), 2, colour);
            }
            if n <= 40 {
                let (x, y) = pt(j);
                c.fill_rect(x - 2, y - 2, 5, 5, colour);
            }
        }
    }

    // Legend in the top-right corner of the plot area.
    let names: Vec<&str> = series.iter().map(|(name, _)| *name).collect();
    let lw = names.iter().map(|s| text_width(s, 1)).max().unwrap_or(0) as i64 + 36;
    let lh = names.len() as i64 * (g + 6) + 6;
    let (lx, ly) = (right - lw - 8, top + 8);
    c.fill_rect(lx, ly, lw, lh, WHITE);
    c.frame_around(lx, ly, lw, lh, 1, [160; 3]);
    for (i, name) in names.iter().enumerate() {
        let y = ly + 6 + i as i64 * (g + 6);
        let colour = PALETTE[i % PALETTE.len()];
        c.line((lx + 6, y + g / 2), (lx + 24, y + g / 2), 2, colour);
        draw_text(&mut c, lx + 30, y, name, 1, BLACK);
    }
    write_png(path, &c.into_image())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(2.3, 5.0), 0.5);
        assert!((nice_step(0.07, 5.0) - 0.01).abs() < 1e-12);
        assert_eq!(nice_step(700.0, 5.0), 100.0);
    }

    #[test]
    fn y_axis_covers_the_data_on_ticks() {
        let (lo, hi, ticks, d) = y_axis(0.22, 2.3);
        assert_eq!((lo, hi, d), (0.0, 2.5, 1));
        assert_eq!(ticks.len(), 6);
        let labels: Vec<String> = ticks.iter().map(|&v| label(v, d)).collect();
        assert_eq!(labels, ["0", "0.5", "1.0", "1.5", "2.0", "2.5"]);
        // A constant series still gets a non-empty axis.
        let (lo, hi, _, _) = y_axis(0.5, 0.5);
        assert!(lo < 0.5 && hi > 0.5);
        let (lo, hi, _, _) = y_axis(0.0, 0.0);
        assert!(lo < 0.0 && hi > 0.0);
    }

    #[test]
    fn x_ticks_are_integers_within_range() {
        assert_eq!(x_ticks(1), vec![1]);
        assert_eq!(x_ticks(5), vec![1, 2, 3, 4, 5]);
        assert_eq!(x_ticks(20), vec![2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
        assert_eq!(x_ticks(50), vec![5, 10, 15, 20, 25, 30, 35, 40, 45, 50]);
        assert!(x_ticks(1000).len() <= 11);
    }

    #[test]
    fn plots_are_written_and_bad_input_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        save_line_plot(&path, "one", &[("a", &[1.0])]).unwrap();
        assert_eq!(image::image_dimensions(&path).unwrap(), (640, 420));
        let gappy = [1.0, f32::NAN, 0.5, f32::INFINITY, 0.1];
        save_line_plot(&path, "gaps", &[("a", &gappy), ("empty", &[])]).unwrap();
        let big: Vec<f32> = (0..500).map(|i| 1e9 / (i as f32 + 1.0)).collect();
        save_line_plot(&path, "big", &[("b", &big)]).unwrap();

        let e = save_line_plot(&path, "none", &[]).unwrap_err();
        assert!(e.to_string().contains("p.png"), "{e}");
        assert!(save_line_plot(&path, "nan", &[("a", &[f32::NAN])]).is_err());
    }
}

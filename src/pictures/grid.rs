//! The notebook's `plot`: pictures side by side, each with a title above.

use super::canvas::{Canvas, Rgb, BLACK, RED, WHITE};
use super::error::PicturesError;
use super::font::{draw_text, text_width, GLYPH};
use super::png::{check_canvas, grey_colours, rgb_colours, scaled, write_png};
use std::path::Path;

/// One picture of a grid: a grey `h`×`w` picture (`pixels.len() == h·w`,
/// shown from its minimum to its maximum, like matplotlib's
/// `imshow(cmap="gray")`) or an RGB `(3, h, w)` one (`pixels.len() == 3·h·w`,
/// channel-major, values in `[0, 1]`).
#[derive(Debug, Clone)]
pub struct Panel<'a> {
    /// The picture, row-major; grey or `(3, h, w)` channel-major RGB.
    pub pixels: &'a [f32],
    /// Height in pixels.
    pub h: usize,
    /// Width in pixels.
    pub w: usize,
    /// The title drawn above the picture (printable ASCII; anything else
    /// shows as `?`).
    pub title: String,
    /// Draw a red frame and a red title (e.g. a wrong prediction).
    pub marked: bool,
}

impl<'a> Panel<'a> {
    /// An unmarked panel.
    ///
    /// ```
    /// let px = [0.0f32; 28 * 28];
    /// let p = static_nn::pictures::Panel::new(&px, 28, 28, "Pred: 7, True: 7");
    /// assert!(!p.marked);
    /// ```
    pub fn new(pixels: &'a [f32], h: usize, w: usize, title: impl Into<String>) -> Self {
        Panel {
            pixels,
            h,
            w,
            title: title.into(),
            marked: false,
        }
    }

    /// The same panel with `marked` set as given.
    pub fn marked(self, marked: bool) -> Self {
        Panel { marked, ..self }
    }
}

/// Sizes of the grid, in output pixels.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    /// Text scale of the titles.
    text: u32,
    /// Blank border inside each cell (also room for the red frame).
    pad: usize,
    /// Thickness of the red frame of marked panels.
    frame: usize,
    cell_w: usize,
    cell_h: usize,
    cols: usize,
    rows: usize,
}

impl Layout {
    fn new(path: &Path, panels: &[Panel], cols: usize, scale: u32) -> Result<Self, PicturesError> {
        if panels.is_empty() {
            return Err(PicturesError::bad(path, "no panels to draw"));
        }
        if cols == 0 {
            return Err(PicturesError::bad(path, "a grid needs at least one column"));
        }
        let text = (scale / 4).clamp(1, 4);
        let frame = 2 * text as usize;
        let pad = frame + 4 * text as usize;
        let (mut img_w, mut img_h, mut title_w) = (0, 0, 0);
        for (i, p) in panels.iter().enumerate() {
            let (w, h) = scaled(path, p.h, p.w, scale)?;
            let len = p.pixels.len();
            let n = p.h.checked_mul(p.w).filter(|&n| n > 0);
            if !n.is_some_and(|n| len == n || n.checked_mul(3) == Some(len)) {
                return Err(PicturesError::bad(
                    path,
                    format!(
                        "panel {i}: {len} values do not make a grey or RGB {}×{} picture",
                        p.h, p.w
                    ),
                ));
            }
            img_w = img_w.max(w as usize);
            img_h = img_h.max(h as usize);
            title_w = title_w.max(text_width(&p.title, text));
        }
        let cols = cols.min(panels.len());
        let layout = Layout {
            text,
            pad,
            frame,
            cell_w: img_w.max(title_w) + 2 * pad,
            cell_h: GLYPH * text as usize + pad + img_h + 2 * pad,
            cols,
            rows: panels.len().div_ceil(cols),
        };
        let (w, h) = layout.size();
        check_canvas(path, w, h)?;
        Ok(layout)
    }

    /// `(width, height)` of the whole picture.
    fn size(&self) -> (usize, usize) {
        (self.cols * self.cell_w, self.rows * self.cell_h)
    }
}

/// Saves pictures in a grid of `cols` columns (fewer if there are fewer
/// panels), each enlarged `scale` times (nearest neighbour) under its title,
/// black text on white. Marked panels get a red frame and a red title. Cells
/// are as large as the largest picture or title; titles use the 8×8 font at
/// `max(1, scale / 4)` times its size.
///
/// ```
/// use static_nn::pictures::{save_grid_png, Panel};
/// # let dir = tempfile::tempdir().unwrap();
/// let seven = [0.5f32; 28 * 28];
/// let panels = [
///     Panel::new(&seven, 28, 28, "Pred: 7, True: 7"),
///     Panel::new(&seven, 28, 28, "Pred: 1, True: 7").marked(true),
/// ];
/// save_grid_png(&dir.path().join("preds.png"), &panels, 2, 4)?;
/// # Ok::<(), static_nn::pictures::PicturesError>(())
/// ```
pub fn save_grid_png(
    path: &Path,
    panels: &[Panel],
    cols: usize,
    scale: u32,
) -> Result<(), PicturesError> {
    let l = Layout::new(path, panels, cols, scale)?;
    let (w, h) = l.size();
    let mut canvas = Canvas::new(w as u32, h as u32, WHITE);
    let title_h = GLYPH * l.text as usize;
    for (i, p) in panels.iter().enumerate() {
        let (x0, y0) = ((i % l.cols) * l.cell_w, (i / l.cols) * l.cell_h);
        let colour = if p.marked { RED } else { BLACK };
        let tw = text_width(&p.title, l.text);
        let tx = x0 + (l.cell_w - tw) / 2;
        draw_text(
            &mut canvas,
            tx as i64,
            (y0 + l.pad) as i64,
            &p.title,
            l.text,
            colour,
        );

        let colours: Vec<Rgb> = if p.pixels.len() == 3 * p.h * p.w {
            rgb_colours(p.pixels, p.h, p.w)
        } else {
            grey_colours(p.pixels, None)
        };
        let (iw, ih) = (p.w * scale as usize, p.h * scale as usize);
        let ix = (x0 + (l.cell_w - iw) / 2) as i64;
        let iy = (y0 + l.pad + title_h + l.pad) as i64;
        canvas.blit(ix, iy, p.w, scale, &colours);
        if p.marked {
            let t = l.frame as i64;
            canvas.frame_around(ix, iy, iw as i64, ih as i64, t, RED);
        }
    }
    write_png(path, &canvas.into_image())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digit() -> Vec<f32> {
        // A crude "7": top bar and a diagonal.
        let mut px = vec![0.0f32; 28 * 28];
        for x in 6..22 {
            px[6 * 28 + x] = 1.0;
            px[7 * 28 + x] = 1.0;
        }
        for y in 8..23 {
            let x = 21 - (y - 8) * 10 / 15;
            px[y * 28 + x] = 1.0;
            px[y * 28 + x - 1] = 0.8;
        }
        px
    }

    #[test]
    fn grid_size_arithmetic() {
        let px = digit();
        let panels: Vec<Panel> = (0..5)
            .map(|i| Panel::new(&px, 28, 28, format!("Pred: {i}, True: {i}")))
            .collect();
        let path = Path::new("grid.png");
        let l = Layout::new(path, &panels, 3, 4).unwrap();
        // scale 4 → text scale 1, frame 2, pad 6; image 112 px; title 16·8 = 128 px.
        assert_eq!((l.text, l.frame, l.pad), (1, 2, 6));
        assert_eq!((l.cols, l.rows), (3, 2));
        assert_eq!(l.cell_w, 128 + 2 * 6);
        assert_eq!(l.cell_h, 8 + 6 + 112 + 2 * 6);
        assert_eq!(l.size(), (3 * 140, 2 * 138));
        // More columns than panels: one row of five.
        let l = Layout::new(path, &panels, 10, 8).unwrap();
        assert_eq!((l.cols, l.rows, l.text), (5, 1, 2));
        assert_eq!(l.cell_w, 256 + 2 * l.pad);
        // The file has exactly that size.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.png");
        save_grid_png(&file, &panels, 3, 4).unwrap();
        assert_eq!(image::image_dimensions(&file).unwrap(), (420, 276));
    }

    #[test]
    fn marked_panels_have_red_frames_and_titles() {
        let px = digit();
        let panels = [
            Panel::new(&px, 28, 28, "ok"),
            Panel::new(&px, 28, 28, "bad").marked(true),
        ];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.png");
        save_grid_png(&file, &panels, 2, 2).unwrap();
        let img = image::open(&file).unwrap().to_rgb8();
        let (w, _) = img.dimensions();
        let red = |x0: u32, x1: u32| {
            img.enumerate_pixels()
                .filter(|(x, _, p)| (x0..x1).contains(x) && p.0 == RED)
                .count()
        };
        assert_eq!(red(0, w / 2), 0);
        assert!(red(w / 2, w) > 4 * 56, "frame and title should be red");
    }

    #[test]
    fn bad_panels_are_errors() {
        let px = digit();
        let path = Path::new("bad-grid.png");
        let e = save_grid_png(path, &[], 2, 1).unwrap_err();
        assert!(e.to_string().contains("bad-grid.png"), "{e}");
        let p = [Panel::new(&px, 28, 27, "x")];
        let e = save_grid_png(path, &p, 2, 1).unwrap_err();
        assert!(e.to_string().contains("panel 0"), "{e}");
        assert!(save_grid_png(path, &[Panel::new(&px, 28, 28, "x")], 0, 1).is_err());
        assert!(save_grid_png(path, &[Panel::new(&px, 28, 28, "x")], 1, 0).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn mixed_grey_and_rgb_panels() {
        let grey = digit();
        let rgb: Vec<f32> = (0..3 * 10 * 20).map(|i| (i % 20) as f32 / 19.0).collect();
        let panels = [
            Panel::new(&grey, 28, 28, "grey"),
            Panel::new(&rgb, 10, 20, "rgb"),
        ];
        let dir = tempfile::tempdir().unwrap();
        save_grid_png(&dir.path().join("m.png"), &panels, 1, 3).unwrap();
    }
}

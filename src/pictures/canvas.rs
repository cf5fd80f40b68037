//! A tiny RGB drawing surface: pixels, rectangles, Bresenham lines, blits.
//! Everything is clipped to the canvas, so drawing never panics.

use image::RgbImage;

/// An RGB colour.
pub(crate) type Rgb = [u8; 3];

pub(crate) const WHITE: Rgb = [255, 255, 255];
pub(crate) const BLACK: Rgb = [0, 0, 0];
pub(crate) const RED: Rgb = [220, 20, 20];

/// An RGB image being drawn on.
pub(crate) struct Canvas {
    img: RgbImage,
}

impl Canvas {
    /// A `w`×`h` canvas filled with `bg`.
    pub(crate) fn new(w: u32, h: u32, bg: Rgb) -> Self {
        Canvas {
            img: RgbImage::from_pixel(w, h, image::Rgb(bg)),
        }
    }

    pub(crate) fn width(&self) -> i64 {
        i64::from(self.img.width())
    }

    pub(crate) fn height(&self) -> i64 {
        i64::from(self.img.height())
    }

    /// Fills the rectangle with top-left corner `(x, y)` and size `w`×`h`.
    pub(crate) fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        let (x0, x1) = (x.max(0), (x + w).min(self.width()));
        let (y0, y1) = (y.max(0), (y + h).min(self.height()));
        for yy in y0..y1 {
            for xx in x0..x1 {
                self.img.put_pixel(xx as u32, yy as u32, image::Rgb(c));
            }
        }
    }

    /// A frame `t` pixels thick drawn *outside* the rectangle `(x, y, w, h)`.
    pub(crate) fn frame_around(&mut self, x: i64, y: i64, w: i64, h: i64, t: i64, c: Rgb) {
        self.fill_rect(x - t, y - t, w + 2 * t, t, c);
        self.fill_rect(x - t, y + h, w + 2 * t, t, c);
        self.fill_rect(x - t, y, t, h, c);
        self.fill_rect(x + w, y, t, h, c);
    }

    /// A straight line from `(x0, y0)` to `(x1, y1)` (Bresenham), drawn with a
    /// square brush `thick` pixels wide.
    pub(crate) fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), thick: i64, c: Rgb) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        let off = (thick - 1) / 2;
        loop {
            self.fill_rect(x - off, y - off, thick.max(1), thick.max(1), c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Copies an `h`×`w` picture given as a colour per pixel (row-major),
    /// enlarged `scale` times (nearest neighbour), with its top-left at `(x, y)`.
    pub(crate) fn blit(&mut self, x: i64, y: i64, w: usize, scale: u32, colours: &[Rgb]) {
        let s = i64::from(scale);
        for (i, &c) in colours.iter().enumerate() {
            let (r, col) = ((i / w) as i64, (i % w) as i64);
            self.fill_rect(x + col * s, y + r * s, s, s, c);
        }
    }

    pub(crate) fn into_image(self) -> RgbImage {
        self.img
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawing_outside_is_clipped() {
        let mut c = Canvas::new(4, 3, WHITE);
        c.fill_rect(-1, 0, 1, 1, BLACK);
        c.fill_rect(4, 2, 1, 1, BLACK);
        c.fill_rect(-10, -10, 100, 1, BLACK);
        c.line((-5, -5), (10, 10), 3, BLACK);
        c.frame_around(0, 0, 4, 3, 2, RED);
        let img = c.into_image();
        assert_eq!(img.dimensions(), (4, 3));
        assert_eq!(img.get_pixel(1, 1).0, BLACK);
    }

    #[test]
    fn bresenham_hits_both_ends_and_stays_connected() {
        let mut c = Canvas::new(20, 10, WHITE);
        c.line((1, 2), (17, 8), 1, BLACK);
        let img = c.into_image();
        assert_eq!(img.get_pixel(1, 2).0, BLACK);
        assert_eq!(img.get_pixel(17, 8).0, BLACK);
        // One black pixel per column between the ends (a shallow line).
        for x in 1..=17 {
            let n = (0..10).filter(|&y| img.get_pixel(x, y).0 == BLACK).count();
            assert_eq!(n, 1, "column {x}");
        }
    }
}

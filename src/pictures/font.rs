//! Text drawn with the public-domain 8×8 bitmap font of the `font8x8` crate
//! (its `legacy::BASIC_LEGACY` table: printable ASCII), enlarged by an
//! integer factor.

use super::canvas::{Canvas, Rgb};
use font8x8::legacy::BASIC_LEGACY;

/// Width and height in pixels of one glyph at scale 1.
pub const GLYPH: usize = 8;

/// The width in pixels of `text` drawn at `scale` (every character is one
/// 8-pixel cell, so this is `8 · scale · chars`).
pub(crate) fn text_width(text: &str, scale: u32) -> usize {
    text.chars().count() * GLYPH * scale as usize
}

/// The 8 rows of the glyph for `ch`; characters outside printable ASCII are
/// drawn as `?`.
fn glyph(ch: char) -> [u8; 8] {
    let code = if (' '..='~').contains(&ch) {
        ch as usize
    } else {
        '?' as usize
    };
    BASIC_LEGACY[code]
}

/// Draws `text` with its top-left corner at `(x, y)`.
pub(crate) fn draw_text(canvas: &mut Canvas, x: i64, y: i64, text: &str, scale: u32, c: Rgb) {
    let s = i64::from(scale.max(1));
    for (i, ch) in text.chars().enumerate() {
        let x0 = x + i as i64 * GLYPH as i64 * s;
        for (row, bits) in glyph(ch).iter().enumerate() {
            for col in 0..GLYPH {
                // Bit 0 is the leftmost pixel.
                if bits & (1 << col) != 0 {
                    canvas.fill_rect(x0 + col as i64 * s, y + row as i64 * s, s, s, c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pictures::canvas::{BLACK, WHITE};

    #[test]
    fn glyphs_are_drawn_left_to_right() {
        // '1' in the 8×8 font has its vertical stroke in columns 2..4 and
        // nothing in column 7.
        let mut c = Canvas::new(8, 8, WHITE);
        draw_text(&mut c, 0, 0, "1", 1, BLACK);
        let img = c.into_image();
        let ink = |x: u32| (0..8).filter(|&y| img.get_pixel(x, y).0 == BLACK).count();
        assert!(ink(2) + ink(3) >= 6, "stroke of '1' missing");
        assert_eq!(ink(7), 0);
    }

    #[test]
    fn unknown_characters_become_question_marks() {
        assert_eq!(glyph('é'), glyph('?'));
        assert_eq!(glyph('\n'), glyph('?'));
        assert_ne!(glyph('A'), [0; 8]);
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        assert_eq!(text_width("é1", 1), 16);
        assert_eq!(text_width("", 3), 0);
    }
}

//! Pictures: the readers and `mnistify` on random and damaged bytes (an
//! `Err` naming the file or values in range, never a panic), and what
//! fuzzing found in them.
use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use static_nn::pictures::{mnistify, mnistify_image, read_image, read_image_raw, PicturesError};
use static_nn::prelude::*;

use crate::common::{noise, write};

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random bytes into the image readers and `mnistify`: `Err` naming the
    /// file (a JPEG start with random bytes may decode: then values stay in range).
    #[test]
    fn image_readers_reject_random_bytes(bytes in noise()) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x.png", &bytes);
        let dev = Cpu::default();
        let lenient = bytes.starts_with(&[0xff, 0xd8]);
        let results: [Result<Vec<f32>, PicturesError>; 4] = [
            read_image_raw(&p).map(|r| r.0),
            read_image::<1, 28, 28, _>(&p, &dev).map(|x| x.as_vec()),
            read_image::<3, 8, 8, _>(&p, &dev).map(|x| x.as_vec()),
            mnistify(&p).map(|x| x.to_vec()),
        ];
        for r in results {
            match r {
                Ok(v) => {
                    prop_assert!(lenient, "accepted {:?}", bytes);
                    prop_assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
                }
                Err(e) => {
                    prop_assert_eq!(e.path(), p.as_path());
                    prop_assert!(e.to_string().contains("x.png"));
                }
            }
        }
    }

    /// A valid PNG or JPEG with bytes changed: no panic, and what decodes
    /// stays in range.
    #[test]
    fn damaged_pictures_never_panic(
        jpeg in any::<bool>(), w in 1u32..24, h in 1u32..24,
        flips in vec((any::<prop::sample::Index>(), 1u8..), 1..4),
    ) {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 10) as u8, (y * 10) as u8, 128]));
        let mut bytes = std::io::Cursor::new(Vec::new());
        let fmt = if jpeg { image::ImageFormat::Jpeg } else { image::ImageFormat::Png };
        img.write_to(&mut bytes, fmt).unwrap();
        let mut bytes = bytes.into_inner();
        for (i, mask) in &flips {
            let i = i.index(bytes.len());
            bytes[i] ^= mask;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "d.img", &bytes);
        if let Ok((px, ph, pw)) = read_image_raw(&p) {
            prop_assert_eq!(px.len(), 3 * ph * pw);
            prop_assert!(px.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        if let Ok(x) = mnistify(&p) {
            prop_assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }

    /// `mnistify_image` on any small picture: `Ok` with values in `[0, 1]`
    /// or `Blank`, never a panic.
    #[test]
    fn mnistify_any_picture(w in 1u32..40, h in 1u32..40, seed in any::<u64>(), alpha in any::<bool>()) {
        let mut s = seed | 1;
        let mut next = move || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
        let img = image::RgbaImage::from_fn(w, h, |_, _| {
            let v = next();
            image::Rgba([v as u8, (v >> 8) as u8, (v >> 16) as u8, if alpha { (v >> 24) as u8 } else { 255 }])
        });
        match mnistify_image(&image::DynamicImage::ImageRgba8(img)) {
            Ok(x) => prop_assert!(x.iter().all(|v| (0.0..=1.0).contains(v))),
            Err(e) => prop_assert!(matches!(e, PicturesError::Blank { .. }), "{e}"),
        }
    }
}

// ------------------------------------------------------------ found by fuzzing

/// Found by fuzzing (`scripts/fuzz.sh image`, an out-of-memory after 86,000
/// runs): an 827-byte JPEG whose header announces 29456×2560 pixels (75 M),
/// which the decoder fills although the data is missing. `read_image_raw`
/// then allocated over 2 GB (float conversions at ~48 bytes a pixel), and a
/// slightly larger claim would take any machine down. Fixed in
/// `src/vis/io.rs` (`decode`): pictures of more than 2^25 pixels are refused
/// from their header, before decoding, with an error naming the file and
/// the size.
#[test]
fn a_tiny_jpeg_announcing_75_megapixels_is_refused_before_decoding() {
    use static_nn::pictures::{mnistify, read_image, read_image_raw, PicturesError};
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hardening/jpeg-29456x2560-in-827-bytes.jpg");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 827);
    let dev = Cpu::default();
    let errors: [PicturesError; 3] = [
        read_image_raw(&path).unwrap_err(),
        read_image::<1, 28, 28, _>(&path, &dev).unwrap_err(),
        mnistify(&path).unwrap_err(),
    ];
    for e in errors {
        assert!(matches!(e, PicturesError::BadInput { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("jpeg-29456x2560-in-827-bytes.jpg"), "{msg}");
        assert!(msg.contains("29456×2560 = 75407360 pixels"), "{msg}");
    }
}

/// Pictures up to the cap still read: a 4096×2048 PNG (8 M pixels).
#[test]
fn a_large_but_reasonable_picture_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.png");
    image::GrayImage::from_pixel(4096, 2048, image::Luma([200]))
        .save(&path)
        .unwrap();
    let (px, h, w) = static_nn::pictures::read_image_raw(&path).unwrap();
    assert_eq!((h, w, px.len()), (2048, 4096, 3 * 2048 * 4096));
}

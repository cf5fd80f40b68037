//! Image folders (torchvision's `ImageFolder` layout) made in a temporary
//! directory: PNGs and JPEGs of known colours, a corrupt PNG and a text
//! file. Checks the classes and their order, the conversion to grey and to
//! RGB, resizing, the named errors and the skip mode.

use std::path::Path;

use static_nn::data::{DataError, DataSource, ImageFolder, LoadOptions};

use crate::common::write;

fn png(dir: &Path, name: &str, img: image::DynamicImage) {
    std::fs::create_dir_all(dir).unwrap();
    img.save_with_format(dir.join(name), image::ImageFormat::Png)
        .unwrap();
}

fn jpeg(dir: &Path, name: &str, img: image::DynamicImage) {
    std::fs::create_dir_all(dir).unwrap();
    img.save_with_format(dir.join(name), image::ImageFormat::Jpeg)
        .unwrap();
}

fn rgb(w: u32, h: u32, c: [u8; 3]) -> image::DynamicImage {
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(w, h, image::Rgb(c)))
}

fn grey(w: u32, h: u32, v: u8) -> image::DynamicImage {
    image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(w, h, image::Luma([v])))
}

/// `train/{cat,dog}` and `test/{cat,dog}`: cats are red RGB PNGs (one with
/// alpha), dogs grey JPEGs; sizes vary.
fn good_folder() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    png(&r.join("train/cat"), "b.png", rgb(8, 6, [200, 10, 20]));
    png(&r.join("train/cat"), "a.png", rgb(4, 4, [10, 200, 30]));
    let rgba = image::RgbaImage::from_pixel(5, 5, image::Rgba([0, 0, 250, 7]));
    png(
        &r.join("train/cat"),
        "c.png",
        image::DynamicImage::ImageRgba8(rgba),
    );
    jpeg(&r.join("train/dog"), "x.jpg", grey(16, 16, 100));
    jpeg(&r.join("train/dog"), "y.JPEG", grey(3, 9, 180));
    png(&r.join("test/dog"), "z.png", grey(4, 4, 60));
    // hidden entries are ignored
    write(&r.join("train/cat"), ".DS_Store", b"junk");
    std::fs::create_dir_all(r.join("train/.ipynb_checkpoints")).unwrap();
    t
}

fn opts(dir: &Path, image: (usize, usize, usize)) -> LoadOptions {
    LoadOptions {
        dir: Some(dir.to_path_buf()),
        image: Some(image),
        ..LoadOptions::default()
    }
}

fn near(a: u8, b: u8, tol: u8) -> bool {
    a.abs_diff(b) <= tol
}

#[test]
fn classes_order_rgb_and_resizing() {
    let t = good_folder();
    let d = ImageFolder.load(&opts(t.path(), (3, 4, 4))).unwrap();
    assert_eq!(d.class_names, ["cat", "dog"]);
    assert_eq!(d.name, t.path().file_name().unwrap().to_string_lossy());
    assert_eq!((d.train.len(), d.test.len()), (5, 1));
    assert_eq!(d.train.labels, [0, 0, 0, 1, 1]);
    assert_eq!(d.test.labels, [1]);
    assert_eq!(d.train.image_shape(), (3, 4, 4));
    assert_eq!(d.train.classes, 2);
    // sorted: a.png (green), b.png (red, 8×6 resized), c.png (blue, alpha dropped)
    let plane = |i: usize, c: usize| &d.train.image(i)[c * 16..(c + 1) * 16];
    assert!(plane(0, 1).iter().all(|&v| v == 200) && plane(0, 0).iter().all(|&v| v == 10));
    assert!(plane(1, 0).iter().all(|&v| v == 200), "{:?}", plane(1, 0));
    assert!(plane(1, 1).iter().all(|&v| v == 10) && plane(1, 2).iter().all(|&v| v == 20));
    assert!(plane(2, 2).iter().all(|&v| v == 250) && plane(2, 0).iter().all(|&v| v == 0));
    // grey JPEG to RGB: three equal planes near its value
    let img = d.train.image(3);
    assert!(img.iter().all(|&v| near(v, 100, 3)), "{img:?}");
    assert_eq!(&img[..16], &img[16..32]);
    assert!(d.skipped.is_empty() && d.unverified.is_empty());
}

#[test]
fn rgb_to_grey_is_luma() {
    let t = good_folder();
    let d = ImageFolder.load(&opts(t.path(), (1, 2, 3))).unwrap();
    assert_eq!(d.train.image_shape(), (1, 2, 3));
    // Rec. 709 luma of (200, 10, 20): 0.2126·200 + 0.7152·10 + 0.0722·20 ≈ 51
    assert!(
        d.train.image(1).iter().all(|&v| near(v, 51, 1)),
        "{:?}",
        d.train.image(1)
    );
    assert!(d.train.image(4).iter().all(|&v| near(v, 180, 3)));
    assert_eq!(d.test.image(0), &[60; 6]);
}

#[test]
fn bad_files_are_named_or_skipped() {
    let t = good_folder();
    let cat = t.path().join("train/cat");
    let mut broken = std::fs::read(cat.join("a.png")).unwrap();
    broken.truncate(broken.len() / 2);
    write(&cat, "d.png", &broken);
    write(&t.path().join("train/dog"), "notes.txt", b"not a picture");
    let e = ImageFolder.load(&opts(t.path(), (3, 4, 4))).unwrap_err();
    assert!(
        matches!(e, DataError::BadImage { ref path, .. } if *path == cat.join("d.png")),
        "{e:?}"
    );
    assert!(e.to_string().starts_with(&format!(
        "{}: not a readable image: ",
        cat.join("d.png").display()
    )));

    let o = LoadOptions {
        skip_bad: true,
        ..opts(t.path(), (3, 4, 4))
    };
    let d = ImageFolder.load(&o).unwrap();
    assert_eq!(d.train.len(), 5);
    let skipped: Vec<_> = d.skipped.iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        skipped,
        [cat.join("d.png"), t.path().join("train/dog/notes.txt")]
    );
    assert_eq!(d.warnings().len(), 2);
    assert!(
        d.warnings()[1].contains("notes.txt: skipped: "),
        "{:?}",
        d.warnings()
    );

    // a class whose only file is bad is empty, even when skipping
    let bird = t.path().join("train/bird");
    std::fs::create_dir_all(&bird).unwrap();
    write(&bird, "x.png", b"junk");
    let e = ImageFolder.load(&o).unwrap_err();
    assert!(
        matches!(e, DataError::EmptyClass { ref dir, skipped: 1 } if *dir == bird),
        "{e:?}"
    );
}

#[test]
fn layout_errors_are_named() {
    let t = good_folder();
    let r = t.path();
    png(&r.join("test/horse"), "h.png", grey(2, 2, 1));
    let e = ImageFolder.load(&opts(r, (1, 4, 4))).unwrap_err();
    assert!(
        matches!(e, DataError::UnknownClass { ref class, .. } if class == "horse"),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("class \"horse\" is not among the training classes (cat, dog)"),
        "{e}"
    );
    std::fs::remove_dir_all(r.join("test/horse")).unwrap();

    std::fs::create_dir_all(r.join("train/empty")).unwrap();
    let e = ImageFolder.load(&opts(r, (1, 4, 4))).unwrap_err();
    assert!(
        matches!(e, DataError::EmptyClass { skipped: 0, .. }),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("train/empty: empty class folder"),
        "{e}"
    );

    let bare = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(bare.path().join("train")).unwrap();
    let e = ImageFolder.load(&opts(bare.path(), (1, 4, 4))).unwrap_err();
    assert!(matches!(e, DataError::NoClasses { .. }), "{e:?}");
    let e = ImageFolder
        .load(&opts(&bare.path().join("nope"), (1, 4, 4)))
        .unwrap_err();
    assert!(matches!(e, DataError::NotFound { .. }), "{e:?}");

    let e = ImageFolder.load(&LoadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::BadOptions { .. }), "{e:?}");
    let e = ImageFolder
        .load(&LoadOptions {
            image: None,
            ..opts(r, (1, 1, 1))
        })
        .unwrap_err();
    assert!(e.to_string().contains("no image shape given"), "{e}");
    let e = ImageFolder.load(&opts(r, (4, 8, 8))).unwrap_err();
    assert!(e.to_string().contains("4 channels"), "{e}");
}

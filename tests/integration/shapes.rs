//! Property tests: random bytes into every loader give `Err`, never a panic;
//! damaged valid files never panic; and the output-size formula agrees with
//! the type-level size, with brute-force counting, and with the real output
//! of `Conv2D`, `MaxPool2D` and `AvgPool2D` (typed layers on a grid of const
//! cases, runtime ops on random sizes, values against naive loops).

use std::io::Write;
use std::path::{Path, PathBuf};

use dfdx::shapes::ConstDim;
use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::collection::vec;
use proptest::prelude::*;
use static_nn::data::{
    encode_idx, read_idx_images, read_idx_labels, DatasetSpec, FileSpec, LabelledImages,
    LocateOptions, Mnist, Split, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,
};
use static_nn::ops::{Conv2DKernel, Conv2DOp, Pool2DKernel, Pool2DOp, PoolKind};
use static_nn::prelude::*;
use static_nn::shapes::{try_conv_output_size, ConvOut, ConvOutSize};
use static_nn::vis::{mnistify, mnistify_image, read_image, read_image_raw, VisError};
use static_nn::weights::{self, LoadOptions, WeightsError};

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Random bytes, sometimes behind a plausible start (an IDX magic and
/// dimensions, the gzip magic, a PNG or JPEG signature, a safetensors header
/// length), so the readers get past their first check.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    let prefixes: Vec<Vec<u8>> = vec![
        vec![],
        vec![0, 0, 8, 3],
        vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3],
        vec![0, 0, 8, 1],
        vec![0, 0, 8, 1, 0, 0, 0, 4],
        vec![0x1f, 0x8b, 8, 0],
        b"\x89PNG\r\n\x1a\n".to_vec(),
        vec![0xff, 0xd8, 0xff, 0xe0],
        vec![16, 0, 0, 0, 0, 0, 0, 0, b'{'],
    ];
    (prop::sample::select(prefixes), vec(any::<u8>(), 0..400)).prop_map(|(mut p, tail)| {
        p.extend(tail);
        p
    })
}

/// An independent check of an IDX file: gzip (by name or content) that
/// decompresses, the magic, the dimensions, the exact length, labels in 0..=9.
fn valid_idx(bytes: &[u8], magic: u32, gz_name: bool) -> bool {
    use std::io::Read;
    let content = if gz_name || bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let mut d = flate2::read::MultiGzDecoder::new(bytes);
        if bytes.is_empty() || d.read_to_end(&mut out).is_err() {
            return false;
        }
        out
    } else {
        bytes.to_vec()
    };
    let word = |i: usize| {
        content
            .get(4 * i..4 * i + 4)
            .map(|w| u32::from_be_bytes(w.try_into().unwrap()) as usize)
    };
    if word(0) != Some(magic as usize) {
        return false;
    }
    let ndims = (magic & 0xff) as usize;
    let Some(dims) = (1..=ndims).map(word).collect::<Option<Vec<usize>>>() else {
        return false;
    };
    let data = &content[4 + 4 * ndims..];
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) == Some(data.len())
        && (magic != IDX_LABELS_MAGIC || data.iter().all(|&l| l <= 9))
}

/// A spec for a data set of four files without checksums (so that the
/// content must parse to be accepted).
fn spec() -> DatasetSpec {
    let f = |n: &'static str| FileSpec::new(n, "", vec![]);
    DatasetSpec::new(
        "Fuzzy",
        "fuzzy",
        vec![],
        [
            f("a-images-idx3-ubyte.gz"),
            f("a-labels-idx1-ubyte.gz"),
            f("b-images-idx3-ubyte.gz"),
            f("b-labels-idx1-ubyte.gz"),
        ],
    )
}

type Net = LeNetClass;

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random bytes into the IDX readers, raw and gzip-named, alone or as a
    /// pair, and through `Mnist::load_split_with`: `Err`, unless the bytes
    /// happen to form a valid file (which an independent check confirms).
    #[test]
    fn idx_readers_reject_random_bytes(a in noise(), b in noise(), zipped in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = if zipped { (gz(&a), gz(&b)) } else { (a, b) };
        for name in ["x-idx3-ubyte", "x-idx3-ubyte.gz"] {
            let p = write(dir.path(), name, &a);
            let gz_name = name.ends_with(".gz");
            if let Ok((n, r, c, px)) = read_idx_images(&p) {
                prop_assert!(valid_idx(&a, IDX_IMAGES_MAGIC, gz_name), "accepted {:?}", a);
                prop_assert_eq!(px.len(), n * r * c);
            }
            if read_idx_labels(&p).is_ok() {
                prop_assert!(valid_idx(&a, IDX_LABELS_MAGIC, gz_name), "accepted {:?}", a);
            }
        }
        let both_valid = valid_idx(&a, IDX_IMAGES_MAGIC, true) && valid_idx(&b, IDX_LABELS_MAGIC, true);
        let pi = write(dir.path(), "a-images-idx3-ubyte.gz", &a);
        let pl = write(dir.path(), "a-labels-idx1-ubyte.gz", &b);
        if LabelledImages::from_files(&pi, &pl).is_ok() {
            prop_assert!(both_valid);
        }
        let opts = LocateOptions { dir: Some(dir.path().to_path_buf()), ..LocateOptions::default() };
        match Mnist::load_split_with(&spec(), &opts, Split::Train) {
            Ok(_) => prop_assert!(both_valid),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// An IDX header with small dimensions and a body of random length: `Ok`
    /// exactly when the length matches the header, raw and gzip alike.
    #[test]
    fn idx_length_must_match_the_header(
        n in 0u32..5, r in 1u32..5, c in 1u32..5, len in 0usize..120, zipped in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
        let raw = encode_idx(IDX_IMAGES_MAGIC, &[n, r, c], &body);
        let name = if zipped { "i.gz" } else { "i" };
        let p = write(dir.path(), name, &if zipped { gz(&raw) } else { raw });
        let res = read_idx_images(&p);
        prop_assert_eq!(res.is_ok(), len == (n * r * c) as usize, "{:?}", res.err());

        let labels: Vec<u8> = (0..len).map(|i| (i % 12) as u8).collect();
        let p = write(dir.path(), name, &{
            let raw = encode_idx(IDX_LABELS_MAGIC, &[n], &labels);
            if zipped { gz(&raw) } else { raw }
        });
        let ok = len == n as usize && labels.iter().all(|&l| l <= 9);
        prop_assert_eq!(read_idx_labels(&p).is_ok(), ok);
    }

    /// Random bytes into the weights loader, from a file and from memory,
    /// strict and not: always `Err`, and the model is unchanged.
    #[test]
    fn weights_loader_rejects_random_bytes(bytes in noise()) {
        let dev = Cpu::seed_from_u64(3);
        let mut net = dev.build_module::<Net, f32>();
        let before = weights::to_bytes(&net).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "w.safetensors", &bytes);
        prop_assert!(weights::load(&mut net, &p).is_err());
        let loose = LoadOptions::default().non_strict();
        let e = weights::load_from_bytes(&mut net, &bytes, &loose).unwrap_err();
        prop_assert!(matches!(e, WeightsError::Corrupt { .. }), "{e:?}");
        prop_assert_eq!(weights::to_bytes(&net).unwrap(), before);
    }

    /// A valid weights file with bytes changed or cut: no panic; on error the
    /// model is unchanged, and a file cut short is always an error.
    #[test]
    fn damaged_weights_files_never_panic(
        flips in vec((any::<prop::sample::Index>(), 1u8..), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        type Small = (Conv2D<1, 2, 3>, Linear<4, 3>);
        let dev = Cpu::seed_from_u64(4);
        let good = weights::to_bytes(&dev.build_module::<Small, f32>()).unwrap();
        let mut net = dev.build_module::<Small, f32>();
        let before = weights::to_bytes(&net).unwrap();
        let mut bad = good.clone();
        for (i, mask) in &flips {
            let i = i.index(bad.len());
            bad[i] ^= mask;
        }
        if weights::load_from_bytes(&mut net, &bad, &LoadOptions::default()).is_err() {
            prop_assert_eq!(weights::to_bytes(&net).unwrap(), before.clone());
        }
        let k = cut.index(good.len());
        let mut fresh = dev.build_module::<Small, f32>();
        let e = weights::load_from_bytes(&mut fresh, &good[..k], &LoadOptions::default());
        prop_assert!(e.is_err());
    }

    /// Random bytes into the image readers and `mnistify`: `Err` naming the
    /// file (a JPEG start with random bytes may decode: then values stay in range).
    #[test]
    fn image_readers_reject_random_bytes(bytes in noise()) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x.png", &bytes);
        let dev = Cpu::default();
        let lenient = bytes.starts_with(&[0xff, 0xd8]);
        let results: [Result<Vec<f32>, VisError>; 4] = [
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
            Err(e) => prop_assert!(matches!(e, VisError::Blank { .. }), "{e}"),
        }
    }
}

// ------------------------------------------------------------ output sizes

/// Output positions counted one by one: windows that fit the padded input.
fn brute_force_size(input: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    if stride == 0 || kernel == 0 {
        return None;
    }
    let n = (0..=input + 2 * padding)
        .take_while(|o| o * stride + kernel <= input + 2 * padding)
        .count();
    (n > 0).then_some(n)
}

fn typed_size<const H: usize, const K: usize, const S: usize, const P: usize>() -> usize
where
    Const<H>: ConvOut<K, S, P, ()>,
{
    <ConvOutSize<H, K, S, P, ()> as ConstDim>::SIZE
}

/// `check(H, K, S, P)` for every combination of the lists.
macro_rules! size_grid {
    ($check:ident; [$($h:literal),*]; $ks:tt; $ss:tt; $ps:tt) => { $( size_grid!(@h $check; $h; $ks; $ss; $ps); )* };
    (@h $check:ident; $h:literal; [$($k:literal),*]; $ss:tt; $ps:tt) => { $( size_grid!(@k $check; $h; $k; $ss; $ps); )* };
    (@k $check:ident; $h:literal; $k:literal; [$($s:literal),*]; $ps:tt) => { $( size_grid!(@s $check; $h; $k; $s; $ps); )* };
    (@s $check:ident; $h:literal; $k:literal; $s:literal; [$($p:literal),*]) => { $( $check!($h, $k, $s, $p); )* };
}

#[test]
fn type_level_size_agrees_with_the_const_fn_on_a_grid() {
    let mut n = 0;
    macro_rules! check {
        ($h:literal, $k:literal, $s:literal, $p:literal) => {{
            let typed = typed_size::<$h, $k, $s, $p>();
            assert_eq!(
                typed,
                conv_output_size($h, $k, $s, $p),
                "H={} K={} S={} P={}",
                $h,
                $k,
                $s,
                $p
            );
            assert_eq!(Some(typed), brute_force_size($h, $k, $s, $p));
            n += 1;
        }};
    }
    size_grid!(check; [5, 6, 7, 9, 14, 28, 31, 100]; [1, 2, 3, 5]; [1, 2, 3, 4]; [0, 1, 2]);
    // kernels larger than the input, which fit only thanks to the padding
    size_grid!(check; [1, 2, 3]; [4, 5]; [1, 2]; [2, 3]);
    assert_eq!(n, 8 * 4 * 4 * 3 + 3 * 2 * 2 * 2);
}

/// Builds one typed layer of each kind for `(H, W, K, S, P)` and checks that
/// its output dims are the const fn's, and that its values are the naive loops'.
macro_rules! layer_case {
    ($h:literal, $w:literal, $k:literal, $s:literal, $p:literal) => {{
        let dev = Cpu::seed_from_u64($h * 1000 + $k * 100 + $s * 10 + $p);
        let x: Tensor<Rank4<2, 3, $h, $w>, f32, _> = dev.sample_normal();
        let (ho, wo) = (
            conv_output_size($h, $k, $s, $p),
            conv_output_size($w, $k, $s, $p),
        );

        let conv = dev.build_module::<Conv2D<3, 4, $k, $s, $p>, f32>();
        let y = conv.forward(x.clone());
        assert_eq!(
            y.shape().concrete(),
            [2, 4, ho, wo],
            "Conv2D H={} W={} K={} S={} P={}",
            $h,
            $w,
            $k,
            $s,
            $p
        );
        let op = Conv2DOp::new(2, 3, 4, ($h, $w), ($k, $k), $s, $p).unwrap();
        assert_close(
            &y.as_vec(),
            &naive_conv(&op, &x.as_vec(), &conv.weight.as_vec(), &conv.bias.as_vec()),
        );

        let y = MaxPool2D::<$k, $s, $p>.forward(x.clone());
        assert_eq!(
            y.shape().concrete(),
            [2, 3, ho, wo],
            "MaxPool2D H={} W={} K={} S={} P={}",
            $h,
            $w,
            $k,
            $s,
            $p
        );
        let op = Pool2DOp::new(PoolKind::Max, 6, ($h, $w), $k, $s, $p).unwrap();
        assert_close(&y.as_vec(), &naive_pool(&op, &x.as_vec()));

        let y = AvgPool2D::<$k, $s, $p>.forward(x.clone());
        assert_eq!(
            y.shape().concrete(),
            [2, 3, ho, wo],
            "AvgPool2D H={} W={} K={} S={} P={}",
            $h,
            $w,
            $k,
            $s,
            $p
        );
        let op = Pool2DOp::new(PoolKind::Avg, 6, ($h, $w), $k, $s, $p).unwrap();
        assert_close(&y.as_vec(), &naive_pool(&op, &x.as_vec()));
    }};
}

#[test]
fn typed_layers_output_what_the_const_fn_says() {
    // (H, W, K, S, P), pooling needs 2P <= K
    layer_case!(28, 28, 5, 1, 2);
    layer_case!(28, 28, 2, 2, 0);
    layer_case!(14, 14, 5, 1, 0);
    layer_case!(10, 10, 2, 2, 0);
    layer_case!(7, 9, 3, 2, 1);
    layer_case!(8, 5, 3, 3, 0);
    layer_case!(5, 12, 4, 1, 2);
    layer_case!(3, 3, 2, 2, 1);
    layer_case!(1, 1, 1, 1, 0);
    layer_case!(2, 7, 2, 1, 1);
    layer_case!(11, 6, 3, 4, 1);
    layer_case!(9, 9, 5, 2, 2);
    layer_case!(6, 13, 4, 3, 2);
    layer_case!(1, 2, 5, 1, 2);
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "element {i}: {g} vs {w}"
        );
    }
}

/// Cross-correlation by the definition.
#[allow(clippy::needless_range_loop)] // the definition, index by index
fn naive_conv(op: &Conv2DOp, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let mut y = Vec::with_capacity(op.batch * op.chan_out * op.h_out * op.w_out);
    for n in 0..op.batch {
        for co in 0..op.chan_out {
            for oy in 0..op.h_out {
                for ox in 0..op.w_out {
                    let mut acc = b[co];
                    for ci in 0..op.chan_in {
                        for ky in 0..op.kh {
                            for kx in 0..op.kw {
                                let iy = (oy * op.stride + ky) as isize - op.padding as isize;
                                let ix = (ox * op.stride + kx) as isize - op.padding as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= op.h_in as isize
                                    || ix >= op.w_in as isize
                                {
                                    continue;
                                }
                                let xi = ((n * op.chan_in + ci) * op.h_in + iy as usize) * op.w_in
                                    + ix as usize;
                                let wi = ((co * op.chan_in + ci) * op.kh + ky) * op.kw + kx;
                                acc += x[xi] * w[wi];
                            }
                        }
                    }
                    y.push(acc);
                }
            }
        }
    }
    y
}

/// Max (padding is −∞) or average (padding counts as 0, divisor K²) by the definition.
fn naive_pool(op: &Pool2DOp, x: &[f32]) -> Vec<f32> {
    let mut y = Vec::new();
    for p in 0..op.planes {
        for oy in 0..op.h_out {
            for ox in 0..op.w_out {
                let mut max = f32::NEG_INFINITY;
                let mut sum = 0.0;
                for ky in 0..op.kernel {
                    for kx in 0..op.kernel {
                        let iy = (oy * op.stride + ky) as isize - op.padding as isize;
                        let ix = (ox * op.stride + kx) as isize - op.padding as isize;
                        if iy < 0 || ix < 0 || iy >= op.h_in as isize || ix >= op.w_in as isize {
                            continue;
                        }
                        let v = x[(p * op.h_in + iy as usize) * op.w_in + ix as usize];
                        max = max.max(v);
                        sum += v;
                    }
                }
                y.push(match op.kind {
                    PoolKind::Max => max,
                    PoolKind::Avg => sum / (op.kernel * op.kernel) as f32,
                });
            }
        }
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    /// The const fn against counting, for any sizes (including kernels that
    /// do not fit and a zero stride).
    #[test]
    fn const_fn_agrees_with_counting(h in 0usize..300, k in 0usize..40, s in 0usize..9, p in 0usize..20) {
        prop_assert_eq!(try_conv_output_size(h, k, s, p), brute_force_size(h, k, s, p));
    }

    /// The runtime convolution on random sizes: the op's output size is the
    /// const fn's, and the values are the definition's.
    #[test]
    fn runtime_conv_matches_the_formula_and_the_definition(
        batch in 1usize..3, ci in 1usize..4, co in 1usize..4,
        h in 1usize..13, w in 1usize..13, kh in 1usize..6, kw in 1usize..6,
        stride in 1usize..5, padding in 0usize..3, seed in any::<u64>(),
    ) {
        let op = Conv2DOp::new(batch, ci, co, (h, w), (kh, kw), stride, padding);
        let (Some(ho), Some(wo)) = (try_conv_output_size(h, kh, stride, padding), try_conv_output_size(w, kw, stride, padding)) else {
            prop_assert!(op.is_none());
            return Ok(());
        };
        let op = op.unwrap();
        prop_assert_eq!((op.h_out, op.w_out), (ho, wo));
        let dev = Cpu::seed_from_u64(seed);
        let x: Tensor<(usize, usize, usize, usize), f32, _> = dev.sample_normal_like(&(batch, ci, h, w));
        let wt: Tensor<(usize, usize, usize, usize), f32, _> = dev.sample_normal_like(&(co, ci, kh, kw));
        let b: Tensor<(usize,), f32, _> = dev.sample_normal_like(&(co,));
        let y = Cpu::try_conv2d(op, x.clone(), &wt, &b, (batch, co, ho, wo)).unwrap();
        prop_assert_eq!(y.shape().concrete(), [batch, co, ho, wo]);
        let want = naive_conv(&op, &x.as_vec(), &wt.as_vec(), &b.as_vec());
        assert_close(&y.as_vec(), &want);
    }

    /// The runtime max and average pooling on random sizes, likewise.
    #[test]
    fn runtime_pool_matches_the_formula_and_the_definition(
        max in any::<bool>(), planes in 1usize..5, h in 1usize..13, w in 1usize..13,
        kernel in 1usize..6, stride in 1usize..5, padding in 0usize..3, seed in any::<u64>(),
    ) {
        let kind = if max { PoolKind::Max } else { PoolKind::Avg };
        let op = Pool2DOp::new(kind, planes, (h, w), kernel, stride, padding);
        let sizes = (try_conv_output_size(h, kernel, stride, padding), try_conv_output_size(w, kernel, stride, padding));
        let (Some(ho), Some(wo)) = sizes else {
            prop_assert!(op.is_none());
            return Ok(());
        };
        if 2 * padding > kernel {
            prop_assert!(op.is_none());
            return Ok(());
        }
        let op = op.unwrap();
        prop_assert_eq!((op.h_out, op.w_out), (ho, wo));
        let dev = Cpu::seed_from_u64(seed);
        let x: Tensor<(usize, usize, usize), f32, _> = dev.sample_normal_like(&(planes, h, w));
        let y = Cpu::try_pool2d(op, x.clone(), (planes, ho, wo)).unwrap();
        prop_assert_eq!(y.shape().concrete(), [planes, ho, wo]);
        assert_close(&y.as_vec(), &naive_pool(&op, &x.as_vec()));
    }
}

//! The notebook's image sections, step by step, with typed tensors.
//!
//! ```text
//! cargo run --example tutorial                          # built-in test picture
//! cargo run --example tutorial -- --photo astronaut.png --kernel-size 9
//! cargo run --example tutorial -- --out /tmp/tutorial
//! ```
//!
//! It walks "Images with PyTorch", "Cross-Correlation", "Kernels",
//! "Padding & Stride", "Multiple Channels" and "Pooling" in order, prints
//! every tensor the notebook prints (same values, PyTorch's bracket form)
//! and writes the pictures into `--out` (default `out/tutorial`):
//!
//! | file | picture |
//! |---|---|
//! | `01_random_gray.png`, `01_random_rgb.png` | random 6×6 grey and RGB images |
//! | `02_cross_correlation.png` | image, kernel, output |
//! | `03_edge_image.png`, `03_edge_map.png` | the 6×8 edge image; its edge map (blue −1, red +1) |
//! | `03_learned_kernel.png`, `03_learned_loss.png` | the learned 1×2 kernel and its loss curve |
//! | `03_photo_original.png`, `_blurred`, `_gaussian`, `_edges`, `_edge_kernel` | the photo (or built-in picture) and its filters |
//! | `03_photo.png` | the four side by side |
//! | `04_padding.png`, `04_padding_stride.png` | padded image; padding and stride results |
//! | `05_channels.png` | the 2-channel image, its kernels, the output |
//! | `06_pooling.png` | the image, max pooling, average pooling |
use clap::Parser;
use static_nn::nn::{Conv2DModule, OutputShape};
use static_nn::pictures::{save_gray_png, save_grid_png, save_line_plot, save_signed_png, Panel};
use static_nn::prelude::*;
use static_nn::tutorial::kernels::{self, default_sigma, EDGE};
use static_nn::tutorial::photo::{self, MAX_PHOTO_SIDE};
use static_nn::tutorial::reference::{corr2d, corr2d_with, pool2d_ref, PoolKind};
use static_nn::tutorial::tensors::{
    arange, edge_image, flatten_1d, flatten_2d, flatten_3d, random_gray, random_rgb,
    NOTEBOOK_RANDOM_6X6,
};
use static_nn::tutorial::{learn_edge_kernel, pad, show, Chw, TutorialError};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Walk the notebook's image operations and write their pictures.
#[derive(Parser, Debug)]
#[command(about, long_about = None)]
struct Args {
    /// Output directory for the PNGs.
    #[arg(long, default_value = "out/tutorial")]
    out: PathBuf,
    /// A PNG or JPEG photo to blur and find edges in (the notebook uses
    /// scikit-image's astronaut). Without it, a built-in test picture.
    #[arg(long)]
    photo: Option<PathBuf>,
    /// Size of the box and Gaussian blur kernels (odd, 1 to 31).
    #[arg(long, default_value_t = 5, value_parser = odd_size)]
    kernel_size: usize,
    /// Seed for the random images and the learned kernel's initial weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn odd_size(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if n % 2 == 1 && n <= 31 {
        Ok(n)
    } else {
        Err(format!(
            "the kernel size must be odd and at most 31 (it has a middle pixel), not {n}"
        ))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res = Result<(), Box<dyn Error>>;

fn section(title: &str) {
    println!("\n=== {title} ===\n");
}

/// One grey panel per one-channel image (or RGB for three channels).
fn panel<'a>(img: &'a Chw, title: impl Into<String>) -> Panel<'a> {
    let (_, h, w) = img.shape();
    Panel::new(img.data(), h, w, title)
}

/// A small matrix made big enough to see: each value becomes a
/// `scale`×`scale` block, inside a one-pixel mid-grey frame so that white
/// cells stand out from the white page (grey images are shown from their
/// minimum to their maximum, so mid-grey is half way).
fn framed(img: &Chw, scale: usize) -> Result<Chw, TutorialError> {
    let (c, h, w) = img.shape();
    let (lo, hi) = img.range().unwrap_or((0.0, 1.0));
    let mid = if c == 3 { 0.5 } else { (lo + hi) / 2.0 };
    let (fh, fw) = (h * scale + 2, w * scale + 2);
    let mut data = vec![mid; c * fh * fw];
    for ch in 0..c {
        for i in 0..h * scale {
            for j in 0..w * scale {
                data[(ch * fh + i + 1) * fw + j + 1] = img.at(ch, i / scale, j / scale);
            }
        }
    }
    Chw::new(c, fh, fw, data)
}

/// A grid of small matrices, each framed and enlarged, with titles.
fn save_matrices(path: &Path, items: &[(&Chw, &str)]) -> Res {
    let big = items
        .iter()
        .map(|(m, _)| framed(m, 8))
        .collect::<Result<Vec<_>, _>>()?;
    let panels: Vec<Panel> = big
        .iter()
        .zip(items)
        .map(|(b, (_, title))| panel(b, *title))
        .collect();
    save_grid_png(path, &panels, panels.len(), 4)?;
    Ok(())
}

fn run(args: &Args) -> Res {
    let start = Instant::now();
    let out = &args.out;
    std::fs::create_dir_all(out)
        .map_err(|e| format!("cannot create the output folder {}: {e}", out.display()))?;
    let dev = Cpu::seed_from_u64(args.seed);
    // read the photo first, so that a bad path fails before any output
    let picture = match &args.photo {
        Some(path) => Picture {
            img: photo::load_grey(path, MAX_PHOTO_SIDE)?,
            name: path.display().to_string(),
        },
        None => Picture {
            img: photo::test_picture(256, 256),
            name: "built-in test picture".into(),
        },
    };

    images(&dev, out)?;
    cross_correlation(&dev, out)?;
    kernels_section(&dev, out, args, &picture)?;
    padding_and_stride(&dev, out)?;
    multiple_channels(&dev, out)?;
    pooling(&dev, out)?;

    println!(
        "\nwrote the pictures to {} in {:.1} s",
        out.display(),
        start.elapsed().as_secs_f32()
    );
    Ok(())
}

fn images(dev: &Cpu, out: &Path) -> Res {
    section("Images with PyTorch");
    println!("img = torch.rand((C, H, W))   # C = 1 (grey), H = W = 6");
    let grey: Tensor<Rank3<1, 6, 6>, f32, _> = random_gray(dev);
    println!("{}", show(&grey));
    let rgb: Tensor<Rank3<3, 6, 6>, f32, _> = random_rgb(dev);
    save_matrices(
        &out.join("01_random_gray.png"),
        &[(&Chw::from_tensor(&grey), "grey (1, 6, 6)")],
    )?;
    save_matrices(
        &out.join("01_random_rgb.png"),
        &[(&Chw::from_tensor(&rgb), "RGB (3, 6, 6)")],
    )?;

    println!("\nThe notebook's draw was:");
    let img: Tensor<Rank3<1, 6, 6>, f32, _> = dev.tensor(NOTEBOOK_RANDOM_6X6);
    println!("{}", show(&img));
    println!(
        "\nExercise: a 6×6 grey image flattens to 6·6 = {} values:",
        <Rank3<1, 6, 6> as ConstShape>::NUMEL
    );
    let a: Tensor<(Flat<1, 6, 6>,), f32, _> = flatten_1d(img.clone());
    let b: Tensor<(Const<1>, Flat<1, 6, 6>), f32, _> = flatten_2d(img.clone());
    let c: Tensor<(Const<1>, Const<1>, Flat<1, 6, 6>), f32, _> = flatten_3d(img);
    println!("img.reshape(-1).shape       = {:?}", a.shape().concrete());
    println!("img.reshape(1, -1).shape    = {:?}", b.shape().concrete());
    println!("img.reshape(1, 1, -1).shape = {:?}", c.shape().concrete());
    println!("img.reshape(1, 1, -1)\n{}", show(&c));
    println!(
        "\nX_train[0].numel()  # 1x28x28\n{}",
        <Rank3<1, 28, 28> as ConstShape>::NUMEL
    );
    Ok(())
}

fn cross_correlation(dev: &Cpu, out: &Path) -> Res {
    section("Cross-Correlation Operation");
    let img = Chw::from_array(arange::<3, 3>(0.0));
    let kernel = Chw::from_array([[[0.0, 1.0], [2.0, 3.0]]]);
    println!("img, kernel\n{}\n{}", img.show(), kernel.show());
    let (_, h, w) = img.shape();
    let (_, kh, kw) = kernel.shape();
    println!(
        "horizontal_steps = {}, vertical_steps = {}",
        h - kh + 1,
        w - kw + 1
    );
    let by_hand = corr2d(&img, &kernel)?;
    println!("\nby hand (the double loop):\n{}", by_hand.show());
    let conv =
        Conv2DModule::<1, 1, 2, 2, 1, 0, f32, Cpu>::from_kernel(dev, [[[[0.0, 1.0], [2.0, 3.0]]]]);
    let y: Tensor<Rank3<1, 2, 2>, f32, _> = conv.forward(dev.tensor(arange::<3, 3>(0.0)));
    println!("\nF.conv2d (the Conv2D layer):\n{}", show(&y));
    save_matrices(
        &out.join("02_cross_correlation.png"),
        &[(&img, "image"), (&kernel, "kernel"), (&by_hand, "output")],
    )?;
    Ok(())
}

/// The photo to filter, grey, and what to call it.
struct Picture {
    img: Chw,
    name: String,
}

fn kernels_section(dev: &Cpu, out: &Path, args: &Args, picture: &Picture) -> Res {
    section("Kernels");
    let img: Tensor<Rank3<1, 6, 8>, f32, _> = dev.tensor(edge_image());
    println!("img, img.shape\n{}", show(&img));
    save_matrices(
        &out.join("03_edge_image.png"),
        &[(&Chw::from_tensor(&img), "edge image (1, 6, 8)")],
    )?;

    println!("\nkernel = [[[1.0, -1.0]]]");
    let conv = Conv2DModule::<1, 1, 1, 2, 1, 0, f32, Cpu>::from_kernel(dev, [[EDGE]]);
    let edges: Tensor<Rank3<1, 6, 7>, f32, _> = conv.forward(img.clone());
    println!("out, out.shape\n{}", show(&edges));
    let by_hand = corr2d(&Chw::from_tensor(&img), &kernels::edge())?;
    assert_eq!(by_hand.data(), edges.as_vec().as_slice());
    save_signed_png(&out.join("03_edge_map.png"), &edges.as_vec(), 6, 7, 32)?;

    println!("\nLearning the kernel: LazyConv2DRect<1, 1, 2> on (1, 6, 8), SGD lr 0.01,");
    println!("loss = sum((preds - y)**2)");
    let learned = learn_edge_kernel(100, 0.01, args.seed)?;
    for (e, loss) in learned.losses.iter().enumerate() {
        if e == 0 || (e + 1) % 10 == 0 {
            println!("Epoch: {}/100, Loss: {loss:.4}", e + 1);
        }
    }
    println!(
        "Learned Kernel: {}\nLearned bias: {:.4}",
        static_nn::tutorial::show_values(&[1, 1, 1, 2], &learned.kernel),
        learned.bias
    );
    save_signed_png(
        &out.join("03_learned_kernel.png"),
        &learned.kernel,
        1,
        2,
        48,
    )?;
    save_line_plot(
        &out.join("03_learned_loss.png"),
        "learning the edge kernel (SGD, lr 0.01)",
        &[("sum of squared errors", &learned.losses)],
    )?;

    photo_filters(out, args.kernel_size, picture)
}

fn photo_filters(out: &Path, k: usize, picture: &Picture) -> Res {
    let (img, name) = (&picture.img, &picture.name);
    let (_, h, w) = img.shape();
    println!("\nThe photo: {name}, grey (1, {h}, {w})");
    let blur = kernels::box_blur(k)?;
    let sigma = default_sigma(k);
    let gauss = kernels::gaussian_blur(k, sigma)?;
    println!(
        "blur_kernel: {k}×{k} of 1/{k}² (the notebook's `* 1/H*W` is 1, a sum); \
         gaussian: the true Gaussian, sigma {sigma:.2} (the notebook fills it with torch.normal noise)"
    );
    if k <= 7 {
        println!(
            "gaussian_blur_kernel ({k}×{k}, sigma {sigma:.2})\n{}",
            gauss.show()
        );
    }
    let blurred = corr2d(img, &blur)?;
    let gaussian = corr2d(img, &gauss)?;
    let sobel = kernels::sobel_magnitude(img)?;
    let edge = corr2d(img, &kernels::edge())?;
    let size = |c: &Chw| {
        let (c, h, w) = c.shape();
        format!("({c}, {h}, {w})")
    };
    println!(
        "a {k}×{k} kernel: (1, {h}, {w}) → blurred {}, gaussian {}; edges (Sobel 3×3) {}, [1, -1] {}",
        size(&blurred),
        size(&gaussian),
        size(&sobel),
        size(&edge)
    );
    let (_, eh, ew) = edge.shape();
    save_gray_png(
        &out.join("03_photo_original.png"),
        img.data(),
        h,
        w,
        Some((0.0, 1.0)),
    )?;
    let save = |file: &str, c: &Chw, range| -> Result<(), TutorialError> {
        let (_, h, w) = c.shape();
        Ok(save_gray_png(&out.join(file), c.data(), h, w, range)?)
    };
    save("03_photo_blurred.png", &blurred, Some((0.0, 1.0)))?;
    save("03_photo_gaussian.png", &gaussian, Some((0.0, 1.0)))?;
    save("03_photo_edges.png", &sobel, None)?;
    save_signed_png(
        &out.join("03_photo_edge_kernel.png"),
        edge.data(),
        eh,
        ew,
        1,
    )?;
    save_grid_png(
        &out.join("03_photo.png"),
        &[
            panel(img, "original"),
            panel(&blurred, format!("blurred {k}x{k}")),
            panel(&gaussian, format!("gaussian {k}x{k}")),
            panel(&sobel, "edges (Sobel)"),
        ],
        4,
        1,
    )?;
    Ok(())
}

fn padding_and_stride(dev: &Cpu, out: &Path) -> Res {
    section("Padding & Stride");
    let img: Tensor<Rank3<1, 3, 3>, f32, _> = dev.tensor(arange::<3, 3>(1.0));
    // F.pad(img, (1, 1, 1, 1)); the 5×5 is in the type
    let padded: Tensor<Rank3<1, 5, 5>, f32, _> = pad::<1, 1, 3, 3, _>(&img);
    println!(
        "img\n{}\npadded_img = F.pad(img, (1, 1, 1, 1))\n{}",
        show(&img),
        show(&padded)
    );
    let (ci, cp) = (Chw::from_tensor(&img), Chw::from_tensor(&padded));
    save_matrices(
        &out.join("04_padding.png"),
        &[(&ci, "img"), (&cp, "padded_img")],
    )?;

    let ones = [[[[1.0f32; 2]; 2]]];
    let manual: Tensor<Rank3<1, 4, 4>, f32, _> =
        Conv2DModule::<1, 1, 2, 2, 1, 0, f32, Cpu>::from_kernel(dev, ones).forward(padded);
    let padding: Tensor<Rank3<1, 4, 4>, f32, _> =
        Conv2DModule::<1, 1, 2, 2, 1, 1, f32, Cpu>::from_kernel(dev, ones).forward(img.clone());
    let stride: Tensor<Rank3<1, 2, 2>, f32, _> =
        Conv2DModule::<1, 1, 2, 2, 2, 1, f32, Cpu>::from_kernel(dev, ones).forward(img.clone());
    println!("\nmanual_padding\n{}", show(&manual));
    println!("conv2d_padding (padding=1)\n{}", show(&padding));
    println!("conv2d_stride (padding=1, stride=2)\n{}", show(&stride));
    let by_hand = corr2d_with(&ci, &Chw::from_array(ones[0]), 2, 1)?;
    println!("strided, by hand\n{}", by_hand.show());
    let (m, p, s) = (
        Chw::from_tensor(&manual),
        Chw::from_tensor(&padding),
        Chw::from_tensor(&stride),
    );
    save_matrices(
        &out.join("04_padding_stride.png"),
        &[(&m, "manual_padding"), (&p, "padding=1"), (&s, "stride=2")],
    )?;

    println!("\nExercise: output size and features after flattening, for 100 random RGB images");
    println!("out = (input - kernel + 2·padding) / stride + 1, from the types:");
    type A = OutputShape<(Conv2D<3, 1, 3, 1, 0>, Flatten), Rank3<3, 30, 30>>;
    type B = OutputShape<(Conv2D<3, 1, 5, 2, 1>, Flatten), Rank3<3, 224, 224>>;
    type C = OutputShape<(Conv2D<3, 1, 7, 3, 2>, Flatten), Rank3<3, 528, 528>>;
    println!("| image   | kernel | stride | padding | output  | features/image | 100 images |");
    for (size, k, s, p, feats) in [
        (30, 3, 1, 0, A::NUMEL),
        (224, 5, 2, 1, B::NUMEL),
        (528, 7, 3, 2, C::NUMEL),
    ] {
        let o = conv_output_size(size, k, s, p);
        println!(
            "| {size:>3}×{size:<3} | {k}×{k}    | {s}      | {p}       | {o:>3}×{o:<3} | {feats:>14} | {:>10} |",
            100 * feats
        );
    }
    // and really, for the first case
    let conv = dev.build_module::<Conv2D<3, 1, 3, 1, 0>, f32>();
    let x: Tensor<Rank4<100, 3, 30, 30>, f32, _> = dev.sample_uniform();
    let y: Tensor<(Const<100>, Flat<1, 28, 28>), f32, _> = Flatten.forward(conv.forward(x));
    println!(
        "100 random 3×30×30 images → Conv2D<3, 1, 3> → Flatten: {:?}",
        y.shape().concrete()
    );
    Ok(())
}

fn two_channel_image() -> [[[f32; 3]; 3]; 2] {
    [arange::<3, 3>(0.0)[0], arange::<3, 3>(1.0)[0]]
}

fn two_channel_kernel(i: f32) -> [[[f32; 2]; 2]; 2] {
    let k = |s: f32| [[s + i, s + 1.0 + i], [s + 2.0 + i, s + 3.0 + i]];
    [k(0.0), k(1.0)]
}

fn multiple_channels(dev: &Cpu, out: &Path) -> Res {
    section("Multiple Channels");
    let img: Tensor<Rank4<1, 2, 3, 3>, f32, _> = dev.tensor([two_channel_image()]);
    println!("img\n{}", show(&img));
    let kernels: Tensor<Rank4<1, 2, 2, 2>, f32, _> = dev.tensor([two_channel_kernel(0.0)]);
    println!("kernels\n{}", show(&kernels));
    let (ci, ck) = (
        Chw::from_array(two_channel_image()),
        Chw::from_array(two_channel_kernel(0.0)),
    );
    let conv1 = corr2d(&ci.channel(0)?, &ck.channel(0)?)?;
    let conv2 = corr2d(&ci.channel(1)?, &ck.channel(1)?)?;
    let sum = conv1.add(&conv2)?;
    println!("conv1 + conv2\n{}", sum.show());
    let layer =
        Conv2DModule::<2, 1, 2, 2, 1, 0, f32, Cpu>::from_kernel(dev, [two_channel_kernel(0.0)]);
    let y = layer.forward(img.clone());
    println!("# or equivalently\nF.conv2d(img, kernels)\n{}", show(&y));
    let three = Conv2DModule::<2, 3, 2, 2, 1, 0, f32, Cpu>::from_kernel(
        dev,
        [
            two_channel_kernel(0.0),
            two_channel_kernel(1.0),
            two_channel_kernel(2.0),
        ],
    );
    // the notebook concatenates along dim 0: (3, 1, 2, 2)
    let cat: Tensor<Rank4<3, 1, 2, 2>, f32, _> = three.forward(img).reshape();
    println!(
        "torch.cat([F.conv2d(img, kernels+i) for i in range(3)], dim=0)\n{}",
        show(&cat)
    );
    let (c0, c1) = (ci.channel(0)?, ci.channel(1)?);
    let (k0, k1) = (ck.channel(0)?, ck.channel(1)?);
    save_matrices(
        &out.join("05_channels.png"),
        &[
            (&c0, "img[0]"),
            (&c1, "img[1]"),
            (&k0, "kernel[0]"),
            (&k1, "kernel[1]"),
            (&sum, "conv1 + conv2"),
        ],
    )?;
    Ok(())
}

fn pooling(dev: &Cpu, out: &Path) -> Res {
    section("Maximum & Average Pooling");
    let channel: Tensor<Rank3<1, 3, 3>, f32, _> = dev.tensor(arange::<3, 3>(0.0));
    println!("img_channel\n{}", show(&channel));
    let c = Chw::from_tensor(&channel);
    let max = pool2d_ref(&c, 2, 1, 0, PoolKind::Max)?;
    let avg = pool2d_ref(&c, 2, 1, 0, PoolKind::Avg)?;
    println!("by hand, operation = 'max'\n{}", max.show());
    println!("by hand, operation = 'avg'\n{}", avg.show());
    println!(
        "# or equivalently\nMaxPool2D::<2, 1>\n{}",
        show(&MaxPool2D::<2, 1>.forward(channel.clone()))
    );
    println!(
        "AvgPool2D::<2, 1>\n{}",
        show(&AvgPool2D::<2, 1>.forward(channel))
    );
    let img: Tensor<Rank4<1, 2, 3, 3>, f32, _> = dev.tensor([two_channel_image()]);
    println!(
        "MaxPool2D::<2, 1> on both channels\n{}",
        show(&MaxPool2D::<2, 1>.forward(img))
    );
    save_matrices(
        &out.join("06_pooling.png"),
        &[
            (&c, "img_channel"),
            (&max, "max pool 2x2"),
            (&avg, "avg pool 2x2"),
        ],
    )?;
    Ok(())
}

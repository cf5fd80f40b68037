//! Every value the notebook prints in its image sections ("Images with
//! PyTorch", "Cross-Correlation", "Kernels", "Padding & Stride", "Multiple
//! Channels", "Pooling"), from the plain-loop references of
//! `static_nn::tutorial`, and the references equal to the layers.
use static_nn::nn::{Conv2DModule, OutputShape};
use static_nn::prelude::*;
use static_nn::tutorial::kernels::EDGE;
use static_nn::tutorial::reference::{
    corr2d, corr2d_multi, corr2d_with, pad_ref, pool2d_ref, PoolKind,
};
use static_nn::tutorial::tensors::{
    arange, edge_image, flatten_1d, flatten_2d, flatten_3d, random_rgb, NOTEBOOK_RANDOM_6X6,
};
use static_nn::tutorial::{pad, Chw};

/// The notebook's 2-channel image: `arange(9)` and `arange(1, 10)`.
fn two_channel_image() -> [[[f32; 3]; 3]; 2] {
    [arange::<3, 3>(0.0)[0], arange::<3, 3>(1.0)[0]]
}

/// The notebook's 2-channel kernel plus `i`: `arange(4) + i`, `arange(1, 5) + i`.
fn two_channel_kernel(i: f32) -> [[[f32; 2]; 2]; 2] {
    let k = |s: f32| [[s + i, s + 1.0 + i], [s + 2.0 + i, s + 3.0 + i]];
    [k(0.0), k(1.0)]
}

#[test]
fn random_image_flattens_to_its_values_in_three_shapes() {
    // Exercise: a 6×6 grey image flattens to 36 values.
    let dev = Cpu::default();
    let img: Tensor<Rank3<1, 6, 6>, f32, _> = dev.tensor(NOTEBOOK_RANDOM_6X6);
    let a: Tensor<(Flat<1, 6, 6>,), f32, _> = flatten_1d(img.clone());
    let b: Tensor<(Const<1>, Flat<1, 6, 6>), f32, _> = flatten_2d(img.clone());
    let c: Tensor<(Const<1>, Const<1>, Flat<1, 6, 6>), f32, _> = flatten_3d(img.clone());
    const _: () = assert!(<(Flat<1, 6, 6>,) as ConstShape>::NUMEL == 36);
    assert_eq!(a.shape().concrete(), [36]);
    assert_eq!(b.shape().concrete(), [1, 36]);
    assert_eq!(c.shape().concrete(), [1, 1, 36]);
    // `img.reshape(1, 1, -1)` as the notebook prints it, row after row
    let printed = [
        0.3080, 0.0262, 0.5574, 0.4494, 0.2400, 0.8864, 0.2101, 0.3828, 0.2922, 0.1948, 0.1911,
        0.4098, 0.5587, 0.7565, 0.3989, 0.3920, 0.1915, 0.2599, 0.1623, 0.2396, 0.0493, 0.6253,
        0.5448, 0.6362, 0.2075, 0.0440, 0.0468, 0.0656, 0.8846, 0.8893, 0.9567, 0.7053, 0.4556,
        0.0996, 0.2754, 0.6344,
    ];
    assert_eq!(c.as_vec(), printed.to_vec());
    assert_eq!(a.as_vec(), b.as_vec());
    assert_eq!(a.as_vec(), printed.to_vec());
    // an RGB image of 32×32 is 3·32·32 inputs
    let rgb = random_rgb::<32, 32, _>(&dev);
    assert_eq!(flatten_1d(rgb).shape().concrete(), [3072]);
}

#[test]
fn cross_correlation_by_hand() {
    let img = Chw::from_array(arange::<3, 3>(0.0));
    let kernel = Chw::from_array([[[0.0, 1.0], [2.0, 3.0]]]);
    // the loop counts: 3 − 2 + 1 steps each way
    let out = corr2d(&img, &kernel).unwrap();
    assert_eq!(out.shape(), (1, 2, 2));
    assert_eq!(out.data(), &[19.0, 25.0, 37.0, 43.0]);
    assert_eq!(out.to_string(), "[[[19., 25.],\n  [37., 43.]]]");
    // ... and F.conv2d
    let dev = Cpu::default();
    let conv =
        Conv2DModule::<1, 1, 2, 2, 1, 0, f32, Cpu>::from_kernel(&dev, [[[[0.0, 1.0], [2.0, 3.0]]]]);
    let y: Tensor<Rank3<1, 2, 2>, f32, _> = conv.forward(dev.tensor(arange::<3, 3>(0.0)));
    assert_eq!(y.as_vec(), out.data());
}

#[test]
fn edge_kernel_rows_and_shape() {
    let img = Chw::from_array(edge_image());
    assert_eq!(img.shape(), (1, 6, 8));
    let out = corr2d(&img, &Chw::from_array([EDGE])).unwrap();
    assert_eq!(out.shape(), (1, 6, 7));
    for i in 0..6 {
        let row: Vec<f32> = (0..7).map(|j| out.at(0, i, j)).collect();
        assert_eq!(row, [0.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    }
    let dev = Cpu::default();
    let conv = Conv2DModule::<1, 1, 1, 2, 1, 0, f32, Cpu>::from_kernel(&dev, [[EDGE]]);
    let y: Tensor<Rank3<1, 6, 7>, f32, _> = conv.forward(dev.tensor(edge_image()));
    assert_eq!(y.as_vec(), out.data());
}

const PADDED: [f32; 16] = [
    1., 3., 5., 3., 5., 12., 16., 9., 11., 24., 28., 15., 7., 15., 17., 9.,
];

#[test]
fn manual_padding_equals_layer_padding() {
    let dev = Cpu::default();
    let img = dev.tensor(arange::<3, 3>(1.0));
    // F.pad(img, (1, 1, 1, 1)): 3×3 → 5×5, in the type
    let padded: Tensor<Rank3<1, 5, 5>, f32, _> = pad::<1, 1, 3, 3, _>(&img);
    assert_eq!(
        padded.array()[0],
        [
            [0., 0., 0., 0., 0.],
            [0., 1., 2., 3., 0.],
            [0., 4., 5., 6., 0.],
            [0., 7., 8., 9., 0.],
            [0., 0., 0., 0., 0.]
        ]
    );
    assert_eq!(padded.as_vec(), pad_ref(&Chw::from_tensor(&img), 1).data());

    let ones = [[[[1.0f32; 2]; 2]]];
    let manual: Tensor<Rank3<1, 4, 4>, f32, _> =
        Conv2DModule::<1, 1, 2, 2, 1, 0, f32, Cpu>::from_kernel(&dev, ones).forward(padded.clone());
    let layer: Tensor<Rank3<1, 4, 4>, f32, _> =
        Conv2DModule::<1, 1, 2, 2, 1, 1, f32, Cpu>::from_kernel(&dev, ones).forward(img.clone());
    assert_eq!(manual.as_vec(), PADDED);
    assert_eq!(layer.as_vec(), PADDED);
    // and by hand, both ways
    let k = Chw::from_array(ones[0]);
    let by_hand = corr2d(&Chw::from_tensor(&padded), &k).unwrap();
    assert_eq!(by_hand.data(), &PADDED);
    assert_eq!(
        corr2d_with(&Chw::from_tensor(&img), &k, 1, 1).unwrap(),
        by_hand
    );
}

#[test]
fn strided_convolution() {
    let dev = Cpu::default();
    let img = dev.tensor(arange::<3, 3>(1.0));
    let ones = [[[[1.0f32; 2]; 2]]];
    // (3 + 2 − 2) / 2 + 1 = 2
    let y: Tensor<Rank3<1, 2, 2>, f32, _> =
        Conv2DModule::<1, 1, 2, 2, 2, 1, f32, Cpu>::from_kernel(&dev, ones).forward(img.clone());
    assert_eq!(y.array(), [[[1.0, 5.0], [11.0, 28.0]]]);
    let by_hand = corr2d_with(&Chw::from_tensor(&img), &Chw::from_array(ones[0]), 2, 1).unwrap();
    assert_eq!(by_hand.data(), &[1.0, 5.0, 11.0, 28.0]);
}

#[test]
fn channel_sums_equal_one_two_channel_conv() {
    let img = Chw::from_array(two_channel_image());
    let k = Chw::from_array(two_channel_kernel(0.0));
    assert_eq!(img.to_string().lines().count(), 7);
    let conv1 = corr2d(&img.channel(0).unwrap(), &k.channel(0).unwrap()).unwrap();
    let conv2 = corr2d(&img.channel(1).unwrap(), &k.channel(1).unwrap()).unwrap();
    let sum = conv1.add(&conv2).unwrap();
    assert_eq!(sum.data(), &[56.0, 72.0, 104.0, 120.0]);
    assert_eq!(corr2d(&img, &k).unwrap(), sum);

    let dev = Cpu::default();
    let layer =
        Conv2DModule::<2, 1, 2, 2, 1, 0, f32, Cpu>::from_kernel(&dev, [two_channel_kernel(0.0)]);
    let y: Tensor<Rank4<1, 1, 2, 2>, f32, _> = layer.forward(dev.tensor([two_channel_image()]));
    assert_eq!(y.array(), [[[[56.0, 72.0], [104.0, 120.0]]]]);
}

#[test]
fn three_output_channels_equal_concatenated_single_kernels() {
    let img = Chw::from_array(two_channel_image());
    let kernels: Vec<Chw> = (0..3)
        .map(|i| Chw::from_array(two_channel_kernel(i as f32)))
        .collect();
    let singles: Vec<Chw> = kernels.iter().map(|k| corr2d(&img, k).unwrap()).collect();
    let cat = Chw::concat(&singles).unwrap();
    assert_eq!(cat, corr2d_multi(&img, &kernels).unwrap());
    let expected = [
        56.0, 72.0, 104.0, 120.0, 76.0, 100.0, 148.0, 172.0, 96.0, 128.0, 192.0, 224.0,
    ];
    assert_eq!(cat.data(), &expected);

    let dev = Cpu::default();
    let layer = Conv2DModule::<2, 3, 2, 2, 1, 0, f32, Cpu>::from_kernel(
        &dev,
        [
            two_channel_kernel(0.0),
            two_channel_kernel(1.0),
            two_channel_kernel(2.0),
        ],
    );
    let y: Tensor<Rank3<3, 2, 2>, f32, _> = layer.forward(dev.tensor(two_channel_image()));
    assert_eq!(y.as_vec(), expected);
}

#[test]
fn pooling_by_hand_equals_the_layers() {
    let dev = Cpu::default();
    let channel = Chw::from_array(arange::<3, 3>(0.0));
    let max = pool2d_ref(&channel, 2, 1, 0, PoolKind::Max).unwrap();
    let avg = pool2d_ref(&channel, 2, 1, 0, PoolKind::Avg).unwrap();
    assert_eq!(max.data(), &[4.0, 5.0, 7.0, 8.0]);
    assert_eq!(avg.data(), &[2.0, 3.0, 5.0, 6.0]);
    let t = dev.tensor(arange::<3, 3>(0.0));
    assert_eq!(MaxPool2D::<2, 1>.forward(t.clone()).as_vec(), max.data());
    assert_eq!(AvgPool2D::<2, 1>.forward(t).as_vec(), avg.data());

    // per channel: channels are kept, not summed
    let img = Chw::from_array(two_channel_image());
    let max2 = pool2d_ref(&img, 2, 1, 0, PoolKind::Max).unwrap();
    assert_eq!(max2.shape(), (2, 2, 2));
    assert_eq!(max2.data(), &[4.0, 5.0, 7.0, 8.0, 5.0, 6.0, 8.0, 9.0]);
    let y: Tensor<Rank4<1, 2, 2, 2>, f32, _> =
        MaxPool2D::<2, 1>.forward(dev.tensor([two_channel_image()]));
    assert_eq!(
        y.array(),
        [[[[4.0, 5.0], [7.0, 8.0]], [[5.0, 6.0], [8.0, 9.0]]]]
    );
    let avg2 = pool2d_ref(&img, 2, 1, 0, PoolKind::Avg).unwrap();
    let y = AvgPool2D::<2, 1>.forward(dev.tensor(two_channel_image()));
    assert_eq!(y.as_vec(), avg2.data());
    assert_eq!(avg2.data(), &[2.0, 3.0, 5.0, 6.0, 3.0, 4.0, 6.0, 7.0]);
}

/// Output-size exercise: per-image features after flattening the feature
/// map of one output channel, and for the batch of 100 random RGB images.
#[test]
fn output_size_table_and_features_from_the_types() {
    type A = OutputShape<(Conv2D<3, 1, 3, 1, 0>, Flatten), Rank3<3, 30, 30>>;
    type B = OutputShape<(Conv2D<3, 1, 5, 2, 1>, Flatten), Rank3<3, 224, 224>>;
    type C = OutputShape<(Conv2D<3, 1, 7, 3, 2>, Flatten), Rank3<3, 528, 528>>;
    type MapA = OutputShape<Conv2D<3, 1, 3, 1, 0>, Rank3<3, 30, 30>>;
    type MapB = OutputShape<Conv2D<3, 1, 5, 2, 1>, Rank3<3, 224, 224>>;
    type MapC = OutputShape<Conv2D<3, 1, 7, 3, 2>, Rank3<3, 528, 528>>;
    // (30 − 3)/1 + 1 = 28; (224 + 2 − 5)/2 + 1 = 111; (528 + 4 − 7)/3 + 1 = 176
    let _: MapA = (Const::<1>, Const::<28>, Const::<28>);
    let _: MapB = (Const::<1>, Const::<111>, Const::<111>);
    let _: MapC = (Const::<1>, Const::<176>, Const::<176>);
    const _: () = assert!(conv_output_size(30, 3, 1, 0) == 28);
    const _: () = assert!(conv_output_size(224, 5, 2, 1) == 111);
    const _: () = assert!(conv_output_size(528, 7, 3, 2) == 176);
    assert_eq!(
        [A::NUMEL, B::NUMEL, C::NUMEL],
        [784, 12_321, 30_976],
        "features per image"
    );
    assert_eq!(
        [100 * A::NUMEL, 100 * B::NUMEL, 100 * C::NUMEL],
        [78_400, 1_232_100, 3_097_600],
        "features for 100 images"
    );

    // and really: 100 random RGB 30×30 images
    let dev = Cpu::seed_from_u64(0);
    let conv = dev.build_module::<Conv2D<3, 1, 3, 1, 0>, f32>();
    let x: Tensor<Rank4<100, 3, 30, 30>, f32, _> = dev.sample_uniform();
    let y: Tensor<(Const<100>, Flat<1, 28, 28>), f32, _> = Flatten.forward(conv.forward(x));
    assert_eq!(y.shape().concrete(), [100, 784]);
}

/// `max(|a − b|) ≤ tol · max(1, |b|)`.
fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * y.abs().max(1.0),
            "{what}: element {i}: {x} vs {y}"
        );
    }
}

/// The reference loops against the layers on random images, kernels and
/// biases (the reference adds the bias by hand), for several shapes.
macro_rules! conv_agrees {
    ($name:ident, I = $i:literal, O = $o:literal, H = $h:literal, W = $w:literal, KH = $kh:literal, KW = $kw:literal, S = $s:literal, P = $p:literal) => {
        #[test]
        fn $name() {
            for seed in 0..16 {
                let dev = Cpu::seed_from_u64(seed);
                let conv = dev.build_module::<Conv2DRect<$i, $o, $kh, $kw, $s, $p>, f32>();
                let x: Tensor<Rank3<$i, $h, $w>, f32, _> = dev.sample_normal();
                let y = conv.forward(x.clone());
                let img = Chw::from_tensor(&x);
                let w = conv.weight.as_vec();
                let b = conv.bias.as_ref().expect("bias").as_vec();
                let n = $i * $kh * $kw;
                let outs: Vec<Chw> = (0..$o)
                    .map(|o| {
                        let k = Chw::new($i, $kh, $kw, w[o * n..(o + 1) * n].to_vec()).unwrap();
                        corr2d_with(&img, &k, $s, $p).unwrap().map(|v| v + b[o])
                    })
                    .collect();
                let by_hand = Chw::concat(&outs).unwrap();
                let shape: Vec<usize> = y.shape().concrete().into_iter().collect();
                let (c, h, w) = by_hand.shape();
                assert_eq!(shape, [c, h, w], "seed {seed}");
                assert_close(&y.as_vec(), by_hand.data(), &format!("seed {seed}"));
            }
        }
    };
}

conv_agrees!(
    conv_1x2_edge_shape,
    I = 1,
    O = 1,
    H = 6,
    W = 8,
    KH = 1,
    KW = 2,
    S = 1,
    P = 0
);
conv_agrees!(
    conv_rgb_3x3,
    I = 3,
    O = 4,
    H = 9,
    W = 7,
    KH = 3,
    KW = 3,
    S = 1,
    P = 0
);
conv_agrees!(
    conv_padded_strided,
    I = 2,
    O = 3,
    H = 8,
    W = 11,
    KH = 3,
    KW = 2,
    S = 2,
    P = 1
);
conv_agrees!(
    conv_5x5_pad2,
    I = 1,
    O = 6,
    H = 12,
    W = 12,
    KH = 5,
    KW = 5,
    S = 1,
    P = 2
);
conv_agrees!(
    conv_stride3,
    I = 3,
    O = 2,
    H = 16,
    W = 13,
    KH = 4,
    KW = 4,
    S = 3,
    P = 2
);

macro_rules! pool_agrees {
    ($name:ident, C = $c:literal, H = $h:literal, W = $w:literal, K = $k:literal, S = $s:literal, P = $p:literal) => {
        #[test]
        fn $name() {
            for seed in 0..16 {
                let dev = Cpu::seed_from_u64(seed);
                let x: Tensor<Rank3<$c, $h, $w>, f32, _> = dev.sample_normal();
                let img = Chw::from_tensor(&x);
                let max = pool2d_ref(&img, $k, $s, $p, PoolKind::Max).unwrap();
                let avg = pool2d_ref(&img, $k, $s, $p, PoolKind::Avg).unwrap();
                let ym = MaxPool2D::<$k, $s, $p>.forward(x.clone());
                let ya = AvgPool2D::<$k, $s, $p>.forward(x);
                let shape: Vec<usize> = ym.shape().concrete().into_iter().collect();
                let (c, h, w) = max.shape();
                assert_eq!(shape, [c, h, w], "seed {seed}");
                assert_close(&ym.as_vec(), max.data(), &format!("max, seed {seed}"));
                assert_close(&ya.as_vec(), avg.data(), &format!("avg, seed {seed}"));
            }
        }
    };
}

pool_agrees!(pool_2_stride_1, C = 2, H = 3, W = 3, K = 2, S = 1, P = 0);
pool_agrees!(pool_2_stride_2, C = 3, H = 8, W = 9, K = 2, S = 2, P = 0);
pool_agrees!(
    pool_3_stride_2_pad_1,
    C = 4,
    H = 7,
    W = 10,
    K = 3,
    S = 2,
    P = 1
);

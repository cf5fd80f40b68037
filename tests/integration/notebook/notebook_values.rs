//! The values the notebook prints for convolution and pooling, reproduced
//! exactly (f32) by static-nn's layers.
use static_nn::nn::{Conv2DModule, OutputShape};
use static_nn::prelude::*;

fn arange9(offset: f32) -> [[f32; 3]; 3] {
    let mut a = [[0.0; 3]; 3];
    for (i, v) in a.iter_mut().flatten().enumerate() {
        *v = i as f32 + offset;
    }
    a
}

#[test]
fn cross_correlation_of_arange() {
    let dev = Cpu::default();
    let conv =
        Conv2DModule::<1, 1, 2, 2, 1, 0, f32, Cpu>::from_kernel(&dev, [[[[0.0, 1.0], [2.0, 3.0]]]]);
    let y = conv.forward(dev.tensor([arange9(0.0)]));
    assert_eq!(y.array(), [[[19.0, 25.0], [37.0, 43.0]]]);
}

#[test]
fn edge_kernel_finds_the_edges() {
    let dev = Cpu::default();
    let mut img = [[[0.0f32; 8]; 6]; 1];
    for row in img[0].iter_mut() {
        row[2..6].fill(1.0);
    }
    let conv = Conv2DModule::<1, 1, 1, 2, 1, 0, f32, Cpu>::from_kernel(&dev, [[[[1.0, -1.0]]]]);
    let y: Tensor<Rank3<1, 6, 7>, f32, _> = conv.forward(dev.tensor(img));
    for row in y.array()[0] {
        assert_eq!(row, [0.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    }
}

#[test]
fn padding_and_stride() {
    let dev = Cpu::default();
    let img = dev.tensor([arange9(1.0)]);
    let padded = Conv2DModule::<1, 1, 2, 2, 1, 1, f32, Cpu>::from_kernel(&dev, [[[[1.0; 2]; 2]]]);
    let y: Tensor<Rank3<1, 4, 4>, f32, _> = padded.forward(img.clone());
    assert_eq!(
        y.array(),
        [[
            [1.0, 3.0, 5.0, 3.0],
            [5.0, 12.0, 16.0, 9.0],
            [11.0, 24.0, 28.0, 15.0],
            [7.0, 15.0, 17.0, 9.0]
        ]]
    );
    let strided = Conv2DModule::<1, 1, 2, 2, 2, 1, f32, Cpu>::from_kernel(&dev, [[[[1.0; 2]; 2]]]);
    let y: Tensor<Rank3<1, 2, 2>, f32, _> = strided.forward(img);
    assert_eq!(y.array(), [[[1.0, 5.0], [11.0, 28.0]]]);
}

#[test]
fn multiple_input_and_output_channels() {
    let dev = Cpu::default();
    let img = dev.tensor([[arange9(0.0), arange9(1.0)]]);
    let k = |i: f32| {
        [
            [[0.0 + i, 1.0 + i], [2.0 + i, 3.0 + i]],
            [[1.0 + i, 2.0 + i], [3.0 + i, 4.0 + i]],
        ]
    };
    let one = Conv2DModule::<2, 1, 2, 2, 1, 0, f32, Cpu>::from_kernel(&dev, [k(0.0)]);
    assert_eq!(
        one.forward(img.clone()).array(),
        [[[[56.0, 72.0], [104.0, 120.0]]]]
    );
    let three =
        Conv2DModule::<2, 3, 2, 2, 1, 0, f32, Cpu>::from_kernel(&dev, [k(0.0), k(1.0), k(2.0)]);
    assert_eq!(
        three.forward(img).array(),
        [[
            [[56.0, 72.0], [104.0, 120.0]],
            [[76.0, 100.0], [148.0, 172.0]],
            [[96.0, 128.0], [192.0, 224.0]]
        ]]
    );
}

#[test]
fn max_and_avg_pooling() {
    let dev = Cpu::default();
    let one = dev.tensor([arange9(0.0)]);
    assert_eq!(
        MaxPool2D::<2, 1>.forward(one.clone()).array(),
        [[[4.0, 5.0], [7.0, 8.0]]]
    );
    assert_eq!(
        AvgPool2D::<2, 1>.forward(one).array(),
        [[[2.0, 3.0], [5.0, 6.0]]]
    );
    let two = dev.tensor([[arange9(0.0), arange9(1.0)]]);
    assert_eq!(
        MaxPool2D::<2, 1>.forward(two).array(),
        [[[[4.0, 5.0], [7.0, 8.0]], [[5.0, 6.0], [8.0, 9.0]]]]
    );
}

#[test]
fn output_size_table_and_flattened_features() {
    // The notebook's exercise: 100 random RGB images per case; features after
    // flattening one output channel's map, computed from the types.
    type A = OutputShape<(Conv2D<3, 1, 3, 1, 0>, Flatten), Rank3<3, 30, 30>>;
    type B = OutputShape<(Conv2D<3, 1, 5, 2, 1>, Flatten), Rank3<3, 224, 224>>;
    type C = OutputShape<(Conv2D<3, 1, 7, 3, 2>, Flatten), Rank3<3, 528, 528>>;
    const _: () = assert!(conv_output_size(30, 3, 1, 0) == 28);
    const _: () = assert!(conv_output_size(224, 5, 2, 1) == 111);
    const _: () = assert!(conv_output_size(528, 7, 3, 2) == 176);
    assert_eq!(A::NUMEL, 28 * 28);
    assert_eq!(B::NUMEL, 111 * 111);
    assert_eq!(C::NUMEL, 176 * 176);

    let dev = Cpu::default();
    let conv = dev.build_module::<Conv2D<3, 1, 3, 1, 0>, f32>();
    let x: Tensor<Rank4<100, 3, 30, 30>, f32, _> = dev.sample_uniform();
    let y: Tensor<(Const<100>, Flat<1, 28, 28>), f32, _> = Flatten.forward(conv.forward(x));
    assert_eq!(y.shape().1.size(), 784);
}

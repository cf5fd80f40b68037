//! Output sizes: the formula agrees with the type-level size, with
//! brute-force counting, and with the real output of `Conv2D`, `MaxPool2D`
//! and `AvgPool2D` (typed layers on a grid of const cases, runtime ops on
//! random sizes, values against naive loops).

use dfdx::shapes::ConstDim;
use proptest::prelude::*;
use static_nn::ops::{Conv2DKernel, Conv2DOp, Pool2DKernel, Pool2DOp, PoolKind, Workspace};
use static_nn::prelude::*;
use static_nn::shapes::{try_conv_output_size, ConvOut, ConvOutSize};

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
            &naive_conv(
                &op,
                &x.as_vec(),
                &conv.weight.as_vec(),
                &conv.bias.as_ref().expect("bias").as_vec(),
            ),
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
    let (batch, chan_in, h_in, w_in) = op.input_shape();
    let (_, chan_out, h_out, w_out) = op.output_shape();
    let (kh, kw) = op.kernel_size();
    let (stride, padding) = (op.stride(), op.padding());
    let mut y = Vec::with_capacity(batch * chan_out * h_out * w_out);
    for n in 0..batch {
        for co in 0..chan_out {
            for oy in 0..h_out {
                for ox in 0..w_out {
                    let mut acc = b[co];
                    for ci in 0..chan_in {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * stride + ky) as isize - padding as isize;
                                let ix = (ox * stride + kx) as isize - padding as isize;
                                if iy < 0 || ix < 0 || iy >= h_in as isize || ix >= w_in as isize {
                                    continue;
                                }
                                let xi =
                                    ((n * chan_in + ci) * h_in + iy as usize) * w_in + ix as usize;
                                let wi = ((co * chan_in + ci) * kh + ky) * kw + kx;
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
    let (planes, h_in, w_in) = op.input_shape();
    let (_, h_out, w_out) = op.output_shape();
    let (kernel, stride, padding) = (op.kernel_size(), op.stride(), op.padding());
    let mut y = Vec::new();
    for p in 0..planes {
        for oy in 0..h_out {
            for ox in 0..w_out {
                let mut max = f32::NEG_INFINITY;
                let mut sum = 0.0;
                for ky in 0..kernel {
                    for kx in 0..kernel {
                        let iy = (oy * stride + ky) as isize - padding as isize;
                        let ix = (ox * stride + kx) as isize - padding as isize;
                        if iy < 0 || ix < 0 || iy >= h_in as isize || ix >= w_in as isize {
                            continue;
                        }
                        let v = x[(p * h_in + iy as usize) * w_in + ix as usize];
                        max = max.max(v);
                        sum += v;
                    }
                }
                y.push(match op.kind() {
                    PoolKind::Max => max,
                    PoolKind::Avg => sum / (kernel * kernel) as f32,
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
        prop_assert_eq!((op.output_shape().2, op.output_shape().3), (ho, wo));
        let dev = Cpu::seed_from_u64(seed);
        let x: Tensor<(usize, usize, usize, usize), f32, _> = dev.sample_normal_like(&(batch, ci, h, w));
        let wt: Tensor<(usize, usize, usize, usize), f32, _> = dev.sample_normal_like(&(co, ci, kh, kw));
        let b: Tensor<(usize,), f32, _> = dev.sample_normal_like(&(co,));
        let y = Cpu::try_conv2d(op, x.clone(), &wt, Some(&b), (batch, co, ho, wo), &Workspace::default()).unwrap();
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
        prop_assert_eq!((op.output_shape().1, op.output_shape().2), (ho, wo));
        let dev = Cpu::seed_from_u64(seed);
        let x: Tensor<(usize, usize, usize), f32, _> = dev.sample_normal_like(&(planes, h, w));
        let y = Cpu::try_pool2d(op, x.clone(), (planes, ho, wo), &Workspace::default()).unwrap();
        prop_assert_eq!(y.shape().concrete(), [planes, ho, wo]);
        assert_close(&y.as_vec(), &naive_pool(&op, &x.as_vec()));
    }
}

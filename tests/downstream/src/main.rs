//! A downstream crate's own residual block, a struct with `#[derive(Network)]`
//! and one `#[forward]` (no other impl), in a network that it trains a few
//! steps through `forward_mut` and dfdx's Adam on synthetic pictures, saves,
//! reloads and runs again. Prints a short report; exits with status 1 when
//! the loss does not drop or the reloaded network infers differently.
//!
//! `static-nn-downstream-check [OUT.safetensors]`: the weights go to `OUT`,
//! or to a file in the temporary directory that is removed afterwards.
use static_nn::nn::add_residual;
use static_nn::prelude::*;
use static_nn::shapes::checks::ResidualShapes;
use static_nn::weights;
use std::path::PathBuf;
use std::process::ExitCode;

/// `y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, the first 3×3
/// convolution of stride `S`; the shortcut is `Identity` unless given.
#[derive(Network, Clone, Debug, Default)]
struct Block<
    const IN: usize,
    const OUT: usize,
    const S: usize,
    Sc = Identity,
    C1 = Conv2D<IN, OUT, 3, S, 1, false>,
    B1 = BatchNorm2D<OUT>,
    C2 = Conv2D<OUT, OUT, 3, 1, 1, false>,
    B2 = BatchNorm2D<OUT>,
> {
    conv1: C1,
    bn1: B1,
    conv2: C2,
    bn2: B2,
    shortcut: Sc,
}

/// The shortcut of a block that changes the shape: a strided 1×1
/// convolution and a batch norm.
type Projection<const IN: usize, const OUT: usize, const S: usize> =
    (Conv2D<IN, OUT, 1, S, 0, false>, BatchNorm2D<OUT>);

#[forward]
impl<
        const IN: usize,
        const OUT: usize,
        const S: usize,
        Sc,
        C1,
        B1,
        C2,
        B2,
        B: Dim,
        const C: usize,
        const H: usize,
        const W: usize,
        const C3: usize,
        const H3: usize,
        const W3: usize,
        const C4: usize,
        const H4: usize,
        const W4: usize,
        E: Dtype,
        D: Device<E>,
        T: Tape<E, D> + Merge<T> + Default,
    > Module<Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>>
    for Block<IN, OUT, S, Sc, C1, B1, C2, B2>
where
    C1: Module<Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>, Error = D::Err>,
    B1: Module<C1::Output, Output = C1::Output, Error = D::Err>,
    ReLU: Module<C1::Output, Output = C1::Output, Error = D::Err>,
    C2: Module<
        C1::Output,
        Output = Tensor<(B, Const<C3>, Const<H3>, Const<W3>), E, D, T>,
        Error = D::Err,
    >,
    B2: Module<C2::Output, Output = C2::Output, Error = D::Err>,
    Sc: Module<
        Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>,
        Output = Tensor<(B, Const<C4>, Const<H4>, Const<W4>), E, D, T>,
        Error = D::Err,
    >,
    ReLU: Module<C2::Output, Output = C2::Output, Error = D::Err>,
    (): ResidualShapes<C3, H3, W3, C4, H4, W4>,
{
    type Output = Tensor<(B, Const<C3>, Const<H3>, Const<W3>), E, D, T>;
    type Error = D::Err;

    fn try_forward(
        &self,
        x: Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>,
    ) -> Result<Self::Output, D::Err> {
        let y = self.conv1.try_forward(x.with_empty_tape())?;
        let y = ReLU.try_forward(self.bn1.try_forward(y)?)?;
        let y = self.bn2.try_forward(self.conv2.try_forward(y)?)?;
        let shortcut = self.shortcut.try_forward(x)?;
        ReLU.try_forward(add_residual(y, shortcut)?)
    }
}

/// 8 channels at 12×12, a block that keeps them, one that doubles them and
/// halves the size (projection shortcut), global pooling, 4 classes of 10.
type Net = (
    Conv2D<1, 8, 3, 1, 1, false>,
    BatchNorm2D<8>,
    ReLU,
    Block<8, 8, 1>,
    Block<8, 16, 2, Projection<8, 16, 2>>,
    GlobalAvgPool2D,
    Linear<16, 10>,
);

const BATCH: usize = 16;
const STEPS: usize = 30;
type Pictures = Tensor<Rank4<BATCH, 1, 12, 12>, f32, Cpu>;

/// A batch of noisy 12×12 pictures of four kinds (horizontal or vertical
/// stripes, a diagonal or a checkerboard) and their one-hot labels 0..4.
fn batch(dev: &Cpu) -> (Pictures, Tensor<Rank2<BATCH, 10>, f32, Cpu>) {
    let noise: Pictures = dev.sample_normal::<Rank4<BATCH, 1, 12, 12>>() * 0.3;
    let noise = noise.as_vec();
    let (mut px, mut onehot) = (Vec::new(), vec![0.0f32; BATCH * 10]);
    for i in 0..BATCH {
        let kind = i % 4;
        onehot[i * 10 + kind] = 1.0;
        for p in 0..144usize {
            let (r, c) = (p / 12, p % 12);
            let on = match kind {
                0 => r % 4 < 2,
                1 => c % 4 < 2,
                2 => r.abs_diff(c) < 2,
                _ => (r / 3 + c / 3) % 2 == 0,
            };
            px.push(f32::from(u8::from(on)) + noise[i * 144 + p]);
        }
    }
    (dev.tensor(px), dev.tensor(onehot))
}

fn check() -> Result<bool, String> {
    let dev = Cpu::seed_from_u64(12);
    let mut net = dev.build_module::<Net, f32>();
    let names: Vec<String> = weights::tensor_names(&net)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let block = names.iter().find(|n| n.starts_with("3.")).unwrap();
    println!(
        "network: {} trainable parameters, {} tensors ({block}, ..)",
        net.num_trainable_params(),
        names.len(),
    );
    // tensors are named after the fields, as PyTorch's state_dict
    let named = names.iter().any(|n| n == "4.shortcut.0.weight");
    let mut opt = Adam::new(
        &net,
        AdamConfig {
            lr: 1e-2,
            ..Default::default()
        },
    );
    let mut grads = net.alloc_grads();
    let mut losses = Vec::new();
    for _ in 0..STEPS {
        let (x, y) = batch(&dev);
        // the batch's own gradient is not wanted: the first convolution
        // records only its weight's
        let logits = net.forward_mut(NoInputGrad(x.traced(grads)));
        let loss = cross_entropy_with_logits_loss(logits, y);
        losses.push(loss.array());
        grads = loss.backward();
        opt.update(&mut net, &grads).map_err(|e| format!("{e:?}"))?;
        net.zero_grads(&mut grads);
    }
    let head = losses[..5].iter().sum::<f32>() / 5.0;
    let tail = losses[STEPS - 5..].iter().sum::<f32>() / 5.0;
    println!("trained: {STEPS} steps, mean loss of the first 5 {head:.4}, of the last 5 {tail:.4}");

    let (path, keep) = match std::env::args_os().nth(1) {
        Some(p) => (PathBuf::from(p), true),
        None => {
            let name = format!("static-nn-downstream-{}.safetensors", std::process::id());
            (std::env::temp_dir().join(name), false)
        }
    };
    weights::save(&net, &path).map_err(|e| e.to_string())?;
    let mut reloaded = dev.build_module::<Net, f32>();
    let loaded = weights::load(&mut reloaded, &path).map_err(|e| e.to_string());
    if !keep {
        let _ = std::fs::remove_file(&path);
    }
    loaded?;
    let (x, _) = batch(&dev);
    let same = net.forward(x.clone()).array() == reloaded.forward(x).array();
    println!(
        "reloaded: {}",
        if same {
            "same logits"
        } else {
            "different logits"
        }
    );

    // `#[forward]` also wrote `ModuleMut<NoInputGrad<..>>` for the block: a
    // block first in a network runs as on a traced batch
    let x: Tensor<Rank4<BATCH, 8, 12, 12>, f32, _> = dev.sample_normal();
    let block = &mut net.0 .3;
    let plain = block.forward_mut(x.leaky_trace()).array();
    let marked = block.forward_mut(NoInputGrad(x.leaky_trace())).array();
    let block_ok = plain == marked;
    println!(
        "block on a NoInputGrad batch: {}",
        if block_ok {
            "same output"
        } else {
            "different output"
        }
    );
    Ok(named && tail < head * 0.5 && same && block_ok)
}

fn main() -> ExitCode {
    match check() {
        Ok(true) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("FAILED");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! Batch normalisation composed from dfdx's differentiable ops: the path
//! of devices without a fused kernel (CUDA), and the reference the CPU
//! kernels are tested against.
use super::{BatchNormOp, BatchStats};
use dfdx::prelude::*;
use num_traits::Float;

/// `(batch, channels, plane)` with runtime sizes.
type Dyn3 = (usize, usize, usize);

/// The per-channel tensor `t`, broadcast over `(batch, channels, plane)`.
fn per_channel<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    t: Tensor<S, E, D, T>,
    op: &BatchNormOp,
) -> Result<Tensor<Dyn3, E, D, T>, D::Err> {
    t.try_reshape_like(&(op.channels,))?
        .try_broadcast_like::<_, Axes2<0, 2>>(&(op.batch, op.channels, op.plane))
}

/// Training mode from dfdx ops; see [`BatchNormKernel::try_batch_norm_train`](super::BatchNormKernel::try_batch_norm_train).
pub fn train<S: Shape, Sc: Shape, E: Dtype + Float, D: Device<E>, T: Tape<E, D>>(
    op: BatchNormOp,
    x: Tensor<S, E, D, T>,
    (weight, bias): (&Tensor<Sc, E, D>, &Tensor<Sc, E, D>),
) -> Result<(Tensor<S, E, D, T>, BatchStats<E>), D::Err> {
    let shape = *x.shape();
    let x = x.try_reshape_like(&(op.batch, op.channels, op.plane))?;
    let mean = x.retaped::<T>().try_mean::<_, Axes2<0, 2>>()?;
    let mean_values = mean.retaped::<NoneTape>().as_vec();
    let centered = x.try_sub(mean.try_broadcast_like::<_, Axes2<0, 2>>(&(
        op.batch,
        op.channels,
        op.plane,
    ))?)?;
    let var = centered
        .retaped::<T>()
        .try_square()?
        .try_mean::<_, Axes2<0, 2>>()?;
    let var_values = var.retaped::<NoneTape>().as_vec();
    let eps = E::from(op.eps).unwrap_or_else(E::zero);
    let std = var.try_add(eps)?.try_sqrt()?;
    let y = centered.try_div(std.try_broadcast_like::<_, Axes2<0, 2>>(&(
        op.batch,
        op.channels,
        op.plane,
    ))?)?;
    let y = y.try_mul(per_channel(weight.retaped::<T>(), &op)?)?;
    let y = y.try_add(per_channel(bias.retaped::<T>(), &op)?)?;
    let y = if op.relu { y.try_relu()? } else { y };
    let stats = BatchStats {
        mean: mean_values,
        var: var_values,
        count: op.count(),
    };
    Ok((y.try_reshape_like(&shape)?, stats))
}

/// Inference mode from dfdx ops; see [`BatchNormKernel::try_batch_norm_eval`](super::BatchNormKernel::try_batch_norm_eval).
pub fn eval<S: Shape, Sc: Shape, E: Dtype + Float, D: Device<E>, T: Tape<E, D>>(
    op: BatchNormOp,
    x: Tensor<S, E, D, T>,
    (weight, bias): (&Tensor<Sc, E, D>, &Tensor<Sc, E, D>),
    (mean, var): (&Tensor<Sc, E, D>, &Tensor<Sc, E, D>),
) -> Result<Tensor<S, E, D, T>, D::Err> {
    let shape = *x.shape();
    let x = x.try_reshape_like(&(op.batch, op.channels, op.plane))?;
    let eps = E::from(op.eps).unwrap_or_else(E::zero);
    let std = var.clone().try_add(eps)?.try_sqrt()?;
    let y = x.try_sub(per_channel(mean.clone(), &op)?)?;
    let y = y.try_div(per_channel(std, &op)?)?;
    let y = y.try_mul(per_channel(weight.retaped::<T>(), &op)?)?;
    let y = y.try_add(per_channel(bias.retaped::<T>(), &op)?)?;
    let y = if op.relu { y.try_relu()? } else { y };
    y.try_reshape_like(&shape)
}

//! Everything a user needs, in one import: `use static_nn::prelude::*;`.
//!
//! It re-exports dfdx's prelude (tensors, shapes, devices, losses,
//! optimizers, `Module`), with static-nn's layers and its
//! [`DeviceBuildExt::build_module`] in place of dfdx's. Import this instead
//! of `dfdx::prelude::*`, not beside it.
pub use dfdx::prelude::*;

pub use crate::models::{
    summary, CifarResNet20, LeNet, LeNet5, LeNetClass, LeNetLazy, LeNetSeq, Mlp, MnistResNet,
    Summary,
};
pub use crate::nn::{
    AdaptiveAvgPool2D, AvgPool2D, BatchNorm1D, BatchNorm2D, BatchNormReLU2D, BuildOnDevice, Conv2D,
    Conv2DRect, DeviceBuildExt, Dropout, Dropout2D, Flatten, GlobalAvgPool2D, Identity, InferShape,
    Inferred, Input, LazyConv2D, LazyConv2DRect, LazyLinear, Linear, LogSoftmax, MaxPool2D,
    NoInputGrad, ReLU, Residual, Sequential, Sigmoid, Softmax, Tanh,
};
pub use crate::shapes::{conv_output_size, Flat};
pub use crate::{forward, Network};
pub use dfdx::nn::ModuleMut;
pub use dfdx::optim::{Adam, AdamConfig, Momentum, Optimizer, Sgd, SgdConfig, WeightDecay};

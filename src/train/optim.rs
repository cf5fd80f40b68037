//! Optimizer choice at run time.
use super::TrainError;
use dfdx::nn::TensorCollection;
use dfdx::optim::{Adam, AdamConfig, Momentum, Optimizer, Sgd, SgdConfig, WeightDecay};
use dfdx::prelude::{Device, Gradients};

/// Which optimizer to train with, and its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerConfig {
    /// SGD (PyTorch's `optim.SGD`): `momentum` 0 disables it; `weight_decay`
    /// is L2, added to the gradient.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Classic momentum (0 for none).
        momentum: f64,
        /// L2 weight decay (0 for none).
        weight_decay: f64,
    },
    /// Adam (PyTorch's `optim.Adam`, betas 0.9 and 0.999, eps 1e-8).
    Adam {
        /// Learning rate.
        lr: f64,
        /// L2 weight decay (0 for none).
        weight_decay: f64,
    },
}

impl OptimizerConfig {
    /// Plain SGD with the given learning rate (the notebook's optimizer).
    pub fn sgd(lr: f64) -> Self {
        Self::Sgd {
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }

    /// Adam with the given learning rate.
    pub fn adam(lr: f64) -> Self {
        Self::Adam {
            lr,
            weight_decay: 0.0,
        }
    }
}

/// A built optimizer of either kind.
pub enum AnyOptimizer<M, D: Device<f32>> {
    /// SGD.
    Sgd(Sgd<M, f32, D>),
    /// Adam.
    Adam(Adam<M, f32, D>),
}

impl<M: TensorCollection<f32, D>, D: Device<f32>> AnyOptimizer<M, D> {
    /// Builds the optimizer for `model`.
    pub fn new(model: &M, cfg: OptimizerConfig) -> Self {
        let decay = |wd: f64| (wd != 0.0).then_some(WeightDecay::L2(wd));
        match cfg {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => Self::Sgd(Sgd::new(
                model,
                SgdConfig {
                    lr,
                    momentum: (momentum != 0.0).then_some(Momentum::Classic(momentum)),
                    weight_decay: decay(weight_decay),
                },
            )),
            OptimizerConfig::Adam { lr, weight_decay } => Self::Adam(Adam::new(
                model,
                AdamConfig {
                    lr,
                    weight_decay: decay(weight_decay),
                    ..Default::default()
                },
            )),
        }
    }

    /// One update of `model` from `grads`.
    pub fn update(&mut self, model: &mut M, grads: &Gradients<f32, D>) -> Result<(), TrainError> {
        let r = match self {
            Self::Sgd(o) => o.update(model, grads),
            Self::Adam(o) => o.update(model, grads),
        };
        r.map_err(|e| TrainError::Device(format!("{e:?}")))
    }
}

//! Optimizer choice at run time.
use super::TrainError;
use dfdx::nn::TensorCollection;
use dfdx::optim::{
    Adam, AdamConfig, Momentum, Optimizer, OptimizerUpdateError, Sgd, SgdConfig, WeightDecay,
};
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
pub(crate) enum AnyOptimizer<M, D: Device<f32>> {
    /// SGD.
    Sgd(Sgd<M, f32, D>),
    /// Adam.
    Adam(Adam<M, f32, D>),
}

impl<M: TensorCollection<f32, D>, D: Device<f32> + crate::TypedErrors> AnyOptimizer<M, D> {
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

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        match self {
            Self::Sgd(o) => o.cfg.lr,
            Self::Adam(o) => o.cfg.lr,
        }
    }

    /// Changes the learning rate (for schedules).
    pub fn set_learning_rate(&mut self, lr: f64) {
        match self {
            Self::Sgd(o) => o.cfg.lr = lr,
            Self::Adam(o) => o.cfg.lr = lr,
        }
    }

    /// One update of `model` from `grads`.
    pub fn update(&mut self, model: &mut M, grads: &Gradients<f32, D>) -> Result<(), TrainError> {
        let r = match self {
            Self::Sgd(o) => o.update(model, grads),
            Self::Adam(o) => o.update(model, grads),
        };
        r.map_err(|e| {
            match e {
                OptimizerUpdateError::DeviceError(e) => D::device_error("the optimizer update", e),
                unused => crate::DeviceError::new("the optimizer update", unused_only(unused)),
            }
            .into()
        })
    }
}

/// An optimizer failure that is not the device's (parameters without
/// gradients), with dfdx's message.
#[derive(Debug)]
struct UnusedParams(String);

impl std::fmt::Display for UnusedParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnusedParams {}

fn unused_only<E: std::fmt::Display>(e: OptimizerUpdateError<E>) -> UnusedParams {
    UnusedParams(e.to_string())
}

/// How the learning rate changes from epoch to epoch during
/// [`Classifier::fit`](super::Classifier::fit).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum LrSchedule {
    /// The optimizer's learning rate throughout (PyTorch without a scheduler).
    #[default]
    Constant,
    /// Cosine annealing per epoch from the optimizer's learning rate down to
    /// `final_lr` in the last epoch (PyTorch's `CosineAnnealingLR` stepped per
    /// epoch, with `T_max` = epochs − 1).
    Cosine {
        /// Learning rate of the last epoch.
        final_lr: f64,
    },
}

impl LrSchedule {
    /// The learning rate of 0-based `epoch` out of `epochs`, starting from `base`.
    pub fn lr(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            Self::Constant => base,
            Self::Cosine { final_lr } => {
                if epochs <= 1 {
                    return base;
                }
                let t = epoch.min(epochs - 1) as f64 / (epochs - 1) as f64;
                final_lr + 0.5 * (base - final_lr) * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_runs_from_base_to_final() {
        let s = LrSchedule::Cosine { final_lr: 1e-5 };
        assert_eq!(s.lr(1e-3, 0, 10), 1e-3);
        assert!((s.lr(1e-3, 9, 10) - 1e-5).abs() < 1e-12);
        assert!(s.lr(1e-3, 5, 10) < s.lr(1e-3, 4, 10));
        assert_eq!(LrSchedule::Constant.lr(0.5, 3, 10), 0.5);
    }
}

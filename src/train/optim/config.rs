//! The optimizers' hyper-parameters, with PyTorch's names and defaults.
use crate::train::TrainError;
use std::fmt;
use std::str::FromStr;

/// Which optimizer to train with, and its hyper-parameters: PyTorch's
/// `torch.optim` classes, with their argument names and formulas.
///
/// The constructors ([`sgd`](Self::sgd), [`adam`](Self::adam),
/// [`adamw`](Self::adamw), [`rmsprop`](Self::rmsprop)) take a learning rate
/// and PyTorch's defaults for the rest; [`FromStr`] reads the names `sgd`,
/// `adam`, `adamw` and `rmsprop` (PyTorch's default learning rates, to be
/// changed with [`with_lr`](Self::with_lr)). [`validate`](Self::validate)
/// checks the values; [`Optim::new`](super::Optim::new) calls it.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum OptimizerConfig {
    /// Stochastic gradient descent (`torch.optim.SGD`):
    /// `g += weight_decay * p`; with momentum, `buf = g` on the first step and
    /// `buf = momentum * buf + (1 - dampening) * g` after, then
    /// `g = g + momentum * buf` (Nesterov) or `g = buf`; `p -= lr * g`.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum factor (0 for none).
        momentum: f64,
        /// Dampening for momentum (0 for none; must be 0 with Nesterov).
        dampening: f64,
        /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`).
        nesterov: bool,
        /// L2 penalty, added to the gradient (0 for none).
        weight_decay: f64,
    },
    /// Adam (`torch.optim.Adam`) with bias correction; `weight_decay` is L2,
    /// added to the gradient.
    Adam {
        /// Learning rate.
        lr: f64,
        /// Decay rates of the first and second moment averages, each in
        /// `[0, 1)` (PyTorch: `(0.9, 0.999)`).
        betas: (f64, f64),
        /// Added to the denominator (PyTorch: `1e-8`).
        eps: f64,
        /// L2 penalty, added to the gradient (0 for none).
        weight_decay: f64,
    },
    /// AdamW (`torch.optim.AdamW`): Adam with decoupled weight decay,
    /// `p *= 1 - lr * weight_decay` before the Adam step.
    AdamW {
        /// Learning rate.
        lr: f64,
        /// Decay rates of the first and second moment averages, each in
        /// `[0, 1)` (PyTorch: `(0.9, 0.999)`).
        betas: (f64, f64),
        /// Added to the denominator (PyTorch: `1e-8`).
        eps: f64,
        /// Decoupled weight decay (PyTorch: `0.01`).
        weight_decay: f64,
    },
    /// RMSprop (`torch.optim.RMSprop`).
    RMSprop {
        /// Learning rate (PyTorch: `0.01`).
        lr: f64,
        /// Smoothing constant of the squared-gradient average, in `[0, 1]`
        /// (PyTorch: `0.99`).
        alpha: f64,
        /// Added to the denominator (PyTorch: `1e-8`).
        eps: f64,
        /// Momentum factor (0 for none).
        momentum: f64,
        /// L2 penalty, added to the gradient (0 for none).
        weight_decay: f64,
        /// Normalise by the estimated variance of the gradient (the squared
        /// average minus the square of the gradient's average).
        centered: bool,
    },
}

impl OptimizerConfig {
    /// Plain SGD with the given learning rate (the notebook's optimizer).
    pub fn sgd(lr: f64) -> Self {
        Self::Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// Adam with the given learning rate and PyTorch's defaults: betas
    /// `(0.9, 0.999)`, eps `1e-8`, no weight decay.
    pub fn adam(lr: f64) -> Self {
        Self::Adam {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// AdamW with the given learning rate and PyTorch's defaults: betas
    /// `(0.9, 0.999)`, eps `1e-8`, weight decay `0.01`.
    pub fn adamw(lr: f64) -> Self {
        Self::AdamW {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }

    /// RMSprop with the given learning rate and PyTorch's defaults: alpha
    /// `0.99`, eps `1e-8`, no momentum, no weight decay, not centered.
    pub fn rmsprop(lr: f64) -> Self {
        Self::RMSprop {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            momentum: 0.0,
            weight_decay: 0.0,
            centered: false,
        }
    }

    /// The name [`FromStr`] reads: `sgd`, `adam`, `adamw` or `rmsprop`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sgd { .. } => "sgd",
            Self::Adam { .. } => "adam",
            Self::AdamW { .. } => "adamw",
            Self::RMSprop { .. } => "rmsprop",
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            Self::Sgd { lr, .. }
            | Self::Adam { lr, .. }
            | Self::AdamW { lr, .. }
            | Self::RMSprop { lr, .. } => lr,
        }
    }

    /// The same configuration with learning rate `lr`.
    pub fn with_lr(mut self, new: f64) -> Self {
        match &mut self {
            Self::Sgd { lr, .. }
            | Self::Adam { lr, .. }
            | Self::AdamW { lr, .. }
            | Self::RMSprop { lr, .. } => *lr = new,
        }
        self
    }

    /// Checks the hyper-parameters as PyTorch's constructors do (and a little
    /// more: NaN and infinity are refused everywhere).
    ///
    /// # Errors
    /// [`TrainError::InvalidHyperparameter`], naming the optimizer and the
    /// value: a negative or non-finite learning rate, eps, momentum or weight
    /// decay, betas outside `[0, 1)`, alpha outside `[0, 1]`, Nesterov
    /// without momentum or with dampening.
    pub fn validate(&self) -> Result<(), TrainError> {
        let name = self.name();
        check_lr(name, self.lr())?;
        match *self {
            Self::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
                ..
            } => {
                non_negative(name, "momentum", momentum)?;
                if !dampening.is_finite() {
                    return Err(invalid(format!(
                        "{name}: dampening must be finite, got {dampening}"
                    )));
                }
                non_negative(name, "weight_decay", weight_decay)?;
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return Err(invalid(format!(
                        "{name}: Nesterov momentum requires a momentum and zero dampening \
                         (momentum {momentum}, dampening {dampening})"
                    )));
                }
            }
            Self::Adam {
                betas,
                eps,
                weight_decay,
                ..
            }
            | Self::AdamW {
                betas,
                eps,
                weight_decay,
                ..
            } => {
                for (i, beta) in [betas.0, betas.1].into_iter().enumerate() {
                    if !(0.0..1.0).contains(&beta) {
                        return Err(invalid(format!(
                            "{name}: betas.{i} must be in [0, 1), got {beta}"
                        )));
                    }
                }
                non_negative(name, "eps", eps)?;
                non_negative(name, "weight_decay", weight_decay)?;
            }
            Self::RMSprop {
                alpha,
                eps,
                momentum,
                weight_decay,
                ..
            } => {
                if !(0.0..=1.0).contains(&alpha) {
                    return Err(invalid(format!(
                        "{name}: alpha must be in [0, 1], got {alpha}"
                    )));
                }
                non_negative(name, "eps", eps)?;
                non_negative(name, "momentum", momentum)?;
                non_negative(name, "weight_decay", weight_decay)?;
            }
        }
        Ok(())
    }

    /// The names of the per-parameter state buffers, in PyTorch's words, in
    /// the order [`Optim::state`](super::Optim::state) lists them.
    pub(crate) fn buffer_names(&self) -> &'static [&'static str] {
        match *self {
            Self::Sgd { momentum, .. } if momentum != 0.0 => &["momentum_buffer"],
            Self::Sgd { .. } => &[],
            Self::Adam { .. } | Self::AdamW { .. } => &["exp_avg", "exp_avg_sq"],
            Self::RMSprop {
                momentum, centered, ..
            } => match (momentum > 0.0, centered) {
                (false, false) => &["square_avg"],
                (true, false) => &["square_avg", "momentum_buffer"],
                (false, true) => &["square_avg", "grad_avg"],
                (true, true) => &["square_avg", "momentum_buffer", "grad_avg"],
            },
        }
    }
}

/// The learning rate must be finite and not negative.
pub(crate) fn check_lr(name: &str, lr: f64) -> Result<(), TrainError> {
    non_negative(name, "lr", lr)
}

fn non_negative(name: &str, what: &str, v: f64) -> Result<(), TrainError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(invalid(format!(
            "{name}: {what} must be finite and >= 0, got {v}"
        )))
    }
}

fn invalid(msg: String) -> TrainError {
    TrainError::InvalidHyperparameter(msg)
}

impl fmt::Display for OptimizerConfig {
    /// The name, as [`FromStr`] reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OptimizerConfig {
    type Err = TrainError;

    /// `sgd`, `adam`, `adamw` or `rmsprop` (any case), with PyTorch's
    /// defaults, learning rate included (`1e-3`, or `1e-2` for RMSprop).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sgd" => Ok(Self::sgd(1e-3)),
            "adam" => Ok(Self::adam(1e-3)),
            "adamw" => Ok(Self::adamw(1e-3)),
            "rmsprop" => Ok(Self::rmsprop(1e-2)),
            _ => Err(invalid(format!(
                "unknown optimizer {s:?}: expected sgd, adam, adamw or rmsprop"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_have_pytorch_defaults() {
        assert_eq!(
            OptimizerConfig::adamw(1e-3),
            OptimizerConfig::AdamW {
                lr: 1e-3,
                betas: (0.9, 0.999),
                eps: 1e-8,
                weight_decay: 0.01
            }
        );
        let OptimizerConfig::RMSprop { alpha, eps, .. } = OptimizerConfig::rmsprop(0.01) else {
            panic!()
        };
        assert_eq!((alpha, eps), (0.99, 1e-8));
        for cfg in [
            OptimizerConfig::sgd(0.1),
            OptimizerConfig::adam(0.1),
            OptimizerConfig::adamw(0.1),
            OptimizerConfig::rmsprop(0.1),
        ] {
            cfg.validate().unwrap();
            assert_eq!(cfg.lr(), 0.1);
            assert_eq!(cfg.with_lr(0.5).lr(), 0.5);
        }
    }

    #[test]
    fn names_round_trip() {
        for name in ["sgd", "adam", "adamw", "rmsprop"] {
            let cfg: OptimizerConfig = name.parse().unwrap();
            assert_eq!(cfg.to_string(), name);
            assert_eq!(cfg.name(), name);
        }
        assert_eq!("AdamW".parse::<OptimizerConfig>().unwrap().name(), "adamw");
        assert_eq!("rmsprop".parse::<OptimizerConfig>().unwrap().lr(), 1e-2);
        let err = "lbfgs".parse::<OptimizerConfig>().unwrap_err();
        assert!(matches!(err, TrainError::InvalidHyperparameter(_)));
        assert!(err.to_string().contains("lbfgs"), "{err}");
    }

    #[test]
    fn bad_hyperparameters_are_named_errors() {
        let bad = [
            OptimizerConfig::sgd(-0.1),
            OptimizerConfig::sgd(f64::NAN),
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.0,
                dampening: 0.0,
                nesterov: true,
                weight_decay: 0.0,
            },
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                dampening: 0.1,
                nesterov: true,
                weight_decay: 0.0,
            },
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: -0.9,
                dampening: 0.0,
                nesterov: false,
                weight_decay: 0.0,
            },
            OptimizerConfig::Adam {
                lr: 0.1,
                betas: (1.0, 0.999),
                eps: 1e-8,
                weight_decay: 0.0,
            },
            OptimizerConfig::AdamW {
                lr: 0.1,
                betas: (0.9, -0.1),
                eps: 1e-8,
                weight_decay: 0.0,
            },
            OptimizerConfig::AdamW {
                lr: 0.1,
                betas: (0.9, 0.999),
                eps: 1e-8,
                weight_decay: -0.01,
            },
            OptimizerConfig::RMSprop {
                lr: 0.1,
                alpha: 1.5,
                eps: 1e-8,
                momentum: 0.0,
                weight_decay: 0.0,
                centered: false,
            },
            OptimizerConfig::RMSprop {
                lr: 0.1,
                alpha: 0.99,
                eps: -1.0,
                momentum: 0.0,
                weight_decay: 0.0,
                centered: false,
            },
        ];
        for cfg in bad {
            let err = cfg.validate().unwrap_err();
            assert!(
                matches!(&err, TrainError::InvalidHyperparameter(m) if m.starts_with(cfg.name())),
                "{cfg:?}: {err}"
            );
        }
    }
}

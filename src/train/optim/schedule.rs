//! Learning-rate schedules: pure functions of the epoch and the step, so
//! that a resumed run computes the same learning rates.
use crate::train::TrainError;
use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

/// How the learning rate changes during training, from the optimizer's
/// learning rate `base`.
///
/// [`Constant`](Self::Constant), [`Cosine`](Self::Cosine) and
/// [`Step`](Self::Step) change per epoch ([`lr`](Self::lr));
/// [`OneCycle`](Self::OneCycle) changes per step, i.e. per batch
/// ([`lr_at`](Self::lr_at); see [`is_per_step`](Self::is_per_step)).
/// [`Schedule`] adds a linear warm-up to any of them.
///
/// [`FromStr`] reads `constant`, `cosine[:FINAL_LR]`, `step[:STEP_SIZE[:GAMMA]]`
/// and `one-cycle[:MAX_LR]`, and [`Display`](fmt::Display) writes the same
/// form back.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum LrSchedule {
    /// The optimizer's learning rate throughout (PyTorch without a scheduler).
    #[default]
    Constant,
    /// Cosine annealing per epoch from the optimizer's learning rate down to
    /// `final_lr` in the last epoch (PyTorch's `CosineAnnealingLR` stepped per
    /// epoch, with `T_max` = epochs − 1 and `eta_min` = `final_lr`).
    Cosine {
        /// Learning rate of the last epoch.
        final_lr: f64,
    },
    /// `base * gamma^(epoch / step_size)` (PyTorch's `StepLR`, stepped per
    /// epoch).
    Step {
        /// Epochs between decays (at least 1).
        step_size: usize,
        /// Factor of each decay (PyTorch: `0.1`).
        gamma: f64,
    },
    /// The one-cycle policy (PyTorch's `OneCycleLR` with cosine annealing,
    /// two phases, stepped per batch): from `max_lr / div_factor` up to
    /// `max_lr` over the first `pct_start` of the steps, then down to
    /// `max_lr / (div_factor * final_div_factor)` at the last step. Momentum
    /// is not cycled.
    OneCycle {
        /// The peak learning rate; `None` for the optimizer's own.
        max_lr: Option<f64>,
        /// Fraction of the steps spent rising, in `[0, 1]` (PyTorch: `0.3`).
        pct_start: f64,
        /// `max_lr / initial lr` (PyTorch: `25`).
        div_factor: f64,
        /// `initial lr / final lr` (PyTorch: `1e4`).
        final_div_factor: f64,
    },
}

impl LrSchedule {
    /// Cosine annealing down to `final_lr`.
    pub fn cosine(final_lr: f64) -> Self {
        Self::Cosine { final_lr }
    }

    /// StepLR with PyTorch's `gamma` of 0.1.
    pub fn step(step_size: usize) -> Self {
        Self::Step {
            step_size,
            gamma: 0.1,
        }
    }

    /// OneCycleLR peaking at `max_lr`, with PyTorch's defaults: `pct_start`
    /// 0.3, `div_factor` 25, `final_div_factor` 1e4.
    pub fn one_cycle(max_lr: f64) -> Self {
        one_cycle(Some(max_lr), 0.3)
    }

    /// The name [`FromStr`] reads: `constant`, `cosine`, `step` or
    /// `one-cycle`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Cosine { .. } => "cosine",
            Self::Step { .. } => "step",
            Self::OneCycle { .. } => "one-cycle",
        }
    }

    /// Whether the schedule changes the learning rate every step (batch)
    /// rather than every epoch: only [`OneCycle`](Self::OneCycle).
    pub fn is_per_step(&self) -> bool {
        matches!(self, Self::OneCycle { .. })
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`TrainError::InvalidHyperparameter`]: a negative or non-finite
    /// learning rate or factor, `step_size` 0, `pct_start` outside `[0, 1]`.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |msg: String| Err(TrainError::InvalidHyperparameter(msg));
        let positive = |what: &str, v: f64| -> Result<(), TrainError> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                bad(format!(
                    "{}: {what} must be finite and > 0, got {v}",
                    self.name()
                ))
            }
        };
        match *self {
            Self::Constant => Ok(()),
            Self::Cosine { final_lr } if !(final_lr.is_finite() && final_lr >= 0.0) => bad(
                format!("cosine: final_lr must be finite and >= 0, got {final_lr}"),
            ),
            Self::Cosine { .. } => Ok(()),
            Self::Step { step_size: 0, .. } => bad("step: step_size must be at least 1".into()),
            Self::Step { gamma, .. } => positive("gamma", gamma),
            Self::OneCycle {
                max_lr,
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                if let Some(max_lr) = max_lr {
                    positive("max_lr", max_lr)?;
                }
                if !(0.0..=1.0).contains(&pct_start) {
                    return bad(format!(
                        "one-cycle: pct_start must be in [0, 1], got {pct_start}"
                    ));
                }
                positive("div_factor", div_factor)?;
                positive("final_div_factor", final_div_factor)
            }
        }
    }

    /// The learning rate of 0-based `epoch` out of `epochs`, starting from
    /// `base`. A per-step schedule ([`OneCycle`](Self::OneCycle)) counts each
    /// epoch as one step here.
    pub fn lr(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            Self::Constant => base,
            Self::Cosine { final_lr } => {
                if epochs <= 1 {
                    return base;
                }
                let t = epoch.min(epochs - 1) as f64 / (epochs - 1) as f64;
                final_lr + 0.5 * (base - final_lr) * (1.0 + (PI * t).cos())
            }
            Self::Step { step_size, gamma } => {
                let decays = epoch / step_size.max(1);
                base * gamma.powi(decays.min(i32::MAX as usize) as i32)
            }
            Self::OneCycle { .. } => self.lr_at(base, epoch, epochs),
        }
    }

    /// The learning rate of 0-based `step` out of `total_steps`, starting
    /// from `base`: for [`OneCycle`](Self::OneCycle), PyTorch's
    /// `OneCycleLR(total_steps=total_steps)` after `step` calls of
    /// `scheduler.step()`. A per-epoch schedule counts each step as an epoch
    /// here (the same as [`lr`](Self::lr)). Steps past the end keep the last
    /// step's value.
    pub fn lr_at(&self, base: f64, step: usize, total_steps: usize) -> f64 {
        let Self::OneCycle {
            max_lr,
            pct_start,
            div_factor,
            final_div_factor,
        } = *self
        else {
            return self.lr(base, step, total_steps);
        };
        let max_lr = max_lr.unwrap_or(base);
        let initial = max_lr / div_factor;
        let min = initial / final_div_factor;
        let s = step.min(total_steps.saturating_sub(1)) as f64;
        let end_up = pct_start * total_steps as f64 - 1.0;
        let end_down = total_steps as f64 - 1.0;
        let frac = |a: f64, b: f64| if b > 0.0 { a / b } else { 1.0 };
        let anneal =
            |start: f64, end: f64, pct: f64| end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0);
        if s <= end_up {
            anneal(initial, max_lr, frac(s, end_up))
        } else {
            anneal(max_lr, min, frac(s - end_up, end_down - end_up))
        }
    }
}

/// OneCycleLR with PyTorch's division factors.
fn one_cycle(max_lr: Option<f64>, pct_start: f64) -> LrSchedule {
    LrSchedule::OneCycle {
        max_lr,
        pct_start,
        div_factor: 25.0,
        final_div_factor: 1e4,
    }
}

impl fmt::Display for LrSchedule {
    /// The form [`FromStr`] reads, with every parameter (a `OneCycle`'s
    /// `pct_start` and division factors are not written).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Constant => f.write_str("constant"),
            Self::Cosine { final_lr } => write!(f, "cosine:{final_lr}"),
            Self::Step { step_size, gamma } => write!(f, "step:{step_size}:{gamma}"),
            Self::OneCycle { max_lr: None, .. } => f.write_str("one-cycle"),
            Self::OneCycle {
                max_lr: Some(m), ..
            } => write!(f, "one-cycle:{m}"),
        }
    }
}

impl FromStr for LrSchedule {
    type Err = TrainError;

    /// `constant`; `cosine[:FINAL_LR]` (default 0, PyTorch's `eta_min`);
    /// `step[:STEP_SIZE[:GAMMA]]` (defaults 1 and PyTorch's 0.1);
    /// `one-cycle[:MAX_LR]` (default: the optimizer's learning rate, with
    /// PyTorch's other defaults). The result is validated.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| {
            TrainError::InvalidHyperparameter(format!(
                "schedule {s:?}: {why} (expected constant, cosine[:FINAL_LR], \
                 step[:STEP_SIZE[:GAMMA]] or one-cycle[:MAX_LR])"
            ))
        };
        let lower = s.trim().to_ascii_lowercase();
        let mut parts = lower.split(':');
        let name = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        let num = |i: usize| -> Result<Option<f64>, TrainError> {
            args.get(i)
                .map(|a| a.parse::<f64>().map_err(|e| bad(format!("{a:?}: {e}"))))
                .transpose()
        };
        let max_args = match name {
            "constant" => 0,
            "cosine" | "one-cycle" | "onecycle" => 1,
            "step" => 2,
            other => return Err(bad(format!("unknown schedule {other:?}"))),
        };
        if args.len() > max_args {
            return Err(bad(format!("{name} takes at most {max_args} parameters")));
        }
        let sched = match name {
            "constant" => Self::Constant,
            "cosine" => Self::cosine(num(0)?.unwrap_or(0.0)),
            "step" => {
                let step_size = match args.first() {
                    Some(a) => a.parse().map_err(|e| bad(format!("{a:?}: {e}")))?,
                    None => 1,
                };
                Self::Step {
                    step_size,
                    gamma: num(1)?.unwrap_or(0.1),
                }
            }
            _ => one_cycle(num(0)?, 0.3),
        };
        sched.validate()?;
        Ok(sched)
    }
}

/// A [`LrSchedule`] after an optional linear warm-up.
///
/// For the first `warmup_epochs` epochs the learning rate is
/// `base * f`, `f` rising linearly from `warmup_start_factor` at epoch 0
/// towards 1 (PyTorch's `LinearLR(start_factor, total_iters=warmup_epochs)`);
/// from then on `kind` runs over the remaining epochs as if they were the
/// whole run (PyTorch's `SequentialLR` with the milestone at
/// `warmup_epochs`). The learning rate is a pure function of the epoch and,
/// for a per-step `kind`, the batch: [`lr_at`](Self::lr_at).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// What runs after the warm-up.
    pub kind: LrSchedule,
    /// Epochs of linear warm-up (0 for none).
    pub warmup_epochs: usize,
    /// The warm-up's first factor, in `(0, 1]` (PyTorch's `LinearLR`: 1/3).
    pub warmup_start_factor: f64,
}

impl Default for Schedule {
    /// [`LrSchedule::Constant`] without warm-up.
    fn default() -> Self {
        LrSchedule::Constant.into()
    }
}

impl From<LrSchedule> for Schedule {
    /// `kind` without warm-up.
    fn from(kind: LrSchedule) -> Self {
        Self {
            kind,
            warmup_epochs: 0,
            warmup_start_factor: 1.0 / 3.0,
        }
    }
}

impl Schedule {
    /// `kind` after `warmup_epochs` epochs of linear warm-up from a third of
    /// the learning rate.
    pub fn with_warmup(kind: LrSchedule, warmup_epochs: usize) -> Self {
        Self {
            warmup_epochs,
            ..kind.into()
        }
    }

    /// Checks the kind's parameters and the warm-up's start factor.
    ///
    /// # Errors
    /// [`TrainError::InvalidHyperparameter`].
    pub fn validate(&self) -> Result<(), TrainError> {
        self.kind.validate()?;
        let f = self.warmup_start_factor;
        if !(f > 0.0 && f <= 1.0) {
            return Err(TrainError::InvalidHyperparameter(format!(
                "warm-up: warmup_start_factor must be in (0, 1], got {f}"
            )));
        }
        Ok(())
    }

    /// The learning rate of 0-based `epoch` out of `epochs`, for a per-epoch
    /// schedule (a per-step one counts each epoch as a step).
    pub fn lr(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        self.lr_at(base, epoch, 0, epochs, 1)
    }

    /// The learning rate of 0-based `batch` of 0-based `epoch`, out of
    /// `epochs` epochs of `batches_per_epoch` batches each, starting from
    /// `base`. Per-epoch kinds ignore `batch`; a per-step kind runs over the
    /// steps after the warm-up.
    pub fn lr_at(
        &self,
        base: f64,
        epoch: usize,
        batch: usize,
        epochs: usize,
        batches_per_epoch: usize,
    ) -> f64 {
        let w = self.warmup_epochs;
        if epoch < w {
            let f = self.warmup_start_factor;
            return base * (f + (1.0 - f) * epoch as f64 / w as f64);
        }
        let (epoch, epochs) = (epoch - w, epochs.saturating_sub(w));
        if self.kind.is_per_step() {
            let per = batches_per_epoch.max(1);
            self.kind.lr_at(base, epoch * per + batch, epochs * per)
        } else {
            self.kind.lr(base, epoch, epochs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From scripts/optim_reference.py (torch 2.15.0); rerun it to regenerate.
    // StepLR(step_size=3, gamma=0.5), base 0.1, epochs 0..10.
    const STEP_LR: [f64; 10] = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125];
    // OneCycleLR(max_lr=0.1, total_steps=20), defaults otherwise.
    const ONE_CYCLE: [f64; 20] = [
        0.0040000000000000036,
        0.013167184270002533,
        0.037167184270002526,
        0.06683281572999747,
        0.09083281572999748,
        0.1,
        0.09874640062350874,
        0.09504846320134738,
        0.089091617757105,
        0.0811745653949763,
        0.07169430017913009,
        0.06112620219362893,
        0.0500002,
        0.03887419780637107,
        0.028306099820869922,
        0.0188258346050237,
        0.010908782242895003,
        0.004951936798652629,
        0.0012539993764912555,
        4e-07,
    ];
    // OneCycleLR(max_lr=0.2, total_steps=10, pct_start=0.25, div_factor=10,
    // final_div_factor=100).
    const ONE_CYCLE_CUSTOM: [f64; 10] = [
        0.01999999999999999,
        0.15499999999999997,
        0.1978169453133072,
        0.18092079773805725,
        0.15005000000000002,
        0.1105423934804386,
        0.06922920226194276,
        0.0332538524247501,
        0.008836808781504163,
        0.0002,
    ];
    // SequentialLR(LinearLR(start_factor=1/3, total_iters=3),
    // CosineAnnealingLR(T_max=6, eta_min=0.001), milestones=[3]), base 0.1.
    const WARMUP_COSINE: [f64; 10] = [
        0.03333333333333333,
        0.05555555555555556,
        0.07777777777777778,
        0.1,
        0.09336825748732973,
        0.07525000000000001,
        0.0505,
        0.025750000000000012,
        0.007631742512670284,
        0.001,
    ];

    fn close(got: f64, want: f64) {
        assert!(
            (got - want).abs() <= 1e-12 + 1e-9 * want.abs(),
            "{got} vs {want}"
        );
    }

    #[test]
    fn cosine_runs_from_base_to_final() {
        let s = LrSchedule::Cosine { final_lr: 1e-5 };
        assert_eq!(s.lr(1e-3, 0, 10), 1e-3);
        assert!((s.lr(1e-3, 9, 10) - 1e-5).abs() < 1e-12);
        assert!(s.lr(1e-3, 5, 10) < s.lr(1e-3, 4, 10));
        assert_eq!(LrSchedule::Constant.lr(0.5, 3, 10), 0.5);
    }

    #[test]
    fn step_lr_matches_pytorch() {
        let s = LrSchedule::Step {
            step_size: 3,
            gamma: 0.5,
        };
        for (e, want) in STEP_LR.iter().enumerate() {
            close(s.lr(0.1, e, 10), *want);
        }
        assert!(!s.is_per_step());
        assert_eq!(LrSchedule::step(2).lr(1.0, 4, 10), 0.1f64.powi(2));
    }

    #[test]
    fn one_cycle_matches_pytorch() {
        let s = LrSchedule::one_cycle(0.1);
        assert!(s.is_per_step());
        for (i, want) in ONE_CYCLE.iter().enumerate() {
            close(s.lr_at(0.5, i, 20), *want);
        }
        // Past the end it stays at the last value.
        close(s.lr_at(0.5, 25, 20), ONE_CYCLE[19]);
        let custom = LrSchedule::OneCycle {
            max_lr: None,
            pct_start: 0.25,
            div_factor: 10.0,
            final_div_factor: 100.0,
        };
        for (i, want) in ONE_CYCLE_CUSTOM.iter().enumerate() {
            close(custom.lr_at(0.2, i, 10), *want);
        }
        // Degenerate lengths give numbers, not NaN.
        for total in [0, 1, 2] {
            for pct in [0.0, 1.0] {
                let s = one_cycle(Some(0.1), pct);
                assert!(s.lr_at(0.1, 0, total).is_finite(), "{total} {pct}");
            }
        }
    }

    #[test]
    fn warmup_then_cosine_matches_pytorch() {
        let s = Schedule::with_warmup(LrSchedule::cosine(0.001), 3);
        s.validate().unwrap();
        for (e, want) in WARMUP_COSINE.iter().enumerate() {
            close(s.lr(0.1, e, 10), *want);
            // Per-epoch kinds ignore the batch.
            close(s.lr_at(0.1, e, 7, 10, 100), *want);
        }
        assert_eq!(Schedule::default().lr(0.3, 5, 10), 0.3);
    }

    #[test]
    fn warmup_then_one_cycle_runs_per_step() {
        let s = Schedule::with_warmup(LrSchedule::one_cycle(0.1), 2);
        // Warm-up epochs: constant within the epoch.
        close(s.lr_at(0.05, 0, 3, 12, 5), 0.05 / 3.0);
        close(
            s.lr_at(0.05, 1, 0, 12, 5),
            0.05 * (1.0 / 3.0 + 2.0 / 3.0 / 2.0),
        );
        // Then 10 epochs of 5 steps: OneCycle over 50 steps.
        for step in 0..50 {
            let (e, b) = (2 + step / 5, step % 5);
            let want = LrSchedule::one_cycle(0.1).lr_at(0.05, step, 50);
            assert_eq!(s.lr_at(0.05, e, b, 12, 5), want);
        }
    }

    #[test]
    fn names_parse_and_print() {
        for (text, want) in [
            ("constant", LrSchedule::Constant),
            ("cosine", LrSchedule::cosine(0.0)),
            ("cosine:1e-5", LrSchedule::cosine(1e-5)),
            ("step", LrSchedule::step(1)),
            ("step:3", LrSchedule::step(3)),
            (
                "step:3:0.5",
                LrSchedule::Step {
                    step_size: 3,
                    gamma: 0.5,
                },
            ),
            ("one-cycle", one_cycle(None, 0.3)),
            ("One-Cycle:0.1", LrSchedule::one_cycle(0.1)),
        ] {
            let got: LrSchedule = text.parse().unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string().parse::<LrSchedule>().unwrap(), got);
            assert!(text.to_ascii_lowercase().starts_with(got.name()));
        }
        for bad in [
            "linear",
            "step:0",
            "step:x",
            "cosine:-1",
            "constant:1",
            "one-cycle:0",
        ] {
            let err = bad.parse::<LrSchedule>().unwrap_err();
            assert!(
                matches!(err, TrainError::InvalidHyperparameter(_)),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn bad_schedules_are_named_errors() {
        assert!(LrSchedule::Step {
            step_size: 0,
            gamma: 0.1
        }
        .validate()
        .is_err());
        assert!(one_cycle(Some(0.1), 1.5).validate().is_err());
        let s = Schedule {
            warmup_start_factor: 0.0,
            ..Schedule::with_warmup(LrSchedule::Constant, 2)
        };
        assert!(matches!(
            s.validate(),
            Err(TrainError::InvalidHyperparameter(_))
        ));
        // Step size 0 is refused by validate, and lr still gives a number.
        assert_eq!(
            LrSchedule::Step {
                step_size: 0,
                gamma: 0.5
            }
            .lr(1.0, 2, 10),
            0.25
        );
    }
}

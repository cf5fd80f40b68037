//! RMSprop's update rule (`torch.optim.RMSprop`), on host copies in f32.
use super::adam::lerp;

/// RMSprop's coefficients for one step, in f32 as PyTorch uses them.
pub(super) struct RmsProp {
    neg_lr: f32,
    alpha: f32,
    one_minus_alpha: f32,
    eps: f32,
    /// `None` without momentum.
    momentum: Option<f32>,
    weight_decay: f32,
    centered: bool,
}

impl RmsProp {
    /// The coefficients of one step (RMSprop's step number changes nothing).
    pub(super) fn new(
        lr: f64,
        alpha: f64,
        eps: f64,
        momentum: f64,
        weight_decay: f64,
        centered: bool,
    ) -> Self {
        Self {
            neg_lr: (-lr) as f32,
            alpha: alpha as f32,
            one_minus_alpha: (1.0 - alpha) as f32,
            eps: eps as f32,
            momentum: (momentum > 0.0).then_some(momentum as f32),
            weight_decay: weight_decay as f32,
            centered,
        }
    }

    /// Updates `p` from `g`; `bufs` is `[square_avg]`, then
    /// `momentum_buffer` with momentum, then `grad_avg` when centered.
    pub(super) fn apply(&self, p: &mut [f32], g: &[f32], bufs: &mut [Vec<f32>]) {
        let (square_avg, rest) = bufs
            .split_first_mut()
            .expect("RMSprop keeps square_avg for every parameter");
        let (mut momentum_buf, rest) = match self.momentum {
            Some(_) => {
                let (m, rest) = rest.split_first_mut().expect("momentum_buffer");
                (Some(m), rest)
            }
            None => (None, rest),
        };
        let mut grad_avg = if self.centered {
            rest.first_mut()
        } else {
            None
        };
        for i in 0..p.len() {
            let d = if self.weight_decay != 0.0 {
                g[i] + self.weight_decay * p[i]
            } else {
                g[i]
            };
            let sq = &mut square_avg[i];
            *sq = *sq * self.alpha + self.one_minus_alpha * d * d;
            let avg = match grad_avg.as_deref_mut() {
                Some(ga) => {
                    ga[i] = lerp(ga[i], d, self.one_minus_alpha);
                    (*sq + -ga[i] * ga[i]).sqrt()
                }
                None => sq.sqrt(),
            } + self.eps;
            match (momentum_buf.as_deref_mut(), self.momentum) {
                (Some(buf), Some(momentum)) => {
                    buf[i] = buf[i] * momentum + d / avg;
                    p[i] += self.neg_lr * buf[i];
                }
                _ => p[i] += self.neg_lr * d / avg,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{reference_run, REFERENCE_STEPS};
    use super::super::OptimizerConfig;

    // From scripts/optim_reference.py (torch 2.15.0); rerun it to regenerate.
    const RMSPROP_CENTERED: [f64; 8] = [
        -0.6827161312103271,
        -0.48698580265045166,
        0.024143213406205177,
        0.3376072943210602,
        0.6587786674499512,
        -0.6749464869499207,
        -0.42534247040748596,
        -0.0029685322660952806,
    ];
    const RMSPROP_CENTERED_MOMENTUM_BUFFER: [f64; 8] = [
        -1.0481951236724854,
        1.7972217798233032,
        -0.9460365772247314,
        -1.2665693759918213,
        0.9707596302032471,
        -2.0122156143188477,
        2.6039843559265137,
        -0.26393669843673706,
    ];
    const RMSPROP_CENTERED_SQUARE_AVG: [f64; 8] = [
        0.3191668689250946,
        0.22987693548202515,
        0.1983068734407425,
        0.3501969873905182,
        0.18986403942108154,
        0.25255537033081055,
        0.32017725706100464,
        0.19648830592632294,
    ];
    const RMSPROP_CENTERED_GRAD_AVG: [f64; 8] = [
        -0.11395943909883499,
        0.1345762312412262,
        -0.04843245819211006,
        -0.027353672310709953,
        0.04144441708922386,
        -0.1567944437265396,
        0.13921640813350677,
        -0.06668034195899963,
    ];
    const RMSPROP_PLAIN: [f64; 8] = [
        -0.6393063068389893,
        -0.5633036494255066,
        0.05001746863126755,
        0.34163331985473633,
        0.607248067855835,
        -0.615077793598175,
        -0.4839248061180115,
        0.002311406657099724,
    ];
    const RMSPROP_PLAIN_SQUARE_AVG: [f64; 8] = [
        0.03794762119650841,
        0.02870047278702259,
        0.023333927616477013,
        0.04166099429130554,
        0.023223111405968666,
        0.028885163366794586,
        0.0380215123295784,
        0.02387199178338051,
    ];

    #[test]
    fn rmsprop_centered_with_momentum_matches_pytorch() {
        let cfg = OptimizerConfig::RMSprop {
            lr: 0.01,
            alpha: 0.9,
            eps: 1e-6,
            momentum: 0.5,
            weight_decay: 0.02,
            centered: true,
        };
        let run = reference_run(cfg, None, REFERENCE_STEPS);
        run.assert_params(&RMSPROP_CENTERED);
        run.assert_buffer("momentum_buffer", &RMSPROP_CENTERED_MOMENTUM_BUFFER);
        run.assert_buffer("square_avg", &RMSPROP_CENTERED_SQUARE_AVG);
        run.assert_buffer("grad_avg", &RMSPROP_CENTERED_GRAD_AVG);
    }

    #[test]
    fn rmsprop_defaults_match_pytorch() {
        let run = reference_run(OptimizerConfig::rmsprop(0.01), None, REFERENCE_STEPS);
        run.assert_params(&RMSPROP_PLAIN);
        run.assert_buffer("square_avg", &RMSPROP_PLAIN_SQUARE_AVG);
        assert_eq!(
            run.state.buffers.len(),
            2,
            "square_avg of weight and bias only"
        );
    }
}

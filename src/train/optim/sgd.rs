//! SGD's update rule (`torch.optim.SGD`), on host copies in f32.

/// SGD's coefficients for one step, in f32 as PyTorch uses them.
pub(super) struct Sgd {
    neg_lr: f32,
    weight_decay: f32,
    momentum: f32,
    one_minus_dampening: f32,
    nesterov: bool,
    /// The first step sets the momentum buffer to the gradient.
    first: bool,
}

impl Sgd {
    /// The coefficients of step number `step` (1-based).
    pub(super) fn new(
        lr: f64,
        momentum: f64,
        dampening: f64,
        nesterov: bool,
        weight_decay: f64,
        step: u64,
    ) -> Self {
        Self {
            neg_lr: (-lr) as f32,
            weight_decay: weight_decay as f32,
            momentum: momentum as f32,
            one_minus_dampening: (1.0 - dampening) as f32,
            nesterov,
            first: step == 1,
        }
    }

    /// Updates `p` from `g`; `bufs` is `[momentum_buffer]` with momentum,
    /// empty without.
    pub(super) fn apply(&self, p: &mut [f32], g: &[f32], bufs: &mut [Vec<f32>]) {
        let buf = bufs.first_mut();
        match buf {
            None => {
                for (p, &g) in p.iter_mut().zip(g) {
                    let d = if self.weight_decay != 0.0 {
                        g + self.weight_decay * *p
                    } else {
                        g
                    };
                    *p += self.neg_lr * d;
                }
            }
            Some(buf) => {
                for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
                    let mut d = if self.weight_decay != 0.0 {
                        g + self.weight_decay * *p
                    } else {
                        g
                    };
                    *b = if self.first {
                        d
                    } else {
                        *b * self.momentum + self.one_minus_dampening * d
                    };
                    d = if self.nesterov {
                        d + self.momentum * *b
                    } else {
                        *b
                    };
                    *p += self.neg_lr * d;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{reference_run, REFERENCE_STEPS};
    use super::super::OptimizerConfig;

    // From scripts/optim_reference.py (torch 2.15.0); rerun it to regenerate.
    const SGD_PLAIN: [f64; 8] = [
        -0.5999999642372131,
        -0.550000011920929,
        0.04999999701976776,
        0.375,
        0.699999988079071,
        -0.574999988079071,
        -0.5250000357627869,
        0.07499999552965164,
    ];
    const SGD_NESTEROV: [f64; 8] = [
        -0.43313029408454895,
        -0.686350405216217,
        0.053118590265512466,
        0.25044551491737366,
        0.6391453146934509,
        -0.48063990473747253,
        -0.5445629954338074,
        0.105386883020401,
    ];
    const SGD_NESTEROV_MOMENTUM_BUFFER: [f64; 8] = [
        -1.1056746244430542,
        1.3608261346817017,
        -0.48529690504074097,
        -0.29096925258636475,
        0.38604360818862915,
        -1.5366328954696655,
        1.4076945781707764,
        -0.665292501449585,
    ];
    const SGD_DAMPENED: [f64; 8] = [
        -0.5072521567344666,
        -0.5312992930412292,
        0.04384618625044823,
        0.22453682124614716,
        0.6556698083877563,
        -0.5596812963485718,
        -0.4752406179904938,
        0.05214232578873634,
    ];
    const SGD_DAMPENED_MOMENTUM_BUFFER: [f64; 8] = [
        -0.8716630935668945,
        0.7301038503646851,
        -0.3974476754665375,
        -0.14266832172870636,
        0.39552417397499084,
        -1.1882723569869995,
        0.9915069341659546,
        -0.3953004777431488,
    ];

    #[test]
    fn sgd_plain_matches_pytorch() {
        let run = reference_run(OptimizerConfig::sgd(0.1), None, REFERENCE_STEPS);
        run.assert_params(&SGD_PLAIN);
        assert!(run.state.buffers.is_empty());
    }

    #[test]
    fn sgd_nesterov_with_weight_decay_matches_pytorch() {
        let cfg = OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 0.01,
        };
        let run = reference_run(cfg, None, REFERENCE_STEPS);
        run.assert_params(&SGD_NESTEROV);
        run.assert_buffer("momentum_buffer", &SGD_NESTEROV_MOMENTUM_BUFFER);
    }

    #[test]
    fn sgd_dampened_momentum_matches_pytorch() {
        let cfg = OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.8,
            dampening: 0.3,
            nesterov: false,
            weight_decay: 0.1,
        };
        let run = reference_run(cfg, None, REFERENCE_STEPS);
        run.assert_params(&SGD_DAMPENED);
        run.assert_buffer("momentum_buffer", &SGD_DAMPENED_MOMENTUM_BUFFER);
    }
}

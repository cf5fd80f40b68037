//! Adam's and AdamW's update rule (`torch.optim.Adam`, `torch.optim.AdamW`),
//! on host copies in f32.

use rayon::prelude::*;

/// `torch.lerp`: `a + w (b - a)`, computed from the nearer end as PyTorch
/// does.
#[inline(always)]
pub(super) fn lerp(a: f32, b: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

/// Adam's coefficients for one step, in f32 as PyTorch uses them.
pub(super) struct Adam {
    /// L2 penalty added to the gradient (Adam), 0 for AdamW.
    l2: f32,
    /// `1 - lr * weight_decay` (AdamW), `None` for Adam or no decay.
    decay: Option<f32>,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bias_correction2_sqrt: f32,
    neg_step_size: f32,
    eps: f32,
}

impl Adam {
    /// The coefficients of step number `step` (1-based); `decoupled` for
    /// AdamW.
    pub(super) fn new(
        lr: f64,
        betas: (f64, f64),
        eps: f64,
        weight_decay: f64,
        decoupled: bool,
        step: u64,
    ) -> Self {
        let (beta1, beta2) = betas;
        let bias_correction1 = 1.0 - beta1.powf(step as f64);
        let bias_correction2 = 1.0 - beta2.powf(step as f64);
        Self {
            l2: if decoupled { 0.0 } else { weight_decay as f32 },
            decay: (decoupled && weight_decay != 0.0).then_some((1.0 - lr * weight_decay) as f32),
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            bias_correction2_sqrt: bias_correction2.sqrt() as f32,
            neg_step_size: (-(lr / bias_correction1)) as f32,
            eps: eps as f32,
        }
    }

    /// Updates `p` from `g`; `bufs` is `[exp_avg, exp_avg_sq]`.
    /// Elementwise, so a large tensor is updated in blocks over the cores;
    /// every element gets the same arithmetic either way.
    pub(super) fn apply(&self, p: &mut [f32], g: &[f32], bufs: &mut [Vec<f32>]) {
        let [exp_avg, exp_avg_sq] = bufs else {
            unreachable!("Adam keeps two buffers per parameter")
        };
        if p.len() <= BLOCK {
            update(self, p, g, exp_avg, exp_avg_sq);
            return;
        }
        p.par_chunks_mut(BLOCK)
            .zip(g.par_chunks(BLOCK))
            .zip(exp_avg.par_chunks_mut(BLOCK))
            .zip(exp_avg_sq.par_chunks_mut(BLOCK))
            .for_each(|(((p, g), m), v)| update(self, p, g, m, v));
    }
}

/// Parameters per parallel block.
const BLOCK: usize = 1 << 14;

/// Adam's step on one block: `p`, its gradient `g`, `exp_avg` `m` and
/// `exp_avg_sq` `v`, element by element as `torch.optim.Adam` does.
#[inline(always)]
fn update_body(k: &Adam, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        if let Some(decay) = k.decay {
            *p *= decay;
        }
        let d = if k.l2 != 0.0 { g + k.l2 * *p } else { g };
        *m = lerp(*m, d, k.one_minus_beta1);
        *v = *v * k.beta2 + k.one_minus_beta2 * d * d;
        let denom = v.sqrt() / k.bias_correction2_sqrt + k.eps;
        *p += k.neg_step_size * *m / denom;
    }
}

crate::ops::cpu_util::avx2_or_baseline!(
    /// [`update_body`], compiled for AVX2 when the CPU has it.
    fn update(k: &Adam, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) => update_body
);

#[cfg(test)]
mod tests {
    /// A tensor larger than a block is updated in parallel blocks: the
    /// same bits as one pass over it on one thread.
    #[test]
    fn blocks_in_parallel_give_the_bits_of_one_pass() {
        let n = 3 * super::BLOCK + 77;
        let k = super::Adam::new(1e-3, (0.9, 0.999), 1e-8, 0.01, false, 3);
        let g: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) * 1e-2).collect();
        let p0: Vec<f32> = (0..n).map(|i| ((i % 89) as f32 - 44.0) * 1e-3).collect();
        let m0: Vec<f32> = (0..n).map(|i| ((i % 13) as f32 - 6.0) * 1e-3).collect();
        let v0: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 1e-4).collect();
        let (mut p, mut bufs) = (p0.clone(), vec![m0.clone(), v0.clone()]);
        k.apply(&mut p, &g, &mut bufs);
        let (mut p1, mut m1, mut v1) = (p0, m0, v0);
        super::update_body(&k, &mut p1, &g, &mut m1, &mut v1);
        assert_eq!(p, p1);
        assert_eq!(bufs, vec![m1, v1]);
    }

    use super::super::testing::{reference_run, REFERENCE_STEPS};
    use super::super::OptimizerConfig;

    // From scripts/optim_reference.py (torch 2.15.0); rerun it to regenerate.
    const ADAM_WD: [f64; 8] = [
        -0.7231703400611877,
        -0.40286821126937866,
        0.010114897042512894,
        0.35973259806632996,
        0.7296980619430542,
        -0.7244462966918945,
        -0.38644134998321533,
        0.0022162373643368483,
    ];
    const ADAM_WD_EXP_AVG: [f64; 8] = [
        -0.1862085908651352,
        0.2097652554512024,
        -0.09709703177213669,
        -0.09218844026327133,
        0.07957721501588821,
        -0.29016852378845215,
        0.2646862268447876,
        -0.11328887939453125,
    ];
    const ADAM_WD_EXP_AVG_SQ: [f64; 8] = [
        0.17973901331424713,
        0.12777124345302582,
        0.10863400250673294,
        0.1924528330564499,
        0.10791318118572235,
        0.1413116604089737,
        0.17375974357128143,
        0.10967604070901871,
    ];
    const ADAMW: [f64; 8] = [
        -0.7216706275939941,
        -0.40448907017707825,
        0.010808754712343216,
        0.3584820032119751,
        0.7296925187110901,
        -0.725002646446228,
        -0.3874627649784088,
        0.0012476093834266067,
    ];
    const ADAMW_EXP_AVG: [f64; 8] = [
        -0.10821249336004257,
        0.13818000257015228,
        -0.048580002039670944,
        -0.03016250766813755,
        0.035802505910396576,
        -0.15095750987529755,
        0.14246000349521637,
        -0.06657499819993973,
    ];
    const ADAMW_EXP_AVG_SQ: [f64; 8] = [
        0.0038668853230774403,
        0.002930694492533803,
        0.002370815258473158,
        0.004241511225700378,
        0.0023696920834481716,
        0.00293256645090878,
        0.0038676343392580748,
        0.002432440873235464,
    ];

    #[test]
    fn adam_with_l2_weight_decay_matches_pytorch() {
        let cfg = OptimizerConfig::Adam {
            lr: 0.01,
            betas: (0.8, 0.95),
            eps: 1e-6,
            weight_decay: 0.05,
        };
        let run = reference_run(cfg, None, REFERENCE_STEPS);
        run.assert_params(&ADAM_WD);
        run.assert_buffer("exp_avg", &ADAM_WD_EXP_AVG);
        run.assert_buffer("exp_avg_sq", &ADAM_WD_EXP_AVG_SQ);
    }

    #[test]
    fn adamw_defaults_match_pytorch() {
        let run = reference_run(OptimizerConfig::adamw(0.01), None, REFERENCE_STEPS);
        run.assert_params(&ADAMW);
        run.assert_buffer("exp_avg", &ADAMW_EXP_AVG);
        run.assert_buffer("exp_avg_sq", &ADAMW_EXP_AVG_SQ);
    }

    #[test]
    fn lerp_matches_both_ends() {
        assert_eq!(super::lerp(1.0, 3.0, 0.25), 1.5);
        assert_eq!(super::lerp(1.0, 3.0, 0.75), 2.5);
        assert_eq!(super::lerp(1.0, 3.0, 1.0), 3.0);
    }
}

//! Gradient clipping by global norm, as `torch.nn.utils.clip_grad_norm_`.

/// Independent f64 accumulators of [`sum_squares`], so that its loop runs
/// in vector registers (a 512-bit one, or two 256-bit ones).
const LANES: usize = 8;

#[inline(always)]
fn sum_squares_body(g: &[f32]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let mut chunks = g.chunks_exact(LANES);
    for c in &mut chunks {
        for k in 0..LANES {
            acc[k] += f64::from(c[k]) * f64::from(c[k]);
        }
    }
    for (k, x) in chunks.remainder().iter().enumerate() {
        acc[k] += f64::from(*x) * f64::from(*x);
    }
    acc.iter().sum()
}

crate::ops::cpu_util::avx2_or_baseline!(
    /// The sum of the squares of `g`, accumulated in f64 in [`LANES`] lanes
    /// by position (value `i` into lane `i % LANES`: a fixed order, the same
    /// bits on every run), compiled for AVX2 when the CPU has it.
    pub(super) fn sum_squares(g: &[f32]) -> f64 => sum_squares_body
);

/// The factor that `clip_grad_norm_(max_norm)` scales the gradients by when
/// their total norm is `norm`: `max_norm / (norm + 1e-6)`, or `None` where
/// that is not below 1 (the gradients stay as they are).
pub(super) fn clip_coefficient(max_norm: f64, norm: f64) -> Option<f32> {
    let coef = max_norm / (norm + 1e-6);
    (coef < 1.0).then_some(coef as f32)
}

/// Scales `g` in place by `coef`.
pub(super) fn scale(g: &mut [f32], coef: f32) {
    for x in g {
        *x *= coef;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{reference_grads, reference_run, REFERENCE_STEPS};
    use super::super::OptimizerConfig;
    use super::*;

    // From scripts/optim_reference.py (torch 2.15.0): SGD lr 0.1 after
    // clip_grad_norm_(1.0) each step, and the norms clip_grad_norm_ returned.
    const SGD_CLIPPED: [f64; 8] = [
        -0.6872828006744385,
        -0.45107483863830566,
        0.022091753780841827,
        0.37357813119888306,
        0.7298059463500977,
        -0.6720274090766907,
        -0.439852774143219,
        0.03568674251437187,
    ];
    const SGD_CLIPPED_NORMS: [f64; 5] = [
        2.291287899017334,
        2.2360680103302,
        2.1937410831451416,
        2.1650633811950684,
        2.3048861026763916,
    ];

    #[test]
    fn clipping_matches_pytorch() {
        let run = reference_run(OptimizerConfig::sgd(0.1), Some(1.0), REFERENCE_STEPS);
        run.assert_params(&SGD_CLIPPED);
        for (got, want) in run.norms.iter().zip(SGD_CLIPPED_NORMS) {
            assert!((got - want).abs() < 1e-6 * want, "{got} vs {want}");
        }
    }

    #[test]
    fn the_lanes_sum_what_a_plain_loop_sums() {
        for n in [0, 1, 7, 8, 9, 100, 1003] {
            let g: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.37)
                .collect();
            let plain: f64 = g.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            let ours = sum_squares(&g);
            assert!(
                (ours - plain).abs() <= 1e-12 * plain.max(1.0),
                "{n}: {ours} vs {plain}"
            );
        }
        let mut g = vec![1.0f32; 20];
        g[17] = f32::NAN;
        assert!(sum_squares(&g).is_nan(), "NaN in the tail of the lanes");
        g[17] = f32::INFINITY;
        assert!(sum_squares(&g).is_infinite());
        g[17] = 1.0;
        g[3] = f32::NAN;
        assert!(sum_squares(&g).is_nan(), "NaN in a lane");
    }

    #[test]
    fn norm_and_scaled_gradients() {
        let g = reference_grads(0);
        let norm = sum_squares(&g).sqrt();
        assert!((norm - SGD_CLIPPED_NORMS[0]).abs() < 1e-6);
        let coef = clip_coefficient(1.0, norm).unwrap();
        let mut scaled = g.clone();
        scale(&mut scaled, coef);
        let new_norm = sum_squares(&scaled).sqrt();
        assert!((new_norm - 1.0).abs() < 1e-5, "{new_norm}");
        // Directions are kept.
        for (s, g) in scaled.iter().zip(&g) {
            assert!((s - g * coef).abs() == 0.0);
        }
        // A norm under the limit leaves the gradients alone.
        assert_eq!(clip_coefficient(10.0, norm), None);
        assert_eq!(clip_coefficient(norm + 1e-6, norm), None);
    }
}

//! The fixed problem of scripts/optim_reference.py: a `Linear<3, 2>` whose
//! eight values (weight, then bias) start at `((i % 5) - 2) * 0.375` and
//! whose gradient at step `t` is `((7 i + 3 t) % 11 - 5) / 4`, all exact in
//! f32.
use super::{Optim, OptimizerConfig, OptimizerState};
use dfdx::nn::modules::Linear;
use dfdx::prelude::{Cpu, DeviceBuildExt, Gradients, ZeroGrads};

/// Steps the script runs.
pub(super) const REFERENCE_STEPS: usize = 5;

pub(super) type Model = Linear<3, 2, f32, Cpu>;

/// The starting values.
pub(super) fn reference_params() -> Vec<f32> {
    (0..8).map(|i| ((i % 5) as f32 - 2.0) * 0.375).collect()
}

/// The gradient of 0-based step `t`.
pub(super) fn reference_grads(t: usize) -> Vec<f32> {
    (0..8)
        .map(|i| (((7 * i + 3 * t) % 11) as f32 - 5.0) / 4.0)
        .collect()
}

/// The model at its starting values.
pub(super) fn reference_model() -> Model {
    let dev = Cpu::default();
    let mut m = dev.build_module::<dfdx::nn::builders::Linear<3, 2>, f32>();
    let p = reference_params();
    m.weight.copy_from(&p[..6]);
    m.bias.copy_from(&p[6..]);
    m
}

/// Sets `grads` to step `t`'s gradient.
pub(super) fn set_grads(m: &Model, grads: &mut Gradients<f32, Cpu>, t: usize) {
    let g = reference_grads(t);
    grads
        .get_or_alloc_mut(&m.weight)
        .unwrap()
        .copy_from_slice(&g[..6]);
    grads
        .get_or_alloc_mut(&m.bias)
        .unwrap()
        .copy_from_slice(&g[6..]);
}

/// Steps `from..to` of the reference problem.
pub(super) fn run_steps(opt: &mut Optim, m: &mut Model, from: usize, to: usize) -> Vec<f64> {
    let mut grads = m.alloc_grads();
    (from..to)
        .map(|t| {
            set_grads(m, &mut grads, t);
            opt.update(m, &grads).unwrap()
        })
        .collect()
}

/// The outcome of a run.
pub(super) struct Run {
    pub params: Vec<f32>,
    pub state: OptimizerState,
    pub norms: Vec<f64>,
}

/// `steps` steps of `cfg` (clipping at `clip`) on the reference problem.
pub(super) fn reference_run(cfg: OptimizerConfig, clip: Option<f64>, steps: usize) -> Run {
    let mut m = reference_model();
    let mut opt = Optim::new(&m, cfg)
        .unwrap()
        .with_clip_grad_norm(clip)
        .unwrap();
    let norms = run_steps(&mut opt, &mut m, 0, steps);
    assert_eq!(opt.steps(), steps as u64);
    Run {
        params: [m.weight.as_vec(), m.bias.as_vec()].concat(),
        state: opt.state(),
        norms,
    }
}

/// Within PyTorch's rounding: 1e-6 relative, or 1e-6 absolute near 0.
pub(super) fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, tol) = (f64::from(g), 1e-6 * w.abs().max(1.0));
        assert!((g - w).abs() <= tol, "{what}[{i}]: {g} vs PyTorch's {w}");
    }
}

impl Run {
    /// The parameters after the run, against PyTorch's.
    pub(super) fn assert_params(&self, want: &[f64]) {
        assert_close("params", &self.params, want);
    }

    /// Buffer `name` of weight then bias, against PyTorch's.
    pub(super) fn assert_buffer(&self, name: &str, want: &[f64]) {
        let got: Vec<f32> = ["weight", "bias"]
            .iter()
            .flat_map(|p| {
                let b = self
                    .state
                    .buffers
                    .iter()
                    .find(|b| b.param == *p && b.name == name)
                    .unwrap_or_else(|| panic!("no {p}.{name} in {:?}", self.state));
                b.data.clone()
            })
            .collect();
        assert_close(name, &got, want);
    }
}

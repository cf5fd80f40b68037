//! The optimizer as a whole: layout, state round trips, mismatches,
//! clipping errors, BatchNorm's buffers, dfdx's trait.
use super::testing::{reference_model, run_steps, set_grads, Model};
use super::*;
use dfdx::nn::builders::{BatchNorm1D, Linear};
use dfdx::prelude::{Cpu, DeviceBuildExt, ZeroGrads};

fn all_kinds() -> Vec<OptimizerConfig> {
    vec![
        OptimizerConfig::sgd(0.1),
        OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 0.01,
        },
        OptimizerConfig::Adam {
            lr: 0.01,
            betas: (0.8, 0.95),
            eps: 1e-6,
            weight_decay: 0.05,
        },
        OptimizerConfig::adamw(0.01),
        OptimizerConfig::rmsprop(0.01),
        OptimizerConfig::RMSprop {
            lr: 0.01,
            alpha: 0.9,
            eps: 1e-6,
            momentum: 0.5,
            weight_decay: 0.02,
            centered: true,
        },
    ]
}

fn bits(m: &Model) -> Vec<u32> {
    [m.weight.as_vec(), m.bias.as_vec()]
        .concat()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

#[test]
fn names_and_buffers_follow_pytorch() {
    let m = reference_model();
    let opt = Optim::new(&m, OptimizerConfig::adam(1e-3)).unwrap();
    assert_eq!(opt.param_names().collect::<Vec<_>>(), ["weight", "bias"]);
    assert!(opt.state().buffers.is_empty(), "no buffers before a step");
    let run = testing::reference_run(OptimizerConfig::adam(1e-3), None, 1);
    let keys: Vec<String> = run.state.buffers.iter().map(StateBuffer::key).collect();
    assert_eq!(
        keys,
        [
            "weight.exp_avg",
            "weight.exp_avg_sq",
            "bias.exp_avg",
            "bias.exp_avg_sq"
        ]
    );
    assert_eq!(run.state.buffers[0].shape, [2, 3]);
    assert_eq!(run.state.optimizer, "adam");
    assert_eq!(run.state.steps, 1);
}

#[test]
fn resumed_state_continues_bit_identically() {
    for cfg in all_kinds() {
        for clip in [None, Some(1.0)] {
            let mut m_a = reference_model();
            let mut a = Optim::new(&m_a, cfg)
                .unwrap()
                .with_clip_grad_norm(clip)
                .unwrap();
            run_steps(&mut a, &mut m_a, 0, 7);

            let mut m_b = reference_model();
            let mut b = Optim::new(&m_b, cfg)
                .unwrap()
                .with_clip_grad_norm(clip)
                .unwrap();
            run_steps(&mut b, &mut m_b, 0, 3);
            let saved = b.state();
            drop(b);
            let mut c = Optim::new(&m_b, cfg)
                .unwrap()
                .with_clip_grad_norm(clip)
                .unwrap();
            c.load_state(saved).unwrap();
            assert_eq!(c.steps(), 3);
            run_steps(&mut c, &mut m_b, 3, 7);

            assert_eq!(bits(&m_a), bits(&m_b), "{cfg:?} clip {clip:?}");
            assert_eq!(a.state(), c.state(), "{cfg:?} clip {clip:?}");
        }
    }
}

#[test]
fn a_state_of_another_model_or_optimizer_is_refused() {
    let run = testing::reference_run(OptimizerConfig::adam(1e-3), None, 2);
    let dev = Cpu::default();
    let wide = dev.build_module::<Linear<3, 3>, f32>();
    let mut other = Optim::new(&wide, OptimizerConfig::adam(1e-3)).unwrap();
    let err = other.load_state(run.state.clone()).unwrap_err();
    assert!(
        matches!(&err, TrainError::OptimizerMismatch(m) if m.contains("weight.exp_avg")),
        "{err}"
    );
    assert_eq!(other.steps(), 0, "unchanged on error");

    let m = reference_model();
    let reject = |cfg: OptimizerConfig, state: OptimizerState, needle: &str| {
        let mut opt = Optim::new(&m, cfg).unwrap();
        let err = opt.load_state(state).unwrap_err();
        assert!(
            matches!(&err, TrainError::OptimizerMismatch(msg) if msg.contains(needle)),
            "{needle}: {err}"
        );
        assert_eq!(opt.steps(), 0);
    };
    // Another optimizer.
    reject(OptimizerConfig::adamw(1e-3), run.state.clone(), "adam");
    // Another configuration of the same optimizer: RMSprop with momentum
    // needs a momentum_buffer.
    let rms = testing::reference_run(OptimizerConfig::rmsprop(1e-2), None, 2);
    let with_momentum = OptimizerConfig::RMSprop {
        lr: 0.01,
        alpha: 0.99,
        eps: 1e-8,
        momentum: 0.9,
        weight_decay: 0.0,
        centered: false,
    };
    reject(with_momentum, rms.state, "weight.momentum_buffer");
    // A missing buffer.
    let mut missing = run.state.clone();
    missing.buffers.retain(|b| b.key() != "bias.exp_avg_sq");
    reject(OptimizerConfig::adam(1e-3), missing, "bias.exp_avg_sq");
    // An unknown one.
    let mut extra = run.state.clone();
    let mut unknown = extra.buffers[0].clone();
    unknown.param = "conv9.weight".into();
    extra.buffers.push(unknown);
    reject(OptimizerConfig::adam(1e-3), extra, "conv9.weight.exp_avg");
    // A duplicate.
    let mut twice = run.state.clone();
    twice.buffers.push(twice.buffers[1].clone());
    reject(OptimizerConfig::adam(1e-3), twice, "twice");
    // A wrong length.
    let mut short = run.state.clone();
    short.buffers[2].data.pop();
    reject(OptimizerConfig::adam(1e-3), short, "bias.exp_avg");
    // Buffers in a state of step 0.
    let mut early = run.state.clone();
    early.steps = 0;
    reject(OptimizerConfig::adam(1e-3), early, "before its first step");

    // The right state in any order loads.
    let mut shuffled = run.state;
    shuffled.buffers.reverse();
    let mut ok = Optim::new(&m, OptimizerConfig::adam(1e-3)).unwrap();
    ok.load_state(shuffled).unwrap();
    assert_eq!(ok.steps(), 2);
}

#[test]
fn another_model_is_refused_by_update() {
    let m = reference_model();
    let mut opt = Optim::new(&m, OptimizerConfig::sgd(0.1)).unwrap();
    let dev = Cpu::default();
    let mut wide = dev.build_module::<Linear<3, 3>, f32>();
    let before = wide.weight.as_vec();
    let grads = wide.alloc_grads();
    let err = opt.update(&mut wide, &grads).unwrap_err();
    assert!(
        matches!(&err, TrainError::OptimizerMismatch(msg) if msg.contains("weight")),
        "{err}"
    );
    assert_eq!(wide.weight.as_vec(), before);
    assert_eq!(opt.steps(), 0);
    // dfdx's trait reports it as unused tensors, naming the first.
    let err = dfdx::optim::Optimizer::update(&mut opt, &mut wide, &grads).unwrap_err();
    assert!(matches!(
        err,
        OptimizerUpdateError::UnusedParams(ref u) if u.ids.len() == 1
    ));
}

#[test]
fn non_finite_gradients_with_clipping_are_a_named_error() {
    let mut m = reference_model();
    let before = bits(&m);
    let mut opt = Optim::new(&m, OptimizerConfig::sgd(0.1))
        .unwrap()
        .with_clip_grad_norm(Some(1.0))
        .unwrap();
    let mut grads = m.alloc_grads();
    set_grads(&m, &mut grads, 0);
    grads.get_or_alloc_mut(&m.bias).unwrap()[1] = f32::NAN;
    let err = opt.update(&mut m, &grads).unwrap_err();
    match &err {
        TrainError::NonFiniteGradient { param, norm } => {
            assert_eq!(param, "bias");
            assert!(norm.is_nan());
        }
        other => panic!("expected NonFiniteGradient, got {other:?}"),
    }
    assert!(err.to_string().contains("bias"), "{err}");
    assert_eq!(bits(&m), before, "nothing updated");
    assert_eq!(opt.steps(), 0);

    // Without clipping the step is PyTorch's (NaN in, NaN out) and the norm
    // tells.
    let mut plain = Optim::new(&m, OptimizerConfig::sgd(0.1)).unwrap();
    let norm = plain.update(&mut m, &grads).unwrap();
    assert!(norm.is_nan());
    assert_eq!(plain.last_grad_norm().map(f64::is_nan), Some(true));
}

#[test]
fn invalid_settings_are_named_errors() {
    let mut m = reference_model();
    assert!(matches!(
        Optim::new(&m, OptimizerConfig::sgd(-1.0)),
        Err(TrainError::InvalidHyperparameter(_))
    ));
    let opt = Optim::new(&m, OptimizerConfig::sgd(0.1)).unwrap();
    for bad in [0.0, -1.0, f64::INFINITY, f64::NAN] {
        let err = Optim::new(&m, OptimizerConfig::sgd(0.1))
            .unwrap()
            .with_clip_grad_norm(Some(bad))
            .unwrap_err();
        assert!(matches!(err, TrainError::InvalidHyperparameter(_)));
    }
    let mut opt = opt;
    opt.set_learning_rate(f64::NAN);
    let grads = m.alloc_grads();
    assert!(matches!(
        opt.update(&mut m, &grads),
        Err(TrainError::InvalidHyperparameter(_))
    ));
    // The classifier's wrapper reports an invalid configuration at the first
    // update.
    let mut any = AnyOptimizer::new(&m, OptimizerConfig::adam(-1.0));
    assert!(matches!(
        any.update(&mut m, &grads),
        Err(TrainError::InvalidHyperparameter(_))
    ));
    let mut any = AnyOptimizer::new(&m, OptimizerConfig::adam(1e-3));
    any.set_learning_rate(0.5);
    assert_eq!(any.learning_rate(), 0.5);
    any.update(&mut m, &grads).unwrap();
}

#[test]
fn batch_norm_running_statistics_are_untouched() {
    type Net = (Linear<3, 2>, BatchNorm1D<2>);
    let dev = Cpu::default();
    let mut net = dev.build_module::<Net, f32>();
    net.1.running_mean.copy_from(&[0.25, -0.5]);
    net.1.running_var.copy_from(&[2.0, 3.0]);
    for cfg in all_kinds() {
        let mut opt = Optim::new(&net, cfg).unwrap();
        assert_eq!(
            opt.param_names().collect::<Vec<_>>(),
            ["0.weight", "0.bias", "1.scale", "1.bias"]
        );
        let mut grads = net.alloc_grads();
        for (k, v) in grads
            .get_or_alloc_mut(&net.1.scale)
            .unwrap()
            .iter_mut()
            .enumerate()
        {
            *v = 0.5 + k as f32;
        }
        let scale = net.1.scale.as_vec();
        opt.update(&mut net, &grads).unwrap();
        assert_ne!(net.1.scale.as_vec(), scale, "{cfg:?}");
        assert_eq!(net.1.running_mean.as_vec(), [0.25, -0.5]);
        assert_eq!(net.1.running_var.as_vec(), [2.0, 3.0]);
        assert!(opt
            .state()
            .buffers
            .iter()
            .all(|b| !b.param.contains("running")));
    }
}

#[test]
fn dfdx_trait_updates_like_the_method() {
    let cfg = OptimizerConfig::adamw(0.01);
    let mut m_a = reference_model();
    let mut a = Optim::new(&m_a, cfg).unwrap();
    run_steps(&mut a, &mut m_a, 0, 3);
    let mut m_b = reference_model();
    let mut b = Optim::new(&m_b, cfg).unwrap();
    let mut grads = m_b.alloc_grads();
    for t in 0..3 {
        set_grads(&m_b, &mut grads, t);
        dfdx::optim::Optimizer::update(&mut b, &mut m_b, &grads).unwrap();
    }
    assert_eq!(bits(&m_a), bits(&m_b));
}

#[test]
fn trains_a_real_model_through_backward() {
    use dfdx::prelude::*;
    let dev = Cpu::default();
    let mut m = dev.build_module::<Linear<3, 2>, f32>();
    let mut opt = Optim::new(&m, OptimizerConfig::adam(0.05)).unwrap();
    let x: Tensor<Rank2<4, 3>, f32, _> = dev.tensor([
        [1.0, 0.0, 0.5],
        [0.0, 1.0, -0.5],
        [1.0, 1.0, 0.0],
        [0.5, -1.0, 1.0],
    ]);
    let y: Tensor<Rank2<4, 2>, f32, _> =
        dev.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -1.0]]);
    let mut grads = m.alloc_grads();
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..100 {
        let loss = mse_loss(m.forward(x.trace(grads)), y.clone());
        last = loss.array();
        first.get_or_insert(last);
        grads = loss.backward();
        opt.update(&mut m, &grads).unwrap();
        m.zero_grads(&mut grads);
    }
    assert!(last < first.unwrap() / 10.0, "{first:?} -> {last}");
}

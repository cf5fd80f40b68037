//! The notebook's networks as types: parameter counts, summaries, lazy layers
//! and large flattened inputs.
use static_nn::nn::OutputShape;
use static_nn::prelude::*;

#[test]
fn parameter_counts_match_pytorch() {
    let dev = Cpu::default();
    assert_eq!(
        dev.build_module::<LeNetClass, f32>().num_trainable_params(),
        37_106
    );
    assert_eq!(
        dev.build_module::<LeNetSeq, f32>().num_trainable_params(),
        37_106
    );
    assert_eq!(
        dev.build_module::<LeNet5, f32>().num_trainable_params(),
        61_706
    );
    assert_eq!(
        dev.build_module::<Mlp, f32>().num_trainable_params(),
        101_770
    );
}

#[test]
fn summaries_come_from_the_types() {
    let s = summary::<LeNetClass, Rank3<1, 28, 28>>();
    assert_eq!(s.total_params(), 37_106);
    let names: Vec<&str> = s.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["conv1", "act", "pool", "conv2", "act", "pool", "flatten", "fc1", "act", "fc2"]
    );
    assert_eq!(s.rows[0].output, [6, 28, 28]);
    assert_eq!(s.rows[2].output, [6, 14, 14]);
    assert_eq!(s.rows[3].output, [16, 10, 10]);
    assert_eq!(s.rows[6].output, [400]);
    assert_eq!(s.output(), [10]);
    let text = s.to_string();
    assert!(
        text.contains("Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))"),
        "{text}"
    );
    assert!(text.contains("Total params: 37,106"), "{text}");

    assert_eq!(summary::<LeNet5, Rank3<1, 28, 28>>().total_params(), 61_706);
    let mlp = summary::<Mlp, Rank3<1, 28, 28>>();
    assert_eq!(mlp.total_params(), 101_770);
    assert_eq!(
        mlp.rows[1].layer,
        "Linear(in_features=784, out_features=128, bias=True)"
    );
}

#[test]
fn lazy_lenet_resolves_at_compile_time() {
    type Net = Inferred<LeNetLazy, Rank3<1, 28, 28>>;
    let dev = Cpu::seed_from_u64(0);
    let net = dev.build_module::<Net, f32>();
    assert_eq!(net.num_trainable_params(), 37_106);
    let x: Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, _> =
        dev.sample_normal_like(&(5, Const, Const, Const));
    let y = net.forward(x);
    assert_eq!(y.shape().0, 5);
    // the same layers as writing the sizes by hand (fc1 takes Flat<16, 5, 5>, i.e. 400)
    let lazy = summary::<LeNetLazy, Rank3<1, 28, 28>>();
    let fixed = summary::<LeNetClass, Rank3<1, 28, 28>>();
    assert_eq!(lazy, fixed);
    assert_eq!(net.fc1.weight.shape().1.size(), 400);
}

#[test]
fn large_flattened_inputs_need_no_table() {
    // 3×224×224 images: 150,528 features into a LazyLinear.
    type Net = (Flatten, LazyLinear<10>);
    type Out = OutputShape<Net, Rank3<3, 224, 224>>;
    assert_eq!(<Out as Shape>::NUM_DIMS, 1);
    let dev = Cpu::seed_from_u64(0);
    let net = dev.build_module::<Inferred<Net, Rank3<3, 224, 224>>, f32>();
    assert_eq!(net.num_trainable_params(), 150_528 * 10 + 10);
    let y: Tensor<Rank2<2, 10>, f32, _> = net.forward(dev.zeros::<Rank4<2, 3, 224, 224>>());
    assert_eq!(y.array()[0], net.0 .1.bias.array());
}

#[test]
fn strided_convolutions_on_real_image_sizes() {
    // the notebook's exercise shapes, with several output channels
    type Net = (Conv2D<3, 8, 5, 2, 1>, ReLU, MaxPool2D<2>);
    let dev = Cpu::seed_from_u64(0);
    let net = dev.build_module::<Net, f32>();
    let y: Tensor<Rank4<1, 8, 55, 55>, f32, _> = net.forward(dev.zeros::<Rank4<1, 3, 224, 224>>());
    assert!(y.as_vec().iter().all(|v| v.is_finite()));
}

#[test]
fn a_training_step_lowers_the_loss() {
    let dev = Cpu::seed_from_u64(4);
    let mut net = dev.build_module::<LeNetClass, f32>();
    let mut opt = Sgd::new(
        &net,
        SgdConfig {
            lr: 0.05,
            momentum: None,
            weight_decay: None,
        },
    );
    let x: Tensor<Rank4<16, 1, 28, 28>, f32, _> = dev.sample_uniform();
    let y: Tensor<Rank2<16, 10>, f32, _> =
        dev.sample_uniform::<Rank2<16, 10>>().softmax::<Axis<1>>();
    let mut grads = net.alloc_grads();
    let mut losses = Vec::new();
    for _ in 0..5 {
        let loss = cross_entropy_with_logits_loss(net.forward(x.clone().traced(grads)), y.clone());
        losses.push(loss.array());
        grads = loss.backward();
        opt.update(&mut net, &grads).unwrap();
        net.zero_grads(&mut grads);
    }
    assert!(losses[4] < losses[0], "{losses:?}");
}

/// Inference keeps copies of the weights (and the convolutions' packed
/// weights) while they are unchanged. Every way the weights change
/// (an optimizer's step, loading a file, writing one value, replacing a
/// tensor) must show in the next inference, at batch 1 (the linear layers'
/// own dot products) and at batch 8.
#[test]
fn inference_follows_every_change_of_the_weights() {
    let dev = Cpu::seed_from_u64(11);
    let mut net = dev.build_module::<LeNetClass, f32>();
    let x1: Tensor<Rank4<1, 1, 28, 28>, f32, _> = dev.sample_normal();
    let x8: Tensor<Rank4<8, 1, 28, 28>, f32, _> = dev.sample_normal();
    // the traced forward keeps nothing: the reference
    let check = |net: &<LeNetClass as BuildOnDevice<Cpu, f32>>::Built, what: &str| -> Vec<f32> {
        let mut all = Vec::new();
        for (fast, slow) in [
            (
                net.forward(x1.clone()).as_vec(),
                net.forward(x1.leaky_trace()).as_vec(),
            ),
            (
                net.forward(x8.clone()).as_vec(),
                net.forward(x8.leaky_trace()).as_vec(),
            ),
        ] {
            for (a, e) in fast.iter().zip(&slow) {
                assert!(
                    (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                    "{what}: {a} vs {e}"
                );
            }
            all.extend(fast);
        }
        all
    };
    let mut seen = vec![check(&net, "built")];
    // twice unchanged: the same values
    assert_eq!(check(&net, "again"), seen[0]);

    let mut opt = Sgd::new(&net, SgdConfig::default());
    let y: Tensor<Rank2<8, 10>, f32, _> = dev.sample_uniform::<Rank2<8, 10>>().softmax::<Axis<1>>();
    let loss = cross_entropy_with_logits_loss(net.forward(x8.leaky_trace()), y);
    opt.update(&mut net, &loss.backward()).expect("update");
    seen.push(check(&net, "after a step"));

    let other = dev.build_module::<LeNetClass, f32>();
    let bytes = static_nn::weights::to_bytes(&other).expect("to bytes");
    static_nn::weights::load_from_bytes(&mut net, &bytes, &Default::default()).expect("load");
    seen.push(check(&net, "after loading"));

    net.conv2.weight[[3, 2, 1, 0]] += 1.0;
    seen.push(check(&net, "after writing conv2's weight"));
    net.fc1.weight[[5, 7]] += 1.0;
    seen.push(check(&net, "after writing fc1's weight"));
    net.fc2.bias = dev.sample_normal();
    seen.push(check(&net, "after replacing fc2's bias"));
    net.conv1.bias = Some(dev.sample_normal());
    seen.push(check(&net, "after replacing conv1's bias"));

    for (i, a) in seen.iter().enumerate() {
        for b in &seen[i + 1..] {
            assert_ne!(a, b, "a change of the weights did not show");
        }
    }
}

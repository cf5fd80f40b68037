use static_nn::prelude::*;

type Net = LeNet<Conv2D<1, 6, 5, 1, 2>, Conv2D<6, 16, 5>, Linear<401, 84>, Linear<84, 10>>;

fn main() {
    let dev = Cpu::default();
    let net = dev.build_module::<Net, f32>();
    let x: Tensor<Rank4<64, 1, 28, 28>, f32, _> = dev.sample_normal();
    let _logits: Tensor<Rank2<64, 10>, f32, _> = net.forward(x);
}

use static_nn::prelude::*;

type Net = (Linear<784, 128>, ReLU, Linear<127, 10>);

fn main() {
    let dev = Cpu::default();
    let net = dev.build_module::<Net, f32>();
    let x: Tensor<Rank2<4, 784>, f32, _> = dev.zeros();
    let _ = net.forward(x);
}

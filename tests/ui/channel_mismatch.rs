use static_nn::prelude::*;

type Net = (Conv2D<3, 6, 5, 1, 2>, ReLU, MaxPool2D<2, 2>);

fn main() {
    let dev = Cpu::default();
    let net = dev.build_module::<Net, f32>();
    let x: Tensor<Rank4<8, 1, 28, 28>, f32, _> = dev.zeros();
    let _ = net.forward(x);
}

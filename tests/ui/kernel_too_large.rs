use static_nn::prelude::*;

fn main() {
    let dev = Cpu::default();
    let conv = dev.build_module::<Conv2D<1, 4, 7>, f32>();
    let x: Tensor<Rank4<2, 1, 5, 5>, f32, _> = dev.zeros();
    let _ = conv.forward(x);
}

use static_nn::prelude::*;

fn main() {
    let dev = Cpu::default();
    let net = dev.build_module::<LeNetClass, f32>();
    let x: Tensor<Rank4<64, 1, 28, 28>, f32, _> = dev.zeros();
    let _logits: Tensor<Rank2<64, 9>, f32, _> = net.forward(x);
}

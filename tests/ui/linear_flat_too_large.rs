use static_nn::prelude::*;

fn main() {
    let dev = Cpu::default();
    let fc = dev.build_module::<Linear<10, 5>, f32>();
    let x: Tensor<Rank4<2, 32, 8, 8>, f32, _> = dev.zeros();
    let _ = fc.forward(Flatten.forward(x));
}

// A downstream crate declares its own network from the public API.
use static_nn::prelude::*;

type Backbone = (LazyConv2D<8, 3, 1, 1>, ReLU, MaxPool2D<2>, LazyConv2D<16, 3>, Tanh, AvgPool2D<2>);
type Head = (Flatten, LazyLinear<32>, ReLU, LazyLinear<5>);
type Net = Inferred<(Backbone, Head), Rank3<3, 32, 32>>;

fn logits<M: Module<Tensor<Rank4<4, 3, 32, 32>, f32, Cpu>, Output = Tensor<Rank2<4, 5>, f32, Cpu>>>(m: &M, x: Tensor<Rank4<4, 3, 32, 32>, f32, Cpu>) -> Tensor<Rank2<4, 5>, f32, Cpu> {
    m.forward(x)
}

fn main() {
    let dev = Cpu::default();
    let net = dev.build_module::<Net, f32>();
    let y = logits(&net, dev.zeros());
    assert_eq!(y.array().len(), 4);
    println!("{}", summary::<(Backbone, Head), Rank3<3, 32, 32>>());
}

use static_nn::prelude::*;

// LazyLinear's input size comes from the input shape, which this build
// does not give: it needs `Inferred<Net, Rank3<1, 28, 28>>`.
type Net = (Conv2D<1, 4, 3>, ReLU, Flatten, LazyLinear<10>);

fn main() {
    let dev = Cpu::default();
    let _net = dev.build_module::<Net, f32>();
}

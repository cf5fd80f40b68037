// A downstream crate defines a residual block as a struct: the derive does the
// building, tensor names and shapes, and its only impl is its forward.
use static_nn::prelude::*;

/// `y = act(conv2(act(conv1(x))) + shortcut(x))`, stride `S`, `IN` → `OUT` channels.
#[derive(Network, Clone, Debug, Default)]
pub struct Block<
    const IN: usize,
    const OUT: usize,
    const S: usize,
    Sc = Conv2D<IN, OUT, 1, S, 0>,
    C1 = Conv2D<IN, OUT, 3, S, 1>,
    A = ReLU,
    C2 = Conv2D<OUT, OUT, 3, 1, 1>,
> {
    pub conv1: C1,
    pub act: A,
    pub conv2: C2,
    pub shortcut: Sc,
}

#[forward]
impl<const IN: usize, const OUT: usize, const S: usize, Si: Shape, So: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>, Sc, C1, A, C2>
    Module<Tensor<Si, E, D, T>> for Block<IN, OUT, S, Sc, C1, A, C2>
where
    C1: Module<Tensor<Si, E, D, T>, Output = Tensor<So, E, D, T>, Error = D::Err>,
    A: Module<Tensor<So, E, D, T>, Output = Tensor<So, E, D, T>, Error = D::Err>,
    C2: Module<Tensor<So, E, D, T>, Output = Tensor<So, E, D, T>, Error = D::Err>,
    Sc: Module<Tensor<Si, E, D, T>, Output = Tensor<So, E, D, T>, Error = D::Err>,
{
    type Output = Tensor<So, E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<Si, E, D, T>) -> Result<Self::Output, D::Err> {
        let (x, tape) = x.split_tape();
        let y = self.act.try_forward(self.conv1.try_forward(x.clone().put_tape(tape))?)?;
        let (y, tape) = self.conv2.try_forward(y)?.split_tape();
        let s = self.shortcut.try_forward(x.put_tape(tape))?;
        self.act.try_forward(s.try_add(y)?)
    }
}

// The block's output shape reaches the lazy layer after it.
type Spec = (LazyConv2D<8, 3, 1, 1>, ReLU, Block<8, 16, 2>, Flatten, LazyLinear<10>);
type Net = Inferred<Spec, Rank3<1, 12, 12>>;

fn main() {
    let dev = Cpu::seed_from_u64(0);
    let mut net = dev.build_module::<Net, f32>();
    let x: Tensor<Rank4<3, 1, 12, 12>, f32, _> = dev.sample_normal();
    let y: Tensor<Rank2<3, 10>, f32, _> = net.forward(x.clone());

    // training mode reaches the block's layers, and the shortcut gets gradients
    let block = &mut net.0 .2;
    let h: Tensor<Rank4<3, 8, 12, 12>, f32, _> = dev.sample_normal();
    let loss = block.forward_mut(h.trace(block.alloc_grads())).square().mean();
    let grads = loss.backward();
    assert!(grads.get(&block.shortcut.weight).as_vec().iter().any(|g| *g != 0.0));

    // PyTorch's names, a summary row, and a save/load round trip
    let names: Vec<String> = static_nn::weights::tensor_names(&net).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[2..], ["2.conv1.weight", "2.conv1.bias", "2.conv2.weight", "2.conv2.bias", "2.shortcut.weight", "2.shortcut.bias", "4.weight", "4.bias"]);
    let s = summary::<Spec, Rank3<1, 12, 12>>();
    assert_eq!(s.rows[2].output, [16, 6, 6]);
    assert_eq!(s.total_params(), net.num_trainable_params());
    let bytes = static_nn::weights::to_bytes(&net).unwrap();
    let mut other = dev.build_module::<Net, f32>();
    static_nn::weights::load_from_bytes(&mut other, &bytes, &Default::default()).unwrap();
    assert_eq!(other.forward(x).array(), y.array());
}

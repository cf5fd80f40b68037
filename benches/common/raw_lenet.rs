//! The class LeNet written directly with the ops (`Cpu::try_conv2d`,
//! `Cpu::try_pool2d`, reshape, matmul): the baseline of the typed-overhead
//! measurement. Shared by `benches/nn.rs` and `examples/race.rs`.
#![allow(dead_code)]
use static_nn::ops::{Conv2DKernel, Conv2DOp, Pool2DKernel, Pool2DOp, PoolKind, Workspace};
use static_nn::prelude::*;

type Dev = Cpu;

/// The class LeNet's parameters, used directly with the ops.
pub struct RawLeNet {
    w1: Tensor<Rank4<6, 1, 5, 5>, f32, Dev>,
    b1: Tensor<Rank1<6>, f32, Dev>,
    w2: Tensor<Rank4<16, 6, 5, 5>, f32, Dev>,
    b2: Tensor<Rank1<16>, f32, Dev>,
    w3: Tensor<Rank2<84, 400>, f32, Dev>,
    b3: Tensor<Rank1<84>, f32, Dev>,
    w4: Tensor<Rank2<10, 84>, f32, Dev>,
    b4: Tensor<Rank1<10>, f32, Dev>,
    ws1: Workspace,
    ws2: Workspace,
    /// The pools' scratch (one pool module serves both, as in LeNet).
    ws_pool: Workspace,
}

impl RawLeNet {
    pub fn from(m: &<LeNetClass as BuildOnDevice<Dev, f32>>::Built) -> Self {
        Self {
            w1: m.conv1.weight.clone(),
            b1: m
                .conv1
                .bias
                .clone()
                .expect("LeNet's convolutions have a bias"),
            w2: m.conv2.weight.clone(),
            b2: m
                .conv2
                .bias
                .clone()
                .expect("LeNet's convolutions have a bias"),
            w3: m.fc1.weight.clone(),
            b3: m.fc1.bias.clone(),
            w4: m.fc2.weight.clone(),
            b4: m.fc2.bias.clone(),
            ws1: Workspace::default(),
            ws2: Workspace::default(),
            ws_pool: Workspace::default(),
        }
    }

    pub fn forward<const N: usize, T: Tape<f32, Dev>>(
        &self,
        x: Tensor<Rank4<N, 1, 28, 28>, f32, Dev, T>,
    ) -> Tensor<Rank2<N, 10>, f32, Dev, T> {
        let c1 = Conv2DOp::new(N, 1, 6, (28, 28), (5, 5), 1, 2).unwrap();
        let x = Dev::try_conv2d(
            c1,
            x,
            &self.w1,
            Some(&self.b1),
            (Const::<N>, Const::<6>, Const::<28>, Const::<28>),
            &self.ws1,
        )
        .unwrap();
        let p1 = Pool2DOp::new(PoolKind::Max, N * 6, (28, 28), 2, 2, 0).unwrap();
        let x = Dev::try_pool2d(
            p1,
            x.relu(),
            (Const::<N>, Const::<6>, Const::<14>, Const::<14>),
            &self.ws_pool,
        )
        .unwrap();
        let c2 = Conv2DOp::new(N, 6, 16, (14, 14), (5, 5), 1, 0).unwrap();
        let x = Dev::try_conv2d(
            c2,
            x,
            &self.w2,
            Some(&self.b2),
            (Const::<N>, Const::<16>, Const::<10>, Const::<10>),
            &self.ws2,
        )
        .unwrap();
        let p2 = Pool2DOp::new(PoolKind::Max, N * 16, (10, 10), 2, 2, 0).unwrap();
        let x = Dev::try_pool2d(
            p2,
            x.relu(),
            (Const::<N>, Const::<16>, Const::<5>, Const::<5>),
            &self.ws_pool,
        )
        .unwrap();
        let x = x.reshape::<Rank2<N, 400>>();
        let x = (x.matmul(self.w3.retaped::<T>().permute()) + self.b3.retaped::<T>().broadcast())
            .relu();
        x.matmul(self.w4.retaped::<T>().permute()) + self.b4.retaped::<T>().broadcast()
    }
}

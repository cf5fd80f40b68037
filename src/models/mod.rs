//! The notebook's networks as types, and model summaries.
//!
//! | type | network | parameters |
//! |---|---|---|
//! | [`Mlp`] | `Flatten, Linear(784, 128), ReLU, Linear(128, 10)` | 101,770 |
//! | [`LeNetClass`] | the class `LeNet`: ReLU, max pool twice, 400 → 84 → 10 | 37,106 |
//! | [`LeNetSeq`] | the `nn.Sequential` LeNet: max pool, then avg pool | 37,106 |
//! | [`LeNet5`] | LeNet-5 (1998): sigmoid, avg pool, 400 → 120 → 84 → 10 | 61,706 |
//! | [`MnistResNet`] | a ResNet: stem, three [`BasicBlock`]s (16, 32, 64 channels), global average pool, dropout 0.2, 64 → 10 | 77,754 |
//!
//! | [`CifarResNet20`] | ResNet-20 for CIFAR-10 (He et al., 2016): 3 stages of 3 basic blocks, 16/32/64 channels | 272,474 |
//!
//! The first five take `(B, 1, 28, 28)` images, [`CifarResNet20`]
//! `(B, 3, 32, 32)`; all return `(B, 10)` logits, and all declare their image
//! ([`ImageInput`](crate::shapes::ImageInput)). The
//! notebook ends each network with `Softmax`; these return logits, and the
//! `lenet` example's `--tutorial` flag adds the softmax back.

mod choice;
mod cifar;
mod lenet;
mod resnet;
mod resnet_fused;
mod summary;

pub use choice::{ModelName, NotebookModel};
pub use cifar::CifarResNet20;
pub use lenet::{LeNet, LeNet5, LeNetClass, LeNetLazy, LeNetSeq, Mlp};
pub use resnet::{BasicBlock, MnistResNet, Projection};
pub use summary::{summary, Summary};

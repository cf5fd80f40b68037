// Every field of a derived network must have a type parameter as its type.
use static_nn::prelude::*;

#[derive(Network, Clone, Debug, Default)]
pub struct Net<C> {
    pub conv: C,
    pub fc: Linear<784, 10>,
}

fn main() {}

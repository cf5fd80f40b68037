//! The safetensors weights loader: arbitrary bytes loaded into a small
//! model and into the class LeNet, strictly and non-strictly with a key
//! map. On error the model must be unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use static_nn::prelude::*;
use static_nn::weights::{self, LoadOptions};
use static_nn_fuzz::{lenet, small};

fn check<M: dfdx::nn::TensorCollection<f32, Cpu>>(model: &mut M, data: &[u8], opts: &LoadOptions) {
    let before = weights::to_bytes(model).expect("encode");
    match weights::load_from_bytes(model, data, opts) {
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
            assert_eq!(weights::to_bytes(model).expect("encode"), before, "model changed on error: {e}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let strict = LoadOptions::default();
    let loose = LoadOptions::default().non_strict().map("conv1.", "0.").map("fc2.", "1.");
    small(|m| {
        check(m, data, &strict);
        check(m, data, &loose);
    });
    lenet(|m| check(m, data, &strict));
});

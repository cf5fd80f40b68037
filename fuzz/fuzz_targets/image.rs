//! The image reader: arbitrary bytes (PNG, JPEG or anything else) read at
//! their own size, as a 1×28×28 tensor, and turned into an MNIST input by
//! `mnistify`. Values must stay in [0, 1].
#![no_main]
use libfuzzer_sys::fuzz_target;
use static_nn::prelude::*;
use static_nn::pictures::{mnistify, read_image, read_image_raw};
use static_nn_fuzz::scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch("picture.png");
    std::fs::write(&path, data).expect("scratch file");
    if let Ok((px, h, w)) = read_image_raw(&path) {
        assert_eq!(px.len(), 3 * h * w);
        assert!(px.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    thread_local! {
        static DEV: Cpu = Cpu::default();
    }
    DEV.with(|dev| {
        if let Ok(x) = read_image::<1, 28, 28, _>(&path, dev) {
            assert!(x.as_vec().iter().all(|v| v.is_finite()));
        }
    });
    if let Ok(x) = mnistify(&path) {
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)), "mnistify out of range");
    }
});

//! Helpers shared by the fuzz targets.
use static_nn::prelude::*;
use std::cell::RefCell;
use std::path::PathBuf;

/// A per-process scratch file `name` in a per-process folder (created once).
pub fn scratch(name: &str) -> PathBuf {
    thread_local! {
        static DIR: PathBuf = {
            let base = if std::path::Path::new("/dev/shm").is_dir() {
                PathBuf::from("/dev/shm")
            } else {
                std::env::temp_dir()
            };
            let d = base.join(format!("static-nn-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&d).expect("scratch folder");
            d
        };
    }
    DIR.with(|d| d.join(name))
}

/// A small model for the weights target: keys `0.weight`, `0.bias`
/// (2×1×3×3 conv), `1.weight`, `1.bias` (3×4 linear).
pub type Small = (Conv2D<1, 2, 3>, Linear<4, 3>);
/// Same, built.
pub type SmallBuilt = <Small as BuildOnDevice<Cpu, f32>>::Built;

/// Runs `f` on a small model built once per thread.
pub fn small<R>(f: impl FnOnce(&mut SmallBuilt) -> R) -> R {
    thread_local! {
        static M: RefCell<SmallBuilt> = RefCell::new(Cpu::seed_from_u64(0).build_module::<Small, f32>());
    }
    M.with(|m| f(&mut m.borrow_mut()))
}

/// The built class LeNet.
pub type LeNetBuilt = <LeNetClass as BuildOnDevice<Cpu, f32>>::Built;

/// Runs `f` on a class LeNet built once per thread.
pub fn lenet<R>(f: impl FnOnce(&mut LeNetBuilt) -> R) -> R {
    thread_local! {
        static M: RefCell<LeNetBuilt> = RefCell::new(Cpu::seed_from_u64(0).build_module::<LeNetClass, f32>());
    }
    M.with(|m| f(&mut m.borrow_mut()))
}

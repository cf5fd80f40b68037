//! A checkpoint save killed mid-write (SIGKILL) leaves the previous file
//! whole. The saver is this test binary run again as a child process (an
//! `#[ignore]`d test selected with `--exact`, told what to do by an
//! environment variable).
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use static_nn::prelude::*;
use static_nn::weights;

use crate::common::{child, temporaries, test_path};

/// A model of 4 M parameters (16 MB on disk): a save takes long enough to be
/// caught in the middle.
type Big = (
    Linear<1024, 1024>,
    Linear<1024, 1024>,
    Linear<1024, 1024>,
    Linear<1024, 1024>,
);
type BigBuilt = <Big as BuildOnDevice<Cpu, f32>>::Built;

/// The big model with every parameter equal to `g` (its "generation").
fn big(dev: &Cpu, g: f32) -> BigBuilt {
    let mut m = dev.build_module::<Big, f32>();
    macro_rules! fill {
        ($($i:tt),*) => {$(
            (m.0).$i.weight = dev.ones_like(&(m.0).$i.weight) * g;
            (m.0).$i.bias = dev.ones_like(&(m.0).$i.bias) * g;
        )*};
    }
    fill!(0, 1, 2, 3);
    m
}

/// The generation of a big model: `Some(g)` if every parameter equals `g`.
fn generation(m: &BigBuilt) -> Option<f32> {
    let all: Vec<Vec<f32>> = vec![
        m.0 .0.weight.as_vec(),
        m.0 .0.bias.as_vec(),
        m.0 .1.weight.as_vec(),
        m.0 .1.bias.as_vec(),
        m.0 .2.weight.as_vec(),
        m.0 .2.bias.as_vec(),
        m.0 .3.weight.as_vec(),
        m.0 .3.bias.as_vec(),
    ];
    let g = all[0][0];
    all.iter().flatten().all(|&v| v == g).then_some(g)
}

const SAVER_ENV: &str = "STATIC_NN_HARDENING_SAVER";

/// The child: saves generation after generation of the big model to the
/// file named by `$STATIC_NN_HARDENING_SAVER`, until it is killed.
#[test]
#[ignore = "child process of a_checkpoint_save_killed_mid_write_leaves_the_previous_one_intact"]
fn child_saves_in_a_loop() {
    let Some(path) = std::env::var_os(SAVER_ENV) else {
        return;
    };
    let dev = Cpu::default();
    for g in 1.. {
        let m = big(&dev, g as f32);
        weights::save(&m, Path::new(&path)).unwrap();
    }
}

#[test]
fn a_checkpoint_save_killed_mid_write_leaves_the_previous_one_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.safetensors");
    let dev = Cpu::default();
    let previous = big(&dev, 0.5);
    weights::save(&previous, &path).unwrap();
    let previous_bytes = std::fs::read(&path).unwrap();

    let saver = test_path(module_path!(), "child_saves_in_a_loop");
    let mut caught_mid_write = 0;
    for (round, delay_ms) in [0u64, 2, 5, 11, 23, 400, 1500].into_iter().enumerate() {
        let before = temporaries(dir.path()).len();
        let mut c = child(&saver, &[(SAVER_ENV, &path)], None)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until a save is under way: its temporary file exists.
        let t = Instant::now();
        while temporaries(dir.path()).len() <= before {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "the child never started a save"
            );
            assert!(c.try_wait().unwrap().is_none(), "the child exited");
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        // A save's temporary is renamed when it is done: one left behind
        // means the kill came mid-write.
        if temporaries(dir.path()).len() > before {
            caught_mid_write += 1;
        }

        // Whatever the moment of the kill, the checkpoint is a whole file:
        // the previous one or one the child finished, never a mix.
        let mut loaded = dev.build_module::<Big, f32>();
        weights::load(&mut loaded, &path)
            .unwrap_or_else(|e| panic!("round {round}: checkpoint unreadable after SIGKILL: {e}"));
        let g = generation(&loaded)
            .unwrap_or_else(|| panic!("round {round}: checkpoint mixes two saves"));
        println!(
            "round {round}: killed {delay_ms} ms into a save; temporaries left {}, checkpoint generation {g}",
            temporaries(dir.path()).len()
        );
        if g == 0.5 {
            assert_eq!(std::fs::read(&path).unwrap(), previous_bytes);
        } else {
            assert!(
                g >= 1.0 && g.fract() == 0.0,
                "round {round}: generation {g}"
            );
            // A save the child finished before the kill.
        }
    }
    assert!(
        caught_mid_write > 0,
        "no kill landed in the middle of a save"
    );
    // Nothing but the checkpoint and the killed saves' hidden temporaries.
    let visible: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(visible, ["checkpoint.safetensors"]);
}

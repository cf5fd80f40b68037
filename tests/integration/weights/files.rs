//! Saving and loading weights files: exact round trips, atomic saves, and a
//! named error (never a panic) for each kind of bad file.
use ::safetensors::tensor::{Dtype, TensorView};
use static_nn::prelude::*;
use static_nn::weights::{self, LoadOptions, WeightsError};
use std::path::{Path, PathBuf};

use proptest::collection::vec;
use proptest::prelude::*;

use crate::common::{noise, write};

/// A fresh directory under the system's temporary directory.
fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("static-nn-weights-{tag}-"))
        .tempdir()
        .unwrap()
}

/// A safetensors file holding `(name, dtype, shape)` tensors filled with a
/// ramp of values, written by hand with the safetensors crate.
fn write_file(path: &Path, tensors: &[(&str, Dtype, &[usize])]) {
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, dtype, shape)| {
            let n: usize = shape.iter().product();
            match dtype {
                Dtype::F32 => (0..n)
                    .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
                    .collect(),
                Dtype::F64 => (0..n)
                    .flat_map(|i| (i as f64 * 0.5).to_le_bytes())
                    .collect(),
                Dtype::F16 => vec![0; 2 * n],
                other => panic!("no test data for {other:?}"),
            }
        })
        .collect();
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, dtype, shape), d)| {
            (*name, TensorView::new(*dtype, shape.to_vec(), d).unwrap())
        })
        .collect();
    let bytes =
        ::safetensors::tensor::serialize(views.iter().map(|(n, v)| (*n, v)), &None).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The MLP's tensors as `write_file` takes them: `1.*` and `3.*`, F32.
const MLP: [(&str, Dtype, &[usize]); 4] = [
    ("1.weight", Dtype::F32, &[128, 784]),
    ("1.bias", Dtype::F32, &[128]),
    ("3.weight", Dtype::F32, &[10, 128]),
    ("3.bias", Dtype::F32, &[10]),
];

fn mlp() -> <Mlp as BuildOnDevice<Cpu, f32>>::Built {
    Cpu::default().build_module::<Mlp, f32>()
}

/// Loads `path` into a fresh MLP, checks that the model was left unchanged,
/// and returns the error and its message.
fn load_err(path: &Path) -> (WeightsError, String) {
    let mut net = mlp();
    let before = weights::to_bytes(&net).unwrap();
    let err = weights::load(&mut net, path).expect_err("the load should fail");
    assert_eq!(
        weights::to_bytes(&net).unwrap(),
        before,
        "a failed load changed the model"
    );
    let msg = err.to_string();
    (err, msg)
}

/// Saves a freshly built `M`, loads it into another fresh `M`, and checks
/// that every tensor is bit-equal and the forward pass gives the same output.
fn round_trip<M>(tag: &str, expected_names: &[&str])
where
    M: BuildOnDevice<Cpu, f32>,
    M::Built:
        Module<Tensor<Rank4<3, 1, 28, 28>, f32, Cpu>, Output = Tensor<Rank2<3, 10>, f32, Cpu>>,
{
    let dev = Cpu::default();
    let dir = temp_dir(tag);
    let path = dir.path().join(format!("{tag}.safetensors"));
    let a = dev.build_module::<M, f32>();
    let mut b = dev.build_module::<M, f32>();
    assert_ne!(
        weights::to_bytes(&a).unwrap(),
        weights::to_bytes(&b).unwrap()
    );
    weights::save(&a, &path).unwrap();

    // The file holds the PyTorch names, as F32, in PyTorch's layouts.
    let bytes = std::fs::read(&path).unwrap();
    let file = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().cloned().collect();
    names.sort();
    let mut want: Vec<String> = expected_names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
    for (name, shape) in weights::tensor_names(&a) {
        let t = file.tensor(&name).unwrap();
        assert_eq!(t.dtype(), Dtype::F32);
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
    }

    weights::load(&mut b, &path).unwrap();
    assert_eq!(
        weights::to_bytes(&a).unwrap(),
        weights::to_bytes(&b).unwrap()
    );
    let x: Tensor<Rank4<3, 1, 28, 28>, f32, Cpu> = dev.sample_uniform();
    let ya = a.forward(x.clone()).array();
    let yb = b.forward(x).array();
    for (ra, rb) in ya.iter().zip(&yb) {
        for (va, vb) in ra.iter().zip(rb) {
            assert_eq!(va.to_bits(), vb.to_bits());
        }
    }
}

#[test]
fn round_trips_are_exact_for_the_four_notebook_models() {
    round_trip::<Mlp>("mlp", &["1.weight", "1.bias", "3.weight", "3.bias"]);
    round_trip::<LeNetClass>(
        "lenet",
        &[
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
        ],
    );
    round_trip::<LeNetSeq>(
        "lenet-seq",
        &[
            "0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias", "9.weight", "9.bias",
        ],
    );
    round_trip::<LeNet5>(
        "lenet5",
        &[
            "0.weight",
            "0.bias",
            "3.weight",
            "3.bias",
            "7.weight",
            "7.bias",
            "9.weight",
            "9.bias",
            "11.weight",
            "11.bias",
        ],
    );
}

#[test]
fn lazy_networks_save_under_the_same_names_as_their_concrete_twins() {
    type Lazy = Inferred<static_nn::models::LeNetLazy, Rank3<1, 28, 28>>;
    let dev = Cpu::default();
    let lazy = dev.build_module::<Lazy, f32>();
    let concrete = dev.build_module::<LeNetClass, f32>();
    assert_eq!(
        weights::tensor_names(&lazy),
        weights::tensor_names(&concrete)
    );
    let mut other = dev.build_module::<LeNetClass, f32>();
    weights::load_from_bytes(
        &mut other,
        &weights::to_bytes(&lazy).unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(other.fc2.weight.array(), lazy.fc2.weight.array());
}

#[test]
fn a_missing_tensor_is_named_with_its_expected_shape() {
    let dir = temp_dir("missing");
    let path = dir.path().join("w.safetensors");
    write_file(&path, &MLP[..3]);
    let (err, msg) = load_err(&path);
    match &err {
        WeightsError::Missing {
            name,
            expected_shape,
            ..
        } => {
            assert_eq!(name, "3.bias");
            assert_eq!(expected_shape, &[10]);
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(
        msg.contains("`3.bias`") && msg.contains("[10]") && msg.contains("w.safetensors"),
        "{msg}"
    );
}

#[test]
fn a_misnamed_tensor_is_missing_and_the_message_lists_the_unused_one() {
    let dir = temp_dir("misnamed");
    let path = dir.path().join("w.safetensors");
    let mut tensors = MLP.to_vec();
    tensors[3].0 = "fc2.bias";
    write_file(&path, &tensors);
    let (err, msg) = load_err(&path);
    assert!(matches!(err, WeightsError::Missing { .. }), "{err:?}");
    assert!(
        msg.contains("`3.bias`") && msg.contains("fc2.bias"),
        "{msg}"
    );

    // ... and a key map fixes it.
    let mut net = mlp();
    let report = weights::load_with(
        &mut net,
        &path,
        &LoadOptions::default().map("fc2.bias", "3.bias"),
    )
    .unwrap();
    assert_eq!(
        report.renamed,
        [("fc2.bias".to_string(), "3.bias".to_string())]
    );
    assert_eq!(net.0 .3.bias.array()[2], 1.0);
}

#[test]
fn an_extra_tensor_is_an_error_when_strict_and_ignored_otherwise() {
    let dir = temp_dir("extra");
    let path = dir.path().join("w.safetensors");
    let mut tensors = MLP.to_vec();
    tensors.push(("5.weight", Dtype::F32, &[10, 10]));
    write_file(&path, &tensors);
    let (err, msg) = load_err(&path);
    match &err {
        WeightsError::Unexpected { name, shape, .. } => {
            assert_eq!(name, "5.weight");
            assert_eq!(shape, &[10, 10]);
        }
        other => panic!("expected Unexpected, got {other:?}"),
    }
    assert!(
        msg.contains("`5.weight`") && msg.contains("[10, 10]") && msg.contains("w.safetensors"),
        "{msg}"
    );

    let mut net = mlp();
    let report = weights::load_with(&mut net, &path, &LoadOptions::default().non_strict()).unwrap();
    assert_eq!(report.ignored, ["5.weight"]);
    assert_eq!(report.loaded, ["1.weight", "1.bias", "3.weight", "3.bias"]);
    assert_eq!(net.0 .1.weight.array()[0][3], 1.5);
}

#[test]
fn a_wrong_shape_names_the_tensor_and_both_shapes() {
    let dir = temp_dir("shape");
    let path = dir.path().join("w.safetensors");
    let mut tensors = MLP.to_vec();
    tensors[0].2 = &[128, 783];
    write_file(&path, &tensors);
    let (err, msg) = load_err(&path);
    match &err {
        WeightsError::Shape {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(name, "1.weight");
            assert_eq!(expected, &[128, 784]);
            assert_eq!(found, &[128, 783]);
        }
        other => panic!("expected Shape, got {other:?}"),
    }
    assert!(
        msg.contains("`1.weight`") && msg.contains("[128, 783]") && msg.contains("[128, 784]"),
        "{msg}"
    );

    // A transposed weight (a layout mistake) is a shape error too.
    tensors[0].2 = &[784, 128];
    write_file(&path, &tensors);
    let (err, _) = load_err(&path);
    assert!(matches!(err, WeightsError::Shape { .. }), "{err:?}");
}

#[test]
fn a_wrong_dtype_is_an_error_not_a_panic() {
    let dir = temp_dir("dtype");
    let path = dir.path().join("w.safetensors");
    for (dtype, label) in [(Dtype::F64, "F64"), (Dtype::F16, "F16")] {
        let mut tensors = MLP.to_vec();
        tensors[2].1 = dtype;
        write_file(&path, &tensors);
        let (err, msg) = load_err(&path);
        match &err {
            WeightsError::Dtype {
                name,
                expected,
                found,
                ..
            } => {
                assert_eq!(name, "3.weight");
                assert_eq!(expected, "F32");
                assert_eq!(found, label);
            }
            other => panic!("expected Dtype, got {other:?}"),
        }
        assert!(
            msg.contains("`3.weight`") && msg.contains(label) && msg.contains("F32"),
            "{msg}"
        );
    }
}

#[test]
fn truncated_files_are_corrupt() {
    let dir = temp_dir("truncated");
    let good = dir.path().join("good.safetensors");
    weights::save(&mlp(), &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let path = dir.path().join("cut.safetensors");
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    for len in [
        0,
        4,
        8,
        20,
        header_end - 1,
        header_end,
        header_end + 100,
        bytes.len() - 1,
    ] {
        std::fs::write(&path, &bytes[..len]).unwrap();
        let (err, msg) = load_err(&path);
        assert!(
            matches!(err, WeightsError::Corrupt { .. }),
            "{len} bytes: {err:?}"
        );
        assert!(msg.contains("cut.safetensors"), "{msg}");
    }
    // Trailing bytes are corrupt too.
    let mut long = bytes.clone();
    long.extend_from_slice(&[0; 16]);
    std::fs::write(&path, &long).unwrap();
    assert!(matches!(load_err(&path).0, WeightsError::Corrupt { .. }));
}

#[test]
fn garbage_bytes_are_corrupt() {
    let dir = temp_dir("garbage");
    let path = dir.path().join("garbage.safetensors");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut small_header = 40u64.to_le_bytes().to_vec();
    small_header.extend_from_slice(&[0xff; 64]);
    let mut not_json = 12u64.to_le_bytes().to_vec();
    not_json.extend_from_slice(b"{not json!!}");
    let mut bad_offsets = Vec::new();
    let header = br#"{"1.weight":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    bad_offsets.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bad_offsets.extend_from_slice(header);
    bad_offsets.extend_from_slice(&[0; 12]);
    for (what, bytes) in [
        ("noise", noise),
        ("PNG", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()),
        ("non-UTF-8 header", small_header),
        ("not JSON", not_json),
        ("bad offsets", bad_offsets),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let (err, msg) = load_err(&path);
        assert!(
            matches!(err, WeightsError::Corrupt { .. }),
            "{what}: {err:?}"
        );
        assert!(
            msg.contains("garbage.safetensors") && msg.contains("not a valid safetensors file"),
            "{msg}"
        );
    }
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let dir = temp_dir("nofile");
    let path = dir.path().join("nothing-here.safetensors");
    let (err, msg) = load_err(&path);
    assert!(
        matches!(err, WeightsError::Io { action: "read", .. }),
        "{err:?}"
    );
    assert!(msg.contains("nothing-here.safetensors"), "{msg}");
}

#[test]
fn two_file_tensors_mapped_onto_one_model_tensor_are_an_error() {
    let dir = temp_dir("dup");
    let path = dir.path().join("w.safetensors");
    let mut tensors = MLP.to_vec();
    tensors.push(("head.bias", Dtype::F32, &[10]));
    write_file(&path, &tensors);
    let mut net = mlp();
    let err = weights::load_with(&mut net, &path, &LoadOptions::default().map("head.", "3."))
        .unwrap_err();
    assert!(matches!(err, WeightsError::Duplicate { .. }), "{err:?}");
    assert!(err.to_string().contains("`3.bias`"), "{err}");
}

#[test]
fn saving_replaces_the_file_and_leaves_no_temporary_behind() {
    let dir = temp_dir("replace");
    let path = dir.path().join("w.safetensors");
    let a = mlp();
    let b = mlp();
    weights::save(&a, &path).unwrap();
    weights::save(&b, &path).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["w.safetensors"]);
    let mut c = mlp();
    weights::load(&mut c, &path).unwrap();
    assert_eq!(
        weights::to_bytes(&c).unwrap(),
        weights::to_bytes(&b).unwrap()
    );
}

#[cfg(unix)]
#[test]
fn a_failed_save_keeps_the_previous_file() {
    use crate::common::temporaries;
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("readonly");
    let path: PathBuf = dir.path().join("w.safetensors");
    let old = mlp();
    weights::save(&old, &path).unwrap();
    let before = std::fs::read(&path).unwrap();

    // A file whose name is as long as the file system allows (255 bytes on
    // Linux): the save's temporary beside it (`.NAME.tmp-…`) cannot even be
    // named, so a save to it fails for every user, root included.
    let long = (200..=255)
        .rev()
        .map(|n| {
            dir.path()
                .join(format!("{}.safetensors", "w".repeat(n - 12)))
        })
        .find(|p| std::fs::copy(&path, p).is_ok())
        .expect("no file name of 200 to 255 bytes can be created here");
    let err = weights::save(&mlp(), &long).unwrap_err();
    assert!(
        matches!(
            err,
            WeightsError::Io {
                action: "create a temporary file to save",
                ..
            }
        ),
        "{err:?}"
    );
    let name = long.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.to_string().contains(&name), "{err}");
    assert_eq!(std::fs::read(&long).unwrap(), before);
    assert_eq!(temporaries(dir.path()), Vec::<String>::new());

    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permission bits: then this failure cannot be provoked
    // here (the over-long name above fails for root too).
    let probe = dir.path().join("probe");
    let writable = std::fs::write(&probe, b"x").is_ok();
    if !writable {
        let err = weights::save(&mlp(), &path).unwrap_err();
        assert!(
            matches!(
                err,
                WeightsError::Io {
                    action: "create a temporary file to save",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
    } else {
        std::fs::remove_file(&probe).unwrap();
        eprintln!("running as root: read-only directory not enforced, that part skipped");
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for p in [&path, &long] {
        let mut net = mlp();
        weights::load(&mut net, p).unwrap();
        assert_eq!(
            weights::to_bytes(&net).unwrap(),
            weights::to_bytes(&old).unwrap()
        );
    }
}

// ------------------------------------------------------------ random and damaged bytes

type Net = LeNetClass;

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random bytes into the weights loader, from a file and from memory,
    /// strict and not: always `Err`, and the model is unchanged.
    #[test]
    fn weights_loader_rejects_random_bytes(bytes in noise()) {
        let dev = Cpu::seed_from_u64(3);
        let mut net = dev.build_module::<Net, f32>();
        let before = weights::to_bytes(&net).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "w.safetensors", &bytes);
        prop_assert!(weights::load(&mut net, &p).is_err());
        let loose = LoadOptions::default().non_strict();
        let e = weights::load_from_bytes(&mut net, &bytes, &loose).unwrap_err();
        prop_assert!(matches!(e, WeightsError::Corrupt { .. }), "{e:?}");
        prop_assert_eq!(weights::to_bytes(&net).unwrap(), before);
    }

    /// A valid weights file with bytes changed or cut: no panic; on error the
    /// model is unchanged, and a file cut short is always an error.
    #[test]
    fn damaged_weights_files_never_panic(
        flips in vec((any::<prop::sample::Index>(), 1u8..), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        type Small = (Conv2D<1, 2, 3>, Linear<4, 3>);
        let dev = Cpu::seed_from_u64(4);
        let good = weights::to_bytes(&dev.build_module::<Small, f32>()).unwrap();
        let mut net = dev.build_module::<Small, f32>();
        let before = weights::to_bytes(&net).unwrap();
        let mut bad = good.clone();
        for (i, mask) in &flips {
            let i = i.index(bad.len());
            bad[i] ^= mask;
        }
        if weights::load_from_bytes(&mut net, &bad, &LoadOptions::default()).is_err() {
            prop_assert_eq!(weights::to_bytes(&net).unwrap(), before.clone());
        }
        let k = cut.index(good.len());
        let mut fresh = dev.build_module::<Small, f32>();
        let e = weights::load_from_bytes(&mut fresh, &good[..k], &LoadOptions::default());
        prop_assert!(e.is_err());
    }
}

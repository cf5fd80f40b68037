//! A downstream crate (tests/downstream) defines its own generic residual
//! block by `#[derive(Network)]` and one `#[forward]`, trains a network of
//! it through `forward_mut`, saves and reloads it; the file it writes has
//! PyTorch's names for the block's tensors.
use crate::common::run_crate;
use safetensors::SafeTensors;

#[test]
fn a_downstream_crate_trains_saves_and_reloads_its_own_residual_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("downstream.safetensors");
    let out = run_crate("downstream", &[path.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the downstream crate failed:\n{stdout}\n{stderr}"
    );
    for line in ["reloaded: same logits", "ok"] {
        assert!(stdout.lines().any(|l| l == line), "{stdout}");
    }
    assert!(
        stdout.lines().any(|l| l.starts_with("trained: 30 steps")),
        "{stdout}"
    );

    let bytes = std::fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().cloned().collect();
    names.sort();
    assert_eq!(names.len(), 38, "{names:?}");
    for want in [
        "0.weight",
        "3.conv1.weight",
        "3.bn2.running_var",
        "4.conv1.weight",
        "4.shortcut.0.weight",
        "4.shortcut.1.num_batches_tracked",
        "6.weight",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.starts_with("3.shortcut")),
        "{names:?}"
    );
    let proj = file.tensor("4.shortcut.0.weight").unwrap();
    assert_eq!(proj.shape(), [16, 8, 1, 1]);
    let tracked = file.tensor("4.shortcut.1.num_batches_tracked").unwrap();
    assert_eq!(tracked.dtype(), safetensors::Dtype::I64);
    let steps = i64::from_le_bytes(tracked.data().try_into().unwrap());
    assert_eq!(steps, 30, "one batch-norm update per training step");
}

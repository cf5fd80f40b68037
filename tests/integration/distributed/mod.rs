//! Data-parallel training over MPI: the built examples under `mpirun` on
//! this machine (`--features distributed`; without it, one test says that
//! these are skipped).

#[cfg(feature = "distributed")]
mod mpi_runs;

/// Without the feature nothing of this subject can run: say so plainly.
#[cfg(not(feature = "distributed"))]
#[test]
fn skipped_without_the_distributed_feature() {
    println!(
        "SKIPPED: the data-parallel (MPI) tests need `cargo test --features distributed` \
         (Open MPI: apt-get install libopenmpi-dev openmpi-bin libclang-dev)"
    );
}

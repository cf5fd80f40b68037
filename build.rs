//! Generates the lookup table between dfdx's `Const<N>` dims and typenum
//! unsigned integers (see `src/shapes/table.rs`).
//!
//! Stable Rust cannot turn a typenum back into a `const usize`, so each size
//! the type-level arithmetic may produce gets one pair of impls. The table
//! covers `0..=STATIC_NN_MAX_DIM` (default 1024): every spatial size and
//! channel count a layer computes with must lie in it. Flattened feature
//! counts do not need the table (see `shapes::Flat`).
use std::{env, fmt::Write, fs, path::PathBuf};

const DEFAULT_MAX: usize = 1024;

/// The typenum spelling of `n`: `UInt<UInt<UTerm, B1>, B0>` for 2.
fn typenum(n: usize) -> String {
    if n == 0 {
        "UTerm".to_string()
    } else {
        format!("UInt<{}, B{}>", typenum(n >> 1), n & 1)
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=STATIC_NN_MAX_DIM");
    let max = env::var("STATIC_NN_MAX_DIM")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(DEFAULT_MAX);
    let mut out = String::new();
    writeln!(out, "/// Largest size in the `Const` ↔ typenum table.").unwrap();
    writeln!(out, "pub const MAX_TABLE_DIM: usize = {max};").unwrap();
    for n in 0..=max {
        let t = typenum(n);
        writeln!(
            out,
            "impl ToTypenum for Const<{n}> {{ type Output = {t}; }}\n\
             impl ToConst for {t} {{ type Output = Const<{n}>; }}\n\
             impl FlatFeatureCount for {t} {{ type Output = Const<{n}>; }}"
        )
        .unwrap();
    }
    // `FlatFeatureCount` is total: a product beyond the table maps to
    // `BeyondTable` (one impl per number up to the table's bit length, then a
    // single impl for every number with more bits), so `Linear` can report it.
    let bits = usize::BITS - max.leading_zeros();
    for n in max + 1..(1usize << bits) {
        let t = typenum(n);
        writeln!(
            out,
            "impl FlatFeatureCount for {t} {{ type Output = BeyondTable; }}"
        )
        .unwrap();
    }
    let params: Vec<String> = (0..=bits).map(|i| format!("A{i}")).collect();
    let mut longer = "X".to_string();
    for p in &params {
        longer = format!("UInt<{longer}, {p}>");
    }
    writeln!(
        out,
        "impl<X, {}> FlatFeatureCount for {longer} {{ type Output = BeyondTable; }}",
        params.join(", ")
    )
    .unwrap();
    let path = PathBuf::from(env::var("OUT_DIR").unwrap()).join("size_table.rs");
    fs::write(path, out).unwrap();
}

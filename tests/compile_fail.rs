//! Shape mistakes are compile errors with readable messages; the `.stderr`
//! files pin them. Regenerate with `TRYBUILD=overwrite cargo test --test compile_fail`.
#[test]
fn shape_errors_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/pass/*.rs");
}

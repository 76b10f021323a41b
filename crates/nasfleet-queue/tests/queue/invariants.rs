//! Architecture invariants of the queue crate, stated as absences.

use std::path::PathBuf;

fn manifest() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The queue is shared infrastructure: it must build and test without
/// libtorch and without the rest of nasfleet.
#[test]
fn depends_on_no_other_nasfleet_crate_and_not_on_tch() {
    for line in manifest().lines().map(str::trim) {
        let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
        assert!(
            !(name.starts_with("nasfleet-") && name != "nasfleet-queue"),
            "unexpected dependency: {line}"
        );
        assert!(
            !name.starts_with("tch") && !name.contains("torch"),
            "unexpected dependency: {line}"
        );
    }
}

/// Trimming a stream deletes in-flight entries (and XAUTOCLAIM then drops
/// them silently): the library must never trim.
#[test]
fn the_function_library_never_trims_a_stream() {
    let lua = nasfleet_queue::LIBRARY_SOURCE.to_uppercase();
    for forbidden in ["MAXLEN", "MINID", "XTRIM", "'DEL'", "\"DEL\""] {
        assert!(
            !lua.contains(forbidden),
            "nasfleet.lua contains {forbidden}"
        );
    }
}

//! Architecture invariants of the queue crate, stated as absences.

use std::path::PathBuf;

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn manifest() -> String {
    read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
}

/// The lines of a manifest's `[dependencies]` section that name a crate.
fn dependencies(manifest: &str) -> Vec<&str> {
    manifest
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "[dependencies]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The queue is shared infrastructure: it must build and test without
/// libtorch and without the rest of nasfleet. The one nasfleet crate it may
/// use is `nasfleet-util`, which itself depends on nothing but `std`.
#[test]
fn depends_on_no_other_nasfleet_crate_and_not_on_tch() {
    for line in manifest().lines().map(str::trim) {
        let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
        assert!(
            !(name.starts_with("nasfleet-") && name != "nasfleet-queue" && name != "nasfleet-util"),
            "unexpected dependency: {line}"
        );
        assert!(
            !name.starts_with("tch") && !name.contains("torch"),
            "unexpected dependency: {line}"
        );
    }
    let util = read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../nasfleet-util/Cargo.toml"));
    assert_eq!(
        dependencies(&util),
        Vec::<&str>::new(),
        "nasfleet-util must stay std-only"
    );
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

//! Checks against the real AnalogNAS-Bench table, fetched from PyPI through
//! `fetch_table` into the user's cache (`$NASFLEET_CACHE` or ~/.cache/nasfleet),
//! so the first run needs network access and later runs reuse the file.
//!
//! The expected numbers are the published sanity facts of the table (see
//! `data.anb`'s description in the project's data notes) and the values it
//! stores, read independently with Python's `pickle` and a stub class.

use std::path::PathBuf;
use std::sync::OnceLock;

use nasfleet_core::space::nb201::Nb201Arch;
use nasfleet_nb201::{
    default_cache_dir, fetch, fetch_table, Table, TableError, CELLS, CHANCE_ACCURACY,
};

fn table_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let cache = default_cache_dir().expect("a cache directory");
        fetch_table(&cache).unwrap_or_else(|e| panic!("fetching the table: {e}"))
    })
    .clone()
}

fn baseline() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table::load_pickle(&table_path(), None).unwrap_or_else(|e| panic!("{e}")))
}

#[test]
fn fetch_is_idempotent() {
    let path = table_path();
    let before = std::fs::metadata(&path).unwrap();
    assert_eq!(before.len(), fetch::TABLE_SIZE);
    let again = fetch_table(&default_cache_dir().unwrap()).unwrap();
    assert_eq!(again, path);
    // Present already, so not rewritten.
    assert_eq!(
        std::fs::metadata(&again).unwrap().modified().unwrap(),
        before.modified().unwrap()
    );
}

#[test]
fn fetch_into_a_fresh_directory_extracts_the_file() {
    let dir = std::env::temp_dir().join(format!("nasfleet-nb201-fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = fetch_table(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(path, fetch::table_path(&dir));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(table_path()).unwrap()
    );
    // Only the table is left behind: no wheel, no temporary files.
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["data.anb"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sanity_facts_of_the_baseline_column() {
    let t = baseline();
    assert_eq!(t.objective(), "baseline_accuracy");
    assert_eq!(t.len(), CELLS);
    assert!(t.is_complete());
    // Cells with no path from input to output score chance level, exactly.
    assert_eq!(t.count_at(CHANCE_ACCURACY), 341);
    let (best_arch, best) = t.best();
    assert_eq!(best, 94.0664);
    assert_eq!(format!("{best:.2}"), "94.07");
    assert_eq!(best_arch.to_naslib_tuple(), [2, 2, 0, 2, 3, 2]);
    assert_eq!(
        best_arch.to_string(),
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    );
    assert_eq!(t.median(), 90.40640000000003);
    assert_eq!(format!("{:.2}", t.median()), "90.41");
    assert_eq!(t.percentile_rank(best), 1.0);
    assert_eq!(t.percentile_rank(t.median()), 7813.0 / 15625.0);
    assert_eq!(t.percentile_rank(CHANCE_ACCURACY), 341.0 / 15625.0);
}

#[test]
fn all_conv3x3_cell_in_both_spellings() {
    let t = baseline();
    assert_eq!(t.value_of_tuple([2, 2, 2, 2, 2, 2]), Ok(93.2424));
    let s = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|";
    assert_eq!(
        t.value(&Nb201Arch::parse_nb201_str(s).unwrap()),
        Ok(93.2424)
    );
    // The all-skip cell: stored values read independently with Python.
    assert_eq!(t.value_of_tuple([0, 0, 0, 0, 0, 0]), Ok(60.7836));
}

#[test]
fn string_and_tuple_orders_differ_on_the_real_table() {
    // (0→3) is the 3rd tuple position but the 4th string edge; putting the
    // one skip on it must find the cell the tuple names, not its mirror.
    let t = baseline();
    let s = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|";
    assert_eq!(
        t.value(&Nb201Arch::parse_nb201_str(s).unwrap()),
        Ok(94.0664)
    );
    assert_ne!(t.value_of_tuple([2, 2, 2, 0, 3, 2]), Ok(94.0664));
}

#[test]
fn columns_and_objective_choice() {
    let path = table_path();
    let t = baseline();
    let expected = [
        "analog_accuracy",
        "analog_drift_2592000",
        "analog_drift_3600",
        "analog_drift_60",
        "analog_drift_86400",
        "baseline_accuracy",
        "baseline_drift_2592000",
        "baseline_drift_3600",
        "baseline_drift_60",
        "baseline_drift_86400",
        "noisy_accuracy",
        "ptq_accuracy",
        "qat_accuracy",
    ];
    assert_eq!(t.columns(), expected);

    let qat = Table::load_pickle(&path, Some("qat_accuracy")).unwrap();
    assert_eq!(qat.objective(), "qat_accuracy");
    assert_eq!(qat.value_of_tuple([2, 2, 2, 2, 2, 2]), Ok(92.3096));
    assert_eq!(qat.best().1, 93.5448);
    let drift = Table::load_pickle(&path, Some("baseline_drift_60")).unwrap();
    assert_eq!(drift.value_of_tuple([2, 2, 2, 2, 2, 2]), Ok(64.02));

    match Table::load_pickle(&path, Some("test_accuracy")) {
        Err(e @ TableError::UnknownObjective { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("\"test_accuracy\"")
                    && msg.contains("baseline_accuracy, baseline_drift_2592000"),
                "{msg}"
            );
        }
        other => panic!("expected an unknown-objective error, got {other:?}"),
    }
}

#[test]
fn csv_export_of_the_real_table_loads_back_identically() {
    let t = baseline();
    let mut text = String::from("arch,baseline_accuracy\n");
    for (i, (arch, v)) in t.iter().enumerate() {
        // Alternate spellings; `{v:?}` prints the shortest string that round-trips.
        if i % 2 == 0 {
            text.push_str(&format!("{arch},{v:?}\n"));
        } else {
            let a = arch.to_naslib_tuple();
            text.push_str(
                &format!("\"{a:?}\",{v:?}\n")
                    .replace('[', "(")
                    .replace(']', ")"),
            );
        }
    }
    let back = Table::parse_csv(&text, "export.csv", None).unwrap();
    assert_eq!(back.len(), CELLS);
    assert!(back.iter().eq(t.iter()));
}

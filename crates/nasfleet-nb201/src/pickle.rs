//! Reading the AnalogNAS-Bench pickle (`data.anb`).
//!
//! Layout (protocol 4): a dict from NASLib tuples to instances of the Python
//! class `analognasbench.data.Architecture`. Its fields are
//! `architecture` (the key again), five floats (`baseline_accuracy`,
//! `ptq_accuracy`, `qat_accuracy`, `noisy_accuracy`, `analog_accuracy`) and
//! eight `DriftMeasurement` objects (`baseline_drift_{60,3600,86400,2592000}`,
//! `analog_drift_{...}`) holding `value` and `uncertainty`.
//!
//! The classes are not available to Rust, so the file is read with serde-pickle's
//! `replace_unresolved_globals`: an instance then decodes as its state dict,
//! i.e. a plain dict of fields. Columns are discovered rather than hard-coded:
//! a column is any field that is numeric in every cell, and a field holding an
//! object with a numeric `value` (a drift measurement) counts as that value
//! (its `± uncertainty` is not an objective anyone searches for).

use std::collections::BTreeMap;
use std::io::Read;

use nasfleet_core::space::nb201::Nb201Arch;
use serde_pickle::{DeOptions, HashableValue, Value};

use crate::table::{choose_objective, describe, Table, TableError};

pub(crate) fn read(
    reader: impl Read,
    origin: &str,
    objective: Option<&str>,
) -> Result<Table, TableError> {
    let value =
        serde_pickle::value_from_reader(reader, DeOptions::new().replace_unresolved_globals())
            .map_err(|error| TableError::Pickle {
                origin: origin.to_string(),
                error,
            })?;
    let layout = |message: String| TableError::Layout {
        origin: origin.to_string(),
        message,
    };

    let Value::Dict(top) = value else {
        return Err(layout(format!(
            "the top level is {}, expected a dict from NASLib tuples to cell records",
            kind(&value)
        )));
    };

    let mut cells: Vec<(Nb201Arch, BTreeMap<String, f64>)> = Vec::with_capacity(top.len());
    for (key, record) in &top {
        let arch = arch_from_key(key)
            .map_err(|why| layout(format!("key {}: {why}", short(&key.to_string()))))?;
        let Value::Dict(fields) = record else {
            return Err(layout(format!(
                "cell {}: record is {}, expected an object",
                describe(&arch),
                kind(record)
            )));
        };
        let mut numeric = BTreeMap::new();
        for (name, field) in fields {
            let HashableValue::String(name) = name else {
                continue;
            };
            if name == "architecture" {
                // The record repeats its key; a mismatch means a corrupt or
                // differently encoded file, which would silently misattribute
                // every score.
                let repeated = to_hashable(field).and_then(|h| arch_from_key(&h).ok());
                if repeated != Some(arch) {
                    return Err(layout(format!(
                        "cell {}: its `architecture` field is {}",
                        describe(&arch),
                        short(&field.to_string())
                    )));
                }
            } else if let Some(x) = number(field) {
                numeric.insert(name.clone(), x);
            }
        }
        cells.push((arch, numeric));
    }

    let mut columns: Vec<String> = match cells.first() {
        Some((_, first)) => first.keys().cloned().collect(),
        None => return Err(TableError::Empty),
    };
    for (_, numeric) in &cells {
        columns.retain(|c| numeric.contains_key(c));
    }
    let objective = choose_objective(objective, &columns)?;
    let pairs: Vec<(Nb201Arch, f64)> = cells
        .iter()
        .map(|(arch, numeric)| (*arch, numeric[&objective]))
        .collect();
    Table::from_cells(objective, columns, pairs)
}

fn arch_from_key(key: &HashableValue) -> Result<Nb201Arch, String> {
    let HashableValue::Tuple(items) = key else {
        return Err("not a tuple".into());
    };
    if items.len() != 6 {
        return Err(format!("a tuple of {} items, expected 6", items.len()));
    }
    let mut t = [0u8; 6];
    for (slot, item) in t.iter_mut().zip(items) {
        *slot = match item {
            HashableValue::I64(i) => {
                u8::try_from(*i).map_err(|_| format!("op index {i} is not in 0..=4"))?
            }
            other => return Err(format!("item {other} is not an integer")),
        };
    }
    Nb201Arch::from_naslib_tuple(t).map_err(|e| e.to_string())
}

fn to_hashable(v: &Value) -> Option<HashableValue> {
    v.clone().into_hashable().ok()
}

/// A field's numeric value: a float or integer, or an object's `value`.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::F64(x) => Some(*x),
        Value::I64(i) => Some(*i as f64),
        Value::Dict(d) => match d.get(&HashableValue::String("value".into()))? {
            Value::F64(x) => Some(*x),
            Value::I64(i) => Some(*i as f64),
            _ => None,
        },
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None (or an object of an unknown class)",
        Value::Bool(_) => "a bool",
        Value::I64(_) | Value::Int(_) => "an int",
        Value::F64(_) => "a float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "a string",
        Value::List(_) => "a list",
        Value::Tuple(_) => "a tuple",
        Value::Set(_) | Value::FrozenSet(_) => "a set",
        Value::Dict(_) => "a dict",
    }
}

/// Keeps error messages readable when a value prints long.
fn short(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(arch: [i64; 6], acc: f64, drift: f64) -> Value {
        let s = |k: &str| HashableValue::String(k.into());
        Value::Dict(BTreeMap::from([
            (
                s("architecture"),
                Value::Tuple(arch.iter().map(|&i| Value::I64(i)).collect()),
            ),
            (s("baseline_accuracy"), Value::F64(acc)),
            (s("label"), Value::String("not a column".into())),
            (
                s("baseline_drift_60"),
                Value::Dict(BTreeMap::from([
                    (s("value"), Value::F64(drift)),
                    (s("uncertainty"), Value::F64(1.0)),
                ])),
            ),
        ]))
    }

    fn key(arch: [i64; 6]) -> HashableValue {
        HashableValue::Tuple(arch.iter().map(|&i| HashableValue::I64(i)).collect())
    }

    fn pickle(top: Value) -> Vec<u8> {
        serde_pickle::value_to_vec(&top, serde_pickle::SerOptions::new()).unwrap()
    }

    #[test]
    fn columns_are_the_numeric_fields_and_drift_values() {
        let top = Value::Dict(BTreeMap::from([
            (
                key([2, 2, 2, 2, 2, 2]),
                record([2, 2, 2, 2, 2, 2], 93.2, 60.0),
            ),
            (
                key([1, 1, 1, 1, 1, 1]),
                record([1, 1, 1, 1, 1, 1], 10.0, 9.0),
            ),
        ]));
        let bytes = pickle(top);
        let t = read(&bytes[..], "mem", None).unwrap();
        assert_eq!(t.columns(), ["baseline_accuracy", "baseline_drift_60"]);
        assert_eq!(t.objective(), "baseline_accuracy");
        assert_eq!(t.value_of_tuple([2, 2, 2, 2, 2, 2]), Ok(93.2));
        let drift = read(&bytes[..], "mem", Some("baseline_drift_60")).unwrap();
        assert_eq!(drift.value_of_tuple([1, 1, 1, 1, 1, 1]), Ok(9.0));
        let err = read(&bytes[..], "mem", Some("label")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown objective column \"label\"; available: baseline_accuracy, baseline_drift_60"
        );
    }

    #[test]
    fn layout_errors_name_the_cell() {
        let mismatched = Value::Dict(BTreeMap::from([(
            key([2, 2, 2, 2, 2, 2]),
            record([0, 2, 2, 2, 2, 2], 93.2, 1.0),
        )]));
        let err = read(&pickle(mismatched)[..], "mem", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("(2, 2, 2, 2, 2, 2)") && err.contains("`architecture` field"),
            "{err}"
        );

        let bad_key = Value::Dict(BTreeMap::from([(
            key([2, 2, 2, 2, 2, 7]),
            record([2, 2, 2, 2, 2, 7], 1.0, 1.0),
        )]));
        let err = read(&pickle(bad_key)[..], "mem", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mem: unexpected layout: key (2, 2, 2, 2, 2, 7)"),
            "{err}"
        );

        let short_key = Value::Dict(BTreeMap::from([(
            HashableValue::Tuple(vec![HashableValue::I64(0)]),
            record([0, 0, 0, 0, 0, 0], 1.0, 1.0),
        )]));
        let err = read(&pickle(short_key)[..], "mem", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a tuple of 1 items, expected 6"), "{err}");

        let list = Value::List(vec![]);
        let err = read(&pickle(list)[..], "mem", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the top level is a list"), "{err}");

        let err = read(&b"not a pickle"[..], "mem", None).unwrap_err();
        assert!(matches!(err, TableError::Pickle { .. }), "{err}");
    }

    #[test]
    fn a_column_missing_from_one_cell_is_not_offered() {
        let mut partial = record([1, 1, 1, 1, 1, 1], 10.0, 9.0);
        if let Value::Dict(d) = &mut partial {
            d.remove(&HashableValue::String("baseline_drift_60".into()));
        }
        let top = Value::Dict(BTreeMap::from([
            (
                key([2, 2, 2, 2, 2, 2]),
                record([2, 2, 2, 2, 2, 2], 93.2, 60.0),
            ),
            (key([1, 1, 1, 1, 1, 1]), partial),
        ]));
        let t = read(&pickle(top)[..], "mem", None).unwrap();
        assert_eq!(t.columns(), ["baseline_accuracy"]);
    }
}

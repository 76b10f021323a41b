//! Reading a table from CSV, for tables other than the AnalogNAS-Bench pickle
//! (another dataset, another metric, a hand-made subset).
//!
//! Format: a header naming an `arch` column and one or more numeric columns
//! (any names), then one row per cell. The `arch` field is either the NB201
//! string `|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|` or a NASLib tuple,
//! `(2, 1, 3, 0, 4, 2)` or `2,1,3,0,4,2`, quoted because it contains commas.
//! Quoting follows RFC 4180 (`"` opens a field, `""` is a literal quote) but a
//! record must fit on one line. Blank lines are skipped. Every error names the
//! line and what is wrong with it, because these files are written by hand or
//! by ad-hoc scripts.

use std::collections::HashMap;

use nasfleet_core::space::nb201::Nb201Arch;

use crate::table::{choose_objective, describe, Table, TableError};

pub(crate) fn parse(
    text: &str,
    origin: &str,
    objective: Option<&str>,
) -> Result<Table, TableError> {
    let err = |line: usize, message: String| TableError::Csv {
        origin: origin.to_string(),
        line,
        message,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());

    let (header_line, header) = lines.next().ok_or_else(|| {
        err(
            1,
            "empty file: expected a header such as `arch,accuracy`".into(),
        )
    })?;
    let header = split_record(header.strip_prefix('\u{feff}').unwrap_or(header))
        .map_err(|m| err(header_line, m))?;
    let mut arch_col = None;
    let mut columns = Vec::new();
    for (i, name) in header.iter().enumerate() {
        if name.is_empty() {
            return Err(err(
                header_line,
                format!("header column {} has no name", i + 1),
            ));
        }
        if header[..i].contains(name) {
            return Err(err(
                header_line,
                format!("header names column {name:?} twice"),
            ));
        }
        if name == "arch" {
            arch_col = Some(i);
        } else {
            columns.push(name.clone());
        }
    }
    let arch_col = arch_col.ok_or_else(|| {
        err(
            header_line,
            format!("header {header:?} has no `arch` column"),
        )
    })?;
    if columns.is_empty() {
        return Err(err(
            header_line,
            "header has no value column besides `arch`".into(),
        ));
    }
    let objective = choose_objective(objective, &columns)?;
    let value_col = header.iter().position(|h| *h == objective).unwrap_or(0);

    let mut first_seen: HashMap<Nb201Arch, usize> = HashMap::new();
    let mut cells = Vec::new();
    for (line, text) in lines {
        let fields = split_record(text).map_err(|m| err(line, m))?;
        if fields.len() != header.len() {
            let hint = if fields.len() > header.len() {
                " (a tuple containing commas must be quoted)"
            } else {
                ""
            };
            return Err(err(
                line,
                format!(
                    "{} fields, the header has {}{hint}",
                    fields.len(),
                    header.len()
                ),
            ));
        }
        let arch = parse_arch(&fields[arch_col]).map_err(|m| err(line, m))?;
        // Every numeric column is checked, not only the chosen one, so a file
        // that loads under one objective loads under all.
        let mut value = f64::NAN;
        for (i, (name, raw)) in header.iter().zip(&fields).enumerate() {
            if i == arch_col {
                continue;
            }
            let x = match raw.parse::<f64>() {
                Ok(x) if x.is_finite() => x,
                _ => {
                    return Err(err(
                        line,
                        format!("column {name:?}: {raw:?} is not a finite number"),
                    ))
                }
            };
            if i == value_col {
                value = x;
            }
        }
        if let Some(first) = first_seen.insert(arch, line) {
            return Err(err(
                line,
                format!(
                    "architecture {} was already given on line {first}",
                    describe(&arch)
                ),
            ));
        }
        cells.push((arch, value));
    }
    if cells.is_empty() {
        return Err(err(header_line, "the header is followed by no rows".into()));
    }
    Table::from_cells(objective, columns, cells)
}

/// Splits one line into trimmed fields, honouring double quotes.
fn split_record(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let mut field = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => {
                        return Err(format!(
                            "field {} has an unterminated quote",
                            fields.len() + 1
                        ))
                    }
                }
            }
            while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => {
                    return Err(format!(
                        "field {}: unexpected {c:?} after the closing quote",
                        fields.len() + 1
                    ))
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim_end().to_string());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => {
                        return Err(format!(
                            "field {}: a quote inside an unquoted field",
                            fields.len() + 1
                        ))
                    }
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim_end().to_string());
        }
    }
}

/// An NB201 string (starts with `|`) or a NASLib tuple, with or without parentheses.
pub(crate) fn parse_arch(s: &str) -> Result<Nb201Arch, String> {
    let s = s.trim();
    if s.starts_with('|') {
        return Nb201Arch::parse_nb201_str(s).map_err(|e| format!("arch: {e}"));
    }
    let inner = s
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .or_else(|| s.strip_prefix('[').and_then(|r| r.strip_suffix(']')))
        .unwrap_or(s);
    let items: Vec<&str> = inner.split(',').map(str::trim).collect();
    if items.len() != 6 {
        return Err(format!(
            "arch {s:?} is neither an NB201 string (|op~0|+...) nor a NASLib tuple of 6 op indices ({} items)",
            items.len()
        ));
    }
    let mut t = [0u8; 6];
    for (slot, item) in t.iter_mut().zip(&items) {
        *slot = item
            .parse::<u8>()
            .ok()
            .filter(|&d| d <= 4)
            .ok_or_else(|| format!("arch {s:?}: {item:?} is not a NASLib op index 0..=4"))?;
    }
    Nb201Arch::from_naslib_tuple(t).map_err(|e| format!("arch {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "\
arch,accuracy,latency
|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|,93.5,4
\"(1, 1, 1, 1, 1, 1)\",10.0,1

\"2,1,3,0,4,2\",85.25,2.5
\"[0, 0, 0, 0, 0, 0]\",60,3
";

    fn load(text: &str, objective: Option<&str>) -> Result<Table, TableError> {
        parse(text, "small.csv", objective)
    }

    fn csv_error(text: &str) -> (usize, String) {
        match load(text, None) {
            Err(TableError::Csv { line, message, .. }) => (line, message),
            other => panic!("expected a CSV error, got {other:?}"),
        }
    }

    #[test]
    fn loads_both_arch_spellings() {
        // Two value columns and no `baseline_accuracy`: the objective must be named.
        assert!(matches!(
            load(SMALL, None),
            Err(TableError::AmbiguousObjective { .. })
        ));
        let t = load(SMALL, Some("accuracy")).unwrap();
        assert_eq!(t.objective(), "accuracy");
        assert_eq!(t.columns(), ["accuracy", "latency"]);
        assert_eq!(t.len(), 4);
        assert_eq!(t.value_of_tuple([2, 2, 2, 2, 2, 2]), Ok(93.5));
        assert_eq!(t.value_of_tuple([1, 1, 1, 1, 1, 1]), Ok(10.0));
        assert_eq!(t.value_of_tuple([2, 1, 3, 0, 4, 2]), Ok(85.25));
        assert_eq!(t.value_of_tuple([0, 0, 0, 0, 0, 0]), Ok(60.0));
        let s = Nb201Arch::parse_nb201_str(
            "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|none~2|",
        )
        .unwrap();
        assert!(matches!(
            t.value(&s),
            Err(crate::LookupError::NotInTable { present: 4, .. })
        ));

        let latency = load(SMALL, Some("latency")).unwrap();
        assert_eq!(latency.value_of_tuple([2, 1, 3, 0, 4, 2]), Ok(2.5));
        assert_eq!(
            latency.best(),
            (
                Nb201Arch::from_naslib_tuple([2, 2, 2, 2, 2, 2]).unwrap(),
                4.0
            )
        );
    }

    #[test]
    fn stats_of_the_small_table_by_hand() {
        let t = load(SMALL, Some("accuracy")).unwrap();
        // Sorted: 10, 60, 85.25, 93.5.
        assert_eq!(t.median(), (60.0 + 85.25) / 2.0);
        assert_eq!(t.count_at(10.0), 1);
        assert_eq!(t.percentile_rank(60.0), 0.5);
        assert_eq!(t.percentile_rank(85.0), 0.5);
        assert_eq!(t.percentile_rank(85.25), 0.75);
        assert_eq!(t.percentile_rank(100.0), 1.0);
        assert_eq!(t.percentile_rank(0.0), 0.0);
    }

    #[test]
    fn single_value_column_needs_no_objective() {
        let t = load("arch , score\n\"0,0,0,0,0,1\" , 42\n", None).unwrap();
        assert_eq!(t.objective(), "score");
        assert_eq!(t.value_of_tuple([0, 0, 0, 0, 0, 1]), Ok(42.0));
        // A CRLF file with a BOM loads the same.
        let t = load("\u{feff}arch,score\r\n\"0,0,0,0,0,1\",42\r\n", None).unwrap();
        assert_eq!(t.value_of_tuple([0, 0, 0, 0, 0, 1]), Ok(42.0));
    }

    #[test]
    fn unknown_objective_lists_the_columns() {
        let e = load(SMALL, Some("acc")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown objective column \"acc\"; available: accuracy, latency"
        );
    }

    #[test]
    fn malformed_rows_name_line_and_problem() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "empty file"),
            ("arch\n\"0,0,0,0,0,0\"\n", 1, "no value column"),
            ("a,b\n1,2\n", 1, "no `arch` column"),
            ("arch,x,x\n", 1, "twice"),
            ("arch,,x\n", 1, "column 2 has no name"),
            ("arch,acc\n", 1, "no rows"),
            (
                "arch,acc\n(2, 1, 3, 0, 4, 2),90\n",
                2,
                "7 fields, the header has 2 (a tuple containing commas must be quoted)",
            ),
            (
                "arch,acc\n\"0,0,0,0,0,0\"\n",
                2,
                "1 fields, the header has 2",
            ),
            (
                "arch,acc\n\"0,0,0,0,0,0\",90\n\n\"0,0,0,0,0,5\",90\n",
                4,
                "\"5\" is not a NASLib op index 0..=4",
            ),
            ("arch,acc\n\"0,0,0,0,0\",90\n", 2, "(5 items)"),
            (
                "arch,acc\n|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|,90\n",
                2,
                "unknown op \"conv\"",
            ),
            (
                "arch,acc\n\"0,0,0,0,0,0\",ninety\n",
                2,
                "column \"acc\": \"ninety\" is not a finite number",
            ),
            ("arch,acc\n\"0,0,0,0,0,0\",NaN\n", 2, "not a finite number"),
            ("arch,acc\n\"0,0,0,0,0,0,90\n", 2, "unterminated quote"),
            (
                "arch,acc\n\"0,0,0,0,0,0\"x,90\n",
                2,
                "unexpected 'x' after the closing quote",
            ),
            ("arch,acc\n0\"0,90\n", 2, "a quote inside an unquoted field"),
        ];
        for &(text, line, needle) in cases {
            let (got_line, message) = csv_error(text);
            assert_eq!(got_line, line, "{text:?}: {message}");
            assert!(
                message.contains(needle),
                "{text:?}: {message:?} lacks {needle:?}"
            );
        }
    }

    #[test]
    fn duplicate_architecture_names_both_lines() {
        // The same cell in both spellings.
        let text = "arch,acc\n\"2,2,2,2,2,2\",1\n\"0,0,0,0,0,0\",2\n\
                    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|,3\n";
        let (line, message) = csv_error(text);
        assert_eq!(line, 4);
        assert!(message.contains("already given on line 2"), "{message}");
        assert!(message.contains("(2, 2, 2, 2, 2, 2)"), "{message}");
    }

    #[test]
    fn error_display_names_the_file() {
        let e = load("arch,acc\n\"0,0,0,0,0,0\",x\n", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "small.csv: line 2: column \"acc\": \"x\" is not a finite number"
        );
    }

    #[test]
    fn split_record_quoting() {
        assert_eq!(
            split_record("a, \"b,c\" ,\"d\"\"e\"").unwrap(),
            ["a", "b,c", "d\"e"]
        );
        assert_eq!(split_record("a,").unwrap(), ["a", ""]);
        assert_eq!(split_record("").unwrap(), [""]);
    }
}

//! Bad input gets a precise error: which field, which bound.

use nasfleet_core::{ArchLimits, Architecture, ExperimentConfig};

fn err(json: &str) -> String {
    Architecture::from_json(json.as_bytes(), &ArchLimits::default()).unwrap_err().to_string()
}

const LAYER: &str = r#"{"filter_height":3,"filter_width":3,"filters":24,"inputs":[]}"#;

#[test]
fn layers_out_of_range() {
    let many = vec![LAYER; 65].join(",");
    let e = err(&format!(r#"{{"version":1,"space":"cnn","layers":[{many}]}}"#));
    assert!(e.contains("layers") && e.contains("65 layers") && e.contains("1..=64"), "{e}");
    let e = err(r#"{"version":1,"space":"cnn","layers":[]}"#);
    assert!(e.contains("0 layers"), "{e}");
}

#[test]
fn unknown_field_names_the_path() {
    let e = err(r#"{"version":1,"space":"cnn","layers":[{"filter_height":3,"filter_width":3,"filters":24,"colour":1}]}"#);
    assert!(e.contains("layers[0]") && e.contains("colour"), "{e}");
    let e = err(r#"{"version":1,"space":"cnn","layers":[], "extra": 1}"#);
    assert!(e.contains("extra"), "{e}");
}

#[test]
fn invalid_json_names_line_and_column() {
    let e = err("{\"version\":1,\n\"space\": cnn}");
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn bounds_name_the_field() {
    let e = err(r#"{"version":1,"space":"cnn","layers":[{"filter_height":3,"filter_width":3,"filters":0}]}"#);
    assert!(e.contains("layers[0].filters") && e.contains("1..=1024"), "{e}");
    let e = err(r#"{"version":1,"space":"cnn","layers":[{"filter_height":4,"filter_width":3,"filters":8}]}"#);
    assert!(e.contains("layers[0].filter_height"), "{e}");
    let e = err(r#"{"version":1,"space":"cnn","layers":[{"filter_height":3,"filter_width":3,"filters":8,"inputs":[0]}]}"#);
    assert!(e.contains("layers[0].inputs"), "{e}");
    let e = err(r#"{"version":2,"space":"cnn","layers":[]}"#);
    assert!(e.contains("version 2"), "{e}");
    let e = err(r#"{"space":"cnn","layers":[]}"#);
    assert!(e.contains("version"), "{e}");
}

#[test]
fn oversized_and_deep_payloads_are_refused_before_work() {
    let big = format!(r#"{{"version":1,"space":"cnn","layers":[{}]}}"#, vec![LAYER; 2000].join(","));
    assert!(err(&big).contains("over the cap"));
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let e = Architecture::from_json(deep.as_bytes(), &ArchLimits { max_payload_bytes: 1 << 20, ..Default::default() })
        .unwrap_err()
        .to_string();
    assert!(e.contains("recursion"), "{e}");
}

#[test]
fn cell_and_nb201_errors() {
    let e = err(r#"{"version":1,"space":"rnn-cell","base":3,"nodes":[],"inject":{"combine":"add","activation":"tanh","node":0},"cell_node":0}"#);
    assert!(e.contains("base") && e.contains("power of two"), "{e}");
    let e = err(r#"{"version":1,"space":"nb201","ops":["none","none","none","none","none","conv"]}"#);
    assert!(e.contains("ops[5]") || e.contains("ops"), "{e}");
}

#[test]
fn config_unknown_key_is_named() {
    let e = ExperimentConfig::from_toml_str("[controller]\nlearning_rate = 0.1\n", "x.toml").unwrap_err().to_string();
    assert!(e.contains("learning_rate"), "{e}");
    let e = ExperimentConfig::from_toml_str("[search]\nbatch = 0\n", "x.toml").unwrap_err().to_string();
    assert!(e.contains("search.batch"), "{e}");
    let d = ExperimentConfig::from_toml_str("", "x.toml").unwrap();
    assert_eq!(d, ExperimentConfig::default());
    assert_eq!(d.controller.lr, 0.0006);
    assert_eq!(d.cnn.num_filters, vec![24, 36, 48, 64]);
}

#[test]
fn a_cost_rule_needs_a_space_whose_children_have_a_size() {
    let rule = "[reward]\nkind = \"accuracy\"\n[reward.cost]\nmetric = \"params\"\ntarget = 100000\n";
    for space in ["cnn", "nb201"] {
        let text = format!("[search]\nspace = \"{space}\"\n{rule}");
        let c = ExperimentConfig::from_toml_str(&text, "x.toml").unwrap_or_else(|e| panic!("{space}: {e}"));
        assert!(c.reward.cost_rule().is_some());
    }
    let text = format!("[search]\nspace = \"rnn-cell\"\n{rule}");
    let e = ExperimentConfig::from_toml_str(&text, "x.toml").unwrap_err().to_string();
    assert!(e.contains("reward.cost") && e.contains("rnn-cell"), "{e}");
    let e = ExperimentConfig::from_toml_str(&rule.replace("100000", "-1"), "x.toml").unwrap_err().to_string();
    assert!(e.contains("reward.cost") && e.contains("target"), "{e}");
}

#[test]
fn bad_early_stop_sections_name_the_key() {
    let load = |section: &str| {
        let text = format!("[train]\nepochs = 8\n\n[early_stop]\n{section}\n");
        ExperimentConfig::from_toml_str(&text, "x.toml").map(|_| ()).map_err(|e| e.to_string())
    };
    for (section, key) in [
        ("rule = \"asha\"\neta = 1", "early_stop.eta"),
        ("rule = \"median\"\nmin_peers = 0", "early_stop.min_peers"),
        ("rule = \"asha\"\nmin_epochs = 8", "early_stop.min_epochs"),
        ("rule = \"median\"\nwarmup_epochs = 9", "early_stop.warmup_epochs"),
        ("rule = \"asha\"\nspeed = 2", "speed"),
        ("rule = \"sometimes\"", "sometimes"),
    ] {
        let e = load(section).unwrap_err();
        assert!(e.contains(key), "{section:?}: {e}");
    }
    assert!(load("rule = \"asha\"\nmin_epochs = 1\neta = 3").is_ok());
    // The paper configs leave it off.
    assert!(!ExperimentConfig::default().early_stop.enabled());
    let nb = "[search]\nspace = \"nb201\"\n\n[train]\ndataset = \"nb201-table\"\n\n[early_stop]\nrule = \"median\"\n";
    let e = ExperimentConfig::from_toml_str(nb, "nb.toml").unwrap_err().to_string();
    assert!(e.contains("early_stop.rule"), "{e}");
}

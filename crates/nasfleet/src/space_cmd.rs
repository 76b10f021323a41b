//! `nasfleet space …`: describe, sample and check architectures.

use std::fmt::Write as _;

use anyhow::{bail, Context, Result};
use nasfleet_core::schema::StepKind;
use nasfleet_core::{Architecture, ExperimentConfig, Space, SpaceKind, TokenSchema};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::cli::{DrawFormat, SpaceCommand, SpaceSettings};

pub(crate) fn run(cmd: SpaceCommand) -> Result<()> {
    match cmd {
        SpaceCommand::Describe { space, settings, json } => {
            let (space, layers) = resolve(space, &settings)?;
            let schema = space.schema(layers);
            if json {
                println!("{}", serde_json::to_string_pretty(&schema)?);
            } else {
                print!("{}", describe(&space, layers, &schema));
            }
        }
        SpaceCommand::Sample { space, seed, settings } => {
            let (space, layers) = resolve(space, &settings)?;
            let tokens = space.schema(layers).sample_uniform(&mut ChaCha8Rng::seed_from_u64(seed));
            let arch = space.decode(&tokens)?;
            println!("{}", arch.to_json_pretty());
        }
        SpaceCommand::Check { file, config, input, classes } => {
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let cfg = match &config {
                Some(p) => Some(ExperimentConfig::load(p)?),
                None => None,
            };
            let limits = cfg.as_ref().map(|c| c.limits.clone()).unwrap_or_default();
            let arch = Architecture::from_json(&bytes, &limits).with_context(|| format!("{} is invalid", file.display()))?;
            if let Some(cfg) = &cfg {
                let mut space = cfg.space();
                if let (Space::RnnCell(s), Architecture::RnnCell(a)) = (&mut space, &arch) {
                    s.base = a.base;
                }
                space.encode(&arch).with_context(|| {
                    format!("{} is valid but outside the space of {}", file.display(), config.as_ref().map(|p| p.display().to_string()).unwrap_or_default())
                })?;
            }
            let shape = parse_shape(&input)?;
            println!("ok: {}", arch.summary(shape, classes));
        }
        SpaceCommand::Draw { file, format, input, classes } => {
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let arch = crate::train_cmd::read_arch(&bytes, &ExperimentConfig::default())
                .with_context(|| format!("{} is not an architecture", file.display()))?;
            let cnn_input = match (&input, &arch) {
                (Some(i), Architecture::Cnn(_)) => Some((parse_shape(i)?, classes)),
                (Some(_), _) => bail!("--input is for CNN architectures; {} is a {} architecture", file.display(), arch.kind()),
                (None, _) => None,
            };
            let drawing = nasfleet_core::draw::Drawing::of(&arch, cnn_input);
            match format {
                DrawFormat::Svg => print!("{}", drawing.svg()),
                DrawFormat::Dot => print!("{}", drawing.dot()),
            }
        }
    }
    Ok(())
}

fn parse_shape(s: &str) -> Result<(usize, usize, usize)> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| x.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--input {s:?}: expected C,H,W like 3,32,32"))?;
    match v.as_slice() {
        [c, h, w] if *c > 0 && *h > 0 && *w > 0 => Ok((*c, *h, *w)),
        _ => bail!("--input {s:?}: expected three positive numbers C,H,W like 3,32,32"),
    }
}

/// The space from the config (or paper defaults) with the command-line overrides.
fn resolve(kind: SpaceKind, s: &SpaceSettings) -> Result<(Space, usize)> {
    let mut cfg = match &s.config {
        Some(p) => ExperimentConfig::load(p)?,
        None => ExperimentConfig::default(),
    };
    cfg.search.space = kind;
    if let Some(b) = s.base {
        cfg.rnn_cell.base = b;
    }
    if s.extended {
        cfg.rnn_cell.extended = true;
    }
    if s.strides {
        cfg.cnn.predict_strides = true;
    }
    let layers = s.layers.unwrap_or(cfg.cnn.depth.start);
    if kind == SpaceKind::Cnn && (layers == 0 || layers > cfg.limits.max_layers) {
        bail!("--layers {layers} is outside 1..={}", cfg.limits.max_layers);
    }
    cfg.check("command line")?;
    Ok((cfg.space(), layers))
}

fn describe(space: &Space, layers: usize, schema: &TokenSchema) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "search space: {}", space.kind());
    match space {
        Space::Cnn(s) => {
            let _ = writeln!(
                out,
                "layers: {layers} (depth schedule: start {}, +{} every {} samples, max {}); strides predicted: {}; max-pool after layers: {:?}",
                s.depth.start, s.depth.step, s.depth.every, s.depth.max, s.predict_strides, s.max_pool_after
            );
        }
        Space::RnnCell(s) => {
            let _ = writeln!(out, "base: {} leaves, {} nodes; extended functions: {}", s.base, 2 * s.base - 1, s.extended);
        }
        Space::Nb201 => {
            let _ = writeln!(out, "cell: 4 nodes, 6 edges (NASLib tuple order), one operation per edge");
        }
    }
    let _ = writeln!(out, "\ndecision types (one embedding table and softmax head each):");
    for d in &schema.decisions {
        let _ = writeln!(out, "  {:<14} {}", d.name, d.choices.join(" | "));
    }
    let _ = writeln!(out, "\nsteps (token order):");
    for (i, step) in schema.steps.iter().enumerate() {
        let what = match step.kind {
            StepKind::Choice { decision } => format!("choose {}", schema.decisions[decision].name),
            StepKind::Anchor { layer: 0 } => "anchor point (no earlier layer)".to_string(),
            StepKind::Anchor { layer } => format!("anchor point: {layer} yes/no skip decisions (layers 0..{})", layer - 1),
        };
        let _ = writeln!(out, "  {i:>3}  {:<24} {what}", step.name);
    }
    let log10 = schema.log10_size();
    let _ = writeln!(out, "\ntokens per architecture: {}", schema.token_count());
    let mantissa = 10f64.powf(log10 - log10.floor());
    let _ = writeln!(out, "size of the space: {mantissa:.2}e{} architectures (log10 = {log10:.3})", log10.floor() as i64);
    out
}

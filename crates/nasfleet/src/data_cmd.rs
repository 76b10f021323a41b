//! `nasfleet data fetch …`: get the real datasets this machine can reach.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::cli::DataCommand;

/// Where a dataset lives when the user names no directory.
pub(crate) fn default_dir(dataset: &str) -> PathBuf {
    nasfleet_data::default_cache_dir().join(dataset)
}

pub(crate) fn run(cmd: DataCommand) -> Result<()> {
    let DataCommand::Fetch { dataset, dir, json } = cmd;
    let dir = dir.unwrap_or_else(|| default_dir(&dataset));
    match dataset.as_str() {
        "fashion-mnist" => {
            let r = nasfleet_data::fetch_fashion_mnist(&dir)
                .with_context(|| format!("fetching Fashion-MNIST into {}", dir.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "fashion-mnist: {} training and {} test images, verified, in {} (source: {:?})",
                    r.train_images,
                    r.test_images,
                    r.dir.display(),
                    r.source
                );
            }
        }
        "austen" => {
            let r = nasfleet_data::fetch_austen(&dir)
                .with_context(|| format!("preparing the Austen corpus in {}", dir.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r.stats)?);
            } else {
                let s = &r.stats;
                println!(
                    "austen: {} books, {} words, {} characters; vocabulary {} ({:.2}% of training words covered)",
                    s.books.len(),
                    s.source_words,
                    s.source_chars,
                    s.vocab_size,
                    100.0 * s.train_coverage
                );
                println!(
                    "  word tokens (with <eos>): train {}, valid {}, test {}",
                    s.train.tokens, s.valid.tokens, s.test.tokens
                );
                println!("  word files: {}", r.word_files.train.parent().unwrap_or(&r.dir).display());
                println!("  report: {}", r.report_file.display());
            }
        }
        other => bail!("unknown dataset {other:?}: `nasfleet data fetch` knows fashion-mnist and austen"),
    }
    Ok(())
}

//! The Austen corpus end to end: Debian's r-cran-janeaustenr is downloaded (once, into
//! `$NASFLEET_CACHE` or `~/.cache/nasfleet`), its R data base parsed, the novels prepared.

use nasfleet_data::austen::{locate_janeaustenr, read_books};
use nasfleet_data::{
    default_cache_dir, fetch_austen_with, load_char_corpus, load_word_corpus, AustenOptions,
    CharFormat,
};

#[test]
fn prepared_corpus_has_the_known_counts_and_loads() {
    let dest = tempfile::tempdir().unwrap();
    let options = AustenOptions::default();
    let report = fetch_austen_with(dest.path(), &options).unwrap();
    let s = &report.stats;
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());

    // Facts of the source text (data.md): six books, 717,537 words, 4.03 M characters
    // counting one newline per line, 81 distinct symbols.
    assert_eq!(s.books.len(), 6);
    assert_eq!(s.books[0].title, "Sense & Sensibility");
    assert_eq!(s.books[5].title, "Persuasion");
    assert_eq!(s.source_words, 717_537);
    assert_eq!(s.source_chars, 4_025_028);
    assert_eq!(s.source_symbols, 81);
    assert_eq!(s.books.iter().map(|b| b.lines).sum::<usize>(), 73_422);

    // After tokenisation (≈725k words; the 10k vocabulary covers ≈99.4%).
    assert_eq!(s.words, 725_067);
    assert_eq!(s.vocab_size, 10_000);
    assert!(
        (0.990..0.999).contains(&s.train_coverage),
        "{}",
        s.train_coverage
    );
    assert_eq!(s.train.words + s.valid.words + s.test.words, s.words);
    assert_eq!(
        s.train.sentences + s.valid.sentences + s.test.sentences,
        s.sentences
    );
    assert_eq!(s.train.sentences, s.sentences * 8 / 10);
    // Pinned counts of this preparation (see the austen module's documentation).
    assert_eq!(
        (s.sentences, s.train.words, s.valid.words, s.test.words),
        PINNED_COUNTS,
    );

    // The word files load with the PTB loader and agree with the report.
    let words = load_word_corpus(&report.word_files).unwrap();
    assert_eq!(words.vocab.len(), 10_000);
    assert_eq!(words.train.len(), s.train.tokens);
    assert_eq!(words.valid.len(), s.valid.tokens);
    assert_eq!(words.test.len(), s.test.tokens);
    let unk = words.vocab.id("<unk>").unwrap();
    let unk_count = words.test.iter().filter(|&&t| t == unk).count();
    assert_eq!(unk_count, s.test.unk);
    assert_eq!(
        words.oov_mapped_to_unk, 0,
        "valid/test only use training words or <unk>"
    );
    let first: Vec<&str> = words.train[..6]
        .iter()
        .map(|&i| words.vocab.token(i).unwrap())
        .collect();
    assert_eq!(
        first,
        ["sense", "and", "sensibility", "<eos>", "by", "jane"]
    );

    // The character files are in the PTB-char convention and load as such.
    let chars = load_char_corpus(&report.char_files, CharFormat::Auto).unwrap();
    assert_eq!(chars.train.len(), s.train.char_tokens);
    assert_eq!(chars.test.len(), s.test.char_tokens);
    assert_eq!(chars.vocab.len(), s.char_vocab_size);
    let head: String = chars.train[..20]
        .iter()
        .map(|&i| chars.vocab.token(i).unwrap())
        .collect();
    assert_eq!(
        head,
        "sense_and_sensibility<eos>"
            .chars()
            .take(20)
            .collect::<String>()
    );

    // Idempotent: a second run reports the same and rewrites nothing.
    let before = std::fs::metadata(&report.word_files.train)
        .unwrap()
        .modified()
        .unwrap();
    let again = fetch_austen_with(dest.path(), &options).unwrap();
    assert_eq!(again, report);
    let after = std::fs::metadata(&report.word_files.train)
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report.report_file).unwrap()).unwrap();
    assert_eq!(json["stats"]["words"], 725_067);
}

const PINNED_COUNTS: (usize, usize, usize, usize) = (31_732, 581_811, 71_511, 71_745);

#[test]
fn books_are_read_from_the_r_database() {
    let source = locate_janeaustenr(&default_cache_dir()).unwrap();
    let books = read_books(&source).unwrap();
    assert_eq!(books.len(), 6);
    let emma = books.iter().find(|b| b.key == "emma").unwrap();
    assert_eq!(emma.lines.len(), 16_235);
    assert_eq!(emma.lines[0], "EMMA");
    assert_eq!(emma.lines[2], "By Jane Austen");
    assert!(emma.lines[14].starts_with("Emma Woodhouse, handsome, clever, and rich"));
}

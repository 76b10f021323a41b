//! The Penn Treebank loaders on a hand-written fixture in the PTB format, and their errors.

use std::path::{Path, PathBuf};

use nasfleet_data::{
    load_char_corpus, load_ptb, load_ptb_char, load_word_corpus, CharFormat, CorpusFiles, DataError,
};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ptb")
}

fn write_corpus(dir: &Path, prefix: &str, train: &str, valid: &str, test: &str) -> CorpusFiles {
    let files = CorpusFiles::with_prefix(dir, prefix);
    std::fs::write(&files.train, train).unwrap();
    std::fs::write(&files.valid, valid).unwrap();
    std::fs::write(&files.test, test).unwrap();
    files
}

#[test]
fn word_level_vocabulary_ids_and_eos() {
    let c = load_ptb(&fixture()).unwrap();
    // 13 types in the training file, <eos> included; ids by frequency, ties by token.
    let expected_vocab = [
        "<eos>", "the", "a", "cat", "dog", "<unk>", "N", "ate", "is", "mat", "not", "on", "sat",
    ];
    assert_eq!(c.vocab.tokens(), &expected_vocab);
    let id = |t: &str| c.vocab.id(t).unwrap();
    assert_eq!(
        &c.train[..7],
        &[
            id("the"),
            id("cat"),
            id("sat"),
            id("on"),
            id("the"),
            id("mat"),
            id("<eos>")
        ]
    );
    assert_eq!(c.train.len(), 20, "3 lines: 6 + 5 + 6 words plus 3 <eos>");
    assert_eq!(
        c.valid,
        vec![
            id("the"),
            id("<unk>"),
            id("sat"),
            id("on"),
            id("a"),
            id("dog"),
            id("<eos>")
        ]
    );
    // "bird" and "sang" are not in the training file: they become <unk>.
    assert_eq!(
        c.test,
        vec![
            id("the"),
            id("cat"),
            id("ate"),
            id("the"),
            id("<unk>"),
            id("mat"),
            id("<eos>"),
            id("the"),
            id("<unk>"),
            id("<unk>"),
            id("<eos>")
        ]
    );
    assert_eq!(c.oov_mapped_to_unk, 2);
    assert_eq!(c.vocab.token(id("dog")), Some("dog"));
    assert_eq!(c.vocab.token(13), None);
}

#[test]
fn char_level_ptb_convention() {
    let c = load_ptb_char(&fixture()).unwrap();
    let text: Vec<&str> = c.train.iter().map(|&i| c.vocab.token(i).unwrap()).collect();
    assert_eq!(text.join(""), "the_cat_sat<eos>a_dog_ate_N<eos>");
    let valid: Vec<&str> = c.valid.iter().map(|&i| c.vocab.token(i).unwrap()).collect();
    assert_eq!(valid.join(""), "the_dog<eos>");
    assert_eq!(c.test.len(), "a_cat_ate".len() + 1);
    // Auto detects the convention from the training file.
    let auto = load_char_corpus(&CorpusFiles::ptb_char(&fixture()), CharFormat::Auto).unwrap();
    assert_eq!(auto, c);
}

#[test]
fn char_level_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), "plain", "the cat\nsat.\n", "a cat\n", "tea\n");
    let c = load_char_corpus(&files, CharFormat::Auto).unwrap();
    let train: Vec<&str> = c.train.iter().map(|&i| c.vocab.token(i).unwrap()).collect();
    assert_eq!(
        train,
        ["t", "h", "e", " ", "c", "a", "t", "<eos>", "s", "a", "t", ".", "<eos>"]
    );
    assert_eq!(c.valid.len(), 6);
    // Forcing the PTB-char convention on plain text is an error naming file and line.
    let err = load_char_corpus(&files, CharFormat::PtbChar).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("plain.train.txt") && msg.contains("line 1"),
        "{msg}"
    );
    assert!(msg.contains("\"the\" is not a single character"), "{msg}");
}

#[test]
fn unknown_word_without_unk_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(
        dir.path(),
        "x",
        "a b c\nb c d\n",
        "a b\nc d\nd e a\n",
        "a\n",
    );
    let err = load_word_corpus(&files).unwrap_err();
    match &err {
        DataError::OutOfVocabulary { path, line, token } => {
            assert_eq!(path, &files.valid);
            assert_eq!(*line, 3);
            assert_eq!(token, "e");
        }
        other => panic!("expected OutOfVocabulary, got {other:?}"),
    }
    assert!(err.to_string().contains("x.valid.txt, line 3"), "{err}");
}

#[test]
fn missing_and_empty_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_ptb(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains("ptb.train.txt"), "{err}");

    let files = write_corpus(dir.path(), "ptb", " a b \n", " a \n", "  \n\n");
    let err = load_word_corpus(&files).unwrap_err();
    assert!(
        matches!(err, DataError::Empty { ref path, .. } if path == &files.test),
        "{err:?}"
    );
    assert!(err.to_string().contains("ptb.test.txt: empty"), "{err}");
}

#[test]
fn invalid_utf8_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), "u", "a b\n", "a\n", "b\n");
    std::fs::write(&files.train, b"a b\nc \xff d\n").unwrap();
    let err = load_word_corpus(&files).unwrap_err().to_string();
    assert!(
        err.contains("u.train.txt") && err.contains("line 2") && err.contains("UTF-8"),
        "{err}"
    );
}

#[test]
fn crlf_line_endings_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), "w", "a b\r\nb\r\n", "a\r\n", "b\r\n");
    let c = load_word_corpus(&files).unwrap();
    assert_eq!(c.vocab.len(), 3, "{:?}", c.vocab.tokens());
}

//! `deploy/`: what can be checked without a GPU, a cluster or a Docker
//! engine. Every YAML file parses; the Kubernetes manifests have what a fleet
//! needs (kinds, grace periods above the worker's stop grace, GPU limits,
//! claims and Secrets that exist, Redis with its append-only file); every
//! `nasfleet ...` command line in deploy/ (systemd units, cloud-init, the
//! manifests, the Dockerfile, the README) names only subcommands and flags
//! that the built binary has, and its own argument parser accepts it; the
//! systemd units pass `systemd-analyze verify`; the start-or-resume scripts
//! of the controller do what their comments say; and Redis started with the
//! manifest's arguments and the example Secret's ACL serves the nasfleet
//! users.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nasfleet_queue::testing::{RedisServer, RedisServerOptions, TempDir};
use yaml_rust2::{Yaml, YamlLoader};

/// The worker's default stop grace (`[fleet] stop_grace_ms`): every stop
/// timeout in deploy/ must exceed it.
const STOP_GRACE_S: i64 = 25;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Every file under deploy/, as paths relative to the repository root.
fn deploy_files() -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join("deploy"), &repo(), &mut out);
    out.sort();
    out
}

fn yaml_files() -> Vec<String> {
    deploy_files()
        .into_iter()
        .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
        .collect()
}

fn yaml(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn s(y: &Yaml) -> &str {
    y.as_str().unwrap_or("")
}

fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

fn strings(y: &Yaml) -> Vec<String> {
    list(y).iter().map(|v| s(v).to_owned()).collect()
}

// ---------------------------------------------------------------------------
// Shell and systemd command lines
// ---------------------------------------------------------------------------

/// Splits shell text into simple commands (lists of words), as far as the
/// scripts in deploy/ need: quotes, backslashes, line continuations,
/// comments, `$(...)` and `${...}` kept inside their word, `; & | && || ( )`
/// and newlines between commands, redirections dropped, here-documents
/// skipped (their text is data, not commands).
fn shell_commands(text: &str) -> Vec<Vec<String>> {
    let c: Vec<char> = text.chars().collect();
    let mut cmds = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut word: Option<String> = None;
    let mut skip_next_word = false;
    let mut heredocs: Vec<(String, bool)> = Vec::new();
    let mut i = 0;
    let end_word = |word: &mut Option<String>, cur: &mut Vec<String>, skip: &mut bool| {
        if let Some(w) = word.take() {
            if *skip {
                *skip = false;
            } else {
                cur.push(w);
            }
        }
    };
    while i < c.len() {
        let ch = c[i];
        match ch {
            '\\' if c.get(i + 1) == Some(&'\n') => i += 2,
            '\\' => {
                if let Some(&n) = c.get(i + 1) {
                    word.get_or_insert_with(String::new).push(n);
                }
                i += 2;
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                i += 1;
                while i < c.len() && c[i] != '\'' {
                    w.push(c[i]);
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' && i + 1 < c.len() && "\"\\$`\n".contains(c[i + 1]) {
                        if c[i + 1] != '\n' {
                            w.push(c[i + 1]);
                        }
                        i += 2;
                    } else {
                        w.push(c[i]);
                        i += 1;
                    }
                }
                i += 1;
            }
            '$' if matches!(c.get(i + 1), Some('(') | Some('{')) => {
                let (open, close) = if c[i + 1] == '(' { ('(', ')') } else { ('{', '}') };
                let w = word.get_or_insert_with(String::new);
                let mut depth = 0;
                while i < c.len() {
                    w.push(c[i]);
                    if c[i] == open {
                        depth += 1;
                    } else if c[i] == close {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '#' if word.is_none() => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            ' ' | '\t' => {
                end_word(&mut word, &mut cur, &mut skip_next_word);
                i += 1;
            }
            '\n' | ';' | '&' | '|' | '(' | ')' => {
                end_word(&mut word, &mut cur, &mut skip_next_word);
                if !cur.is_empty() {
                    cmds.push(std::mem::take(&mut cur));
                }
                if ch == '\n' {
                    // Here-documents start on the next line.
                    for (delim, strip) in std::mem::take(&mut heredocs) {
                        i += 1;
                        loop {
                            let start = i;
                            while i < c.len() && c[i] != '\n' {
                                i += 1;
                            }
                            let line: String = c[start..i].iter().collect();
                            let line = if strip {
                                line.trim_start_matches('\t').to_owned()
                            } else {
                                line
                            };
                            if line == delim || i >= c.len() {
                                break;
                            }
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            '<' | '>' => {
                // A file descriptor number before the operator is part of it.
                if word
                    .as_deref()
                    .is_some_and(|w| !w.is_empty() && w.chars().all(|d| d.is_ascii_digit()))
                {
                    word = None;
                }
                end_word(&mut word, &mut cur, &mut skip_next_word);
                if ch == '<' && c.get(i + 1) == Some(&'<') {
                    i += 2;
                    let strip = c.get(i) == Some(&'-');
                    if strip {
                        i += 1;
                    }
                    while c.get(i) == Some(&' ') {
                        i += 1;
                    }
                    let mut delim = String::new();
                    while i < c.len() && !c[i].is_whitespace() {
                        if c[i] != '\'' && c[i] != '"' {
                            delim.push(c[i]);
                        }
                        i += 1;
                    }
                    heredocs.push((delim, strip));
                    continue;
                }
                i += 1;
                while matches!(c.get(i), Some('>') | Some('|')) {
                    i += 1;
                }
                if c.get(i) == Some(&'&') {
                    // >&2, 2>&1: the target is a descriptor, not a word.
                    i += 1;
                    while c.get(i).is_some_and(|d| d.is_ascii_digit() || *d == '-') {
                        i += 1;
                    }
                } else {
                    skip_next_word = true;
                }
            }
            _ => {
                word.get_or_insert_with(String::new).push(ch);
                i += 1;
            }
        }
    }
    end_word(&mut word, &mut cur, &mut skip_next_word);
    if !cur.is_empty() {
        cmds.push(cur);
    }
    cmds
}

/// A systemd command line (`ExecStart=` and friends) as argv, with the
/// specifiers and escapes systemd would resolve: `%i` is instance 0.
fn systemd_argv(value: &str) -> Vec<String> {
    let v = value.trim_start_matches(['-', '@', ':', '+', '!']);
    let v = v
        .replace("%i", "0")
        .replace("%I", "0")
        .replace("%%", "%")
        .replace("$$", "$");
    let cmds = shell_commands(&v);
    assert!(cmds.len() <= 1, "one command per Exec line: {value}");
    cmds.into_iter().next().unwrap_or_default()
}

/// Where the program of a simple command is: after assignments, keywords
/// (`then`, `!`, ...) and wrappers (`exec`, `runuser -u USER --`, `env`).
fn program_index(words: &[String]) -> Option<usize> {
    let mut i = 0;
    loop {
        let w = words.get(i)?;
        let is_assignment = w.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !k.starts_with('-')
        });
        match w.as_str() {
            _ if is_assignment => i += 1,
            "exec" | "nohup" | "command" | "time" | "!" | "if" | "then" | "else" | "elif" | "do" | "while"
            | "until" => i += 1,
            "env" | "sudo" | "runuser" => {
                i += 1;
                while let Some(o) = words.get(i) {
                    if o == "--" {
                        i += 1;
                        break;
                    } else if ["-u", "-g", "--user", "--group"].contains(&o.as_str()) {
                        i += 2;
                    } else if o.starts_with('-') || o.contains('=') {
                        i += 1;
                    } else {
                        break;
                    }
                }
            }
            _ => return Some(i),
        }
    }
}

/// A `nasfleet` invocation in a simple command: the words from the program
/// on, or None.
fn invocation(words: &[String]) -> Option<Vec<String>> {
    let i = program_index(words)?;
    let prog = &words[i];
    (prog == "nasfleet" || prog.ends_with("/nasfleet")).then(|| words[i..].to_vec())
}

/// `sh -c SCRIPT` (or bash): the script.
fn shell_script(argv: &[String]) -> Option<&str> {
    let argv = &argv[program_index(argv)?..];
    let shell = &argv[0];
    let is_shell = ["sh", "bash", "dash"]
        .iter()
        .any(|n| shell == n || shell.ends_with(&format!("/{n}")));
    if is_shell && argv.get(1).map(String::as_str) == Some("-c") {
        argv.get(2).map(String::as_str)
    } else {
        None
    }
}

/// The `nasfleet` invocations in an argv: itself, or those of the script it
/// runs with `sh -c`.
fn invocations_in_argv(argv: &[String]) -> Vec<Vec<String>> {
    match shell_script(argv) {
        Some(script) => invocations_in_shell(script),
        None => invocation(argv).into_iter().collect(),
    }
}

fn invocations_in_shell(script: &str) -> Vec<Vec<String>> {
    shell_commands(script)
        .iter()
        .flat_map(|c| invocations_in_argv(c))
        .collect()
}

// ---------------------------------------------------------------------------
// systemd units
// ---------------------------------------------------------------------------

/// A unit file: (section, key) → values in order, lines joined at a
/// trailing backslash.
fn unit(text: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if pending.is_empty() && (t.is_empty() || t.starts_with('#') || t.starts_with(';')) {
            continue;
        }
        if let Some(rest) = t.strip_suffix('\\') {
            pending.push_str(rest);
            pending.push(' ');
            continue;
        }
        let full = format!("{pending}{t}");
        pending.clear();
        if full.starts_with('[') {
            section = full.trim_matches(['[', ']']).to_owned();
        } else if let Some((k, v)) = full.split_once('=') {
            out.entry((section.clone(), k.trim().to_owned()))
                .or_default()
                .push(v.trim().to_owned());
        }
    }
    out
}

fn unit_value<'a>(u: &'a BTreeMap<(String, String), Vec<String>>, section: &str, key: &str) -> Vec<&'a str> {
    u.get(&(section.to_owned(), key.to_owned()))
        .map(|v| v.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

/// A systemd time span in seconds ("60", "90s", "1min 30s", "2m").
fn seconds(span: &str) -> i64 {
    let mut total = 0;
    for part in span.split_whitespace() {
        let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        let unit = &part[digits.len()..];
        let n: i64 = digits.parse().unwrap_or_else(|_| panic!("time span {span:?}"));
        total += n * match unit {
            "" | "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" | "hr" => 3600,
            other => panic!("unit {other:?} in {span:?}"),
        };
    }
    total
}

const UNITS: [&str; 2] = [
    "deploy/systemd/nasfleet-worker@.service",
    "deploy/systemd/nasfleet-controller.service",
];

/// The Exec*= command lines of a unit file's text.
fn unit_exec_lines(text: &str) -> Vec<String> {
    unit(text)
        .into_iter()
        .filter(|((sec, k), _)| sec == "Service" && k.starts_with("Exec"))
        .flat_map(|(_, v)| v)
        .filter(|v| !v.is_empty())
        .collect()
}

// ---------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------

fn k8s_files() -> Vec<String> {
    yaml_files()
        .into_iter()
        .filter(|f| f.starts_with("deploy/k8s/"))
        .collect()
}

/// Every manifest document: (file, document).
fn k8s_docs() -> Vec<(String, Yaml)> {
    k8s_files()
        .into_iter()
        .flat_map(|f| yaml(&f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

fn kind(d: &Yaml) -> &str {
    s(&d["kind"])
}

fn name(d: &Yaml) -> &str {
    s(&d["metadata"]["name"])
}

fn pod_spec(d: &Yaml) -> Option<&Yaml> {
    matches!(kind(d), "Deployment" | "StatefulSet" | "Job" | "DaemonSet").then(|| &d["spec"]["template"]["spec"])
}

fn containers(pod: &Yaml) -> impl Iterator<Item = &Yaml> {
    list(&pod["initContainers"]).iter().chain(list(&pod["containers"]))
}

/// The Dockerfile's ENTRYPOINT and CMD (exec form).
fn docker_exec_form(instruction: &str) -> Vec<String> {
    let text = read("deploy/Dockerfile.worker");
    let line = text
        .lines()
        .rfind(|l| l.starts_with(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("no {instruction} in deploy/Dockerfile.worker"));
    let json = line[instruction.len()..].trim();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{instruction} must be in exec form: {json}: {e}"))
}

/// The argv a container runs: command + args, or (no command) the image's
/// ENTRYPOINT + args, for images built from deploy/Dockerfile.worker.
/// `$(VAR)` references are replaced by the variable's literal value.
fn container_argv(c: &Yaml) -> Vec<String> {
    let env: HashMap<&str, &str> = list(&c["env"])
        .iter()
        .filter_map(|e| e["value"].as_str().map(|v| (s(&e["name"]), v)))
        .collect();
    let expand = |w: &String| {
        let mut out = w.clone();
        for (k, v) in &env {
            out = out.replace(&format!("$({k})"), v);
        }
        out
    };
    let command = strings(&c["command"]);
    let args = strings(&c["args"]);
    let mut argv = if !command.is_empty() {
        command
    } else if s(&c["image"]).contains("nasfleet") {
        docker_exec_form("ENTRYPOINT")
    } else {
        Vec::new()
    };
    argv.extend(args);
    argv.iter().map(expand).collect()
}

// ---------------------------------------------------------------------------
// Where the command lines are
// ---------------------------------------------------------------------------

/// Every `nasfleet` command line in deploy/, with where it was found.
fn all_invocations() -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |place: String, invs: Vec<Vec<String>>| out.extend(invs.into_iter().map(|i| (place.clone(), i)));

    // systemd units, and those written by cloud-init (units and drop-ins).
    for u in UNITS {
        for line in unit_exec_lines(&read(u)) {
            add(format!("{u} Exec"), invocations_in_argv(&systemd_argv(&line)));
        }
    }

    // cloud-init: runcmd (lists are argv, strings are shell) and the files it
    // writes (systemd files: their Exec lines; scripts: shell).
    for f in yaml_files().into_iter().filter(|f| f.starts_with("deploy/cloud-init/")) {
        for doc in yaml(&f) {
            for (n, cmd) in list(&doc["runcmd"]).iter().enumerate() {
                let invs = match cmd {
                    Yaml::Array(_) => invocations_in_argv(&strings(cmd)),
                    _ => invocations_in_shell(s(cmd)),
                };
                add(format!("{f} runcmd[{n}]"), invs);
            }
            for wf in list(&doc["write_files"]) {
                let (path, content) = (s(&wf["path"]), s(&wf["content"]));
                if path.ends_with(".service") || (path.ends_with(".conf") && path.contains(".service.d/")) {
                    for line in unit_exec_lines(content) {
                        add(format!("{f} {path} Exec"), invocations_in_argv(&systemd_argv(&line)));
                    }
                } else if content.starts_with("#!") {
                    add(format!("{f} {path}"), invocations_in_shell(content));
                }
            }
        }
    }

    // Kubernetes containers.
    for (f, d) in k8s_docs() {
        if let Some(pod) = pod_spec(&d) {
            for c in containers(pod) {
                add(
                    format!("{f} {}/{}", name(&d), s(&c["name"])),
                    invocations_in_argv(&container_argv(c)),
                );
            }
        }
    }

    // The Dockerfile: ENTRYPOINT + CMD, and its RUN lines (exec or shell form).
    let mut entry = docker_exec_form("ENTRYPOINT");
    entry.extend(docker_exec_form("CMD"));
    add(
        "deploy/Dockerfile.worker ENTRYPOINT+CMD".into(),
        invocations_in_argv(&entry),
    );
    let docker = read("deploy/Dockerfile.worker").replace("\\\n", " ");
    for line in docker.lines().filter_map(|l| l.strip_prefix("RUN ")) {
        let invs = match serde_json::from_str::<Vec<String>>(line.trim()) {
            Ok(argv) => invocations_in_argv(&argv),
            Err(_) => invocations_in_shell(line),
        };
        add("deploy/Dockerfile.worker RUN".into(), invs);
    }

    // Shell scripts, and the README's shell blocks.
    for f in deploy_files().into_iter().filter(|f| f.ends_with(".sh")) {
        add(f.clone(), invocations_in_shell(&read(&f)));
    }
    // The README's code blocks: shell, and unit files (ini).
    let readme = read("deploy/README.md");
    let mut lang: Option<String> = None;
    let mut block = String::new();
    for line in readme.lines() {
        let t = line.trim_start();
        if let Some(info) = t.strip_prefix("```") {
            match lang.take() {
                Some(l) => {
                    match l.as_str() {
                        "sh" | "bash" => add("deploy/README.md".into(), invocations_in_shell(&block)),
                        "ini" => {
                            for e in unit_exec_lines(&block) {
                                add("deploy/README.md ini".into(), invocations_in_argv(&systemd_argv(&e)));
                            }
                        }
                        _ => {}
                    }
                    block.clear();
                }
                None => lang = Some(info.trim().to_owned()),
            }
            continue;
        }
        if lang.is_some() {
            block.push_str(line);
            block.push('\n');
        }
    }
    assert!(lang.is_none(), "deploy/README.md: a code block is not closed");
    out
}

// ---------------------------------------------------------------------------
// The binary's own description of its command line
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
struct Help {
    text: String,
    commands: BTreeSet<String>,
    /// Long flags → whether they take a value.
    flags: BTreeMap<String, bool>,
    shorts: BTreeMap<char, bool>,
    positional: bool,
}

/// The command without this process's NASFLEET_* variables (they would
/// stand in for flags, or show up in help texts).
fn without_nasfleet_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("NASFLEET_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// `nasfleet PATH... --help`, parsed (cached).
fn help(path: &[String]) -> Help {
    static CACHE: OnceLock<Mutex<HashMap<Vec<String>, Help>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(h) = cache.lock().unwrap().get(path) {
        return h.clone();
    }
    let out = without_nasfleet_env(Command::new(env!("CARGO_BIN_EXE_nasfleet")).args(path).arg("--help"))
        .output()
        .unwrap();
    assert!(out.status.success(), "nasfleet {} --help failed", path.join(" "));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut h = Help {
        text: text.clone(),
        ..Help::default()
    };
    let mut section = "";
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        if !line.starts_with(' ') {
            section = "";
            continue;
        }
        let t = line.trim_start();
        let indent = line.len() - t.len();
        match section {
            "Commands:" if indent == 2 => {
                if let Some(name) = t.split_whitespace().next() {
                    h.commands.insert(name.to_owned());
                }
            }
            "Arguments:" => h.positional = true,
            "Options:" if t.starts_with('-') && indent <= 6 => {
                let mut rest = t;
                let mut short = None;
                if let Some(r) = rest.strip_prefix('-').filter(|r| !r.starts_with('-')) {
                    short = r.chars().next();
                    rest = r[1..].trim_start_matches(',').trim_start();
                }
                let mut long = None;
                if let Some(r) = rest.strip_prefix("--") {
                    let n: String = r
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    rest = &r[n.len()..];
                    long = Some(n);
                }
                let takes_value = rest.starts_with(" <") || rest.starts_with("=<");
                if let Some(c) = short {
                    h.shorts.insert(c, takes_value);
                }
                if let Some(n) = long {
                    h.flags.insert(n, takes_value);
                }
            }
            _ => {}
        }
    }
    cache.lock().unwrap().insert(path.to_vec(), h.clone());
    h
}

/// Checks one command line against the binary's help: every subcommand and
/// flag exists (positional arguments only where the subcommand takes them).
/// Returns the subcommand path.
fn check_against_help(argv: &[String]) -> Result<Vec<String>, String> {
    let mut path: Vec<String> = Vec::new();
    let mut i = 1;
    loop {
        let h = help(&path);
        match argv.get(i) {
            Some(w) if !w.starts_with('-') && h.commands.contains(w) => {
                path.push(w.clone());
                i += 1;
            }
            Some(w) if !w.starts_with('-') && !h.commands.is_empty() => {
                return Err(format!("`nasfleet {}` has no subcommand {w:?}", path.join(" ")));
            }
            _ => break,
        }
    }
    let h = help(&path);
    if !h.commands.is_empty()
        && !argv[i..]
            .iter()
            .any(|w| w == "--help" || w == "-h" || w == "--version" || w == "-V")
    {
        return Err(format!("`nasfleet {}` needs a subcommand", path.join(" ")));
    }
    while let Some(w) = argv.get(i) {
        if let Some(long) = w.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            match h.flags.get(name) {
                None => return Err(format!("`nasfleet {}` has no flag --{name}", path.join(" "))),
                Some(true) if !inline => i += 1,
                _ => {}
            }
        } else if let Some(shorts) = w.strip_prefix('-').filter(|r| !r.is_empty()) {
            for c in shorts.chars() {
                if !h.shorts.contains_key(&c) {
                    return Err(format!("`nasfleet {}` has no flag -{c}", path.join(" ")));
                }
            }
        } else if !h.positional {
            return Err(format!("`nasfleet {}` takes no argument {w:?}", path.join(" ")));
        }
        i += 1;
    }
    Ok(path)
}

/// Runs the command line itself with `--help` appended: the binary's own
/// parser checks subcommands, flags and the values given to them (numbers,
/// durations, ...) up to the `--help`, then prints help and exits 0.
fn check_with_parser(argv: &[String]) -> Result<(), String> {
    let out = without_nasfleet_env(
        Command::new(env!("CARGO_BIN_EXE_nasfleet"))
            .args(&argv[1..])
            .arg("--help"),
    )
    .output()
    .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn deploy_has_every_piece() {
    let files = deploy_files();
    for f in [
        "deploy/README.md",
        "deploy/Dockerfile.worker",
        "deploy/build-nasfleet.sh",
        "deploy/systemd/nasfleet-worker@.service",
        "deploy/systemd/nasfleet-controller.service",
        "deploy/cloud-init/worker.yaml",
        "deploy/k8s/redis.yaml",
        "deploy/k8s/controller.yaml",
        "deploy/k8s/worker.yaml",
        "deploy/k8s/secret.example.yaml",
    ] {
        assert!(files.iter().any(|x| x == f), "{f} is missing (have {files:?})");
    }
    let readme = read("deploy/README.md");
    assert!(
        readme.contains("What was checked here and what was not"),
        "README: the honest section"
    );
}

#[test]
fn every_yaml_file_parses() {
    let files = yaml_files();
    assert!(files.len() >= 5, "{files:?}");
    for f in &files {
        let docs = yaml(f);
        assert!(!docs.is_empty(), "{f}: no document");
        for (n, d) in docs.iter().enumerate() {
            assert!(d.as_hash().is_some(), "{f} document {n}: not a mapping");
        }
    }
    assert!(
        read("deploy/cloud-init/worker.yaml").starts_with("#cloud-config\n"),
        "cloud-init needs its header"
    );
    for (f, d) in k8s_docs() {
        assert!(
            !s(&d["apiVersion"]).is_empty() && !kind(&d).is_empty() && !name(&d).is_empty(),
            "{f}: {d:?}"
        );
    }
}

#[test]
fn kubernetes_manifests_have_what_a_fleet_needs() {
    let docs = k8s_docs();
    let kinds_in = |file: &str| -> BTreeSet<String> {
        docs.iter()
            .filter(|(f, _)| f == file)
            .map(|(_, d)| kind(d).to_owned())
            .collect()
    };
    for (file, want) in [
        ("deploy/k8s/redis.yaml", &["StatefulSet", "Service"][..]),
        ("deploy/k8s/controller.yaml", &["Job", "PersistentVolumeClaim"][..]),
        ("deploy/k8s/worker.yaml", &["Deployment"][..]),
        ("deploy/k8s/secret.example.yaml", &["Secret"][..]),
    ] {
        let have = kinds_in(file);
        for k in want {
            assert!(have.contains(*k), "{file} has no {k} (has {have:?})");
        }
    }
    let find = |k: &str, n: &str| docs.iter().map(|(_, d)| d).find(|d| kind(d) == k && name(d) == n);
    let one = |k: &str| -> &Yaml {
        let all: Vec<&Yaml> = docs.iter().map(|(_, d)| d).filter(|d| kind(d) == k).collect();
        assert_eq!(all.len(), 1, "one {k}");
        all[0]
    };

    // Grace periods above the worker's stop grace (and the controller's
    // checkpoint), for every pod that runs nasfleet.
    for d in [one("Deployment"), one("Job")] {
        let pod = pod_spec(d).unwrap();
        let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
        assert!(
            grace > STOP_GRACE_S,
            "{}: terminationGracePeriodSeconds {grace} <= {STOP_GRACE_S}",
            name(d)
        );
    }

    // Workers: one GPU each, spot nodes, the worker image's entrypoint.
    let worker = one("Deployment");
    let pod = pod_spec(worker).unwrap();
    for c in list(&pod["containers"]) {
        let gpus = &c["resources"]["limits"]["nvidia.com/gpu"];
        assert!(
            gpus.as_i64() == Some(1) || s(gpus) == "1",
            "worker container {}: nvidia.com/gpu limit 1",
            s(&c["name"])
        );
    }
    let placement = format!("{:?}{:?}", pod["nodeSelector"], pod["affinity"]);
    assert!(
        placement.to_lowercase().contains("spot"),
        "workers go to spot nodes: {placement}"
    );
    let tolerations = format!("{:?}", pod["tolerations"]);
    assert!(
        tolerations.contains("spot") && tolerations.contains("nvidia.com/gpu"),
        "{tolerations}"
    );

    // The controller: a Job that retries on failure, its run directory on a claim.
    let job = one("Job");
    let jpod = pod_spec(job).unwrap();
    assert!(
        matches!(s(&jpod["restartPolicy"]), "Never" | "OnFailure"),
        "{:?}",
        jpod["restartPolicy"]
    );
    let controller = list(&jpod["containers"])
        .iter()
        .find(|c| s(&c["name"]) == "controller")
        .unwrap();
    let run_mount = list(&controller["volumeMounts"])
        .iter()
        .find(|m| s(&m["mountPath"]) == "/var/lib/nasfleet/runs");
    let run_mount = run_mount.expect("the controller mounts its run directory at /var/lib/nasfleet/runs");
    let vol = list(&jpod["volumes"])
        .iter()
        .find(|v| s(&v["name"]) == s(&run_mount["name"]))
        .unwrap();
    assert!(
        !s(&vol["persistentVolumeClaim"]["claimName"]).is_empty(),
        "the run directory is on a claim"
    );
    let script = container_argv(controller).join(" ");
    assert!(
        script.contains("--resume") && script.contains("checkpoint.json"),
        "start-or-resume: {script}"
    );

    // Redis: append-only file fsynced always, on a claim, the ACL from a Secret, a Service.
    let redis = one("StatefulSet");
    let rpod = pod_spec(redis).unwrap();
    let rc = &list(&rpod["containers"])[0];
    let mut args = strings(&rc["command"]);
    args.extend(strings(&rc["args"]));
    let has_pair = |k: &str, v: &str| args.windows(2).any(|w| w[0] == k && w[1] == v);
    assert!(
        has_pair("--appendonly", "yes") && has_pair("--appendfsync", "always"),
        "{args:?}"
    );
    assert!(has_pair("--maxmemory-policy", "noeviction"), "{args:?}");
    let aclfile = args
        .windows(2)
        .find(|w| w[0] == "--aclfile")
        .map(|w| w[1].clone())
        .expect("--aclfile");
    let acl_mount = list(&rc["volumeMounts"])
        .iter()
        .find(|m| aclfile.starts_with(&format!("{}/", s(&m["mountPath"]))))
        .expect("the ACL file is on a mounted volume");
    let acl_vol = list(&rpod["volumes"])
        .iter()
        .find(|v| s(&v["name"]) == s(&acl_mount["name"]))
        .unwrap();
    let acl_secret = find("Secret", s(&acl_vol["secret"]["secretName"])).expect("the ACL volume is a Secret");
    let key = Path::new(&aclfile).file_name().unwrap().to_str().unwrap();
    assert!(
        !s(&acl_secret["stringData"][key]).is_empty(),
        "Secret {} has no {key}",
        name(acl_secret)
    );
    let data_mount = list(&rc["volumeMounts"]).iter().find(|m| {
        let dir = args
            .windows(2)
            .find(|w| w[0] == "--dir")
            .map(|w| w[1].clone())
            .unwrap_or_default();
        s(&m["mountPath"]) == dir
    });
    let data_mount = data_mount.expect("Redis's --dir is a mounted volume");
    let claims: Vec<&str> = list(&redis["spec"]["volumeClaimTemplates"]).iter().map(name).collect();
    assert!(
        claims.contains(&s(&data_mount["name"])),
        "Redis's data is on a claim: {claims:?}"
    );
    let svc = one("Service");
    assert_eq!(s(&redis["spec"]["serviceName"]), name(svc));
    let labels = &redis["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_hash().expect("Service selector") {
        assert_eq!(&labels[s(k)], v, "the Service selects the Redis pods");
    }
    let port = list(&svc["spec"]["ports"])[0]["port"].as_i64().unwrap();

    // References: mounts, claims, Secrets and their keys all exist.
    let pvcs: BTreeSet<&str> = docs
        .iter()
        .filter(|(_, d)| kind(d) == "PersistentVolumeClaim")
        .map(|(_, d)| name(d))
        .collect();
    for (f, d) in &docs {
        let Some(pod) = pod_spec(d) else { continue };
        let mut volumes: BTreeSet<&str> = list(&pod["volumes"]).iter().map(|v| s(&v["name"])).collect();
        volumes.extend(list(&d["spec"]["volumeClaimTemplates"]).iter().map(name));
        for v in list(&pod["volumes"]) {
            let claim = s(&v["persistentVolumeClaim"]["claimName"]);
            assert!(
                claim.is_empty() || pvcs.contains(claim),
                "{f}: claim {claim} is defined nowhere ({pvcs:?})"
            );
            let secret = s(&v["secret"]["secretName"]);
            assert!(
                secret.is_empty() || find("Secret", secret).is_some(),
                "{f}: Secret {secret} is defined nowhere"
            );
        }
        for c in containers(pod) {
            for m in list(&c["volumeMounts"]) {
                assert!(
                    volumes.contains(s(&m["name"])),
                    "{f}: {} mounts unknown volume {}",
                    s(&c["name"]),
                    s(&m["name"])
                );
            }
            for e in list(&c["env"]) {
                let r = &e["valueFrom"]["secretKeyRef"];
                if !r.is_badvalue() {
                    let secret =
                        find("Secret", s(&r["name"])).unwrap_or_else(|| panic!("{f}: no Secret {:?}", r["name"]));
                    assert!(
                        !s(&secret["stringData"][s(&r["key"])]).is_empty(),
                        "{f}: Secret {} has no key {:?}",
                        name(secret),
                        r["key"]
                    );
                }
                assert!(
                    e["value"].is_badvalue() || e["value"].as_str().is_some(),
                    "{f}: env values are strings: {e:?}"
                );
            }
            for a in list(&c["command"]).iter().chain(list(&c["args"])) {
                assert!(a.as_str().is_some(), "{f}: command/args are strings: {a:?}");
            }
            assert!(!s(&c["image"]).is_empty(), "{f}: {} has no image", s(&c["name"]));
        }
        for (k, v) in pod["nodeSelector"].as_hash().into_iter().flatten() {
            assert!(v.as_str().is_some(), "{f}: nodeSelector {k:?} must be a string");
        }
    }
    // YAML 1.1 (Kubernetes) reads unquoted yes/no/on/off as booleans.
    for f in k8s_files() {
        for (n, line) in read(&f)
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with('#'))
        {
            let v = line.trim().trim_start_matches("- ").trim();
            let v = v.rsplit_once(": ").map_or(v, |(_, v)| v);
            assert!(
                !["yes", "no", "on", "off", "y", "n"].contains(&v.to_lowercase().as_str()),
                "{f}:{}: quote {v:?}",
                n + 1
            );
        }
    }

    // Every nasfleet URL points at the Service, and nothing holds a real password.
    let mut urls = 0;
    for (_, d) in docs.iter().filter(|(_, d)| kind(d) == "Secret") {
        for (k, v) in d["stringData"].as_hash().expect("Secrets use stringData") {
            let v = s(v);
            if let Some(rest) = v.strip_prefix("redis://").or_else(|| v.strip_prefix("rediss://")) {
                urls += 1;
                let (cred, host) = rest.split_once('@').expect("URL with a user");
                let password = cred.split_once(':').map(|(_, p)| p).unwrap_or("");
                assert!(
                    password.starts_with("CHANGE-ME"),
                    "{}/{}: a placeholder password, not {password:?}",
                    name(d),
                    s(k)
                );
                assert!(
                    host.starts_with(&format!("{}:{port}/", name(svc))),
                    "{}: {host}",
                    name(d)
                );
            }
            for word in v.split_whitespace().filter(|w| w.starts_with('>')) {
                assert!(
                    word.starts_with(">CHANGE-ME"),
                    "{}: a placeholder password, not {word:?}",
                    name(d)
                );
            }
        }
    }
    assert!(urls >= 2, "URLs for workers and the controller");
}

#[test]
fn the_example_secret_has_the_example_acl_rules() {
    let example = read("crates/nasfleet-queue/redis/users.acl.example");
    let secret = k8s_docs()
        .into_iter()
        .find(|(_, d)| kind(d) == "Secret" && d["stringData"]["users.acl"].as_str().is_some())
        .expect("a Secret with users.acl")
        .1;
    let rules = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.split_whitespace()
                    .filter(|w| !w.starts_with('>') && !w.starts_with('#'))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    assert_eq!(
        rules(s(&secret["stringData"]["users.acl"])),
        rules(&example),
        "deploy/k8s/secret.example.yaml's users.acl must be users.acl.example with other passwords"
    );
}

#[test]
fn nasfleet_command_lines_use_only_real_subcommands_and_flags() {
    let all = all_invocations();
    for place in [
        "deploy/systemd/nasfleet-worker@.service",
        "deploy/systemd/nasfleet-controller.service",
        "deploy/cloud-init/worker.yaml runcmd",
        "deploy/cloud-init/worker.yaml /usr/local/sbin/nasfleet-install",
        "deploy/cloud-init/worker.yaml /etc/systemd/system/nasfleet-worker@.service.d/",
        "deploy/k8s/controller.yaml",
        "deploy/k8s/worker.yaml",
        "deploy/Dockerfile.worker ENTRYPOINT+CMD",
        "deploy/README.md",
    ] {
        assert!(
            all.iter().any(|(p, _)| p.starts_with(place)),
            "no nasfleet command line found in {place}: {all:#?}"
        );
    }
    let mut failures = Vec::new();
    let mut workers = 0;
    for (place, argv) in &all {
        if argv.get(1).map(String::as_str) == Some("worker") {
            workers += 1;
        }
        match check_against_help(argv) {
            Ok(_) => {
                // Configs named by path inside the image are the repository's.
                for w in argv.windows(2).filter(|w| w[0] == "--config") {
                    if let Some(rel) = w[1].strip_prefix("/opt/nasfleet/config/") {
                        if !repo().join("config").join(rel).is_file() {
                            failures.push(format!("{place}: {} is not in config/", w[1]));
                        }
                    }
                }
            }
            Err(e) => failures.push(format!("{place}: {e}\n    {}", argv.join(" "))),
        }
        if let Err(e) = check_with_parser(argv) {
            failures.push(format!(
                "{place}: the binary refuses it: {}\n    {}",
                e.trim(),
                argv.join(" ")
            ));
        }
    }
    assert!(workers >= 5, "worker command lines: {all:#?}");
    assert!(
        failures.is_empty(),
        "{} bad command line(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("checked {} nasfleet command lines in deploy/", all.len());
}

#[test]
fn workers_get_only_the_queue_run_device_and_paths() {
    // The run-wide settings come from the run; a worker that set them would
    // be refused when they disagree.
    let run_wide = [
        "--lease",
        "--heartbeat",
        "--max-deliveries",
        "--max-payload-bytes",
        "--max-params",
        "--max-flops",
    ];
    for (place, argv) in all_invocations() {
        if argv.get(1).map(String::as_str) != Some("worker") {
            continue;
        }
        for w in &argv {
            let flag = w.split('=').next().unwrap();
            assert!(
                !run_wide.contains(&flag),
                "{place}: {flag} is the run's to set: {argv:?}"
            );
        }
        assert!(
            argv.iter().any(|w| w.starts_with("--device")),
            "{place}: a worker names its device: {argv:?}"
        );
    }
    // Environment variables named NASFLEET_* anywhere in deploy/ are ones the
    // binary reads (its help lists them; NASFLEET_CACHE is nasfleet-util's
    // cache directory).
    let mut known: BTreeSet<String> = ["NASFLEET_CACHE".to_owned()].into();
    for path in [&["worker"][..], &["controller", "start"], &["controller", "status"]] {
        let h = help(&path.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        for part in h.text.split("[env: ").skip(1) {
            known.insert(part.split('=').next().unwrap().to_owned());
        }
    }
    assert!(
        known.contains("NASFLEET_REDIS") && known.contains("NASFLEET_RUN"),
        "{known:?}"
    );
    for f in deploy_files() {
        let text = read(&f);
        for (at, _) in text.match_indices("NASFLEET_") {
            let var: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // "NASFLEET_*" in prose names them all.
            assert!(
                var == "NASFLEET_" || known.contains(&var),
                "{f}: {var} is not read by nasfleet (known: {known:?})"
            );
        }
    }
}

#[test]
fn systemd_units_stop_gently_and_restart_only_on_failure() {
    for u in UNITS {
        let unit = unit(&read(u));
        let one = |k: &str| -> String {
            let v = unit_value(&unit, "Service", k);
            assert!(!v.is_empty(), "{u}: no {k}=");
            v.last().unwrap().to_string()
        };
        assert_eq!(one("KillSignal"), "SIGTERM", "{u}");
        assert!(
            seconds(&one("TimeoutStopSec")) > STOP_GRACE_S,
            "{u}: TimeoutStopSec must exceed the stop grace"
        );
        assert_eq!(
            one("Restart"),
            "on-failure",
            "{u}: a worker or controller that exits 0 is done"
        );
        assert!(
            unit_value(&unit, "Service", "EnvironmentFile").contains(&"/etc/nasfleet/nasfleet.env"),
            "{u}"
        );
        let user = one("User");
        assert!(user != "root" && !user.is_empty(), "{u}: a dedicated user");
        assert_eq!(one("NoNewPrivileges"), "yes", "{u}");
        assert!(!unit_value(&unit, "Install", "WantedBy").is_empty(), "{u}: enable-able");
    }
    let worker = unit(&read(UNITS[0]));
    // GPU access: nothing that hides /dev/nvidia* or forbids JIT pages.
    for (k, bad) in [
        ("PrivateDevices", "yes"),
        ("DevicePolicy", "closed"),
        ("DevicePolicy", "strict"),
        ("ProtectClock", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("ProcSubset", "pid"),
    ] {
        assert!(
            !unit_value(&worker, "Service", k).contains(&bad),
            "the worker unit must not set {k}={bad}"
        );
    }
    assert!(
        unit_value(&worker, "Service", "DeviceAllow").is_empty(),
        "DeviceAllow= closes the device policy"
    );
    let exec = unit_value(&worker, "Service", "ExecStart").join(" ");
    assert!(exec.contains("--device cuda:%i"), "one instance per GPU: {exec}");
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Some(tool) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("SKIPPED systemd_units_pass_systemd_analyze_verify: systemd-analyze is not installed");
        return;
    };
    // `verify` checks that each Exec program exists and is executable. The
    // units name /usr/local/bin/nasfleet, where the binary is installed on a
    // real host but not here, so the copies verified here name the binary
    // cargo built instead; everything else is verified as written. The worker
    // template is verified as instance 0, with cloud-init's AWS drop-in.
    let dir = TempDir::new("nasfleet-deploy-units").unwrap();
    let bin = env!("CARGO_BIN_EXE_nasfleet");
    let mut paths = Vec::new();
    for (src, dst) in [
        (UNITS[0], "nasfleet-worker@0.service"),
        (UNITS[1], "nasfleet-controller.service"),
    ] {
        let text = read(src).replace("/usr/local/bin/nasfleet", bin);
        let p = dir.path().join(dst);
        std::fs::write(&p, text).unwrap();
        paths.push(p);
    }
    let cloud = yaml("deploy/cloud-init/worker.yaml");
    let dropins = list(&cloud[0]["write_files"])
        .iter()
        .filter(|w| s(&w["path"]).contains(".service.d/"));
    for d in dropins {
        let name = Path::new(s(&d["path"])).file_name().unwrap();
        let ddir = dir.path().join("nasfleet-worker@0.service.d");
        std::fs::create_dir_all(&ddir).unwrap();
        std::fs::write(
            ddir.join(name),
            s(&d["content"]).replace("/usr/local/bin/nasfleet", bin),
        )
        .unwrap();
    }
    let out = Command::new(tool)
        .arg("verify")
        .arg("--man=no")
        .args(&paths)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "systemd-analyze verify failed:\n{stdout}{stderr}");
    let complaints: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.contains("nasfleet"))
        .collect();
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify complains:\n{}",
        complaints.join("\n")
    );
}

#[test]
fn cloud_init_installs_the_shipped_unit_and_starts_gpu_0() {
    let docs = yaml("deploy/cloud-init/worker.yaml");
    assert_eq!(docs.len(), 1);
    let doc = &docs[0];
    let files = list(&doc["write_files"]);
    let file = |path: &str| -> &str {
        let f = files
            .iter()
            .find(|w| s(&w["path"]) == path)
            .unwrap_or_else(|| panic!("cloud-init writes no {path}"));
        s(&f["content"])
    };
    assert_eq!(
        file("/etc/systemd/system/nasfleet-worker@.service"),
        read("deploy/systemd/nasfleet-worker@.service"),
        "cloud-init must write deploy/systemd/nasfleet-worker@.service verbatim"
    );
    let env = file("/etc/nasfleet/nasfleet.env");
    assert!(
        env.contains("NASFLEET_REDIS=redis") && env.contains("NASFLEET_RUN="),
        "{env}"
    );
    let env_file = files
        .iter()
        .find(|w| s(&w["path"]) == "/etc/nasfleet/nasfleet.env")
        .unwrap();
    assert_eq!(s(&env_file["permissions"]), "0600", "the env file holds a password");
    // The same torch as scripts/setup.sh's venv, in a venv.
    let setup = read("scripts/setup.sh");
    let version = setup
        .lines()
        .find_map(|l| l.strip_prefix("TORCH_VERSION="))
        .expect("TORCH_VERSION in setup.sh");
    let install = file("/usr/local/sbin/nasfleet-install");
    assert!(
        install.contains(&format!("TORCH_VERSION={version}")) && install.contains("torch==$TORCH_VERSION"),
        "{install}"
    );
    assert!(install.contains("-m venv"), "a venv");
    assert!(
        read("deploy/Dockerfile.worker").contains(&format!("TORCH_VERSION={version}")),
        "the Dockerfile's torch"
    );
    let runcmd: Vec<String> = list(&doc["runcmd"])
        .iter()
        .map(|c| strings(c).join(" ") + s(c))
        .collect();
    assert!(
        runcmd.iter().any(|c| c.contains("enable --now nasfleet-worker@0")),
        "{runcmd:?}"
    );
    let dropin = file("/etc/systemd/system/nasfleet-worker@.service.d/10-aws-spot.conf");
    assert!(dropin.contains("--preemption-notice aws"), "{dropin}");
}

#[test]
fn dockerfile_builds_from_the_setup_torch_and_runs_the_worker() {
    let text = read("deploy/Dockerfile.worker");
    assert!(text.contains("LIBTORCH_USE_PYTORCH=1"), "libtorch from the torch wheel");
    assert!(text.contains("deploy/build-nasfleet.sh"), "the CUDA-linked build");
    assert!(text.contains("COPY --from=build"), "a builder stage");
    assert_eq!(docker_exec_form("ENTRYPOINT")[1..], ["worker"]);
    assert!(docker_exec_form("ENTRYPOINT")[0].ends_with("/nasfleet"));
    // What the image copies from the repository exists.
    for line in text.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        let src = line.split_whitespace().nth(1).unwrap();
        assert!(repo().join(src).exists(), "COPY {src}: not in the repository");
    }
    let ignore = read("deploy/Dockerfile.worker.dockerignore");
    assert!(
        ignore.lines().any(|l| l == "target"),
        "keep target/ out of the build context"
    );
    let build = read("deploy/build-nasfleet.sh");
    assert!(
        build.contains("--no-as-needed") && build.contains("-ltorch_cuda"),
        "{build}"
    );
}

/// A stand-in for /usr/local/bin/nasfleet that records its arguments, and
/// either exits at once or waits for SIGTERM (then exits 0, as the
/// controller does after writing its checkpoint).
fn stub(dir: &Path) -> PathBuf {
    let p = dir.join("nasfleet-stub");
    std::fs::write(
        &p,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$STUB_ARGS\"\nif [ \"${STUB_WAIT:-0}\" = 1 ]; then\n  trap 'echo term >> \"$STUB_ARGS.signals\"; exit 0' TERM\n  touch \"$STUB_ARGS.ready\"\n  while :; do sleep 0.05; done\nfi\nexit 0\n",
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&p).status().unwrap();
    p
}

/// Runs a start-or-resume script with the stub for the binary and `root`
/// for /var/lib/nasfleet, sending it SIGTERM once the stub runs if `term`;
/// returns (exit code, the stub's arguments, whether the stub got SIGTERM).
fn run_script(script: &str, root: &Path, stub: &Path, term: bool) -> (i32, Vec<String>, bool) {
    let script = script
        .replace("/usr/local/bin/nasfleet", stub.to_str().unwrap())
        .replace("/var/lib/nasfleet", root.to_str().unwrap());
    let args_file = root.join("stub-args");
    let ready = root.join("stub-args.ready");
    let signals = root.join("stub-args.signals");
    for f in [&args_file, &ready, &signals] {
        let _ = std::fs::remove_file(f);
    }
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .env("NASFLEET_RUN", "r1")
        .env("STUB_ARGS", &args_file)
        .env("STUB_WAIT", if term { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if term {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the stub never started");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("kill -TERM {}", child.id()))
            .status()
            .unwrap();
    }
    let status = child.wait().unwrap();
    let args = std::fs::read_to_string(&args_file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    (status.code().unwrap_or(-1), args, signals.exists())
}

#[test]
fn controller_scripts_start_once_then_resume() {
    let jobs = k8s_docs();
    let job = jobs.iter().map(|(_, d)| d).find(|d| kind(d) == "Job").unwrap();
    let c = list(&pod_spec(job).unwrap()["containers"])
        .iter()
        .find(|c| s(&c["name"]) == "controller")
        .unwrap();
    let k8s = container_argv(c);
    let k8s_script = shell_script(&k8s).expect("the Job runs a shell script").to_owned();
    let unit_exec = unit_value(&unit(&read(UNITS[1])), "Service", "ExecStart").join(" ");
    let systemd_script = shell_script(&systemd_argv(&unit_exec))
        .expect("the unit runs a shell script")
        .to_owned();

    for (what, script) in [("k8s", &k8s_script), ("systemd", &systemd_script)] {
        let dir = TempDir::new("nasfleet-deploy-script").unwrap();
        let stub = stub(dir.path());
        let run_dir = dir.path().join("runs/r1");
        // No checkpoint: a new run, from the configured config, no --resume.
        let (code, args, _) = run_script(script, dir.path(), &stub, false);
        assert_eq!(code, 0, "{what}");
        assert!(
            args.starts_with(&["controller".into(), "start".into()]) && !args.contains(&"--resume".into()),
            "{what}: {args:?}"
        );
        let run_dir_arg = args
            .windows(2)
            .find(|w| w[0] == "--run-dir")
            .map(|w| PathBuf::from(&w[1]));
        assert_eq!(run_dir_arg.as_deref(), Some(run_dir.as_path()), "{what}: {args:?}");
        // With a checkpoint: --resume, from the run's own config.
        std::fs::create_dir_all(&run_dir).unwrap();
        std::fs::write(run_dir.join("checkpoint.json"), "{}").unwrap();
        let (code, args, _) = run_script(script, dir.path(), &stub, false);
        assert_eq!(code, 0, "{what}");
        assert!(args.contains(&"--resume".into()), "{what}: {args:?}");
        let config = args
            .windows(2)
            .find(|w| w[0] == "--config")
            .map(|w| PathBuf::from(&w[1]));
        assert_eq!(
            config,
            Some(run_dir.join("config.toml")),
            "{what}: resume from the run's own config"
        );
        if what == "k8s" {
            // SIGTERM: passed on; the pod fails so that the Job resumes.
            let (code, _, got_term) = run_script(script, dir.path(), &stub, true);
            assert!(got_term, "the script passes SIGTERM on to the controller");
            assert_eq!(
                code, 143,
                "a Job's controller stopped by SIGTERM must not complete the Job"
            );
        }
    }
}

#[test]
fn redis_from_the_manifest_serves_the_nasfleet_users() {
    if Command::new("redis-server").arg("--version").output().is_err() {
        eprintln!("SKIPPED redis_from_the_manifest_serves_the_nasfleet_users: redis-server is not installed (scripts/test.sh installs it)");
        return;
    }
    let docs = k8s_docs();
    let redis = docs.iter().map(|(_, d)| d).find(|d| kind(d) == "StatefulSet").unwrap();
    let rc = &list(&pod_spec(redis).unwrap()["containers"])[0];
    let mut args = strings(&rc["command"]);
    args.extend(strings(&rc["args"]));
    // The manifest's arguments, less what belongs to the pod (its port, its
    // directory, where the Secret is mounted): the test server listens on a
    // free loopback port in a directory of its own, with the Secret's ACL.
    let mut extra = Vec::new();
    let mut i = usize::from(args.first().map(String::as_str) == Some("redis-server"));
    while i < args.len() {
        if ["--port", "--dir", "--aclfile", "--bind"].contains(&args[i].as_str()) {
            i += 2;
            continue;
        }
        extra.push(args[i].clone());
        i += 1;
    }
    let acl_text = docs
        .iter()
        .find_map(|(_, d)| d["stringData"]["users.acl"].as_str().map(str::to_owned))
        .expect("the ACL Secret");
    let tmp = TempDir::new("nasfleet-deploy-acl").unwrap();
    let acl = tmp.path().join("users.acl");
    std::fs::write(&acl, &acl_text).unwrap();
    let server = RedisServer::start_with(RedisServerOptions {
        aclfile: Some(acl),
        extra_args: extra,
        ..Default::default()
    })
    .expect("redis-server with the manifest's arguments");
    let password = |user: &str| -> String {
        let line = acl_text
            .lines()
            .find(|l| l.starts_with(&format!("user {user} ")))
            .unwrap();
        line.split_whitespace()
            .find_map(|w| w.strip_prefix('>'))
            .unwrap()
            .to_owned()
    };
    let status = |user: &str| {
        Command::new(env!("CARGO_BIN_EXE_nasfleet"))
            .args(["controller", "status", "--run", "deploy-check", "--redis"])
            .arg(server.url_for(user, &password(user)))
            .output()
            .unwrap()
    };
    // The controller Job's init container: admin loads the function library...
    let out = status("admin");
    assert!(out.status.success(), "admin: {}", String::from_utf8_lossy(&out.stderr));
    // ... then the least-privilege users work.
    for user in ["viewer", "controller"] {
        let out = status(user);
        assert!(out.status.success(), "{user}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Without a password nothing gets in (the default user is off).
    let out = Command::new(env!("CARGO_BIN_EXE_nasfleet"))
        .args([
            "controller",
            "status",
            "--run",
            "deploy-check",
            "--redis",
            &server.url(),
        ])
        .env("NASFLEET_RETRY_FOR", "1s")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the default user must be off");
    // The append-only file is on.
    let aof = server.dir().join("appendonlydir");
    assert!(aof.is_dir(), "no append-only file in {}", server.dir().display());
}

#[test]
fn the_command_line_checks_catch_mistakes() {
    let argv = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    // The extraction: wrappers, scripts, here-documents, redirections.
    let found = invocations_in_shell(
        "set -eu\nrunuser -u nasfleet -- /usr/local/bin/nasfleet data fetch fashion-mnist --dir /d # fetch\n\
         cat >/usr/local/bin/nasfleet <<EOF\nexec /opt/nasfleet/bin/nasfleet \"$@\"\nEOF\n\
         useradd --system nasfleet; X=1 exec nasfleet worker --device \"cuda:$GPU\" 2>&1 | tee log\n\
         if [ -f x ]; then sh -c 'nasfleet controller status --json' & fi\n",
    );
    assert_eq!(
        found,
        vec![
            argv("/usr/local/bin/nasfleet data fetch fashion-mnist --dir /d"),
            argv("nasfleet worker --device cuda:$GPU"),
            argv("nasfleet controller status --json"),
        ]
    );
    assert_eq!(
        systemd_argv("-+/usr/bin/x -c=%i 'a b' $${V}"),
        ["/usr/bin/x", "-c=0", "a b", "${V}"]
    );
    // The checks: what the binary does not have is refused, by both.
    for bad in [
        "nasfleet worker --device cuda:0 --no-such-flag",
        "nasfleet controller begin --config c.toml",
        "nasfleet controller",
        "nasfleet worker --device cuda:0 extra",
    ] {
        assert!(check_against_help(&argv(bad)).is_err(), "{bad}");
    }
    assert!(
        check_with_parser(&argv("nasfleet worker --max-children many")).is_err(),
        "values are checked"
    );
    assert!(
        check_with_parser(&argv("nasfleet worker --stop-grace 10x")).is_err(),
        "values are checked"
    );
    let good = argv("nasfleet worker --device cuda:0 --data-dir /d --stop-grace=10s -v");
    assert_eq!(check_against_help(&good), Ok(vec!["worker".to_owned()]));
    assert!(check_with_parser(&good).is_ok());
    assert_eq!(seconds("1min 30s"), 90);
}

/// A tool on PATH, or None (and the test says it was skipped, and why).
fn tool(name: &str, test: &str, why: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()))
        .unwrap_or_default();
    if found.is_none() {
        eprintln!("SKIPPED {test}: {name} is not installed ({why})");
    }
    found
}

#[test]
fn cloud_init_passes_cloud_inits_own_schema_check() {
    let Some(ci) = tool(
        "cloud-init",
        "cloud_init_passes_cloud_inits_own_schema_check",
        "Debian: apt-get install cloud-init",
    ) else {
        return;
    };
    let out = Command::new(ci)
        .args(["schema", "--config-file"])
        .arg(repo().join("deploy/cloud-init/worker.yaml"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("Valid cloud-config"), "{text}");
}

#[test]
fn manifests_pass_kubernetes_schema_validation() {
    let Some(kv) = tool(
        "kubernetes-validate",
        "manifests_pass_kubernetes_schema_validation",
        "PyPI: pip install kubernetes-validate; it bundles the API schemas and needs no cluster",
    ) else {
        return;
    };
    let out = Command::new(kv)
        .args(["--strict", "--quiet"])
        .args(k8s_files().iter().map(|f| repo().join(f)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shell_scripts_pass_shellcheck() {
    let Some(sc) = tool(
        "shellcheck",
        "shell_scripts_pass_shellcheck",
        "Debian: apt-get install shellcheck",
    ) else {
        return;
    };
    let dir = TempDir::new("nasfleet-deploy-shellcheck").unwrap();
    let mut scripts: Vec<(String, String)> =
        vec![("deploy/build-nasfleet.sh".into(), read("deploy/build-nasfleet.sh"))];
    for wf in list(&yaml("deploy/cloud-init/worker.yaml")[0]["write_files"]) {
        if s(&wf["content"]).starts_with("#!") {
            scripts.push((s(&wf["path"]).into(), s(&wf["content"]).into()));
        }
    }
    let job = k8s_docs().into_iter().find(|(_, d)| kind(d) == "Job").unwrap().1;
    for c in containers(pod_spec(&job).unwrap()) {
        if let Some(script) = shell_script(&container_argv(c)) {
            scripts.push((
                format!("Job container {}", s(&c["name"])),
                format!("#!/bin/sh\n{script}"),
            ));
        }
    }
    for line in unit_exec_lines(&read(UNITS[1])) {
        if let Some(script) = shell_script(&systemd_argv(&line)) {
            scripts.push((
                "nasfleet-controller.service ExecStart".into(),
                format!("#!/bin/sh\n{script}"),
            ));
        }
    }
    assert!(scripts.len() >= 4, "{scripts:?}");
    for (n, (what, text)) in scripts.iter().enumerate() {
        let p = dir.path().join(format!("script-{n}"));
        std::fs::write(&p, text).unwrap();
        let out = Command::new(&sc).arg(&p).output().unwrap();
        assert!(
            out.status.success(),
            "shellcheck {what}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

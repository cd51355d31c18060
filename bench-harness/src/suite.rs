//! Which queries a run has, and how to launch each one.
//!
//! Three kinds of suite:
//!
//! - **builtin**: the `memledger-suite` binary installed next to
//!   `mem_profile`, run as `memledger-suite <query>` for each of
//!   [`BUILTIN_QUERIES`].
//! - **tpch** and **datafusion-ops**: `memledger-tpch` (next to
//!   `mem_profile` or on `PATH`), run on TPC-H Parquet data: the folder
//!   `--data` names, or a cache folder generated on first use (see
//!   [`tpch_data`]).
//! - **command**: any benchmark binary, from a template such as
//!   `dfbench tpch --query {query}`. The template is split into words the way
//!   a POSIX shell would split it (quotes and backslashes, nothing else: no
//!   variables, globs or pipes, and no shell is started); then `{query}` is
//!   replaced inside every word.
//!
//! Query lists (`--queries 1..22,25`, `-q 3`) are comma-separated tokens and
//! inclusive ranges `A..B` (also `A..=B`, and `q1..q22` with a common prefix).
//! A purely numeric token `N` names the query `qN`, and `{query}` becomes `N`;
//! any other token is both the id and the substituted text.
//!
//! Everything here is checked before the first query runs: a program that is
//! not on `PATH`, an unknown query or a missing suite binary is a usage error.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The queries of the built-in suite, in the order they run.
pub const BUILTIN_QUERIES: [&str; 6] = ["sort", "aggregate", "join", "topk", "arbiter", "merge"];

/// The file name of the built-in suite binary, looked up next to `mem_profile`.
pub const BUILTIN_BINARY: &str = "memledger-suite";

/// The TPC-H benchmark binary of `integrations/datafusion`.
pub const TPCH_BINARY: &str = "memledger-tpch";

/// The ops of the DataFusion operator suite (`memledger-tpch ops <op>`).
pub const DATAFUSION_OPS: [&str; 8] = [
    "sort",
    "aggregate",
    "repartition",
    "hash-join",
    "sort-merge-join",
    "window",
    "parquet-sort",
    "string-aggregate",
];

/// The TPC-H scale factor of the suites when `--scale` is not given.
pub const DEFAULT_TPCH_SCALE: &str = "0.1";

/// The file every complete TPC-H data folder holds (written last by
/// `memledger-tpch gen`, which renames the folder into place when done).
pub const TPCH_MANIFEST: &str = "tpch.json";

/// The placeholder replaced by the query's text in a `--cmd` template.
pub const PLACEHOLDER: &str = "{query}";

/// The most queries one range may expand to; a typo such as `1..10000000`
/// should fail, not allocate.
const MAX_RANGE: u64 = 10_000;

/// One query of a suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The name in results and tables (`q3`, `sort`).
    pub id: String,
    /// What replaces `{query}` in the command (`3`, `sort`).
    pub arg: String,
}

impl Query {
    /// The query a list token names: `3` → id `q3`, arg `3`; `sort` → `sort`.
    pub fn from_token(token: &str) -> Query {
        let id = if token.bytes().all(|b| b.is_ascii_digit()) {
            format!("q{token}")
        } else {
            token.to_string()
        };
        Query {
            id,
            arg: token.to_string(),
        }
    }
}

/// A suite ready to run: a resolved program and the queries to run it with.
#[derive(Debug, Clone)]
pub struct Suite {
    /// `builtin` or `command`, as written into the run's context.
    pub kind: &'static str,
    /// The command as the user would read it (the template, `{query}` kept).
    pub command: String,
    /// The program, found on `PATH` or checked to exist.
    pub program: PathBuf,
    /// The template's words; the first is the program as written (`argv[0]`).
    words: Vec<String>,
    /// The queries to run, in order.
    pub queries: Vec<Query>,
}

impl Suite {
    /// The built-in suite: `<dir>/memledger-suite <query>` for every query.
    ///
    /// Fails when the suite binary is not in `dir` (normally the directory of
    /// the running `mem_profile`).
    pub fn builtin(dir: &Path, scale: Option<&str>) -> Result<Suite, String> {
        let program = dir.join(BUILTIN_BINARY);
        if !is_executable(&program) {
            return Err(format!(
                "the built-in suite binary `{BUILTIN_BINARY}` is not installed next to \
                 mem_profile (looked for {}); build it, or run an external benchmark with --cmd",
                program.display()
            ));
        }
        let mut words = vec![program.display().to_string(), PLACEHOLDER.to_string()];
        let mut command = format!("{BUILTIN_BINARY} {PLACEHOLDER}");
        if let Some(scale) = scale {
            words.extend(["--scale".to_string(), scale.to_string()]);
            command.push_str(&format!(" --scale {scale}"));
        }
        Ok(Suite {
            kind: "builtin",
            command,
            words,
            program,
            queries: BUILTIN_QUERIES
                .iter()
                .map(|q| Query::from_token(q))
                .collect(),
        })
    }

    /// The TPC-H suite: `memledger-tpch <1..22> --data DIR`, the binary
    /// found next to `mem_profile` (in `dir`) or on `PATH`, the Parquet data
    /// from `data` or from the cache (see [`tpch_data`]).
    pub fn tpch(dir: &Path, scale: Option<&str>, data: Option<&Path>) -> Result<Suite, String> {
        let queries = (1..=22).map(|n| Query::from_token(&n.to_string()));
        Suite::tpch_binary_suite("tpch", &[], dir, scale, data, queries.collect())
    }

    /// The DataFusion operator suite: `memledger-tpch ops <op> --data DIR`
    /// for each of [`DATAFUSION_OPS`], one operator isolated per query.
    pub fn datafusion_ops(
        dir: &Path,
        scale: Option<&str>,
        data: Option<&Path>,
    ) -> Result<Suite, String> {
        let queries = DATAFUSION_OPS.iter().map(|q| Query::from_token(q));
        Suite::tpch_binary_suite(
            "datafusion-ops",
            &["ops"],
            dir,
            scale,
            data,
            queries.collect(),
        )
    }

    fn tpch_binary_suite(
        kind: &'static str,
        subcommand: &[&str],
        dir: &Path,
        scale: Option<&str>,
        data: Option<&Path>,
        queries: Vec<Query>,
    ) -> Result<Suite, String> {
        let local = dir.join(TPCH_BINARY);
        let program = if is_executable(&local) {
            local
        } else {
            resolve_program(TPCH_BINARY).map_err(|e| {
                format!("{e} (build it with `cargo build --release` in integrations/datafusion and put it on PATH, or use --cmd)")
            })?
        };
        let folder = tpch_data(&program, scale, data)?;
        let mut words = vec![program.display().to_string()];
        words.extend(subcommand.iter().map(|w| w.to_string()));
        words.extend([
            PLACEHOLDER.to_string(),
            "--data".to_string(),
            folder.display().to_string(),
        ]);
        // A folder the user names is checked against the scale they give.
        if let (Some(scale), Some(_)) = (scale, data) {
            words.extend(["--scale".to_string(), scale.to_string()]);
        }
        let mut command = vec![TPCH_BINARY.to_string()];
        command.extend(words[1..].iter().cloned());
        Ok(Suite {
            kind,
            command: command.join(" "),
            program,
            words,
            queries,
        })
    }

    /// An external benchmark: `template` split into words, `{query}` replaced
    /// by each query of `queries` (a list such as `1..22,25`).
    ///
    /// Without a list, a template that has no `{query}` is one query named
    /// `cmd`; a template that has one needs a list.
    pub fn from_template(template: &str, queries: Option<&str>) -> Result<Suite, String> {
        let words = split_words(template)?;
        let Some(first) = words.first() else {
            return Err("--cmd is empty".to_string());
        };
        let program = resolve_program(first)?;
        let queries = match queries {
            Some(list) => {
                let queries = unique_queries(&parse_query_list(list)?)?;
                if queries.len() > 1 && !template.contains(PLACEHOLDER) {
                    return Err(format!(
                        "--cmd has no {PLACEHOLDER}, so its {} queries would all run the same \
                         command; put {PLACEHOLDER} where the query goes, or drop --queries",
                        queries.len()
                    ));
                }
                queries
            }
            None if template.contains(PLACEHOLDER) => {
                return Err(format!(
                    "--cmd contains {PLACEHOLDER}: say which queries with --queries (e.g. --queries 1..22)"
                ));
            }
            None => vec![Query {
                id: "cmd".to_string(),
                arg: String::new(),
            }],
        };
        Ok(Suite {
            kind: "command",
            command: template.to_string(),
            program,
            words,
            queries,
        })
    }

    /// Keeps only the queries that `picks` names (each a query list), in suite order.
    ///
    /// A token may be written as the id (`q3`) or as the list token (`3`).
    /// Fails on a token that names no query of the suite.
    pub fn pick(&mut self, picks: &[String]) -> Result<(), String> {
        if picks.is_empty() {
            return Ok(());
        }
        let mut wanted = Vec::new();
        for list in picks {
            for token in parse_query_list(list)? {
                let id = Query::from_token(&token).id;
                if !self.queries.iter().any(|q| q.id == id || q.arg == token) {
                    return Err(format!(
                        "unknown query `{token}`; this suite has {}",
                        describe_ids(&self.queries)
                    ));
                }
                wanted.push((id, token));
            }
        }
        self.queries.retain(|q| {
            wanted
                .iter()
                .any(|(id, token)| q.id == *id || q.arg == *token)
        });
        Ok(())
    }

    /// Keeps only the queries of `shard` (see [`Shard`](crate::run::Shard):
    /// the ids sorted, then dealt out in turn), in suite order.
    ///
    /// Fails when the shard gets no query (more shards than queries).
    pub fn shard(&mut self, shard: crate::run::Shard) -> Result<(), String> {
        let mut sorted: Vec<&str> = self.queries.iter().map(|q| q.id.as_str()).collect();
        sorted.sort_unstable();
        let kept: Vec<String> = sorted
            .iter()
            .enumerate()
            .filter(|&(position, _)| shard.holds(position))
            .map(|(_, id)| id.to_string())
            .collect();
        if kept.is_empty() {
            return Err(format!(
                "--shard {shard}: the shard has no query ({} selected); use at most {} shards",
                self.queries.len(),
                self.queries.len()
            ));
        }
        self.queries.retain(|q| kept.contains(&q.id));
        Ok(())
    }

    /// The argument vector for one query: `argv[0]` as written, then the
    /// template's words with `{query}` replaced.
    pub fn argv(&self, query: &Query) -> Vec<OsString> {
        self.words
            .iter()
            .map(|w| OsString::from(w.replace(PLACEHOLDER, &query.arg)))
            .collect()
    }
}

/// The queries of a list's tokens, refusing two tokens that name the same
/// id (`q7` and `7` are both `q7`): each row of a run must be one query.
fn unique_queries(tokens: &[String]) -> Result<Vec<Query>, String> {
    let mut queries: Vec<Query> = Vec::with_capacity(tokens.len());
    for token in tokens {
        let query = Query::from_token(token);
        if let Some(first) = queries.iter().find(|q| q.id == query.id) {
            return Err(format!(
                "`{}` and `{token}` are both the query `{}`; list each query once",
                first.arg, query.id
            ));
        }
        queries.push(query);
    }
    Ok(queries)
}

/// `q1, q2, ... (22 queries)` for error messages: a few ids, then the count.
fn describe_ids(queries: &[Query]) -> String {
    const SHOWN: usize = 8;
    let ids: Vec<&str> = queries.iter().take(SHOWN).map(|q| q.id.as_str()).collect();
    if queries.len() > SHOWN {
        format!("{}, ... ({} queries)", ids.join(", "), queries.len())
    } else {
        ids.join(", ")
    }
}

/// Expands a query list: `1..3,7,sort` → `["1", "2", "3", "7", "sort"]`.
///
/// Duplicates are dropped (the first stays). Errors on empty tokens, ranges
/// whose ends are not numbers with the same prefix, reversed ranges and
/// ranges longer than 10,000.
pub fn parse_query_list(text: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.split(',') {
        let token = raw.trim();
        if token.is_empty() {
            return Err(format!("empty entry in query list `{text}`"));
        }
        let expanded = match token.split_once("..") {
            Some((from, to)) => expand_range(from, to.strip_prefix('=').unwrap_or(to), token)?,
            None => vec![token.to_string()],
        };
        for query in expanded {
            if !out.contains(&query) {
                out.push(query);
            }
        }
    }
    Ok(out)
}

/// `("q1", "q3")` → `["q1", "q2", "q3"]`.
fn expand_range(from: &str, to: &str, token: &str) -> Result<Vec<String>, String> {
    let bad = || format!("`{token}` is not a range like 1..22 or q1..q22");
    let (prefix, start) = split_prefix_number(from.trim()).ok_or_else(bad)?;
    let (prefix_end, end) = split_prefix_number(to.trim()).ok_or_else(bad)?;
    if prefix != prefix_end {
        return Err(bad());
    }
    if start > end {
        return Err(format!("range `{token}` runs backwards"));
    }
    if end - start >= MAX_RANGE {
        return Err(format!("range `{token}` has more than {MAX_RANGE} queries"));
    }
    // `q01..q12` keeps its width: q01, q02, ..., q12.
    let digits = from.trim().len() - prefix.len();
    let width = if from.trim()[prefix.len()..].starts_with('0') {
        digits
    } else {
        0
    };
    Ok((start..=end)
        .map(|n| format!("{prefix}{n:0width$}"))
        .collect())
}

/// `"q12"` → `("q", 12)`; `None` without a trailing number.
fn split_prefix_number(text: &str) -> Option<(&str, u64)> {
    let digits = text.len() - text.trim_start_matches(|c: char| !c.is_ascii_digit()).len();
    let (prefix, number) = text.split_at(digits);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((prefix, number.parse().ok()?))
}

/// Splits a command line into words as a POSIX shell does, without any
/// expansion: blanks separate words; `'...'` is literal; inside `"..."` a
/// backslash escapes only `"`, `\`, `$` and `` ` ``; elsewhere a backslash
/// makes the next character literal.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once anything, even `''`, has been read for it.
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated ' in `{text}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated \" in `{text}`")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated \" in `{text}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("trailing backslash in `{text}`")),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Finds the program a command's first word names, as `execvp` would: a
/// word with a `/` is a path (relative to the current directory); any other
/// word is looked up in every directory of `PATH`.
pub fn resolve_program(word: &str) -> Result<PathBuf, String> {
    if word.contains('/') {
        let path = PathBuf::from(word);
        if path.is_dir() {
            return Err(format!("program `{word}` is a directory, not a program"));
        }
        if !path.exists() {
            return Err(format!("program `{word}` does not exist"));
        }
        if !path.is_file() {
            return Err(format!("program `{word}` is not a regular file"));
        }
        if !is_executable(&path) {
            return Err(format!("program `{word}` is not executable"));
        }
        // Absolute, so that it does not depend on where it is launched from.
        return std::path::absolute(&path).map_err(|e| format!("program `{word}`: {e}"));
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(word))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| format!("program `{word}` not found in PATH"))
}

/// The Parquet data folder of a TPC-H suite.
///
/// `data`, when given, must hold a data set ([`TPCH_MANIFEST`]). Otherwise
/// the folder is the cache's for the scale ([`tpch_cache_dir`]); when it
/// does not exist yet, `program gen --scale F --dir FOLDER` writes it (the
/// generator builds it in a temporary folder and renames it into place, so
/// an interrupted generation leaves nothing that would be used).
pub fn tpch_data(
    program: &Path,
    scale: Option<&str>,
    data: Option<&Path>,
) -> Result<PathBuf, String> {
    tpch_data_in(program, scale, data, |name| std::env::var_os(name))
}

/// [`tpch_data`] with the environment read through `var`.
fn tpch_data_in(
    program: &Path,
    scale: Option<&str>,
    data: Option<&Path>,
    var: impl Fn(&str) -> Option<OsString>,
) -> Result<PathBuf, String> {
    if let Some(dir) = data {
        if !dir.join(TPCH_MANIFEST).is_file() {
            return Err(format!(
                "--data {}: not a TPC-H data folder (no {TPCH_MANIFEST}); write one with \
                 `{TPCH_BINARY} gen --scale F --dir DIR`",
                dir.display()
            ));
        }
        return std::path::absolute(dir).map_err(|e| format!("--data {}: {e}", dir.display()));
    }
    let scale = scale.unwrap_or(DEFAULT_TPCH_SCALE);
    let scale = match scale.parse::<f64>() {
        // One folder per value: `1`, `1.0` and `1e0` are the same scale.
        Ok(value) if value.is_finite() && value > 0.0 => value.to_string(),
        _ => return Err(format!("--scale {scale} is not a positive number")),
    };
    let folder = tpch_cache_dir(&scale, var)?;
    if folder.join(TPCH_MANIFEST).is_file() {
        return Ok(folder);
    }
    if folder.exists() {
        return Err(format!(
            "{} exists but holds no complete TPC-H data set; remove it",
            folder.display()
        ));
    }
    eprintln!(
        "mem_profile: generating TPC-H scale {scale} as Parquet into {} (once)",
        folder.display()
    );
    let status = std::process::Command::new(program)
        .args(["gen", "--scale", &scale, "--dir"])
        .arg(&folder)
        .stdin(std::process::Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !status.success() || !folder.join(TPCH_MANIFEST).is_file() {
        return Err(format!(
            "generating TPC-H data into {} failed ({status})",
            folder.display()
        ));
    }
    Ok(folder)
}

/// The cache folder of TPC-H data at `scale`, from the environment that
/// `var` reads: `$MEMLEDGER_CACHE_DIR/tpch-sf<scale>`, else
/// `$XDG_CACHE_HOME/memledger/tpch-sf<scale>` (an absolute
/// `XDG_CACHE_HOME` only), else `$HOME/.cache/memledger/tpch-sf<scale>`.
pub fn tpch_cache_dir(
    scale: &str,
    var: impl Fn(&str) -> Option<OsString>,
) -> Result<PathBuf, String> {
    let leaf = format!("tpch-sf{scale}");
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("MEMLEDGER_CACHE_DIR") {
        return Ok(dir.join(leaf));
    }
    if let Some(dir) = set("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Ok(dir.join("memledger").join(leaf));
    }
    if let Some(home) = set("HOME") {
        return Ok(home.join(".cache").join("memledger").join(leaf));
    }
    Err("no cache folder for TPC-H data: set MEMLEDGER_CACHE_DIR or pass --data DIR".to_string())
}

/// A regular file with an execute bit.
fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn query_lists_expand_ranges_and_keep_order() {
        let q = parse_query_list("1..3,25").unwrap();
        assert_eq!(q, strings(&["1", "2", "3", "25"]));
        let q = parse_query_list("q1..=q3, sort").unwrap();
        assert_eq!(q, strings(&["q1", "q2", "q3", "sort"]));
        let q = parse_query_list("3,1..4").unwrap();
        assert_eq!(q, strings(&["3", "1", "2", "4"]), "duplicates dropped");
        assert_eq!(parse_query_list("1..22").unwrap().len(), 22);
        let q = parse_query_list("q08..q10").unwrap();
        assert_eq!(q, strings(&["q08", "q09", "q10"]), "width kept");
    }

    #[test]
    fn bad_query_lists_are_refused() {
        assert!(parse_query_list("1,,2").unwrap_err().contains("empty"));
        assert!(parse_query_list("5..1").unwrap_err().contains("backwards"));
        assert!(
            parse_query_list("q1..r3")
                .unwrap_err()
                .contains("not a range")
        );
        assert!(
            parse_query_list("a..b")
                .unwrap_err()
                .contains("not a range")
        );
        assert!(
            parse_query_list("1..100000")
                .unwrap_err()
                .contains("more than")
        );
    }

    #[test]
    fn numeric_tokens_name_q_ids() {
        assert_eq!(
            Query::from_token("7"),
            Query {
                id: "q7".into(),
                arg: "7".into()
            }
        );
        assert_eq!(Query::from_token("sort").id, "sort");
        assert_eq!(Query::from_token("q7").arg, "q7");
    }

    #[test]
    fn words_split_like_a_shell_without_expansion() {
        assert_eq!(
            split_words("bench  --query {query} -o 'a b' \"c \\\"d\\\" $e\" f\\ g ''").unwrap(),
            strings(&[
                "bench",
                "--query",
                "{query}",
                "-o",
                "a b",
                "c \"d\" $e",
                "f g",
                ""
            ])
        );
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_words(r#""a\nb""#).unwrap(), strings(&["a\\nb"]));
        assert!(split_words("echo 'oops").is_err());
        assert!(split_words("echo \"oops").is_err());
        assert!(split_words("echo oops\\").is_err());
    }

    #[test]
    fn template_substitutes_inside_words() {
        let mut suite =
            Suite::from_template("sh -c 'echo {query}' --q={query}", Some("1..3")).unwrap();
        assert!(suite.program.is_absolute() && suite.program.ends_with("sh"));
        let q2 = suite.queries[1].clone();
        assert_eq!(q2.id, "q2");
        assert_eq!(suite.argv(&q2), vec!["sh", "-c", "echo 2", "--q=2"]);
        suite.pick(&["q3,1".to_string()]).unwrap();
        let ids: Vec<_> = suite.queries.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, ["q1", "q3"]);
        let err = suite.pick(&["9".to_string()]).unwrap_err();
        assert!(err.contains("unknown query `9`"), "{err}");
    }

    #[test]
    fn ids_are_unique() {
        let err = Suite::from_template("sh -c true {query}", Some("q7,7")).unwrap_err();
        assert_eq!(
            err,
            "`q7` and `7` are both the query `q7`; list each query once"
        );
        let err = Suite::from_template("sh -c true", Some("1,2")).unwrap_err();
        assert!(err.contains("no {query}"), "{err}");
        assert!(Suite::from_template("sh -c true", Some("only")).is_ok());
    }

    #[test]
    fn templates_need_a_list_for_the_placeholder() {
        let err = Suite::from_template("sh {query}", None).unwrap_err();
        assert!(err.contains("--queries"), "{err}");
        let single = Suite::from_template("sh -c true", None).unwrap();
        assert_eq!(single.queries.len(), 1);
        assert_eq!(single.queries[0].id, "cmd");
    }

    #[test]
    fn programs_are_resolved_before_running() {
        let err = resolve_program("no-such-program-memledger").unwrap_err();
        assert_eq!(err, "program `no-such-program-memledger` not found in PATH");
        assert!(resolve_program("sh").unwrap().is_absolute());
        assert!(
            resolve_program("./no/such/file")
                .unwrap_err()
                .contains("does not exist")
        );
        assert_eq!(
            resolve_program("/tmp").unwrap_err(),
            "program `/tmp` is a directory, not a program"
        );
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let err = resolve_program(plain.to_str().unwrap()).unwrap_err();
        assert!(err.contains("not executable"), "{err}");
        assert!(
            Suite::builtin(dir.path(), None)
                .unwrap_err()
                .contains(BUILTIN_BINARY)
        );
    }

    #[test]
    fn the_builtin_suite_passes_its_scale_to_every_query() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join(BUILTIN_BINARY);
        std::fs::write(&binary, "").unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        let program = binary.display().to_string();

        let suite = Suite::builtin(dir.path(), Some("0.05")).unwrap();
        assert_eq!(suite.command, "memledger-suite {query} --scale 0.05");
        let ids: Vec<_> = suite.queries.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, BUILTIN_QUERIES);
        for query in &suite.queries {
            assert_eq!(
                suite.argv(query),
                vec![program.as_str(), query.id.as_str(), "--scale", "0.05"]
            );
        }

        let plain = Suite::builtin(dir.path(), None).unwrap();
        assert_eq!(plain.command, "memledger-suite {query}");
        assert_eq!(
            plain.argv(&plain.queries[0]),
            vec![program.as_str(), "sort"]
        );
    }

    #[test]
    fn shards_split_the_selection_into_disjoint_parts_that_cover_it() {
        use crate::run::Shard;
        let full = Suite::from_template("true {query}", Some("1..10,sort,join")).unwrap();
        let ids =
            |suite: &Suite| -> Vec<String> { suite.queries.iter().map(|q| q.id.clone()).collect() };
        for count in 1..=12 {
            let mut union: Vec<String> = Vec::new();
            for index in 1..=count {
                let mut part = full.clone();
                part.shard(Shard { index, count }).unwrap();
                for id in ids(&part) {
                    assert!(!union.contains(&id), "{id} in two shards of {count}");
                    union.push(id);
                }
                let size = part.queries.len();
                assert!(size == 12 / count as usize || size == 12 / count as usize + 1);
            }
            union.sort();
            let mut all = ids(&full);
            all.sort();
            assert_eq!(union, all, "the {count} shards cover the selection");
        }
        // Sorted ids (join, q1, q10, q2, ..., sort) dealt in turn, kept in
        // suite order.
        let mut first = full.clone();
        first.shard(Shard { index: 1, count: 3 }).unwrap();
        assert_eq!(ids(&first), ["q2", "q5", "q8", "join"]);
        // The listed order does not matter.
        let reordered =
            Suite::from_template("true {query}", Some("join,sort,10,9,8,7,6,5,4,3,2,1")).unwrap();
        let mut again = reordered.clone();
        again.shard(Shard { index: 1, count: 3 }).unwrap();
        let mut a = ids(&again);
        a.sort();
        let mut b = ids(&first);
        b.sort();
        assert_eq!(a, b);
        let err = full
            .clone()
            .shard(Shard {
                index: 13,
                count: 13,
            })
            .unwrap_err();
        assert!(err.contains("has no query (12 selected)"), "{err}");
    }

    #[test]
    fn the_tpch_cache_folder_follows_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let all = env(&[
            ("MEMLEDGER_CACHE_DIR", "/c"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(tpch_cache_dir("1", all).unwrap(), Path::new("/c/tpch-sf1"));
        let xdg = env(&[
            ("MEMLEDGER_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(
            tpch_cache_dir("0.1", xdg).unwrap(),
            Path::new("/x/memledger/tpch-sf0.1")
        );
        // A relative XDG_CACHE_HOME is ignored, as the XDG spec says.
        let home = env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")]);
        assert_eq!(
            tpch_cache_dir("0.1", home).unwrap(),
            Path::new("/h/.cache/memledger/tpch-sf0.1")
        );
        assert!(
            tpch_cache_dir("1", env(&[]))
                .unwrap_err()
                .contains("--data")
        );
    }

    /// A stand-in `memledger-tpch` whose `gen` writes a manifest (after a
    /// count of its runs) the way the real one renames a complete folder.
    fn fake_tpch(dir: &Path, fail: bool) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let program = dir.join(TPCH_BINARY);
        let body = if fail {
            "echo \"$@\" >> \"$(dirname \"$0\")/gen.log\"; exit 1".to_string()
        } else {
            format!(
                "echo \"$@\" >> \"$(dirname \"$0\")/gen.log\"; \
                 mkdir -p \"$5\" && echo '{{\"scale\": '$3'}}' > \"$5/{TPCH_MANIFEST}\""
            )
        };
        std::fs::write(&program, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        program
    }

    #[test]
    fn tpch_data_is_generated_once_into_the_cache_and_then_reused() {
        let bin = tempfile::tempdir().unwrap();
        let program = fake_tpch(bin.path(), false);
        let cache = tempfile::tempdir().unwrap();
        let folder = cache.path().join("tpch-sf0.5");
        let generated = generate_into_cache_for_test(&program, "0.50", cache.path());
        assert_eq!(generated.unwrap(), folder);
        let again = generate_into_cache_for_test(&program, "0.5", cache.path());
        assert_eq!(again.unwrap(), folder);
        let log = std::fs::read_to_string(bin.path().join("gen.log")).unwrap();
        assert_eq!(
            log.lines().collect::<Vec<_>>(),
            vec![format!("gen --scale 0.5 --dir {}", folder.display())],
            "generated once, by scale 0.5 whatever its spelling"
        );

        // A folder the user names is used as it is, with the suite's words.
        let suite = Suite::tpch(bin.path(), None, Some(&folder)).unwrap();
        assert_eq!(suite.kind, "tpch");
        assert_eq!(suite.queries.len(), 22);
        let argv = suite.argv(&suite.queries[2]);
        let folder_text = folder.display().to_string();
        assert_eq!(
            argv,
            vec![
                program.display().to_string().as_str(),
                "3",
                "--data",
                folder_text.as_str()
            ]
        );
        let ops = Suite::datafusion_ops(bin.path(), Some("0.5"), Some(&folder)).unwrap();
        assert_eq!(ops.kind, "datafusion-ops");
        let argv = ops.argv(&ops.queries[0]);
        assert_eq!(argv[1..4], ["ops", "sort", "--data"]);
        assert_eq!(argv[5..], ["--scale", "0.5"]);
        assert_eq!(ops.queries.len(), DATAFUSION_OPS.len());

        // A folder without a manifest is not data.
        let empty = tempfile::tempdir().unwrap();
        let err = Suite::tpch(bin.path(), None, Some(empty.path())).unwrap_err();
        assert!(err.contains(TPCH_MANIFEST), "{err}");
    }

    #[test]
    fn a_failed_generation_is_an_error_and_leaves_nothing_to_reuse() {
        let bin = tempfile::tempdir().unwrap();
        let program = fake_tpch(bin.path(), true);
        let cache = tempfile::tempdir().unwrap();
        let err = generate_into_cache_for_test(&program, "1", cache.path()).unwrap_err();
        assert!(err.contains("failed"), "{err}");
        assert!(!cache.path().join("tpch-sf1").exists());
    }

    /// [`tpch_data`] with the cache at `cache` instead of the environment's.
    fn generate_into_cache_for_test(
        program: &Path,
        scale: &str,
        cache: &Path,
    ) -> Result<PathBuf, String> {
        let var =
            |name: &str| (name == "MEMLEDGER_CACHE_DIR").then(|| cache.as_os_str().to_owned());
        tpch_data_in(program, Some(scale), None, var)
    }
}

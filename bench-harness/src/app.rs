//! The subcommands: each takes its parsed options and returns an exit code,
//! or an error that becomes one line on stderr and exit code 2.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::classify::{ReportState, classify};
use crate::cli::{
    BlessArgs, Cli, Command, CompareArgs, ExportArgs, ExportFormat, MergeArgs, ReportArgs, RunArgs,
    ShowArgs, SuiteName,
};
use crate::export::{Format, exporter, one_line, status_cell};
use crate::files::{LOCK_FILE, check_replaceable, same_file, write_atomic};
use crate::output::{RunWriter, SUMMARY_FILE, lock_dir};
use crate::run::{Context, Figures, QueryResult, RUN_FILE, Repeat, RepeatRecord, Run, Status};
use crate::runner::{self, ChildSpec, Launcher, MeasureOptions, interrupt};
use crate::suite::{Query, Suite};
use crate::units::{format_mib, format_wall_ms};
use crate::{
    EXIT_INTERRUPTED, EXIT_OK, EXIT_QUERY_FAILED, EXIT_REGRESSION, EXIT_USAGE, child, context,
};

/// Where the child writes its report.
pub const ENV_REPORT: &str = "MEMLEDGER_REPORT";
/// The pool limit in bytes; unset means unbounded.
pub const ENV_MEMORY_LIMIT: &str = "MEMLEDGER_MEMORY_LIMIT";
/// The timeline sampling interval in milliseconds.
pub const ENV_SAMPLE_MS: &str = "MEMLEDGER_SAMPLE_MS";
/// Mean bytes between sampled allocation stacks; unset means none.
pub const ENV_SAMPLE_BYTES: &str = "MEMLEDGER_SAMPLE_BYTES";

/// Parses the command line and runs the subcommand; returns the exit code.
pub fn main() -> u8 {
    let cli = match <Cli as clap::Parser>::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Compare(args) => compare(args),
        Command::Bless(args) => bless(args),
        Command::Show(args) => show(args),
        Command::Report(args) => report(args),
        Command::Sweep(args) => crate::sweep::command::sweep(args),
        Command::Export(args) => export(args),
        Command::Merge(args) => merge(args),
        Command::Launch(args) => {
            let (program, argv) = args.command.split_at(1);
            let code = runner::launcher::serve(args.status_fd, args.parent, &program[0], argv);
            return code as u8;
        }
        Command::Child(args) => match child::parse_steps(&args.steps) {
            Ok(steps) => return child::run(&steps) as u8,
            Err(message) => Err(message),
        },
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            note(&format!("mem_profile: error: {message}"));
            EXIT_USAGE
        }
    }
}

/// Writes one line to stderr. A closed or broken stderr (`2>&- `, `| head`)
/// is ignored: messages failing must never stop a run or lose its results.
pub fn note(line: &str) {
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

/// Help and version go out as clap writes them; every other parse error
/// becomes one line and exit code 2.
fn usage_error(error: clap::Error) -> u8 {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            error.exit_code() as u8
        }
        _ => {
            let text = error.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            let message = first.strip_prefix("error: ").unwrap_or(first);
            note(&format!(
                "mem_profile: error: {message} (see mem_profile --help)"
            ));
            EXIT_USAGE
        }
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub(crate) fn emit(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush());
}

/// `--timeout` in milliseconds, for the run's context.
pub(crate) fn timeout_millis(timeout: Option<std::time::Duration>) -> Result<Option<u64>, String> {
    timeout
        .map(|t| u64::try_from(t.as_millis()).map_err(|_| "--timeout is out of range".to_string()))
        .transpose()
}

/// `mem_profile run`.
fn run(args: RunArgs) -> Result<u8, String> {
    let mut suite = select_suite(
        args.cmd.as_deref(),
        args.queries.as_deref(),
        args.suite,
        args.scale.as_deref(),
        args.data.as_deref(),
        &args.query,
    )?;
    if let Some(shard) = args.shard {
        suite.shard(shard)?;
    }
    let launcher =
        Launcher::current_exe().map_err(|e| format!("cannot find mem_profile itself: {e}"))?;
    let timeout_ms = timeout_millis(args.timeout)?;
    if let Some(path) = &args.save_baseline {
        check_replaceable(path).map_err(|e| format!("--save-baseline: {e}"))?;
    }

    let context = Context {
        tool: format!("mem_profile {}", env!("CARGO_PKG_VERSION")),
        suite: suite.kind.to_string(),
        command: suite.command.clone(),
        git_revision: context::git_revision(),
        machine: context::machine(),
        date: context::now(),
        memory_limit_bytes: args.memory_limit,
        timeout_ms,
        sample_ms: args.sample_ms,
        stack_sample_bytes: args.stacks,
        repeat: args.repeat,
        shard: args.shard,
        merged_from: Vec::new(),
    };
    let holder = format!(
        "pid {}, started {}, {}",
        std::process::id(),
        context.date,
        one_line(&suite.command)
    );
    if let Some(path) = &args.save_baseline {
        refuse_run_files(path, &args.out)?;
    }
    let lock = lock_dir(&args.out, &holder)?;
    let mut writer = RunWriter::create(&args.out, lock, context)
        .map_err(|e| format!("cannot write to {}: {e}", args.out.display()))?;
    let reports = tempfile::Builder::new()
        .prefix("mem_profile-")
        .tempdir()
        .map_err(|e| format!("cannot create a directory for reports: {e}"))?;
    interrupt::install().map_err(|e| format!("cannot install the signal handler: {e}"))?;
    runner::adopt_orphans().map_err(|e| format!("cannot become a subreaper: {e}"))?;

    let options = MeasureOptions {
        timeout: args.timeout,
        sample_interval: Duration::from_millis(args.sample_ms),
    };
    let mut progress =
        crate::progress::Progress::new(suite.queries.len() as u64 * u64::from(args.repeat));
    let mut interrupted = false;
    'queries: for (index, query) in suite.queries.iter().enumerate() {
        let mut records: Vec<RepeatRecord> = Vec::new();
        for repeat in 0..args.repeat {
            if interrupt::requested() {
                interrupted = true;
                if !records.is_empty() {
                    writer
                        .record(interrupted_result(&query.id, &records, args.repeat))
                        .map_err(|e| {
                            format!("cannot write {}: {e}", writer.run_path().display())
                        })?;
                }
                break 'queries;
            }
            let label = if args.repeat > 1 {
                format!("{} ({}/{})", query.id, repeat + 1, args.repeat)
            } else {
                query.id.clone()
            };
            progress.start(&label);
            let report_path = reports.path().join(format!("{index}-{repeat}.json"));
            let spec = child_spec(&suite, query, &report_path, &args);
            let measurement = runner::measure(&launcher, &spec, &options)
                .map_err(|e| format!("{}: {e}", query.id))?;
            let report = ReportState::load(&report_path, args.max_report_size);
            remove_report(&report_path);
            let verdict = classify(&measurement, &report);
            let mut report = report.report().cloned();
            // The query has exited: its objects' debug info is read here,
            // once per repeat.
            if let Some(stacks) = report.as_mut().and_then(|r| r.stacks.as_mut()) {
                memledger_profiler::stacks::symbolize(stacks);
            }
            let record = RepeatRecord {
                repeat: Repeat {
                    status: verdict.status,
                    exit_code: verdict.exit_code,
                    signal: verdict.signal,
                    figures: Figures::new(
                        u64::try_from(measurement.wall.as_millis()).unwrap_or(u64::MAX),
                        measurement.peak_rss_bytes,
                        report.as_ref(),
                    ),
                },
                limit_bytes: report
                    .as_ref()
                    .and_then(|r| r.memory_limit_bytes)
                    .or(args.memory_limit),
                error: verdict.error,
                stderr_tail: measurement.stderr_tail,
                timeline: measurement.timeline,
                report,
            };
            if measurement.interrupted {
                interrupted = true;
                // A query with no finished repeat is no row; one with some
                // keeps them, marked `interrupted`.
                if !records.is_empty() {
                    records.push(record);
                    writer
                        .record(interrupted_result(&query.id, &records, args.repeat))
                        .map_err(|e| {
                            format!("cannot write {}: {e}", writer.run_path().display())
                        })?;
                }
                break 'queries;
            }
            progress.finish_one(&progress_line(&label, &record));
            records.push(record);
            let mut result = QueryResult::from_repeats(&query.id, &records);
            if let Err(e) = crate::stacks::attach(&args.out, &mut result) {
                note(&format!("mem_profile: {}: {e}", query.id));
            }
            writer
                .record(result)
                .map_err(|e| format!("cannot write {}: {e}", writer.run_path().display()))?;
        }
    }
    progress.finish();

    let run_path = writer.run_path();
    if interrupted {
        writer
            .mark_interrupted()
            .map_err(|e| format!("cannot write {}: {e}", run_path.display()))?;
    }
    emit(&exporter(Format::Table).run(writer.run()));
    crate::github::append_step_summary(
        &exporter(Format::Markdown).run(writer.run()),
        crate::github::RUN_NOTE,
    );
    if interrupted {
        note(&format!(
            "mem_profile: interrupted; {} finished queries are in {}",
            writer
                .run()
                .queries
                .iter()
                .filter(|q| q.status != Status::Interrupted)
                .count(),
            run_path.display()
        ));
        return Ok(EXIT_INTERRUPTED);
    }
    note(&format!(
        "mem_profile: wrote {} and {}",
        run_path.display(),
        args.out.join(SUMMARY_FILE).display()
    ));
    if let Some(path) = &args.save_baseline {
        write_baseline(writer.run(), path)?;
    }
    let not_ok = writer
        .run()
        .queries
        .iter()
        .filter(|q| q.status != Status::Ok)
        .count();
    Ok(if not_ok > 0 && !args.allow_failures {
        EXIT_QUERY_FAILED
    } else {
        EXIT_OK
    })
}

/// The suite that `--cmd`/`--queries` or `--suite`/`--scale` name, with
/// only the queries of `picks` (`-q`) kept.
pub(crate) fn select_suite(
    cmd: Option<&str>,
    queries: Option<&str>,
    suite: SuiteName,
    scale: Option<&str>,
    data: Option<&std::path::Path>,
    picks: &[String],
) -> Result<Suite, String> {
    let mut suite = match cmd {
        Some(template) => Suite::from_template(template, queries)?,
        None => match suite {
            SuiteName::Builtin => Suite::builtin(&exe_dir()?, scale)?,
            SuiteName::Tpch => Suite::tpch(&exe_dir()?, scale, data)?,
            SuiteName::DatafusionOps => Suite::datafusion_ops(&exe_dir()?, scale, data)?,
        },
    };
    suite.pick(picks)?;
    Ok(suite)
}

/// The result of a query whose repeats were cut short by an interrupt:
/// `interrupted`, unless a finished repeat already failed (that finding
/// stays), with every repeat that ran listed.
fn interrupted_result(id: &str, records: &[RepeatRecord], repeats: u32) -> QueryResult {
    let mut result = QueryResult::from_repeats(id, records);
    if matches!(result.status, Status::Ok | Status::Interrupted) {
        let finished = records
            .iter()
            .filter(|r| r.repeat.status != Status::Interrupted)
            .count();
        result.status = Status::Interrupted;
        result.error = Some(format!(
            "the run was interrupted after {finished} of {repeats} repeats"
        ));
    }
    result
}

/// Removes a report file, whatever the child made of it (a FIFO, a link,
/// a directory); a link is removed, never followed.
pub(crate) fn remove_report(path: &Path) {
    if std::fs::remove_file(path).is_err() {
        let _ = std::fs::remove_dir_all(path);
    }
}

/// Refuses a `--save-baseline` that would overwrite the run's own files.
fn refuse_run_files(baseline: &Path, out: &Path) -> Result<(), String> {
    let parent = match baseline.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Resolved where they exist, else made absolute as written.
    let resolve = |path: &Path| path.canonicalize().or_else(|_| std::path::absolute(path));
    let (Ok(parent), Ok(out)) = (resolve(parent), resolve(out)) else {
        return Ok(());
    };
    let name = baseline.file_name().unwrap_or_default();
    if parent == out
        && [RUN_FILE, SUMMARY_FILE, LOCK_FILE]
            .iter()
            .any(|f| name == *f)
    {
        return Err(format!(
            "--save-baseline {} would overwrite this run's own {}; choose another file",
            baseline.display(),
            name.to_string_lossy()
        ));
    }
    Ok(())
}

/// The directory of the running executable (where the built-in suite lives).
fn exe_dir() -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find mem_profile itself: {e}"))?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// The program, arguments and protocol variables for one repeat.
fn child_spec(suite: &Suite, query: &Query, report: &Path, args: &RunArgs) -> ChildSpec {
    let mut env = vec![
        (OsString::from(ENV_REPORT), report.as_os_str().to_owned()),
        (
            OsString::from(ENV_SAMPLE_MS),
            OsString::from(args.sample_ms.to_string()),
        ),
    ];
    let mut env_remove = Vec::new();
    match args.memory_limit {
        Some(limit) => env.push((
            OsString::from(ENV_MEMORY_LIMIT),
            OsString::from(limit.to_string()),
        )),
        // The run says "unbounded": a limit inherited from the caller's
        // environment must not contradict it.
        None => env_remove.push(OsString::from(ENV_MEMORY_LIMIT)),
    }
    match args.stacks {
        Some(bytes) => {
            env.push((
                OsString::from(ENV_SAMPLE_BYTES),
                OsString::from(bytes.to_string()),
            ));
            // The harness symbolizes after the query exits, so reading
            // debug info never adds to the query's peak RSS.
            env.push((
                OsString::from(memledger_profiler::stacks::SYMBOLIZE_ENV),
                OsString::from("later"),
            ));
        }
        None => env_remove.push(OsString::from(ENV_SAMPLE_BYTES)),
    }
    ChildSpec {
        program: suite.program.clone(),
        argv: suite.argv(query),
        env,
        env_remove,
    }
}

/// `q3 ok, 1.23 s, peak RSS 45.3 MiB` (and the error when not ok).
fn progress_line(label: &str, record: &RepeatRecord) -> String {
    let r = &record.repeat;
    let mut line = format!(
        "{label} {}, {}, peak RSS {}",
        status_cell(r.status, r.exit_code, r.signal),
        format_wall_ms(r.figures.wall_ms),
        r.figures
            .peak_rss_bytes
            .map_or_else(|| "-".to_string(), format_mib)
    );
    if let Some(error) = &record.error {
        line.push_str(": ");
        line.push_str(&one_line(error));
    }
    line
}

/// Writes a run's baseline to `path`.
fn write_baseline(run: &Run, path: &Path) -> Result<(), String> {
    write_atomic(path, &run.to_baseline_json())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    note(&format!(
        "mem_profile: wrote baseline {} ({} queries)",
        path.display(),
        run.queries.len()
    ));
    Ok(())
}

/// `mem_profile compare`: two runs, or two sweeps (see `sweep::compare`).
fn compare(args: CompareArgs) -> Result<u8, String> {
    if crate::sweep::results::is_sweep(&args.baseline)
        || crate::sweep::results::is_sweep(&args.current)
    {
        return crate::sweep::compare::command(&args);
    }
    let baseline = Run::read(&args.baseline)?;
    let current = Run::read(&args.current)?;
    let rules = args.rules.rules();
    let comparison = crate::compare::compare(
        (&args.baseline.display().to_string(), &baseline),
        (&args.current.display().to_string(), &current),
        &rules,
    )
    .map_err(|e| e.to_string())?;
    emit(&exporter(args.format).comparison(&comparison));
    crate::github::append_step_summary(
        &exporter(Format::Markdown).comparison(&comparison),
        crate::github::COMPARE_NOTE,
    );
    if matches!(args.format, Format::Table | Format::Markdown) {
        emit(&crate::stacks::growth_section(
            &baseline,
            &current,
            args.format == Format::Markdown,
        ));
    }
    Ok(if comparison.regressions() > 0 {
        EXIT_REGRESSION
    } else {
        EXIT_OK
    })
}

/// `mem_profile bless`.
fn bless(args: BlessArgs) -> Result<u8, String> {
    let run = Run::read(&args.run)?;
    if run.queries.is_empty() {
        return Err(format!("{}: the run has no query", args.run.display()));
    }
    let run_file = if args.run.is_dir() {
        args.run.join(RUN_FILE)
    } else {
        args.run.clone()
    };
    if same_file(&run_file, &args.output) {
        return Err(format!(
            "refusing to write the baseline over its own input {}; choose another -o",
            run_file.display()
        ));
    }
    let interrupted = run
        .queries
        .iter()
        .filter(|q| q.status == Status::Interrupted)
        .count();
    if (run.interrupted || interrupted > 0) && !args.allow_interrupted {
        return Err(format!(
            "{}: the run was interrupted ({interrupted} queries interrupted); bless a complete \
             run, or pass --allow-interrupted",
            run_file.display()
        ));
    }
    write_baseline(&run, &args.output)?;
    Ok(EXIT_OK)
}

/// `mem_profile show`: a run, a baseline or a sweep.
fn show(args: ShowArgs) -> Result<u8, String> {
    if crate::sweep::results::is_sweep(&args.file) {
        let sweep = crate::sweep::results::Sweep::read(&args.file)?;
        emit(&crate::sweep::summary::render(&sweep, args.format));
        return Ok(EXIT_OK);
    }
    let run = Run::read(&args.file)?;
    emit(&exporter(args.format).run(&run));
    Ok(EXIT_OK)
}

/// `mem_profile report`: the run (and its baseline) as one HTML page.
fn report(args: ReportArgs) -> Result<u8, String> {
    let (dir, run_file) = if args.run.is_dir() {
        (args.run.clone(), args.run.join(RUN_FILE))
    } else {
        let dir = match args.run.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (dir, args.run.clone())
    };
    let text = crate::files::read_limited(&run_file, crate::run::RUN_READ_CAP, true)
        .map_err(|e| format!("cannot read {}: {e}", run_file.display()))?;
    let run = Run::from_json(&text).map_err(|e| format!("{}: {e}", run_file.display()))?;
    let baseline = args.baseline.as_deref().map(Run::read).transpose()?;
    for input in [Some(&run_file), args.baseline.as_ref()]
        .into_iter()
        .flatten()
    {
        let input = if input.is_dir() {
            input.join(RUN_FILE)
        } else {
            input.clone()
        };
        if same_file(&input, &args.output) {
            return Err(format!(
                "refusing to write the report over its own input {}; choose another -o",
                input.display()
            ));
        }
    }
    let comparison = match (&args.baseline, &baseline) {
        (Some(path), Some(base)) => Some(
            crate::compare::compare(
                (&path.display().to_string(), base),
                (&args.run.display().to_string(), &run),
                &args.rules.rules(),
            )
            .map_err(|e| e.to_string())?,
        ),
        _ => None,
    };
    let flamegraphs = crate::export::html::flamegraphs(&text, &dir);
    let page = crate::export::html::ReportPage {
        run: &run,
        baseline: baseline.as_ref().zip(comparison.as_ref()),
        flamegraphs: &flamegraphs,
    };
    write_atomic(&args.output, &crate::export::html::render(&page))
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    note(&format!(
        "mem_profile: wrote {} ({} queries)",
        args.output.display(),
        run.queries.len()
    ));
    Ok(EXIT_OK)
}

/// `mem_profile export`: a run's figures for a dashboard.
fn export(args: ExportArgs) -> Result<u8, String> {
    let run = Run::read(&args.run)?;
    let text = match args.format {
        ExportFormat::Bencher => crate::export::bencher::render(&run),
        ExportFormat::Csv => crate::export::csv::render(&run)?,
    };
    match &args.output {
        Some(path) => write_atomic(path, &text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        None => emit(&text),
    }
    Ok(EXIT_OK)
}

/// `mem_profile merge`: runs into one run directory.
fn merge(args: MergeArgs) -> Result<u8, String> {
    let runs = args
        .runs
        .iter()
        .map(|path| Ok((path.display().to_string(), Run::read(path)?)))
        .collect::<Result<Vec<(String, Run)>, String>>()?;
    let merged = crate::merge::merge(&runs, args.allow_mixed_contexts)?;
    let holder = format!(
        "pid {}, started {}, mem_profile merge",
        std::process::id(),
        context::now()
    );
    let _lock = lock_dir(&args.output, &holder)?;
    let run_path = args.output.join(RUN_FILE);
    let summary_path = args.output.join(SUMMARY_FILE);
    // Both targets are checked before either is written.
    for path in [&run_path, &summary_path] {
        check_replaceable(path).map_err(|e| e.to_string())?;
    }
    write_atomic(&run_path, &merged.to_json())
        .map_err(|e| format!("cannot write {}: {e}", run_path.display()))?;
    write_atomic(&summary_path, &exporter(Format::Markdown).run(&merged))
        .map_err(|e| format!("cannot write {}: {e}", summary_path.display()))?;
    emit(&exporter(Format::Table).run(&merged));
    note(&format!(
        "mem_profile: merged {} runs ({} queries) into {}",
        runs.len(),
        merged.queries.len(),
        run_path.display()
    ));
    Ok(EXIT_OK)
}

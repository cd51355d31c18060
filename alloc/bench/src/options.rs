//! The driver's options, read once from the environment and the command line
//! (the command line wins). Nothing else reads either.

use crate::protocol::available_cores;
use crate::workload::Workload;

/// The usage text, printed for `--help` and after a bad option.
pub const USAGE: &str = "\
usage: cargo bench -p memledger-alloc-bench [-- OPTIONS]

options (each also read from the environment variable shown):
  --rounds N          rounds; every binary runs once per round   MEMLEDGER_BENCH_ROUNDS  (default 31)
  --scale F           iterations relative to the defaults         MEMLEDGER_BENCH_SCALE   (default 1)
  --only W,W          workloads: pairs, churn, all-cores, realloc, scope-pair
                                                                  MEMLEDGER_BENCH_ONLY    (default all)
  --allocators B,B    binaries to run besides mimalloc-bare       MEMLEDGER_BENCH_ALLOCATORS (default all)
  --threads N         threads for the all-core churn              MEMLEDGER_BENCH_THREADS (default: cores)";

/// Everything the driver needs to know before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Rounds; each runs every binary once.
    pub rounds: usize,
    /// Iterations as a multiple of each workload's default.
    pub scale: f64,
    /// Workloads to run, in table order.
    pub workloads: Vec<Workload>,
    /// Binary names to run besides the baseline; `None`: all.
    pub allocators: Option<Vec<String>>,
    /// Threads for the all-core churn.
    pub threads: usize,
    /// `--help` was given: print [`USAGE`] and run nothing.
    pub help: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            rounds: 31,
            scale: 1.0,
            workloads: Workload::ALL.to_vec(),
            allocators: None,
            threads: available_cores(),
            help: false,
        }
    }
}

impl Options {
    /// Reads the options from `env` (a lookup such as `std::env::var`) and
    /// then `args` (without the program name). `--bench`, which `cargo bench`
    /// passes, is accepted and ignored. Errors name the bad option.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Options, String> {
        let mut options = Options::default();
        for (var, flag) in [
            ("MEMLEDGER_BENCH_ROUNDS", "--rounds"),
            ("MEMLEDGER_BENCH_SCALE", "--scale"),
            ("MEMLEDGER_BENCH_ONLY", "--only"),
            ("MEMLEDGER_BENCH_ALLOCATORS", "--allocators"),
            ("MEMLEDGER_BENCH_THREADS", "--threads"),
        ] {
            if let Some(value) = env(var).filter(|v| !v.trim().is_empty()) {
                options
                    .set(flag, &value)
                    .map_err(|e| format!("{var}: {e}"))?;
            }
        }
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bench" => {}
                "-h" | "--help" => options.help = true,
                flag => {
                    let (flag, value) = match flag.split_once('=') {
                        Some((flag, value)) => (flag.to_string(), value.to_string()),
                        None => {
                            let value = args
                                .next()
                                .ok_or_else(|| format!("{flag}: needs a value"))?;
                            (flag.to_string(), value)
                        }
                    };
                    options
                        .set(&flag, &value)
                        .map_err(|e| format!("{flag}: {e}"))?;
                }
            }
        }
        Ok(options)
    }

    fn set(&mut self, flag: &str, value: &str) -> Result<(), String> {
        let value = value.trim();
        match flag {
            "--rounds" => self.rounds = positive(value)?,
            "--threads" => self.threads = positive(value)?,
            "--scale" => {
                self.scale = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("wants a positive number, got `{value}`"))?;
            }
            "--only" => {
                let picked: Vec<Workload> = list(value)
                    .map(|key| {
                        Workload::from_key(key).ok_or_else(|| format!("unknown workload `{key}`"))
                    })
                    .collect::<Result<_, _>>()?;
                self.workloads = Workload::ALL
                    .into_iter()
                    .filter(|w| picked.contains(w))
                    .collect();
            }
            "--allocators" => self.allocators = Some(list(value).map(String::from).collect()),
            other => return Err(format!("unknown option `{other}`")),
        }
        Ok(())
    }
}

fn positive(value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("wants a whole number above 0, got `{value}`"))
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Options, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Options::parse(args.iter().map(|a| a.to_string()), |var| {
            env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_and_cargo_bench_flag() {
        let o = parse(&["--bench"], &[]).unwrap();
        assert_eq!(o.rounds, 31);
        assert_eq!(o.scale, 1.0);
        assert_eq!(o.workloads, Workload::ALL.to_vec());
        assert_eq!(o.allocators, None);
        assert!(!o.help);
    }

    #[test]
    fn command_line_wins_over_environment() {
        let o = parse(
            &["--rounds", "3", "--only=churn,pairs"],
            &[
                ("MEMLEDGER_BENCH_ROUNDS", "5"),
                ("MEMLEDGER_BENCH_SCALE", "0.25"),
            ],
        )
        .unwrap();
        assert_eq!(o.rounds, 3);
        assert_eq!(o.scale, 0.25);
        // Table order, not the order given.
        assert_eq!(o.workloads, vec![Workload::Pairs, Workload::Churn]);
    }

    #[test]
    fn bad_values_name_the_option() {
        assert!(
            parse(&["--rounds", "0"], &[])
                .unwrap_err()
                .contains("--rounds")
        );
        assert!(parse(&["--scale", "-1"], &[]).is_err());
        assert!(
            parse(&["--only", "heap"], &[])
                .unwrap_err()
                .contains("heap")
        );
        assert!(parse(&["--rounds"], &[]).is_err());
        assert!(parse(&["--frobnicate", "1"], &[]).is_err());
        let e = parse(&[], &[("MEMLEDGER_BENCH_THREADS", "x")]).unwrap_err();
        assert!(e.contains("MEMLEDGER_BENCH_THREADS"));
    }
}

//! What the benchmark prints: the ratio table, the scope pair, owner mode's
//! memory cost, and how many of the contract's targets were met.

use std::fmt::Write as _;

use crate::contender::{Contender, Role, Target};
use crate::footprint::Pattern;
use crate::markdown::{Align, Table};
use crate::options::Options;
use crate::protocol::available_cores;
use crate::results::{Rounds, Spread};
use crate::workload::{BATCHES, Workload};

/// The whole printout, in Markdown.
pub fn render(contenders: &[Contender], rounds: &Rounds, options: &Options) -> String {
    let mut out = String::new();
    let mut verdicts = Verdicts::default();
    let _ = writeln!(
        out,
        "## memledger-alloc: each allocator as the `#[global_allocator]` of its own binary\n\n\
         {} cores; rounds: {} (every binary once per round, in rotated order); iterations ×{}; in each \
         run a workload's figure is its fastest of {BATCHES} batches, and memledger's \
         workloads run inside an entered scope. ratio: ns/op over bare mimalloc's ns/op \
         in the same round, median over rounds (spread: min–max of the per-round \
         ratios). ns/op: median; on a shared machine only the ratios carry over.\n",
        available_cores(),
        options.rounds,
        options.scale
    );
    out += &ratio_table(contenders, rounds, options, &mut verdicts).render();
    if options.workloads.contains(&Workload::ScopePair) {
        let table = scope_pair_table(contenders, rounds, &mut verdicts);
        let _ = writeln!(
            out,
            "\n### {} (absolute, each memledger binary's own run)\n",
            Workload::ScopePair.label(options.threads)
        );
        out += &table.render();
    }
    if let Some(table) = footprint_table(contenders, rounds, &mut verdicts) {
        out += "\n### owner mode's memory cost: usable bytes memledger counts, all blocks live\n\n";
        out += &table.render();
    }
    let scaled: Vec<String> = contenders
        .iter()
        .filter(|c| c.scale != 1.0)
        .map(|c| format!("{} runs ×{} the iterations", c.name, c.scale))
        .collect();
    if !scaled.is_empty() {
        let _ = writeln!(out, "\n{}.", scaled.join("; "));
    }
    let _ = writeln!(
        out,
        "\ntargets met: {} of {}{}",
        verdicts.met,
        verdicts.met + verdicts.missed.len(),
        if verdicts.missed.is_empty() {
            String::new()
        } else {
            format!(" (missed: {})", verdicts.missed.join("; "))
        }
    );
    out
}

#[derive(Default)]
struct Verdicts {
    met: usize,
    missed: Vec<String>,
}

impl Verdicts {
    /// The target cell: the bound and whether `value`, as printed (two
    /// decimals), meets it; so a printed 1.30x never reads as a miss of 1.30x.
    fn judge(&mut self, target: Option<Target>, value: Option<f64>, what: String) -> String {
        match (target, value.map(|v| (v * 100.0).round() / 100.0)) {
            (Some(t), Some(v)) if t.is_met_by(v) => {
                self.met += 1;
                format!("{t}: met")
            }
            (Some(t), Some(_)) => {
                self.missed.push(what);
                format!("{t}: **missed**")
            }
            (Some(t), None) => format!("{t}"),
            (None, _) => String::new(),
        }
    }
}

fn ratio_table(
    contenders: &[Contender],
    rounds: &Rounds,
    options: &Options,
    verdicts: &mut Verdicts,
) -> Table {
    let mut table = Table::new(&[
        ("workload", Align::Left),
        ("allocator", Align::Left),
        ("ns/op", Align::Right),
        ("ratio", Align::Right),
        ("spread", Align::Right),
        ("target", Align::Left),
    ]);
    for &workload in options.workloads.iter().filter(|w| !w.memledger_only()) {
        let label = workload.label(options.threads);
        let mut first = true;
        for (index, contender) in contenders.iter().enumerate() {
            let Some(cell) = rounds.cell(index, workload) else {
                continue;
            };
            let ratio = cell.ratio.map(|r| r.median);
            let target = verdicts.judge(
                contender.role.target(workload),
                ratio,
                format!("{} on {}", contender.name, workload.key()),
            );
            table.row(vec![
                if first { label.clone() } else { String::new() },
                contender.name.to_string(),
                nanos(cell.ns.median),
                ratio.map_or("–".into(), |r| format!("{r:.2}x")),
                match (contender.role, cell.ratio) {
                    (Role::Baseline, _) | (_, None) => "–".into(),
                    (_, Some(s)) => format!("{:.2}–{:.2}x", s.min, s.max),
                },
                target,
            ]);
            first = false;
        }
    }
    table
}

fn scope_pair_table(contenders: &[Contender], rounds: &Rounds, verdicts: &mut Verdicts) -> Table {
    let mut table = Table::new(&[
        ("allocator", Align::Left),
        ("ns per pair", Align::Right),
        ("spread", Align::Right),
        ("target", Align::Left),
    ]);
    for (index, contender) in contenders.iter().enumerate() {
        let Some(cell) = rounds.cell(index, Workload::ScopePair) else {
            continue;
        };
        let target = verdicts.judge(
            contender.role.target(Workload::ScopePair),
            Some(cell.ns.median),
            format!("{} on {}", contender.name, Workload::ScopePair.key()),
        );
        table.row(vec![
            contender.name.to_string(),
            nanos(cell.ns.median),
            spread_ns(cell.ns),
            target,
        ]);
    }
    table
}

/// Counting against owner on each pattern, when both ran. For power-of-two
/// blocks the contract wants no cost at all: no block in a larger size class.
fn footprint_table(
    contenders: &[Contender],
    rounds: &Rounds,
    verdicts: &mut Verdicts,
) -> Option<Table> {
    let counting = contenders.iter().position(|c| c.role == Role::Counting)?;
    let owner = contenders.iter().position(|c| c.role == Role::Owner)?;
    let mut table = Table::new(&[
        ("sizes", Align::Left),
        ("blocks", Align::Right),
        ("requested", Align::Right),
        ("usable, counting", Align::Right),
        ("usable, owner", Align::Right),
        ("owner cost", Align::Right),
        ("target", Align::Left),
    ]);
    let mut any = false;
    for pattern in Pattern::ALL {
        let (Some(c), Some(o)) = (
            rounds.footprint(counting, pattern),
            rounds.footprint(owner, pattern),
        ) else {
            continue;
        };
        any = true;
        let cost = if c.usable > 0 {
            format!("{:+.1}%", (o.usable as f64 / c.usable as f64 - 1.0) * 100.0)
        } else {
            "–".into()
        };
        table.row(vec![
            pattern.label().to_string(),
            c.blocks.to_string(),
            kib(c.requested as f64),
            kib(c.usable as f64),
            kib(o.usable as f64),
            cost,
            if pattern == Pattern::PowersOfTwo {
                if o.usable == c.usable {
                    verdicts.met += 1;
                    "+0.0%: met".into()
                } else {
                    verdicts
                        .missed
                        .push(format!("memledger owner on {}", pattern.key()));
                    "+0.0%: **missed**".into()
                }
            } else {
                String::new()
            },
        ]);
    }
    any.then_some(table)
}

fn nanos(ns: f64) -> String {
    if ns < 100.0 {
        format!("{ns:.2}")
    } else {
        format!("{ns:.0}")
    }
}

fn spread_ns(s: Spread) -> String {
    format!("{}–{} ns", nanos(s.min), nanos(s.max))
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::footprint::Footprint;
    use crate::protocol::ChildReport;

    fn report(pairs: f64, scope: Option<f64>, usable: i64) -> ChildReport {
        let mut r = ChildReport {
            ns_per_op: vec![(Workload::Pairs, pairs)],
            footprints: Vec::new(),
        };
        if let Some(ns) = scope {
            r.ns_per_op.push((Workload::ScopePair, ns));
            r.footprints.push((
                Pattern::PairSizes,
                Footprint {
                    blocks: 4096,
                    requested: 278_528,
                    usable,
                },
            ));
        }
        r
    }

    #[test]
    fn targets_are_judged_on_the_printed_value() {
        let mut v = Verdicts::default();
        let t = Some(Target::Ratio(1.30));
        assert_eq!(v.judge(t, Some(1.3024), "a".into()), "≤ 1.30x: met");
        assert_eq!(v.judge(t, Some(1.3051), "b".into()), "≤ 1.30x: **missed**");
        assert_eq!(v.judge(None, Some(9.0), "c".into()), "");
        assert_eq!((v.met, v.missed), (1, vec!["b".to_string()]));
    }

    #[test]
    fn prints_ratios_targets_and_owner_cost() {
        let contenders = [
            Contender::new("mimalloc (bare)", "mimalloc-bare", Role::Baseline),
            Contender::new("memledger counting", "memledger-counting", Role::Counting),
            Contender::new("memledger owner", "memledger-owner", Role::Owner),
        ];
        let rounds = Rounds {
            reports: vec![
                vec![report(10.0, None, 0), report(10.0, None, 0)],
                vec![report(11.0, Some(2.0), 1024), report(11.0, Some(3.0), 1024)],
                vec![report(14.0, Some(2.0), 1280), report(14.0, Some(9.0), 1280)],
            ],
        };
        let options = Options {
            rounds: 2,
            workloads: vec![Workload::Pairs, Workload::ScopePair],
            ..Options::default()
        };
        let text = render(&contenders, &rounds, &options);
        assert!(
            text.contains("| memledger counting | 11.00 | 1.10x | 1.10–1.10x | ≤ 1.15x: met |"),
            "{text}"
        );
        assert!(
            text.contains("| memledger owner | 14.00 | 1.40x | 1.40–1.40x | ≤ 1.30x: **missed** |"),
            "{text}"
        );
        assert!(
            text.contains("| memledger owner | 5.50 | 2.00–9.00 ns | ≤ 5 ns: **missed** |"),
            "{text}"
        );
        assert!(text.contains("| 1.0 KiB | 1.2 KiB | +25.0% |"), "{text}");
        assert!(text.contains("targets met: 2 of 4"), "{text}");
    }
}

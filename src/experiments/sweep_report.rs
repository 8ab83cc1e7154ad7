//! The `afu report` section of a sweep folder: its job folders merged into one table per
//! experiment and grid point, with each variant's mean ± std and 95 % interval over seeds and
//! paired tests between variants (the statistics of a multi-seed run, over jobs); `meta` jobs
//! per grid point over their seeds ([`crate::meta::seeds`]).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::experiments::common::ExperimentError;
use crate::experiments::generalisation::{self, SizeRuns};
use crate::experiments::image::{self, ImageRun};
use crate::meta::seeds::SeedRun;
use crate::stats::{self, SeedValue};

/// A group of jobs: (experiment, grid point as text).
type GroupKey = (String, String);
/// A job of a group: (variant, seed, job folder).
type GroupJob = (String, u64, std::path::PathBuf);

/// True when `dir` is a sweep folder (it holds `sweep.json`).
pub fn is_sweep(dir: &Path) -> bool {
    dir.join("sweep.json").is_file()
}

/// The metric that stands for a run of `experiment` in a merged table, read from its
/// `summary.json`'s `runs[]`.
fn metric_of(experiment: &str) -> Option<&'static str> {
    match experiment {
        "xor" => Some("test_accuracy"),
        "xor-neuron" => Some("auc"),
        "mnist" | "cifar10" => Some("test_accuracy"),
        _ => None,
    }
}

/// Appends the merged results of the sweep in `dir` to `md` (and claims to `claims`).
///
/// Image experiments whose jobs differ in `limit_train` also get the regularisation section
/// ([`generalisation`](crate::experiments::generalisation)), its figure written under `base`
/// (the report's folder).
pub fn section(
    dir: &Path,
    base: &Path,
    md: &mut String,
    claims: &mut Vec<String>,
) -> Result<(), ExperimentError> {
    let jobs = crate::sweep::read_manifest(dir).map_err(|e| ExperimentError::Config {
        field: "runs",
        message: e.to_string(),
    })?;
    // Groups: experiment and grid point, in the order of the job list.
    let mut groups: Vec<(GroupKey, Vec<GroupJob>)> = Vec::new();
    for (info, job_dir) in jobs.iter() {
        let label = info
            .grid
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let key = (info.experiment.clone(), label);
        let entry = (info.variant.clone(), info.seed, job_dir.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(entry),
            None => groups.push((key, vec![entry])),
        }
    }
    let finished = jobs
        .iter()
        .filter(|(_, d)| d.join("summary.json").is_file())
        .count();
    let _ = writeln!(
        md,
        "## Sweep — `{}`\n\n{} jobs, {} finished.\n",
        dir.display(),
        jobs.len(),
        finished
    );
    let sweep_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sweep".into());
    // Image runs by (experiment, grid without limit_train): their sizes, for the regularisation
    // section.
    let mut by_size: Vec<(String, Vec<String>, Vec<SizeRuns>)> = Vec::new();
    for (group, ((experiment, label), entries)) in groups.iter().enumerate() {
        let title = if label.is_empty() {
            experiment.clone()
        } else {
            format!("{experiment}, {label}")
        };
        let _ = writeln!(md, "### {title}\n");
        let mut names: Vec<String> = Vec::new();
        let mut summaries: Vec<Value> = Vec::new();
        let mut seconds = Vec::new();
        let mut missing = 0usize;
        for (variant, _, job_dir) in entries {
            if !names.contains(variant) {
                names.push(variant.clone());
            }
            let path = job_dir.join("summary.json");
            match std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            {
                Some(v) => {
                    let meta_seconds =
                        || Some(v["search_seconds"].as_f64()? + v["eval_seconds"].as_f64()?);
                    if let Some(s) = v["total_seconds"].as_f64().or_else(meta_seconds) {
                        seconds.push(s);
                    }
                    summaries.push(v);
                }
                None => missing += 1,
            }
        }
        if missing > 0 {
            let _ = writeln!(
                md,
                "{missing} of {} jobs have no summary yet (not run, running or failed); the numbers below are over the finished ones.\n",
                entries.len()
            );
        }
        if !seconds.is_empty() {
            let _ = writeln!(
                md,
                "Time per job: {:.1} s on average, {:.1} s in all.\n",
                seconds.iter().sum::<f64>() / seconds.len() as f64,
                seconds.iter().sum::<f64>()
            );
        }
        let runs: Vec<&Value> = summaries
            .iter()
            .flat_map(|s| s["runs"].as_array().into_iter().flatten())
            .collect();
        match experiment.as_str() {
            "meta" => {
                let mut seed_runs = Vec::new();
                for (_, _, job_dir) in entries {
                    if let Some(r) = SeedRun::load(job_dir)? {
                        seed_runs.push(r);
                    }
                }
                let file = format!("figures/{sweep_name}-meta-{}.svg", group + 1);
                crate::meta::seeds::section(
                    "####",
                    &format!("sweep `{sweep_name}`, {title}"),
                    seed_runs,
                    &base.join(&file),
                    &file,
                    md,
                    claims,
                )?;
            }
            "mnist" | "cifar10" => {
                let image_runs: Vec<ImageRun> = runs
                    .iter()
                    .filter_map(|r| serde_json::from_value((*r).clone()).ok())
                    .collect();
                let rest: Vec<&str> = label
                    .split(", ")
                    .filter(|p| !p.is_empty() && !p.starts_with("limit_train ="))
                    .collect();
                let key = if rest.is_empty() {
                    experiment.clone()
                } else {
                    format!("{experiment}, {}", rest.join(", "))
                };
                let mut sizes: Vec<SizeRuns> = Vec::new();
                for summary in &summaries {
                    let Some(n) = summary["train_images"].as_u64() else {
                        continue;
                    };
                    let these = summary["runs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| serde_json::from_value::<ImageRun>(r.clone()).ok());
                    match sizes.iter_mut().find(|s| s.train_images == n as usize) {
                        Some(s) => s.runs.extend(these),
                        None => sizes.push(SizeRuns {
                            train_images: n as usize,
                            runs: these.collect(),
                        }),
                    }
                }
                match by_size.iter_mut().find(|(k, _, _)| *k == key) {
                    Some((_, n, s)) => {
                        s.extend(sizes);
                        for v in &names {
                            if !n.contains(v) {
                                n.push(v.clone());
                            }
                        }
                    }
                    None => by_size.push((key, names.clone(), sizes)),
                }
                let (mut variants, comparisons) = image::summarise_runs(&names, &image_runs);
                // Each variant's parameter count, from the first job summary that states it.
                for v in &mut variants {
                    v.activation_parameters = summaries
                        .iter()
                        .flat_map(|s| s["variants"].as_array().into_iter().flatten())
                        .find(|sv| sv["name"] == v.name.as_str())
                        .and_then(|sv| sv["activation_parameters"].as_u64())
                        .map(|p| p as usize);
                }
                let epochs: Vec<&Value> = summaries
                    .iter()
                    .flat_map(|s| s["epochs"].as_array().into_iter().flatten())
                    .collect();
                let merged = serde_json::json!({
                    "variants": variants,
                    "comparisons": comparisons,
                    "epochs": epochs,
                    "runs": image_runs,
                });
                let what = format!("sweep, {title}");
                crate::experiments::report::image_results(&merged, &what, md, claims);
            }
            other => {
                let Some(metric) = metric_of(other) else {
                    let _ = writeln!(md, "(no merged table for `{other}` jobs)\n");
                    continue;
                };
                let values: Vec<SeedValue> = runs
                    .iter()
                    .filter_map(|r| {
                        Some(SeedValue {
                            variant: r["variant"].as_str()?.to_string(),
                            seed: r["seed"].as_u64()?,
                            value: r[metric].as_f64()?,
                        })
                    })
                    .collect();
                md.push_str(&generic_table(metric, &names, &values));
            }
        }
        md.push('\n');
    }
    for (i, (key, names, mut sizes)) in by_size.into_iter().enumerate() {
        let distinct: std::collections::BTreeSet<usize> =
            sizes.iter().map(|s| s.train_images).collect();
        if distinct.len() < 2 {
            continue;
        }
        let file = format!("figures/{sweep_name}-generalisation-{}.svg", i + 1);
        generalisation::section(
            &key,
            &mut sizes,
            &names,
            &base.join(&file),
            &file,
            md,
            claims,
        )?;
    }
    Ok(())
}

/// A table of one metric per variant over seeds, and the paired comparisons.
fn generic_table(metric: &str, names: &[String], values: &[SeedValue]) -> String {
    let mut md =
        format!("| variant | seeds | {metric} (mean ± std [95 % interval]) |\n|---|---:|---|\n");
    for v in stats::variant_stats(names, values) {
        if v.seeds.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            v.variant,
            v.seeds.len(),
            stats::format_spread(&v.spread, 4)
        );
    }
    let comparisons = stats::pairwise(metric, names, values);
    if !comparisons.is_empty() {
        md.push_str("\nPaired comparisons over the same seeds:\n\n");
        md.push_str(&stats::comparisons_table(&comparisons, 4));
    }
    md
}

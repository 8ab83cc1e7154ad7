//! `afu run CONFIG`: the experiment a config.toml describes.

use std::path::PathBuf;

use clap::Args;

use afu_cli::experiments::{mnist, smoothness, xor, xor_neuron};

use super::{UsageError, classify, print_image_summary};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A config.toml written by any experiment (its `experiment` field says which).
    config: PathBuf,
    /// Output folder (default: runs/<experiment>/<timestamp>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out (its settings must be these; mnist and cifar10 continue from
    /// their checkpoints, the others run again).
    #[arg(long)]
    resume: bool,
    /// Replace the run already in --out.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// `afu run CONFIG`: the experiment a config.toml describes.
pub fn run(a: RunArgs) -> anyhow::Result<()> {
    use afu_cli::experiments::{RunConfig, cifar};
    let text = std::fs::read_to_string(&a.config)
        .map_err(|e| UsageError::msg(format!("{}: {e}", a.config.display())))?;
    if afu_cli::meta::run::is_meta_config(&text) {
        return run_meta(&a, &text);
    }
    let config: RunConfig = toml::from_str(&text).map_err(|e| {
        UsageError::msg(format!(
            "{}: not an afu run config: {}",
            a.config.display(),
            e.to_string().lines().next().unwrap_or("")
        ))
    })?;
    let in_file = |e: afu_cli::experiments::common::ExperimentError| {
        UsageError::msg(format!("{}: {e}", a.config.display()))
    };
    let progress = !a.no_progress;
    if a.resume && a.out.is_none() {
        return Err(UsageError::msg(
            "--resume needs --out DIR (the folder of the run to continue)",
        )
        .into());
    }
    let context = |what: &str, out: &std::path::Path| {
        format!(
            "afu run {} ({what}, output folder {})",
            a.config.display(),
            out.display()
        )
    };
    match config {
        RunConfig::Xor(c) => {
            c.validate().map_err(in_file)?;
            let out = a.out.clone().unwrap_or_else(xor::default_out);
            super::claim_folder(&out, RunConfig::Xor(c.clone()), a.resume, a.force)?;
            let s = xor::run(&c, &out, progress).map_err(|e| classify(e, context("xor", &out)))?;
            super::xor::print(&s, &out)?;
        }
        RunConfig::XorNeuron(c) => {
            c.validate().map_err(in_file)?;
            let out = a.out.clone().unwrap_or_else(xor_neuron::default_out);
            super::claim_folder(&out, RunConfig::XorNeuron(c.clone()), a.resume, a.force)?;
            let s = xor_neuron::run(&c, &out, progress)
                .map_err(|e| classify(e, context("xor-neuron", &out)))?;
            super::xor_neuron::print(&s, &out)?;
        }
        RunConfig::Smoothness(c) => {
            let out = a.out.clone().unwrap_or_else(smoothness::default_out);
            super::claim_folder(&out, RunConfig::Smoothness(c.clone()), a.resume, a.force)?;
            let s = smoothness::run(&c, &out, progress)
                .map_err(|e| classify(e, context("smoothness", &out)))?;
            super::smoothness::print(&s, &out)?;
        }
        RunConfig::Mnist(c) => {
            c.validate().map_err(in_file)?;
            let out = a.out.clone().unwrap_or_else(mnist::default_out);
            super::claim_folder(&out, RunConfig::Mnist(c.clone()), a.resume, a.force)?;
            let s = mnist::run(&c, &out, progress, a.resume)
                .map_err(|e| classify(e, context("mnist", &out)))?;
            print_image_summary(&s, &out)?;
        }
        RunConfig::Cifar10(c) => {
            c.validate().map_err(in_file)?;
            let out = a.out.clone().unwrap_or_else(cifar::default_out);
            super::claim_folder(&out, RunConfig::Cifar10(c.clone()), a.resume, a.force)?;
            let s = cifar::run(&c, &out, progress, a.resume)
                .map_err(|e| classify(e, context("cifar10", &out)))?;
            print_image_summary(&s, &out)?;
        }
        // Meta configs were recognised above; their own reader names bad fields better.
        RunConfig::Meta(_) => return run_meta(&a, &text),
    }
    Ok(())
}

/// `afu run` of an `afu meta` run's `config.toml` (meta runs keep their own folder rules:
/// `--resume` continues the search, more generations allowed).
fn run_meta(a: &RunArgs, text: &str) -> anyhow::Result<()> {
    use afu_cli::meta::run as meta_run;
    let config = meta_run::config_from_toml(text, &a.config).map_err(UsageError::of)?;
    if a.resume && a.out.is_none() {
        return Err(UsageError::msg(
            "--resume needs --out DIR (the folder of the run to continue)",
        )
        .into());
    }
    let out = a.out.clone().unwrap_or_else(meta_run::default_out);
    let context = || {
        format!(
            "afu run {} (meta, output folder {})",
            a.config.display(),
            out.display()
        )
    };
    meta_run::claim_folder(&out, &config, a.resume, a.force).map_err(|e| classify(e, context()))?;
    let s = meta_run::run(&config, &out, a.resume, !a.no_progress)
        .map_err(|e| classify(e, context()))?;
    super::meta::print(&s, &out)
}

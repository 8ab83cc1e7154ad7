//! `afu meta`: meta-learn an AFU with CMA-ES on the loss change of small nets in K steps (the
//! paper's future work), then test it on held-out tasks.

use std::path::PathBuf;

use clap::Args;

use afu_cli::afu::BaseActivation;
use afu_cli::meta::run as meta_run;
use afu_cli::meta::{MetaConfig, MetaLoss, MetaStart};

use super::{UsageError, classify};

#[derive(Args, Debug)]
pub struct MetaArgs {
    /// Output folder (default: runs/meta/<timestamp>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Tiny settings (a few generations of tiny tasks): a smoke run of seconds.
    #[arg(long)]
    quick: bool,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Replace the run already in --out.
    #[arg(long)]
    force: bool,
    /// Continue the run in --out from its checkpoint (more --generations allowed).
    #[arg(long)]
    resume: bool,
    /// CMA-ES generations [default: 30].
    #[arg(long)]
    generations: Option<usize>,
    /// CMA-ES population λ (≥ 2) [default: 4 + ⌊3 ln(3N+1)⌋].
    #[arg(long)]
    population: Option<usize>,
    /// Tasks per generation [default: 8].
    #[arg(long)]
    tasks: Option<usize>,
    /// Inner steps K: the meta-loss horizon [default: 50].
    #[arg(long, allow_negative_numbers = true)]
    inner_steps: Option<i64>,
    /// Held-out evaluation tasks [default: 20].
    #[arg(long)]
    held_out: Option<usize>,
    /// The evaluation's long horizon is this many times K [default: 10].
    #[arg(long, allow_negative_numbers = true)]
    full_factor: Option<i64>,
    /// Seed of tasks, nets and CMA-ES [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Hidden units N of the AFU [default: 8].
    #[arg(long)]
    hidden: Option<usize>,
    /// Base activation ψ of the AFU [default: relu].
    #[arg(long)]
    base: Option<BaseActivation>,
    /// Start of the search: relu-fit (the AFU fitted to relu) or random [default: relu-fit].
    #[arg(long)]
    start: Option<String>,
    /// decrease: (L_K − L_0)/L_0 (the paper's); final: L_K / ln 2 [default: decrease].
    #[arg(long)]
    meta_loss: Option<String>,
    /// Initial CMA-ES step size [default: 0.3].
    #[arg(long)]
    sigma0: Option<f64>,
    /// Inner Adam learning rate [default: 0.001; --quick: 0.01].
    #[arg(long)]
    lr: Option<f64>,
    /// Training (and test) points per 2-D task [default: 200].
    #[arg(long)]
    points: Option<usize>,
    /// MNIST-format data folder: adds image tasks (a random class pair) to the distribution.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Worker threads (default: all cores); results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
}

fn step_count(name: &str, v: i64) -> Result<usize, UsageError> {
    if v < 1 {
        return Err(UsageError::msg(format!(
            "--{name} must be at least 1, got {v}"
        )));
    }
    Ok(v as usize)
}

/// The settings the arguments ask for.
pub fn config_of(args: &MetaArgs) -> Result<MetaConfig, UsageError> {
    let mut c = if args.quick {
        MetaConfig::quick()
    } else {
        MetaConfig::default()
    };
    macro_rules! set {
        ($($f:ident),*) => {$(if let Some(v) = args.$f.clone() { c.$f = v; })*};
    }
    set!(
        generations,
        tasks,
        held_out,
        seed,
        hidden,
        base,
        sigma0,
        lr,
        points
    );
    if let Some(h) = args.hidden
        && args.population.is_none()
        && !args.quick
    {
        c.population = afu_cli::meta::cmaes::default_population(3 * h + 1);
    }
    if let Some(p) = args.population {
        c.population = p;
    }
    if let Some(k) = args.inner_steps {
        c.inner_steps = step_count("inner-steps", k)?;
    }
    if let Some(f) = args.full_factor {
        c.full_factor = step_count("full-factor", f)?;
    }
    if let Some(s) = &args.start {
        c.start = s.parse::<MetaStart>().map_err(UsageError::msg)?;
    }
    if let Some(m) = &args.meta_loss {
        c.meta_loss = m.parse::<MetaLoss>().map_err(UsageError::msg)?;
    }
    if let Some(d) = &args.data {
        if !d.is_dir() {
            return Err(UsageError::msg(format!(
                "--data {}: no such folder",
                d.display()
            )));
        }
        c.data = Some(d.clone());
    }
    c.validate().map_err(UsageError::of)?;
    Ok(c)
}

pub fn run(args: MetaArgs) -> anyhow::Result<()> {
    if args.threads == Some(0) {
        return Err(UsageError::msg("--threads must be at least 1").into());
    }
    let config = config_of(&args)?;
    if args.resume && args.out.is_none() {
        return Err(UsageError::msg(
            "--resume needs --out DIR (the folder of the run to continue)",
        )
        .into());
    }
    if let Some(t) = args.threads
        && let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
    {
        afu_cli::note!("warning: --threads {t} not applied ({e})");
    }
    let out = args.out.clone().unwrap_or_else(meta_run::default_out);
    let context = || format!("afu meta (output folder {})", out.display());
    meta_run::claim_folder(&out, &config, args.resume, args.force)
        .map_err(|e| classify(e, context()))?;
    let s = meta_run::run(&config, &out, args.resume, !args.no_progress)
        .map_err(|e| classify(e, context()))?;
    print(&s, &out)
}

/// Prints the summary of a finished meta run in `out`.
pub fn print(s: &afu_cli::meta::run::MetaSummary, out: &std::path::Path) -> anyhow::Result<()> {
    afu_cli::outln!(
        "meta-loss of the distribution mean: {:.4} (generation 1) → {:.4} (generation {})",
        s.centre_first,
        s.centre_last,
        s.generations_done
    )?;
    afu_cli::outln!(
        "{:<15} {:>18} {:>18} {:>20} {:>18}",
        "held-out",
        "loss after K",
        "loss after full",
        "steps to target",
        "test accuracy"
    )?;
    for v in &s.variants {
        afu_cli::outln!(
            "{:<15} {:>18} {:>18} {:>20} {:>18}",
            v.name,
            afu_cli::meta::report::pm(&v.loss_at_k, 4),
            afu_cli::meta::report::pm(&v.loss_full, 4),
            afu_cli::meta::report::pm(&v.steps_to_target, 1),
            afu_cli::meta::report::pm(&v.test_accuracy, 4),
        )?;
    }
    afu_cli::outln!("faster convergence: {} — {}", s.verdict, s.verdict_reason)?;
    afu_cli::outln!(
        "search {:.1} s, evaluation {:.1} s; results in {}",
        s.search_seconds,
        s.eval_seconds,
        out.display()
    )?;
    Ok(())
}

//! The `afu` command line: parse, build a config, call the library, print. One module per
//! subcommand in `commands/`.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use afu_cli::bench::CountingAlloc;

/// Counts allocations for `afu bench kernels`' peak-memory figures; other commands leave
/// counting off (see [`afu_cli::bench::count_allocations`]).
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Learned activation functions (AFUs): the paper's experiments and tools.
#[derive(Parser, Debug)]
#[command(name = "afu", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Toy XOR problem (paper §2.2.1): 2→4→1 net with a shared AFU vs fixed activations.
    Xor(commands::xor::XorArgs),
    /// One linear neuron + an AFU solves XOR on the four points (±1, ±1).
    XorNeuron(commands::xor_neuron::XorNeuronArgs),
    /// Smoothness of random-net landscapes under a learned AFU vs fixed activations (paper §2.2.2).
    Smoothness(commands::smoothness::SmoothnessArgs),
    /// MNIST-format data (MNIST, Fashion-MNIST, ...) with the PyTorch-example CNN (paper §2.2.3).
    Mnist(commands::mnist::MnistArgs),
    /// CIFAR-10 (binary version) with the paper code's MobileNet (paper §2.2.4); a GPU job at full size.
    Cifar10(commands::cifar::CifarArgs),
    /// Meta-learn an AFU (paper §4): CMA-ES on the loss change of small nets in K steps.
    Meta(commands::meta::MetaArgs),
    /// Run (or continue, with --resume) the experiment a config.toml describes: a run folder's,
    /// or a sweep job's.
    Run(commands::run::RunArgs),
    /// Many runs from one file: experiments × variants × seeds × settings as independent jobs,
    /// run here (--jobs J) or on a Slurm cluster (--emit slurm); resumable.
    Sweep(commands::sweep::SweepArgs),
    /// What each learned AFU of a run resembles: nearest known function, V shape, saturation, ...
    Inspect(commands::inspect::InspectArgs),
    /// Evaluate the checkpoints of an `afu mnist` run, as trained and with baked (piecewise-linear) AFUs.
    Eval(commands::eval::EvalArgs),
    /// Bake learned AFUs into equivalent piecewise-linear relu AFUs (fast inference, stated error).
    Bake(commands::bake::BakeArgs),
    /// One Markdown report over run and sweep folders: our numbers beside the paper's, its conclusions measured.
    Report(commands::report::ReportArgs),
    /// Benchmarks (timings and memory printed side by side from one run).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Datasets.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
}

fn main() -> ExitCode {
    // Output piped into `head` and the like: end quietly when the reader goes away, as other
    // command-line tools do, instead of panicking on the failed write.
    #[cfg(unix)]
    // SAFETY: restores the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Denormals flushed to zero in this thread before any other thread exists, so that every
    // thread (rayon's pool, the kernels' helpers) inherits it: see `afu::fpenv`.
    afu_cli::fpenv::set_flush_denormals(true);
    let cli = Cli::parse();
    // `afu bench cnn-step` measures Burn's ops with the default allocator settings first and
    // applies ours itself.
    if !matches!(
        cli.command,
        Command::Bench(commands::bench::BenchCommand::CnnStep(_))
    ) {
        afu_cli::tune_allocator();
    }
    // Only commands whose loops check the flag get the handler (they stop within a step and
    // write what is complete); the others (data fetch, bench, eval, report, ...) have nothing
    // to save, and Ctrl-C ends them at once, as without a handler.
    let checks_interrupts = matches!(
        cli.command,
        Command::Xor(_)
            | Command::XorNeuron(_)
            | Command::Smoothness(_)
            | Command::Mnist(_)
            | Command::Cifar10(_)
            | Command::Meta(_)
            | Command::Run(_)
            | Command::Sweep(_)
    );
    if checks_interrupts && let Err(e) = afu_cli::interrupt::install_handler() {
        afu_cli::note!(
            "warning: no Ctrl-C handler ({e}); an interrupted run keeps only its last epoch's checkpoint"
        );
    }
    let result = match cli.command {
        Command::Xor(a) => commands::xor::run(a),
        Command::XorNeuron(a) => commands::xor_neuron::run(a),
        Command::Smoothness(a) => commands::smoothness::run(a),
        Command::Mnist(a) => commands::mnist::run(a),
        Command::Cifar10(a) => commands::cifar::run(a),
        Command::Meta(a) => commands::meta::run(a),
        Command::Run(a) => commands::run::run(a),
        Command::Sweep(a) => commands::sweep::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Report(a) => commands::report::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Bake(a) => commands::bake::run(a),
        Command::Bench(c) => commands::bench::run(c),
        Command::Data(c) => commands::data::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e)
            if e.chain().any(|c| {
                c.is::<commands::SweepInterrupted>()
                    || matches!(
                        c.downcast_ref::<afu_cli::experiments::common::ExperimentError>(),
                        Some(
                            afu_cli::experiments::common::ExperimentError::Interrupted { .. }
                                | afu_cli::experiments::common::ExperimentError::Stopped { .. }
                        )
                    )
            }) =>
        {
            afu_cli::note!("{}", commands::render_error(&e));
            ExitCode::from(130)
        }
        Err(e) => {
            let usage = e.chain().any(|c| c.is::<commands::UsageError>());
            afu_cli::note!("error: {}", commands::render_error(&e));
            if usage {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

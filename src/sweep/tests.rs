use std::path::{Path, PathBuf};

use super::*;
use crate::experiments::RunConfig;

fn sweep(text: &str) -> Result<Sweep, SweepError> {
    load_str(
        text,
        Path::new("sweep.toml"),
        "sweep",
        Path::new("/tmp/sweep.toml"),
    )
}

fn ok(text: &str) -> Sweep {
    match sweep(text) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

/// The error message of a bad sweep file.
fn bad(text: &str) -> String {
    match sweep(text) {
        Ok(s) => panic!("accepted: {} jobs", s.jobs.len()),
        Err(e) => {
            assert!(e.is_usage(), "{e}");
            let m = e.to_string();
            assert!(!m.contains('\n'), "not one line: {m}");
            m
        }
    }
}

fn mnist(c: &RunConfig) -> &crate::experiments::mnist::MnistConfig {
    match c {
        RunConfig::Mnist(c) => c,
        other => panic!("not mnist: {other:?}"),
    }
}

fn xor(c: &RunConfig) -> &crate::experiments::xor::XorConfig {
    match c {
        RunConfig::Xor(c) => c,
        other => panic!("not xor: {other:?}"),
    }
}

const MNIST: &str = r#"
[[experiment]]
name = "mnist"
variants = ["relu", "afu-relu-8-layer"]
seeds = [1, 2, 3]
[experiment.settings]
data = "/data/fashion"
epochs = 1
[experiment.grid]
limit_train = [1000, 5000]
"#;

#[test]
fn expands_variants_seeds_and_grid() {
    let s = ok(MNIST);
    assert_eq!(s.name, "sweep");
    assert_eq!(s.out, PathBuf::from("runs/sweeps/sweep"));
    assert_eq!(s.jobs.len(), 2 * 3 * 2);
    let ids: Vec<&str> = s.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        &ids[..4],
        [
            "mnist-relu-s1-limit_train-1000",
            "mnist-afu-relu-8-layer-s1-limit_train-1000",
            "mnist-relu-s1-limit_train-5000",
            "mnist-afu-relu-8-layer-s1-limit_train-5000",
        ]
    );
    let j = &s.jobs[3];
    assert_eq!(j.experiment, "mnist");
    assert_eq!(j.variant, "afu-relu-8-layer");
    assert_eq!(j.seed, 1);
    assert_eq!(j.grid.get("limit_train").map(String::as_str), Some("5000"));
    let c = mnist(&j.config);
    assert_eq!(c.variants, ["afu-relu-8-layer"]);
    assert_eq!(c.seed, 1);
    assert_eq!(c.epochs, 1);
    assert_eq!(c.limit_train, Some(5000));
    assert_eq!(c.data, PathBuf::from("/data/fashion"));
    // The rest is the paper config.
    assert_eq!(c.batch_size, 64);
    assert_eq!(c.limit_test, None);
    let last = s.jobs.last().unwrap();
    assert_eq!(last.id, "mnist-afu-relu-8-layer-s3-limit_train-5000");
    assert_eq!(mnist(&last.config).seed, 3);
}

#[test]
fn integer_seeds_count_from_first_seed() {
    let s = ok(r#"
out = "elsewhere"
[[experiment]]
name = "xor"
variants = ["relu"]
seeds = 3
quick = true
[[experiment]]
name = "xor-neuron"
variants = ["tanh"]
seeds = 2
first_seed = 10
[[experiment]]
name = "mnist"
variants = ["relu"]
seeds = 2
[[experiment]]
name = "cifar10"
variants = ["relu"]
"#);
    assert_eq!(s.out, PathBuf::from("elsewhere"));
    let ids: Vec<&str> = s.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "xor-relu-s0",
            "xor-relu-s1",
            "xor-relu-s2",
            "xor-neuron-tanh-s10",
            "xor-neuron-tanh-s11",
            "mnist-relu-s1",
            "mnist-relu-s2",
            "cifar10-relu-s1",
        ]
    );
    let x = xor(&s.jobs[2].config);
    assert_eq!((x.first_seed, x.seeds), (2, 1));
    // quick = true starts from XorConfig::quick().
    assert_eq!(x.steps, crate::experiments::xor::XorConfig::quick().steps);
    match &s.jobs[4].config {
        RunConfig::XorNeuron(c) => {
            assert_eq!(
                (c.first_seed, c.seeds, c.variants.as_slice()),
                (11, 1, &["tanh".to_string()][..])
            );
            assert_eq!(c.steps, 1000);
        }
        other => panic!("{other:?}"),
    }
    match &s.jobs[7].config {
        RunConfig::Cifar10(c) => {
            assert_eq!(c.seed, 1);
            assert!(c.data.is_absolute() && c.data.ends_with("data/cifar10"));
            assert_eq!(c.epochs, 100);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn merge_order_settings_then_grid_then_variant_and_seed() {
    let s = ok(r#"
[[experiment]]
name = "mnist"
variants = ["afu-relu-8"]
seeds = [7]
quick = true
[experiment.settings]
epochs = 3
lr = 0.5
afu_start.afu_init = "tanh"
"afu_start.freeze_afu" = true
[experiment.grid]
epochs = [1, 2]
afu_start.afu_from = ["runs/a", "/abs/b"]
"#);
    assert_eq!(s.jobs.len(), 4);
    let c = mnist(&s.jobs[0].config);
    // quick base, settings on top, the grid over the settings.
    assert_eq!(c.limit_train, Some(640));
    assert_eq!(c.lr, 0.5);
    assert_eq!(c.epochs, 1);
    assert_eq!(c.seed, 7);
    assert_eq!(c.variants, ["afu-relu-8"]);
    // Nested fields from dotted keys, quoted dotted keys and the grid are merged, not replaced.
    assert_eq!(c.afu_start.afu_init, Some(crate::afu::BaseActivation::Tanh));
    assert!(c.afu_start.freeze_afu);
    let from = c.afu_start.afu_from.as_ref().unwrap();
    assert!(from.is_absolute() && from.ends_with("runs/a"), "{from:?}");
    assert_eq!(
        mnist(&s.jobs[2].config).afu_start.afu_from,
        Some(PathBuf::from("/abs/b"))
    );
    // The last grid key (sorted) varies fastest.
    assert_eq!(mnist(&s.jobs[1].config).epochs, 2);
    // Grid keys in sorted order, values sanitised.
    assert_eq!(
        s.jobs[2].id,
        "mnist-afu-relu-8-s7-afu_start.afu_from-_abs_b-epochs-1"
    );
    assert_eq!(
        s.jobs[2].grid.get("afu_start.afu_from").map(String::as_str),
        Some("/abs/b")
    );
}

#[test]
fn relative_data_is_made_absolute() {
    let s = ok(r#"
[[experiment]]
name = "mnist"
variants = ["relu"]
settings = { data = "data/fashion" }
"#);
    let c = mnist(&s.jobs[0].config);
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(c.data, cwd.join("data/fashion"));
}

#[test]
fn every_example_sweep_expands() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sweeps");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let s = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.jobs.is_empty(), "{}", path.display());
        assert_eq!(s.source, path);
        n += 1;
    }
    for name in [
        "xor-seeds",
        "xor-neuron",
        "mnist-seeds",
        "mnist-data-size",
        "cifar10",
        "meta-seeds",
    ] {
        assert!(
            dir.join(format!("{name}.toml")).exists(),
            "{name}.toml missing"
        );
    }
    assert!(n >= 6);
    let s = load(&dir.join("meta-seeds.toml")).unwrap();
    assert_eq!(s.jobs.len(), 6);
    assert_eq!(s.jobs[1].id, "meta-s0-meta_loss-final");
    let c = meta(&s.jobs[5].config);
    assert_eq!(
        (c.generations, c.population, c.tasks, c.inner_steps, c.seed),
        (30, 12, 8, 50, 2)
    );
    let s = load(&dir.join("mnist-seeds.toml")).unwrap();
    assert_eq!(s.jobs.len(), 9);
    let c = mnist(&s.jobs[0].config);
    assert_eq!(c.data, PathBuf::from("/usr/share/datasets/fashion-mnist"));
    assert_eq!((c.epochs, c.limit_train), (1, Some(5000)));
}

#[test]
fn bad_files_name_the_field() {
    let cases: &[(&str, &str)] = &[
        ("out = [", "sweep.toml: not valid TOML: line 1, column"),
        (
            "[[experiment]]\nname = \"mnst\"\nvariants = [\"relu\"]",
            "sweep.toml: experiment[0].name: unknown experiment 'mnst' (expected xor, xor-neuron, mnist, cifar10, meta)",
        ),
        (
            "[[experiment]]\nvariants = [\"relu\"]",
            "experiment[0].name: missing",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\", \"afu-relu\"]",
            "sweep.toml: experiment[0].variants[1]: bad activation 'afu-relu'",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\", \"swoosh\"]",
            "experiment[0].variants[1]: bad activation 'swoosh'",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = []",
            "experiment[0].variants: empty list",
        ),
        (
            "[[experiment]]\nname = \"xor\"",
            "experiment[0].variants: missing",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\", \"relu\"]",
            "experiment[0].variants[1]: 'relu' appears twice",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\nseeds = []",
            "experiment[0].seeds: empty",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\nseeds = 0",
            "experiment[0].seeds: empty",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\nseeds = [1, -2]",
            "experiment[0].seeds[1]: expected a non-negative integer",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\nseeds = [1, 1]",
            "experiment[0].seeds[1]: seed 1 appears twice",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\nseeds = [1]\nfirst_seed = 2",
            "experiment[0].first_seed: only allowed with an integer seeds",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\nseeds = \"3\"",
            "experiment[0].seeds: expected a seed count",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\n[experiment.grid]\nsteps = []",
            "experiment[0].grid.steps: empty list",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\n[experiment.grid]\nsteps = 5",
            "experiment[0].grid.steps: expected a list of values",
        ),
        (
            "[[experiment]]\nname = \"mnist\"\nvariants = [\"relu\"]\n[experiment.settings]\nepochz = 1",
            "sweep.toml: experiment[0].settings.epochz: unknown field `epochz`",
        ),
        (
            "[[experiment]]\nname = \"mnist\"\nvariants = [\"relu\"]\n[experiment.settings]\nafu_start.afu_fro = \"x\"",
            "experiment[0].settings.afu_start.afu_fro: unknown field `afu_fro`",
        ),
        (
            "[[experiment]]\nname = \"mnist\"\nvariants = [\"relu\"]\n[experiment.settings]\nepochs = \"ten\"",
            "experiment[0].settings.epochs: invalid type: string \"ten\"",
        ),
        (
            "[[experiment]]\nname = \"mnist\"\nvariants = [\"relu\"]\n[experiment.settings]\nlimit_train = 10\nepochs = 0",
            "experiment[0].settings.epochs: must be at least 1",
        ),
        (
            "[[experiment]]\nname = \"mnist\"\nvariants = [\"relu\"]\n[experiment.grid]\nlimit_train = [100, -1]",
            "experiment[0].grid.limit_train[1]: invalid value",
        ),
        (
            "[[experiment]]\nname = \"mnist\"\nvariants = [\"relu\"]\n[experiment.grid]\nlimit_train = [100, 0]",
            "experiment[0].grid.limit_train[1]: must be at least 1",
        ),
        (
            "[[experiment]]\nname = \"mnist\"\nvariants = [\"relu\"]\n[experiment.grid]\nkernel = [\"auto\", \"fastest\"]",
            "experiment[0].grid.kernel[1]: unknown variant `fastest`",
        ),
        (
            "[[experiment]]\nname = \"mnist\"\nvariants = [\"relu\"]\n[experiment.settings]\nseed = 3",
            "experiment[0].settings.seed: set by the sweep",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\n[experiment.grid]\nfirst_seed = [1, 2]",
            "experiment[0].grid.first_seed: set by the sweep",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\n[experiment.settings]\nvariants = [\"tanh\"]",
            "experiment[0].settings.variants: set by the sweep",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\nquick = 1",
            "experiment[0].quick: expected true or false",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\nsetting = {}",
            "experiment[0].setting: unknown key",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\nsettings = 3",
            "experiment[0].settings: expected a table",
        ),
        (
            "outs = \"x\"\n[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]",
            "sweep.toml: outs: unknown key",
        ),
        (
            "out = \"x\"",
            "sweep.toml: experiment: no [[experiment]] blocks",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\n[experiment.grid]\ncentre = [\"1/2\", \"1_2\"]",
            "experiment[0].grid.centre[0]: invalid type",
        ),
        (
            "[[experiment]]\nname = \"xor\"\nvariants = [\"relu\"]\n[[experiment]]\nname = \"xor\"\nvariants = [\"tanh\", \"relu\"]",
            "sweep.toml: experiment[1]: two jobs get the id 'xor-relu-s0' (also made by experiment[0])",
        ),
        (
            "[[experiment]]\nname = \"mnist\"\nvariants = [\"relu\"]\n[experiment.grid]\ndata = [\"a/b\", \"a_b\"]",
            "experiment[0]: two jobs get the id 'mnist-relu-s1-data-a_b'",
        ),
    ];
    for (text, want) in cases {
        let got = bad(text);
        eprintln!("{got}");
        assert!(got.contains(want), "for\n{text}\nwant: {want}\ngot:  {got}");
    }
}

#[test]
fn reading_a_missing_file_is_a_usage_error() {
    let e = load(Path::new("/no/such/sweep.toml")).unwrap_err();
    assert!(e.is_usage());
    assert!(
        e.to_string()
            .starts_with("/no/such/sweep.toml: cannot read"),
        "{e}"
    );
}

const XOR: &str = r#"
[[experiment]]
name = "xor"
variants = ["relu", "afu-relu-8"]
seeds = 2
quick = true
settings = { steps = 5 }
"#;

#[test]
fn prepare_writes_configs_and_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sw");
    let s = ok(XOR);
    prepare(&s, &out).unwrap();
    for j in &s.jobs {
        let dir = job_dir(&out, &j.id);
        let text = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        assert!(text.contains("experiment = \"xor\""), "{text}");
        let back: RunConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, j.config);
        assert_eq!(job_state(&dir), JobState::New);
    }
    let m = read_manifest(&out).unwrap();
    assert_eq!(m.len(), 4);
    assert_eq!(m[0].0.id, "xor-relu-s0");
    assert_eq!(m[0].0.experiment, "xor");
    assert_eq!(m[1].0.variant, "afu-relu-8");
    assert_eq!(m[3].0.seed, 1);
    assert_eq!(m[2].1, out.join("jobs/xor-relu-s1"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(v["name"], "sweep");
    assert_eq!(v["source"], "/tmp/sweep.toml");
    assert_eq!(v["jobs"][0]["dir"], "jobs/xor-relu-s0");
    let created = v["created"].clone();
    // Again: nothing changes but `updated`.
    prepare(&s, &out).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(v["created"], created);
    // States.
    let dir = job_dir(&out, "xor-relu-s0");
    std::fs::write(dir.join("log.txt"), "x").unwrap();
    assert_eq!(job_state(&dir), JobState::Started);
    std::fs::write(dir.join("summary.json"), "{}").unwrap();
    assert_eq!(job_state(&dir), JobState::Finished);
    // The sweep file changed under the folder.
    let changed = ok(&XOR.replace("steps = 5", "steps = 6"));
    let e = prepare(&changed, &out).unwrap_err();
    assert!(
        matches!(&e, SweepError::Changed { job, .. } if job == "xor-relu-s0"),
        "{e}"
    );
    assert!(e.is_usage());
    // Not a sweep folder.
    let e = read_manifest(tmp.path()).unwrap_err();
    assert!(e.to_string().contains("not a sweep folder"), "{e}");
}

#[test]
fn estimate_uses_finished_jobs_else_builtin() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sw");
    let s = ok(XOR);
    prepare(&s, &out).unwrap();
    let e = estimate(&s, &out, 2);
    assert_eq!((e.total, e.finished, e.to_run), (4, 0, 4));
    assert!(e.rough && e.seconds > 0.0);
    assert!(e.to_string().contains("rough"), "{e}");
    for id in ["xor-relu-s0", "xor-afu-relu-8-s0"] {
        std::fs::write(
            job_dir(&out, id).join("summary.json"),
            r#"{"total_seconds": 10.0}"#,
        )
        .unwrap();
    }
    let e = estimate(&s, &out, 2);
    assert_eq!((e.finished, e.to_run), (2, 2));
    assert!(!e.rough);
    assert!((e.job_seconds - 20.0).abs() < 1e-9, "{e:?}");
    assert!((e.seconds - 10.0).abs() < 1e-9, "{e:?}");
    let e = estimate(&s, &out, 1);
    assert!((e.seconds - 20.0).abs() < 1e-9, "{e:?}");
}

#[test]
fn slurm_script_is_an_array_over_the_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sw");
    let s = ok(XOR);
    let script = emit_slurm(
        &s,
        &out,
        &SlurmOptions {
            exe: PathBuf::from("/opt/afu/bin/afu"),
            cpus_per_task: 4,
            time: Some("01:00:00".into()),
            partition: None,
        },
    )
    .unwrap();
    assert_eq!(script, out.join("sweep.slurm"));
    let text = std::fs::read_to_string(&script).unwrap();
    for want in [
        "#SBATCH --array=0-3\n",
        "#SBATCH --cpus-per-task=4\n",
        "#SBATCH --requeue\n",
        "#SBATCH --signal=B:INT@120\n",
        "#SBATCH --time=01:00:00\n",
        &format!("#SBATCH --output={}/jobs/slurm-%A_%a.out\n", out.display()),
        "set -euo pipefail\n",
        "AFU=\"${AFU:-/opt/afu/bin/afu}\"\n",
        "exec \"$AFU\" run \"$SWEEP/jobs/$JOB/config.toml\" --out \"$SWEEP/jobs/$JOB\" --resume --no-progress\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains("--partition"));
    let jobs = std::fs::read_to_string(out.join("jobs.txt")).unwrap();
    assert_eq!(
        jobs,
        "xor-relu-s0\nxor-afu-relu-8-s0\nxor-relu-s1\nxor-afu-relu-8-s1\n"
    );
    assert!(out.join("jobs/xor-relu-s1/config.toml").exists());
    let e = emit_slurm(
        &s,
        &tmp.path().join("with space"),
        &SlurmOptions {
            exe: PathBuf::from("/opt/afu"),
            cpus_per_task: 1,
            time: None,
            partition: None,
        },
    )
    .unwrap_err();
    assert!(e.is_usage(), "{e}");
}

fn meta(c: &RunConfig) -> &crate::meta::MetaConfig {
    match c {
        RunConfig::Meta(c) => c,
        other => panic!("not meta: {other:?}"),
    }
}

const META: &str = r#"
[[experiment]]
name = "meta"
seeds = 2
quick = true
[experiment.settings]
generations = 3
tasks = 2
data = "fashion"
[experiment.grid]
meta_loss = ["decrease", "final"]
"#;

#[test]
fn meta_block_expands_into_one_job_per_seed_and_grid_point() {
    let s = ok(META);
    let ids: Vec<&str> = s.jobs.iter().map(|j| j.id.as_str()).collect();
    // Seeds count from afu meta's default seed, 0.
    assert_eq!(
        ids,
        [
            "meta-s0-meta_loss-decrease",
            "meta-s0-meta_loss-final",
            "meta-s1-meta_loss-decrease",
            "meta-s1-meta_loss-final",
        ]
    );
    let j = &s.jobs[3];
    assert_eq!(
        (j.experiment.as_str(), j.variant.as_str(), j.seed),
        ("meta", META_VARIANT, 1)
    );
    assert_eq!(j.grid["meta_loss"], "final");
    let c = meta(&j.config);
    let quick = crate::meta::MetaConfig::quick();
    // Quick base, then the settings, the grid point and the seed.
    assert_eq!(
        c,
        &crate::meta::MetaConfig {
            generations: 3,
            tasks: 2,
            seed: 1,
            meta_loss: crate::meta::MetaLoss::Final,
            data: Some(std::path::absolute("fashion").unwrap()),
            ..quick
        }
    );
    // A list of seeds, or a count from first_seed.
    let s = ok("[[experiment]]\nname = \"meta\"\nseeds = [4, 2]");
    let got: Vec<(&str, u64)> = s.jobs.iter().map(|j| (j.id.as_str(), j.seed)).collect();
    assert_eq!(got, [("meta-s4", 4), ("meta-s2", 2)]);
    assert_eq!(meta(&s.jobs[1].config).seed, 2);
    // The full base is afu meta's default config.
    assert_eq!(
        meta(&s.jobs[0].config),
        &crate::meta::MetaConfig {
            seed: 4,
            ..Default::default()
        }
    );
    let s = ok("[[experiment]]\nname = \"meta\"\nseeds = 2\nfirst_seed = 7");
    assert_eq!(s.jobs.iter().map(|j| j.seed).collect::<Vec<_>>(), [7, 8]);
    // As with `afu meta --hidden 4`: λ follows N unless given (not in quick blocks).
    let lambda = |text: &str| meta(&ok(text).jobs[0].config).population;
    let block = "[[experiment]]\nname = \"meta\"\n";
    assert_eq!(
        lambda(&format!("{block}[experiment.settings]\nhidden = 4")),
        crate::meta::cmaes::default_population(13)
    );
    assert_eq!(
        lambda(&format!("{block}[experiment.grid]\nhidden = [4]")),
        crate::meta::cmaes::default_population(13)
    );
    assert_eq!(
        lambda(&format!(
            "{block}[experiment.settings]\nhidden = 4\npopulation = 20"
        )),
        20
    );
    assert_eq!(
        lambda(&format!(
            "{block}[experiment.settings]\nhidden = 4\n[experiment.grid]\npopulation = [5, 6]"
        )),
        5
    );
    assert_eq!(
        lambda(&format!(
            "{block}quick = true\n[experiment.settings]\nhidden = 4"
        )),
        crate::meta::MetaConfig::quick().population
    );
    // Meta and other experiments in one file.
    let s = ok(&format!("{META}{XOR}"));
    assert_eq!(s.jobs.len(), 4 + 4);
}

#[test]
fn meta_blocks_reject_variants_and_name_bad_fields() {
    let block = "[[experiment]]\nname = \"meta\"\n";
    let cases: &[(&str, &str)] = &[
        (
            "variants = [\"relu\"]",
            "sweep.toml: experiment[0].variants: meta has no variants",
        ),
        (
            "variants = []",
            "sweep.toml: experiment[0].variants: meta has no variants",
        ),
        (
            "[experiment.settings]\ngenerationz = 3",
            "sweep.toml: experiment[0].settings.generationz: unknown field `generationz`",
        ),
        (
            "[experiment.settings]\nseed = 3",
            "experiment[0].settings.seed: set by the sweep (use the block's seeds and first_seed)",
        ),
        (
            "[experiment.grid]\nseed = [1, 2]",
            "experiment[0].grid.seed: set by the sweep",
        ),
        (
            "[experiment.settings]\npopulation = 1",
            "experiment[0].settings.population: must be at least 2, got 1",
        ),
        (
            "[experiment.settings]\ngenerations = 2\ninner_steps = 0",
            "experiment[0].settings.inner_steps: must be at least 1",
        ),
        (
            "[experiment.settings]\nmeta_loss = \"fast\"",
            "experiment[0].settings.meta_loss: unknown variant `fast`",
        ),
        (
            "[experiment.settings]\ndata = 3",
            "experiment[0].settings.data: invalid type: integer",
        ),
        (
            "[experiment.grid]\nmeta_loss = [\"final\", \"fast\"]",
            "experiment[0].grid.meta_loss[1]: unknown variant `fast`",
        ),
        (
            "[experiment.grid]\nsigma0 = [0.3, -1.0]",
            "experiment[0].grid.sigma0[1]:",
        ),
        (
            "seeds = [0, 0]",
            "experiment[0].seeds[1]: seed 0 appears twice",
        ),
    ];
    for (rest, want) in cases {
        let text = format!("{block}{rest}");
        let got = bad(&text);
        assert!(got.contains(want), "for\n{text}\nwant: {want}\ngot:  {got}");
    }
}

#[test]
fn meta_jobs_are_configs_that_afu_run_reads_and_estimates_know_them() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sw");
    let s = ok(META);
    prepare(&s, &out).unwrap();
    for j in &s.jobs {
        let path = job_dir(&out, &j.id).join("config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // `afu run` takes it for a meta config, with the job's settings.
        assert!(crate::meta::run::is_meta_config(&text), "{text}");
        let c = crate::meta::run::config_from_toml(&text, &path).unwrap();
        assert_eq!(&c, meta(&j.config));
        let back: RunConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, j.config);
    }
    // A second prepare accepts the folders as they are.
    prepare(&s, &out).unwrap();
    let m = read_manifest(&out).unwrap();
    assert_eq!(m[0].0.variant, META_VARIANT);
    assert_eq!(m[1].0.grid["meta_loss"], "final");
    // Built-in timings first; then the finished jobs' search + evaluation seconds.
    let e = estimate(&s, &out, 1);
    assert!(e.rough && e.seconds > 0.0, "{e:?}");
    std::fs::write(
        job_dir(&out, "meta-s0-meta_loss-decrease").join("summary.json"),
        r#"{"search_seconds": 3.0, "eval_seconds": 1.0}"#,
    )
    .unwrap();
    let e = estimate(&s, &out, 1);
    assert!(!e.rough, "{e:?}");
    // Every job costs the same: 4 s each for the 3 left.
    assert!((e.job_seconds - 12.0).abs() < 1e-9, "{e:?}");
    // Cost grows with the search.
    let big = ok(&META.replace("generations = 3", "generations = 30"));
    assert!(
        super::estimate::job_cost(&big.jobs[0].config)
            > 3.0 * super::estimate::job_cost(&s.jobs[0].config)
    );
}

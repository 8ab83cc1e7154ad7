//! `afu bake`: learned AFUs as equivalent piecewise-linear relu AFUs.

use std::path::PathBuf;

use clap::Args;

use super::UsageError;

#[derive(Args, Debug)]
pub struct BakeArgs {
    /// A run folder or afu.json.
    source: PathBuf,
    /// Only AFUs whose name starts with this.
    #[arg(long)]
    afu_name: Option<String>,
    /// Bake over [-range, range]; linear extension outside.
    #[arg(long, default_value_t = 8.0)]
    range: f64,
    /// Target error, relative to the AFU's output range.
    #[arg(long, default_value_t = 1e-3)]
    max_error: f64,
    /// Output AFU file.
    #[arg(long, default_value = "baked-afu.json")]
    out: PathBuf,
}

pub fn run(a: BakeArgs) -> anyhow::Result<()> {
    use afu_cli::afu::file::{AfuFile, NamedAfu};
    if !a.source.exists() {
        return Err(
            UsageError::msg(format!("{}: no such file or folder", a.source.display())).into(),
        );
    }
    if let Err(e) = afu_cli::afu::bake::check_bake_settings(a.range, a.max_error) {
        return Err(UsageError::msg(e).into());
    }
    // Learnable-family slots of the run (families.json), baked exactly where piecewise linear.
    let families = afu_cli::experiments::family_inspect::load(&a.source, a.afu_name.as_deref())
        .map_err(UsageError::of)?;
    let chosen: Vec<NamedAfu> = match AfuFile::load(&a.source).and_then(|file| {
        Ok(file
            .select(a.afu_name.as_deref(), &a.source)?
            .into_iter()
            .cloned()
            .collect())
    }) {
        Ok(chosen) => chosen,
        Err(_) if !families.is_empty() => Vec::new(),
        Err(e) => return Err(UsageError::of(e).into()),
    };
    let mut out = Vec::new();
    afu_cli::outln!(
        "{:<40} {:>6} {:>10} {:>12}",
        "AFU",
        "knots",
        "max error",
        "error at 2×"
    )?;
    for n in &chosen {
        let b = afu_cli::afu::bake::bake(&n.params, a.range, a.max_error, 4096);
        afu_cli::outln!(
            "{:<40} {:>6} {:>10.2e} {:>12.2e}",
            n.name,
            b.knots,
            b.max_error,
            b.max_error_2x
        )?;
        out.push(NamedAfu {
            name: format!("{} (baked)", n.name),
            params: b.params,
        });
    }
    for e in &families {
        match afu_cli::experiments::family_inspect::bake_exact(e).map_err(UsageError::of)? {
            Some(params) => {
                afu_cli::outln!(
                    "{:<40} {:>6} {:>10} {:>12}",
                    e.name,
                    params.hidden - 1,
                    "exact",
                    "exact"
                )?;
                out.push(NamedAfu {
                    name: format!("{} (baked from {})", e.name, e.params.family),
                    params,
                });
            }
            None => afu_cli::outln!(
                "{:<40} skipped: {} is not a continuous piecewise-linear function (exact bakes: prelu, pwlu, apl)",
                e.name,
                e.params.family
            )?,
        }
    }
    if out.is_empty() {
        return Err(UsageError::msg(format!(
            "{}: nothing to bake (no AFU and no piecewise-linear family slot selected)",
            a.source.display()
        ))
        .into());
    }
    AfuFile::new(format!("bake of {}", a.source.display()), out).save(&a.out)?;
    afu_cli::outln!(
        "written: {} (relu AFUs; max error over [-{r}, {r}])",
        a.out.display(),
        r = a.range
    )?;
    Ok(())
}

//! How models take their activations: one [`ActivationSpec`] names a fixed function or learned
//! AFUs with a sharing policy, and [`Activations`] holds the resulting modules for a model's
//! activation slots (one slot per layer that is followed by an activation).

use std::fmt;
use std::str::FromStr;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::afu::{Afu, AfuConfig, AfuError, AfuParams, BaseActivation, KernelChoice};
use crate::family::layer::FamilyError;
use crate::family::{FAMILY_NAMES, Family, FamilyParams, Learnable};

/// Which neurons share one AFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sharing {
    /// One AFU for every neuron of the whole network.
    Network,
    /// One AFU per layer.
    Layer,
    /// One AFU per channel (per neuron of a dense layer), vectorised as `[C, N]` parameters.
    Channel,
}

impl Sharing {
    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Sharing::Network => "network",
            Sharing::Layer => "layer",
            Sharing::Channel => "channel",
        }
    }
}

/// The activation of a model: a fixed Table 1 function, learned AFUs, or a learnable family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationSpec {
    /// A fixed activation.
    Fixed(BaseActivation),
    /// Learned AFUs.
    Afu {
        /// Hidden units `N`.
        hidden: usize,
        /// Base activation `ψ`.
        base: BaseActivation,
        /// Sharing policy.
        sharing: Sharing,
    },
    /// A learnable family beside the AFU (PReLU, Swish-β, pmish, PAU, PWLU, APL, KAF).
    Family {
        /// The family with its sizes.
        family: Family,
        /// Sharing policy.
        sharing: Sharing,
    },
}

/// A variant string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad activation '{given}': {reason} (expected e.g. relu, tanh, afu-relu-8, afu-sigmoid-128-layer, prelu, pau-channel, pwlu-16-layer)"
)]
pub struct BadActivationSpec {
    /// The text given.
    pub given: String,
    /// What was wrong.
    pub reason: String,
}

impl FromStr for ActivationSpec {
    type Err = BadActivationSpec;

    /// Parses `relu`, `tanh`, … (fixed), `afu-<base>-<N>[-network|-layer|-channel]`
    /// (learned; sharing defaults to `network`) or `<family>[-<sizes>][-network|-layer|-channel]`
    /// (a learnable family: `prelu`, `swish-beta`, `pmish`, `pau[-M-N]`, `pwlu[-N]`, `apl[-S]`,
    /// `kaf[-D]`; sharing defaults to `network`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| BadActivationSpec {
            given: s.to_string(),
            reason,
        };
        let t = s.trim().to_ascii_lowercase();
        let Some(rest) = t.strip_prefix("afu-") else {
            let (name, sharing) = split_sharing(&t);
            if let Some(family) = Family::parse(name).map_err(bad)? {
                return Ok(ActivationSpec::Family { family, sharing });
            }
            return t
                .parse::<BaseActivation>()
                .map(ActivationSpec::Fixed)
                .map_err(|e| {
                    bad(format!(
                        "{e}, or a learnable family ({})",
                        FAMILY_NAMES.join(", ")
                    ))
                });
        };
        let mut parts: Vec<&str> = rest.split('-').collect();
        let sharing = match parts.last().copied() {
            Some("network") | Some("shared") => {
                parts.pop();
                Sharing::Network
            }
            Some("layer") => {
                parts.pop();
                Sharing::Layer
            }
            Some("channel") => {
                parts.pop();
                Sharing::Channel
            }
            _ => Sharing::Network,
        };
        let n_text = parts
            .pop()
            .ok_or_else(|| bad("missing hidden units N".into()))?;
        let hidden: usize = n_text
            .parse()
            .map_err(|_| bad(format!("'{n_text}' is not a number of hidden units")))?;
        if hidden == 0 {
            return Err(bad("hidden units N must be at least 1".into()));
        }
        if hidden > crate::afu::MAX_HIDDEN {
            return Err(bad(format!(
                "hidden units N = {hidden} is above the limit of {}",
                crate::afu::MAX_HIDDEN
            )));
        }
        let base = parts
            .join("-")
            .parse::<BaseActivation>()
            .map_err(|e| bad(e.to_string()))?;
        Ok(ActivationSpec::Afu {
            hidden,
            base,
            sharing,
        })
    }
}

/// Splits a trailing sharing suffix off a name (`network` when there is none).
fn split_sharing(t: &str) -> (&str, Sharing) {
    for (suffix, sharing) in [
        ("-network", Sharing::Network),
        ("-shared", Sharing::Network),
        ("-layer", Sharing::Layer),
        ("-channel", Sharing::Channel),
    ] {
        if let Some(name) = t.strip_suffix(suffix) {
            return (name, sharing);
        }
    }
    (t, Sharing::Network)
}

impl fmt::Display for ActivationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActivationSpec::Fixed(b) => write!(f, "{b}"),
            ActivationSpec::Afu {
                hidden,
                base,
                sharing: Sharing::Network,
            } => write!(f, "afu-{base}-{hidden}"),
            ActivationSpec::Afu {
                hidden,
                base,
                sharing,
            } => write!(f, "afu-{base}-{hidden}-{}", sharing.name()),
            ActivationSpec::Family {
                family,
                sharing: Sharing::Network,
            } => write!(f, "{family}"),
            ActivationSpec::Family { family, sharing } => {
                write!(f, "{family}-{}", sharing.name())
            }
        }
    }
}

impl ActivationSpec {
    /// True for learned activations.
    pub fn is_learned(&self) -> bool {
        matches!(
            self,
            ActivationSpec::Afu { .. } | ActivationSpec::Family { .. }
        )
    }
}

/// What one activation slot applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    /// A fixed function.
    Fixed(BaseActivation),
    /// The AFU module with this index in [`Activations::afus`].
    Learned(usize),
    /// The family module with this index in [`Activations::families`].
    Family(usize),
}

/// Running sums of the values an activation slot received: count, sum and sum of squares
/// (in `f64`, in the order given, so equal inputs give equal statistics).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InputStats {
    /// Values seen.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The sum of their squares.
    pub sum_sq: f64,
}

impl InputStats {
    /// Adds finite `values` (non-finite ones are skipped).
    pub fn add(&mut self, values: &[f32]) {
        for &v in values.iter().filter(|v| v.is_finite()) {
            let v = f64::from(v);
            self.count += 1;
            self.sum += v;
            self.sum_sq += v * v;
        }
    }

    /// Adds another slot's statistics.
    pub fn merge(&mut self, other: &InputStats) {
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }

    /// Mean and (population) standard deviation; `None` without values.
    pub fn mean_std(&self) -> Option<(f64, f64)> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        let mean = self.sum / n;
        Some((mean, (self.sum_sq / n - mean * mean).max(0.0).sqrt()))
    }
}

/// The activation modules of one model: `slots[i]` is what follows layer `i`.
#[derive(Module, Debug)]
pub struct Activations {
    /// The learned AFUs (empty for a fixed activation).
    pub afus: Vec<Afu>,
    /// What each slot applies.
    #[module(skip)]
    pub slots: Vec<Slot>,
    /// Display names of the AFUs (`shared`, `layer1`, …), parallel to `afus`.
    #[module(skip)]
    pub names: Vec<String>,
    /// The learnable-family modules (empty unless the spec is a family).
    pub families: Vec<Learnable>,
    /// Display names of the family modules, parallel to `families`.
    #[module(skip)]
    pub family_names: Vec<String>,
    /// Curriculum mix: slot `i` applies `(1 − mix[i])·z + mix[i]·g(z)`. Empty (the default)
    /// or a missing entry means 1: the activation alone, computed exactly as without mixing.
    #[module(skip)]
    pub mix: Vec<f32>,
}

impl Activations {
    /// Builds the activations of a model whose slots have the given widths (number of channels
    /// or neurons at each slot; used by per-channel sharing).
    pub fn new(
        spec: &ActivationSpec,
        widths: &[usize],
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Self, AfuError> {
        match *spec {
            ActivationSpec::Fixed(base) => Ok(Activations {
                afus: Vec::new(),
                slots: vec![Slot::Fixed(base); widths.len()],
                names: Vec::new(),
                mix: Vec::new(),
                families: Vec::new(),
                family_names: Vec::new(),
            }),
            ActivationSpec::Afu {
                hidden,
                base,
                sharing,
            } => {
                let config = AfuConfig::new(hidden).with_base(base);
                match sharing {
                    Sharing::Network => Ok(Activations {
                        afus: vec![config.init(rng, device)?],
                        slots: vec![Slot::Learned(0); widths.len()],
                        names: vec!["shared".into()],
                        mix: Vec::new(),
                        families: Vec::new(),
                        family_names: Vec::new(),
                    }),
                    Sharing::Layer | Sharing::Channel => {
                        let mut afus = Vec::with_capacity(widths.len());
                        for &w in widths {
                            let channels = if sharing == Sharing::Channel { w } else { 1 };
                            afus.push(config.clone().with_channels(channels).init(rng, device)?);
                        }
                        Ok(Activations {
                            afus,
                            slots: (0..widths.len()).map(Slot::Learned).collect(),
                            names: (1..=widths.len()).map(|i| format!("layer{i}")).collect(),
                            mix: Vec::new(),
                            families: Vec::new(),
                            family_names: Vec::new(),
                        })
                    }
                }
            }
            ActivationSpec::Family { family, sharing } => {
                let (families, slots, family_names) = match sharing {
                    Sharing::Network => (
                        vec![Learnable::new(family, 1, device).map_err(family_error)?],
                        vec![Slot::Family(0); widths.len()],
                        vec!["shared".to_string()],
                    ),
                    Sharing::Layer | Sharing::Channel => {
                        let mut families = Vec::with_capacity(widths.len());
                        for &w in widths {
                            let channels = if sharing == Sharing::Channel { w } else { 1 };
                            families.push(
                                Learnable::new(family, channels, device).map_err(family_error)?,
                            );
                        }
                        (
                            families,
                            (0..widths.len()).map(Slot::Family).collect(),
                            (1..=widths.len()).map(|i| format!("layer{i}")).collect(),
                        )
                    }
                };
                Ok(Activations {
                    afus: Vec::new(),
                    slots,
                    names: Vec::new(),
                    mix: Vec::new(),
                    families,
                    family_names,
                })
            }
        }
    }

    /// Like [`new`](Self::new), with slots grouped: under per-layer sharing every slot of a group
    /// uses the group's one AFU (e.g. both convolutions of a MobileNet block), named
    /// `group_names[g]`. Per-channel sharing still gives every slot its own AFU.
    pub fn new_grouped(
        spec: &ActivationSpec,
        widths: &[usize],
        groups: &[usize],
        group_names: &[String],
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Self, AfuError> {
        match *spec {
            ActivationSpec::Afu {
                hidden,
                base,
                sharing: Sharing::Layer,
            } => {
                let config = AfuConfig::new(hidden).with_base(base);
                let n_groups = groups.iter().max().map_or(0, |g| g + 1);
                let mut afus = Vec::with_capacity(n_groups);
                for _ in 0..n_groups {
                    afus.push(config.init(rng, device)?);
                }
                Ok(Activations {
                    afus,
                    slots: groups.iter().map(|&g| Slot::Learned(g)).collect(),
                    names: (0..n_groups)
                        .map(|g| {
                            group_names
                                .get(g)
                                .cloned()
                                .unwrap_or_else(|| format!("group{g}"))
                        })
                        .collect(),
                    mix: Vec::new(),
                    families: Vec::new(),
                    family_names: Vec::new(),
                })
            }
            ActivationSpec::Family {
                family,
                sharing: Sharing::Layer,
            } => {
                let n_groups = groups.iter().max().map_or(0, |g| g + 1);
                let mut families = Vec::with_capacity(n_groups);
                for _ in 0..n_groups {
                    families.push(Learnable::new(family, 1, device).map_err(family_error)?);
                }
                Ok(Activations {
                    afus: Vec::new(),
                    slots: groups.iter().map(|&g| Slot::Family(g)).collect(),
                    names: Vec::new(),
                    mix: Vec::new(),
                    families,
                    family_names: (0..n_groups)
                        .map(|g| {
                            group_names
                                .get(g)
                                .cloned()
                                .unwrap_or_else(|| format!("group{g}"))
                        })
                        .collect(),
                })
            }
            _ => Self::new(spec, widths, rng, device),
        }
    }

    /// Applies slot `slot` element-wise: `g(x)`, or `(1 − α)·x + α·g(x)` while a curriculum
    /// sets the slot's mix `α` below 1 (`α = 0`: `x` itself).
    ///
    /// # Shapes
    /// - input: `[batch, channels, ...]`; output: the same
    pub fn apply<const D: usize>(&self, slot: usize, x: Tensor<D>) -> Tensor<D> {
        match self.mix.get(slot).copied() {
            Some(alpha) if alpha <= 0.0 => x,
            Some(alpha) if alpha < 1.0 => {
                let g = self.apply_unmixed(slot, x.clone());
                x.mul_scalar(1.0 - alpha).add(g.mul_scalar(alpha))
            }
            _ => self.apply_unmixed(slot, x),
        }
    }

    /// `g(x)` of slot `slot`, without curriculum.
    fn apply_unmixed<const D: usize>(&self, slot: usize, x: Tensor<D>) -> Tensor<D> {
        match self.slots[slot] {
            // Burn's relu for fixed relu slots: afu's multi-threaded `crate::ops::relu` is not
            // shown to be faster yet (docs/performance-log.md, 2026-12-06 speed entry).
            Slot::Fixed(base) => base.apply(x),
            Slot::Learned(i) => self.afus[i].forward(x),
            Slot::Family(i) => self.families[i].forward(x),
        }
    }

    /// The learnable-family modules with their names and current parameters.
    pub fn named_families(&self) -> Vec<(String, FamilyParams)> {
        self.family_names
            .iter()
            .cloned()
            .zip(self.families.iter().map(|f| f.params()))
            .collect()
    }

    /// Number of learned activation parameters (AFUs and families together).
    pub fn num_learned_values(&self) -> usize {
        let afus: usize = self
            .afus
            .iter()
            .map(|a| a.channels() * (3 * a.hidden() + 1))
            .sum();
        afus + self.families.iter().map(|f| f.num_values()).sum::<usize>()
    }

    /// The learned AFUs with their names.
    pub fn named(&self) -> Vec<(String, AfuParams)> {
        self.names
            .iter()
            .cloned()
            .zip(self.afus.iter().map(|a| a.params()))
            .collect()
    }

    /// Replaces the parameters of the learned AFUs (transfer). `params` must have one entry per
    /// AFU, each with the same number of channels.
    pub fn load(mut self, params: &[AfuParams], device: &Device) -> Result<Self, AfuError> {
        if params.len() != self.afus.len() {
            return Err(AfuError::BadLength {
                field: "afus",
                found: params.len(),
                expected: self.afus.len(),
            });
        }
        for (afu, p) in self.afus.iter_mut().zip(params) {
            let dtype = afu.w0.val().dtype();
            *afu = Afu::from_params(p, device, dtype)?.with_kernel(afu.kernel);
        }
        Ok(self)
    }

    /// Transfer: replaces the AFUs' parameters with `sources` — one per AFU, or a single one used
    /// for every AFU. A shared source AFU (1 channel) is replicated into per-channel AFUs.
    pub fn transfer(mut self, sources: &[AfuParams], device: &Device) -> Result<Self, AfuError> {
        let k = self.afus.len();
        if sources.is_empty() || !(sources.len() == k || sources.len() == 1) {
            return Err(AfuError::BadLength {
                field: "afus to transfer",
                found: sources.len(),
                expected: k,
            });
        }
        for (i, afu) in self.afus.iter_mut().enumerate() {
            let src = if sources.len() == k {
                &sources[i]
            } else {
                &sources[0]
            };
            let channels = afu.channels();
            let params = if src.channels == channels {
                src.clone()
            } else if src.channels == 1 {
                AfuParams {
                    channels,
                    w0: src.w0.repeat(channels),
                    b0: src.b0.repeat(channels),
                    w1: src.w1.repeat(channels),
                    b1: src.b1.repeat(channels),
                    ..src.clone()
                }
            } else {
                return Err(AfuError::BadLength {
                    field: "channels of the transferred AFU",
                    found: src.channels,
                    expected: channels,
                });
            };
            let dtype = afu.w0.val().dtype();
            *afu = Afu::from_params(&params, device, dtype)?.with_kernel(afu.kernel);
        }
        Ok(self)
    }

    /// Initialises every AFU to approximate `target` over `[-range, range]` (keeping each AFU's
    /// base and hidden units), instead of the random default.
    pub fn init_as(
        self,
        target: BaseActivation,
        range: f64,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Self, AfuError> {
        let sources: Vec<AfuParams> = self
            .afus
            .iter()
            .map(|a| {
                crate::afu::analysis::fit_afu_to(target, a.hidden(), a.base, -range, range, rng)
            })
            .collect();
        self.transfer(&sources, device)
    }

    /// Stops the AFUs from training (their parameters no longer require gradients).
    pub fn freeze_afus(mut self) -> Self {
        self.afus = self.afus.into_iter().map(|a| a.no_grad()).collect();
        self
    }

    /// Whether some family module is a PWLU (whose bounds [`reinit_pwlu`](Self::reinit_pwlu)
    /// moves after the first phase of training).
    pub fn has_pwlu(&self) -> bool {
        self.families
            .iter()
            .any(|f| matches!(f.family, Family::Pwlu { .. }))
    }

    /// PWLU's statistics-based re-initialisation (Zhu et al. 2021, after their first phase):
    /// every PWLU module gets bounds `mean ± 3·std` of its inputs, pooled over the slots that
    /// share it (and over its channels: a per-channel PWLU moves all its channels alike), with
    /// heights resampled from its current function on the new grid (so it keeps its shape
    /// there) and its outer slopes kept. `stats[i]` are the input statistics of slot `i`;
    /// modules whose slots saw no input are left alone. The new parameters are new values of
    /// the same modules, with the module's element type and kernel.
    pub fn reinit_pwlu(
        mut self,
        stats: &[InputStats],
        device: &Device,
    ) -> Result<Self, FamilyError> {
        for (m, module) in self.families.iter_mut().enumerate() {
            let Family::Pwlu { intervals } = module.family else {
                continue;
            };
            let mut pooled = InputStats::default();
            for (slot, kind) in self.slots.iter().enumerate() {
                if *kind == Slot::Family(m)
                    && let Some(s) = stats.get(slot)
                {
                    pooled.merge(s);
                }
            }
            let Some((mean, std)) = pooled.mean_std() else {
                continue;
            };
            let math = crate::family::math::Pwlu { n: intervals };
            let np = module.family.n_params();
            let values: Vec<f64> = module
                .values()
                .chunks(np)
                .flat_map(|row| math.reinit_bounds(row, mean, std))
                .collect();
            let dtype = module.params.val().dtype();
            *module =
                Learnable::from_values(module.family, module.channels(), &values, device, dtype)?
                    .with_kernel(module.kernel);
        }
        Ok(self)
    }

    /// Uses the given kernel in every AFU and family module.
    pub fn with_kernel(mut self, kernel: KernelChoice) -> Self {
        self.afus = self
            .afus
            .into_iter()
            .map(|a| a.with_kernel(kernel))
            .collect();
        self.families = self
            .families
            .into_iter()
            .map(|f| f.with_kernel(kernel))
            .collect();
        self
    }
}

/// A family module that cannot be built, as the AFU error the constructors return (only a
/// zero width gets here: the family's own sizes are checked when its name is parsed).
fn family_error(e: crate::family::layer::FamilyError) -> AfuError {
    match e {
        crate::family::layer::FamilyError::NoChannel { .. } => AfuError::ZeroSize {
            field: "channels",
            value: 0,
        },
        crate::family::layer::FamilyError::BadLength {
            found, expected, ..
        } => AfuError::BadLength {
            field: "family parameters",
            found,
            expected,
        },
        crate::family::layer::FamilyError::NonFinite { index, .. } => AfuError::NonFinite {
            field: "family parameters",
            index,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pwlu_bounds_move_to_the_pooled_input_statistics() {
        use rand::SeedableRng;
        let device = Device::flex();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let spec: ActivationSpec = "pwlu-4-channel".parse().unwrap();
        let acts = Activations::new(&spec, &[3, 2], &mut rng, &device).unwrap();
        assert!(acts.has_pwlu());
        // Slot 0 saw 1 and 3 (mean 2, std 1); slot 1 saw nothing: it keeps its start.
        let mut s0 = InputStats::default();
        s0.add(&[1.0, 3.0, f32::NAN]);
        assert_eq!(s0.mean_std(), Some((2.0, 1.0)));
        let acts = acts
            .reinit_pwlu(&[s0, InputStats::default()], &device)
            .unwrap();
        let first = acts.families[0].values();
        let (l, r) = (first[0], first[1]);
        assert!(
            (l - -1.0).abs() < 1e-6 && (r - 5.0).abs() < 1e-6,
            "{first:?}"
        );
        // Heights resampled from relu (the start) on the new grid -1, 0.5, 2, 3.5, 5.
        for (h, want) in first[4..9].iter().zip([0.0, 0.5, 2.0, 3.5, 5.0]) {
            assert!((h - want).abs() < 1e-6, "{first:?}");
        }
        // Every channel of the module moves alike; the untouched module keeps (-3, 3).
        assert_eq!(first[..9], first[9..18]);
        let second = acts.families[1].values();
        assert_eq!((second[0], second[1]), (-3.0, 3.0));
        // Other families are left alone.
        let spec: ActivationSpec = "prelu-layer".parse().unwrap();
        let acts = Activations::new(&spec, &[3], &mut rng, &device).unwrap();
        assert!(!acts.has_pwlu());
        let before = acts.families[0].values();
        let acts = acts.reinit_pwlu(&[s0], &device).unwrap();
        assert_eq!(acts.families[0].values(), before);
    }

    #[test]
    fn parses_and_displays() {
        for s in [
            "relu",
            "tanh",
            "afu-relu-8",
            "afu-sigmoid-128",
            "afu-leaky-relu-3-layer",
            "afu-mish-8-channel",
        ] {
            let spec: ActivationSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        assert_eq!(
            "afu-relu-8-shared"
                .parse::<ActivationSpec>()
                .unwrap()
                .to_string(),
            "afu-relu-8"
        );
        for s in [
            "prelu",
            "prelu-layer",
            "prelu-channel",
            "swish-beta-channel",
            "pmish-layer",
            "pau-channel",
            "pau-3-2-layer",
            "pwlu-16-channel",
            "apl-5-layer",
            "kaf-channel",
            "kaf-7",
        ] {
            let spec: ActivationSpec = s.parse().unwrap();
            assert!(spec.is_learned());
            assert_eq!(spec.to_string(), s);
        }
        assert_eq!(
            "kaf-20-network"
                .parse::<ActivationSpec>()
                .unwrap()
                .to_string(),
            "kaf"
        );
        for bad in [
            "afu-relu-0",
            "afu-gelu-8",
            "gelu",
            "afu-relu",
            "afu-relu-x",
            "pau-0-4",
            "pwlu-0-channel",
            "apl-0",
            "kaf-1",
            "foo-layer",
        ] {
            let err = bad.parse::<ActivationSpec>().unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}

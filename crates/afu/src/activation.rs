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

/// The activation of a model: a fixed Table 1 function, or learned AFUs.
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
}

/// A variant string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad activation '{given}': {reason} (expected e.g. relu, tanh, afu-relu-8, afu-sigmoid-128-layer)"
)]
pub struct BadActivationSpec {
    /// The text given.
    pub given: String,
    /// What was wrong.
    pub reason: String,
}

impl FromStr for ActivationSpec {
    type Err = BadActivationSpec;

    /// Parses `relu`, `tanh`, … (fixed) or `afu-<base>-<N>[-network|-layer|-channel]`
    /// (learned; sharing defaults to `network`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| BadActivationSpec {
            given: s.to_string(),
            reason,
        };
        let t = s.trim().to_ascii_lowercase();
        let Some(rest) = t.strip_prefix("afu-") else {
            return t
                .parse::<BaseActivation>()
                .map(ActivationSpec::Fixed)
                .map_err(|e| bad(e.to_string()));
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
        }
    }
}

impl ActivationSpec {
    /// True for learned activations.
    pub fn is_learned(&self) -> bool {
        matches!(self, ActivationSpec::Afu { .. })
    }
}

/// What one activation slot applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    /// A fixed function.
    Fixed(BaseActivation),
    /// The AFU module with this index in [`Activations::afus`].
    Learned(usize),
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
                        })
                    }
                }
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
        }
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

    /// Uses the given kernel in every AFU.
    pub fn with_kernel(mut self, kernel: KernelChoice) -> Self {
        self.afus = self
            .afus
            .into_iter()
            .map(|a| a.with_kernel(kernel))
            .collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for bad in ["afu-relu-0", "afu-gelu-8", "gelu", "afu-relu", "afu-relu-x"] {
            let err = bad.parse::<ActivationSpec>().unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}

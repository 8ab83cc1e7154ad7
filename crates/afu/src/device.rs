//! Picking the compute device at run time: `cpu` (Burn's Flex backend, always built), `cuda[:N]`
//! and `wgpu[:N]` (Burn's CubeCL backends, behind the cargo features `cuda` and `wgpu`).
//!
//! The fused AFU kernel runs on the CPU backend; on the GPU backends the AFU uses the
//! plain-tensor-ops implementation (correct, but it materialises the `M × N` hidden tensor).

use std::str::FromStr;

use burn::tensor::Device;

/// A device named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// Burn's Flex CPU backend.
    Cpu,
    /// A CUDA GPU (feature `cuda`).
    Cuda(usize),
    /// A GPU through wgpu: Vulkan, Metal, DX12 (feature `wgpu`).
    Wgpu(usize),
}

/// A device name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// Not of the form `cpu`, `cuda[:N]`, `wgpu[:N]`.
    #[error("unknown device '{0}': expected cpu, cuda[:N] or wgpu[:N]")]
    Unknown(String),
    /// The backend was not compiled in.
    #[error("this build has no {0} support: rebuild with `cargo build --release --features {0}`")]
    NotBuilt(&'static str),
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let (kind, index) = match t.split_once(':') {
            Some((k, i)) => (
                k.to_string(),
                i.parse::<usize>()
                    .map_err(|_| DeviceError::Unknown(s.to_string()))?,
            ),
            None => (t.clone(), 0),
        };
        match kind.as_str() {
            "cpu" | "flex" if index == 0 => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(index)),
            "wgpu" | "gpu" => Ok(DeviceChoice::Wgpu(index)),
            _ => Err(DeviceError::Unknown(s.to_string())),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceChoice::Wgpu(i) => write!(f, "wgpu:{i}"),
        }
    }
}

impl DeviceChoice {
    /// The Burn device (without autodiff).
    pub fn device(self) -> Result<Device, DeviceError> {
        match self {
            DeviceChoice::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda(i) => Ok(Device::cuda(i)),
            #[cfg(not(feature = "cuda"))]
            DeviceChoice::Cuda(_) => Err(DeviceError::NotBuilt("cuda")),
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu(i) => Ok(Device::wgpu(if i == 0 {
                burn::tensor::DeviceKind::DefaultDevice
            } else {
                burn::tensor::DeviceKind::DiscreteGpu(i)
            })),
            #[cfg(not(feature = "wgpu"))]
            DeviceChoice::Wgpu(_) => Err(DeviceError::NotBuilt("wgpu")),
        }
    }
}

impl serde::Serialize for DeviceChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for DeviceChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "cuda".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(0)
        );
        assert_eq!(
            "wgpu:1".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Wgpu(1)
        );
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
        assert!(DeviceChoice::Cpu.device().is_ok());
        #[cfg(not(feature = "cuda"))]
        assert!(
            DeviceChoice::Cuda(0)
                .device()
                .unwrap_err()
                .to_string()
                .contains("--features cuda")
        );
    }
}

//! Where the model runs: `cpu` or `cuda:N`.
//!
//! CPU thread count: candle's matrix multiplications and element-wise kernels run on rayon's
//! global pool and size themselves from `RAYON_NUM_THREADS` (read by
//! `candle_core::utils::get_num_threads`), defaulting to the number of physical cores. Set
//! `RAYON_NUM_THREADS=N` in the worker's environment *before it starts* to pin the count; the
//! benchmark does this to compare with faster-whisper's `cpu_threads=N`.

use std::fmt;
use std::str::FromStr;

use crate::AsrError;

/// A compute device, parsed from `"cpu"` or `"cuda:0"` (`"cuda"` means `cuda:0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = AsrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        if s == "cpu" {
            return Ok(DeviceSpec::Cpu);
        }
        if s == "cuda" || s == "gpu" {
            return Ok(DeviceSpec::Cuda(0));
        }
        if let Some(n) = s.strip_prefix("cuda:")
            && let Ok(n) = n.parse()
        {
            return Ok(DeviceSpec::Cuda(n));
        }
        Err(AsrError::DeviceUnavailable {
            device: s,
            reason: "expected `cpu` or `cuda:N`".into(),
        })
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the candle device. `Cuda` needs this crate's `cuda` feature and a visible GPU.
    pub fn open(&self) -> Result<candle_core::Device, AsrError> {
        match self {
            DeviceSpec::Cpu => Ok(candle_core::Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(AsrError::DeviceUnavailable {
                        device: self.to_string(),
                        reason: "voxfleet-asr was built without the `cuda` feature".into(),
                    });
                }
                candle_core::Device::new_cuda(*n).map_err(|e| AsrError::DeviceUnavailable {
                    device: self.to_string(),
                    reason: e.to_string(),
                })
            }
        }
    }

    /// The number of CPU threads candle will use (see the module docs).
    pub fn cpu_threads() -> usize {
        candle_core::utils::get_num_threads()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxfleet_errors::Classified;

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["cpu", "cuda:0", "cuda:3"] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap().to_string(), s);
        }
        assert_eq!("CUDA".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        let e = "tpu".parse::<DeviceSpec>().unwrap_err();
        assert_eq!(e.code(), "device_unavailable");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let e = DeviceSpec::Cuda(0).open().unwrap_err();
        assert_eq!(e.code(), "device_unavailable");
        assert!(e.to_string().contains("cuda"), "{e}");
    }
}

//! Device selection shared by the controller and the trainers.

use std::str::FromStr;

use tch::Device;

/// What the user asked for: `auto` (CUDA 0 when available, else CPU), `cpu`, `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// CUDA device 0 when one is available, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N (`cuda:N`; `cuda` is device 0).
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceSpec::Cuda(n)),
                _ => Err(format!("unknown device {s:?} (expected auto, cpu or cuda:N)")),
            },
        }
    }
}

impl DeviceSpec {
    /// Resolves to a tch device; asking for a GPU that is not there is an error.
    pub fn resolve(self) -> Result<Device, String> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Auto => Ok(Device::cuda_if_available()),
            DeviceSpec::Cuda(n) => {
                let count = tch::Cuda::device_count() as usize;
                if n < count {
                    Ok(Device::Cuda(n))
                } else {
                    Err(format!("cuda:{n} requested but {count} CUDA device(s) are visible"))
                }
            }
        }
    }
}

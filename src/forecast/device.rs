//! Choosing where tensors live: `cpu`, `cuda`, or `auto` (CUDA when this
//! build has the `cuda` feature and a GPU is present, else the CPU).

use candle_core::Device;

use super::config::DeviceChoice;

/// Errors selecting a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device `cuda` requested but restock was built without the `cuda` feature")]
    CudaNotCompiled,
    #[error("cannot open CUDA device 0: {0}")]
    Cuda(#[from] candle_core::Error),
}

/// Resolves a device choice to a candle device.
pub fn select(choice: DeviceChoice) -> Result<Device, DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => {
            if cfg!(feature = "cuda") {
                Ok(Device::new_cuda(0)?)
            } else {
                Err(DeviceError::CudaNotCompiled)
            }
        }
        DeviceChoice::Auto => {
            if cfg!(feature = "cuda") {
                Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu))
            } else {
                Ok(Device::Cpu)
            }
        }
    }
}

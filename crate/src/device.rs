//! Device selection: CUDA when the crate is built with the `cuda` feature and
//! a GPU is visible, the CPU otherwise — and always a sentence saying why.
//!
//! `SSLAB_DEVICE=cpu` forces the CPU even in a CUDA build.

use candle_core::{Device, Result};
use std::fmt;

/// The environment variable that can force the CPU (`SSLAB_DEVICE=cpu`).
pub const DEVICE_VAR: &str = "SSLAB_DEVICE";

/// The device chosen for a run, with the reason, for the setup cell to print.
#[derive(Clone, Debug)]
pub struct DeviceChoice {
    /// The Candle device to put tensors on.
    pub device: Device,
    /// Why this device was chosen (or why the GPU was not).
    pub reason: String,
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match &self.device {
            Device::Cpu => format!("cpu ({} threads)", cpu_threads()),
            Device::Cuda(_) => "cuda:0".to_string(),
            Device::Metal(_) => "metal:0".to_string(),
        };
        write!(f, "{name} — {}", self.reason)
    }
}

/// A short name of the device kind: `"cpu"`, `"cuda"` or `"metal"`.
pub fn device_name(dev: &Device) -> &'static str {
    match dev {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}

/// Number of threads Candle's CPU kernels use (`RAYON_NUM_THREADS` or the core count).
pub fn cpu_threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// Picks the device for this run.
///
/// With the `cuda` feature: GPU 0 when it opens, else the CPU with the CUDA
/// error as the reason. Without it: the CPU, saying the build has no CUDA.
/// `SSLAB_DEVICE=cpu` forces the CPU; any other value than `cpu`, `cuda` or
/// empty is an error.
pub fn device() -> Result<DeviceChoice> {
    // every notebook's setup cell calls this: train with the tuned allocator,
    // and (in the course kernel) turn the stop button into a stop at a step boundary
    tune_allocator();
    crate::interrupt::install();
    let wanted = std::env::var(DEVICE_VAR).unwrap_or_default().trim().to_ascii_lowercase();
    match wanted.as_str() {
        "" | "auto" | "cuda" => {}
        "cpu" => {
            return Ok(DeviceChoice {
                device: Device::Cpu,
                reason: format!("{DEVICE_VAR}=cpu"),
            })
        }
        other => candle_core::bail!("unknown device {other:?} in {DEVICE_VAR}: expected cpu, cuda or auto"),
    }
    pick(wanted == "cuda")
}

#[cfg(feature = "cuda")]
fn pick(required: bool) -> Result<DeviceChoice> {
    match Device::new_cuda(0) {
        Ok(device) => Ok(DeviceChoice { device, reason: "built with CUDA and a GPU is visible".into() }),
        Err(e) if required => candle_core::bail!("{DEVICE_VAR}=cuda but no GPU could be opened: {}", crate::message(&e)),
        Err(e) => Ok(DeviceChoice {
            device: Device::Cpu,
            reason: format!("built with CUDA, but no GPU could be opened ({})", crate::message(&e)),
        }),
    }
}

#[cfg(not(feature = "cuda"))]
fn pick(required: bool) -> Result<DeviceChoice> {
    if required {
        candle_core::bail!("{DEVICE_VAR}=cuda but sslab was built without the `cuda` feature (use the \"Rust (sslab, CUDA)\" kernel)");
    }
    Ok(DeviceChoice {
        device: Device::Cpu,
        reason: "this build has no CUDA support (the `cuda` feature is off)".into(),
    })
}

/// Tunes glibc's allocator for training: keeps freed memory for reuse
/// instead of returning it to the kernel after every step. [`device`] calls
/// it, so every notebook and command trains with it.
///
/// Candle allocates fresh buffers for every intermediate tensor; with glibc's
/// defaults, buffers above 128 KiB are `mmap`ed and unmapped each time, and
/// the kernel zeroes every new page: measured here, about a third of a
/// SimCLR step was spent in page faults. After raising the `mmap` threshold
/// a step of the default encoder on 512 images took 1.1 s instead of 2.2 s
/// (2-core CPU). glibc caps that threshold at 32 MiB, and the bench's
/// first-layer activations are 64 MiB, so `mmap` is now off altogether
/// (`M_MMAP_MAX` = 0): the bench's CNN step went from 0.354 s to 0.311 s.
/// Freed memory stays with the process (up to 1 GiB at the top of the heap
/// is kept), which suits a training loop or a notebook kernel.
/// Does nothing on other platforms. Safe to call more than once.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is thread-safe in glibc.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_without_cuda_is_cpu_with_a_reason() {
        let choice = pick(false).unwrap();
        #[cfg(not(feature = "cuda"))]
        {
            assert!(choice.device.is_cpu());
            assert!(choice.reason.contains("cuda"), "{}", choice.reason);
            assert!(pick(true).unwrap_err().to_string().contains("without the `cuda` feature"));
        }
        assert!(!choice.to_string().is_empty());
    }

    #[test]
    fn reasons_keep_the_message_and_drop_a_backtrace() {
        let e = candle_core::Error::Msg("DriverError(CUDA_ERROR_NO_DEVICE)".into()).bt();
        assert_eq!(crate::message(&e), "DriverError(CUDA_ERROR_NO_DEVICE)");
    }
}

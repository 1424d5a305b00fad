//! GPU statistics through NVML. Without the NVIDIA driver, NVML fails to load
//! (`LibloadingError`); the worker then says once, at info level, that it runs on CPU.
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::error::NvmlError;
use voxfleet_jobs::fleet::GpuStats;

pub struct Gpus {
    nvml: Option<Nvml>,
}

impl Gpus {
    pub fn init() -> Self {
        match Nvml::init() {
            Ok(nvml) => {
                let n = nvml.device_count().unwrap_or(0);
                tracing::info!(gpus = n, "NVML initialised");
                Self { nvml: Some(nvml) }
            }
            Err(NvmlError::LibloadingError(_)) => {
                tracing::info!("no NVIDIA driver found; running on CPU");
                Self { nvml: None }
            }
            Err(e) => {
                tracing::info!(error = %e, "NVML unavailable; running on CPU");
                Self { nvml: None }
            }
        }
    }

    pub fn available(&self) -> bool {
        self.nvml
            .as_ref()
            .is_some_and(|n| n.device_count().unwrap_or(0) > 0)
    }

    /// Reads every GPU; a device that cannot be read is reported unhealthy, not skipped.
    pub fn stats(&self) -> Vec<GpuStats> {
        let Some(nvml) = &self.nvml else {
            return vec![];
        };
        let count = nvml.device_count().unwrap_or(0);
        (0..count)
            .map(|i| match nvml.device_by_index(i) {
                Ok(d) => {
                    let mem = d.memory_info().ok();
                    GpuStats {
                        index: i,
                        uuid: d.uuid().unwrap_or_default(),
                        name: d.name().unwrap_or_default(),
                        memory_total_bytes: mem.as_ref().map_or(0, |m| m.total),
                        memory_used_bytes: mem.as_ref().map_or(0, |m| m.used),
                        memory_free_bytes: mem.as_ref().map_or(0, |m| m.free),
                        utilization_percent: d.utilization_rates().ok().map(|u| u.gpu),
                        temperature_celsius: d.temperature(TemperatureSensor::Gpu).ok(),
                        power_watts: d.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
                        healthy: mem.is_some(),
                    }
                }
                Err(_) => GpuStats::unreadable(i),
            })
            .collect()
    }
}

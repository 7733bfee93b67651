//! What a measurement ran on: the CPUs, their model and how busy the
//! machine was, for the lines that print or record figures beside it.

use std::fmt;

/// The CPUs this process may run on (`available_parallelism`), if known.
pub fn cpus() -> Option<usize> {
    std::thread::available_parallelism().ok().map(|n| n.get())
}

/// The CPU model, where the machine says (`/proc/cpuinfo`).
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The load average over the last minute, where the machine says
/// (`/proc/loadavg`).
pub fn load_average() -> Option<f64> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    loadavg.split_whitespace().next()?.parse().ok()
}

/// The machine now, as far as it says: CPU count, CPU model and the
/// 1-minute load average. Displays as `2 CPUs (AMD EPYC 7B13), load 1.52`,
/// leaving out what is unknown.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// [`cpus`].
    pub cpus: Option<usize>,
    /// [`cpu_model`].
    pub model: Option<String>,
    /// [`load_average`].
    pub load: Option<f64>,
}

impl Machine {
    /// Reads what the machine says now.
    pub fn now() -> Self {
        Self {
            cpus: cpus(),
            model: cpu_model(),
            load: load_average(),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cpus {
            Some(1) => f.write_str("1 CPU")?,
            Some(n) => write!(f, "{n} CPUs")?,
            None => f.write_str("? CPUs")?,
        }
        if let Some(model) = &self.model {
            write!(f, " ({model})")?;
        }
        if let Some(load) = self.load {
            write!(f, ", load {load:.2}")?;
        }
        Ok(())
    }
}

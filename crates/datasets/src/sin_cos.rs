//! The sin → cos regression stream of the PyTorch RNN tutorial.

use burn::data::dataset::Dataset;

use crate::DatasetError;

/// One window: `time_steps` points `t` of `[k·π, (k+1)·π)`, input `sin t`, target `cos t`.
#[derive(Debug, Clone, PartialEq)]
pub struct SinCosWindow {
    /// Window number `k`.
    pub index: usize,
    /// The time points.
    pub t: Vec<f32>,
    /// `sin t`: `[time_steps]` (one feature per step).
    pub input: Vec<f32>,
    /// `cos t`: `[time_steps]`.
    pub target: Vec<f32>,
}

/// Consecutive windows of one continuous curve: window `k + 1` starts where window `k` ends,
/// so a model can carry its hidden state from one to the next (truncated BPTT).
///
/// The tutorial samples `np.linspace(kπ, (k+1)π, 10)`, which repeats each window's last point
/// as the next one's first; the half-open windows here keep the stream strictly continuous.
#[derive(Debug, Clone)]
pub struct SinCos {
    windows: usize,
    time_steps: usize,
}

impl SinCos {
    /// `windows` windows of `time_steps` points (the tutorial: 300 × 10).
    ///
    /// # Errors
    /// [`DatasetError::InvalidParameter`] when either is 0.
    pub fn new(windows: usize, time_steps: usize) -> Result<Self, DatasetError> {
        if windows == 0 {
            return Err(DatasetError::invalid("windows", 0, "at least 1"));
        }
        if time_steps == 0 {
            return Err(DatasetError::invalid("time_steps", 0, "at least 1"));
        }
        Ok(Self {
            windows,
            time_steps,
        })
    }

    /// Points per window.
    pub fn time_steps(&self) -> usize {
        self.time_steps
    }
}

impl Dataset<SinCosWindow> for SinCos {
    fn get(&self, index: usize) -> Result<SinCosWindow, burn::data::dataset::DatasetError> {
        if index >= self.windows {
            return Err(DatasetError::out_of_range(index, self.windows));
        }
        let step = std::f64::consts::PI / self.time_steps as f64;
        let t: Vec<f64> = (0..self.time_steps)
            .map(|i| (index * self.time_steps + i) as f64 * step)
            .collect();
        Ok(SinCosWindow {
            index,
            t: t.iter().map(|&v| v as f32).collect(),
            input: t.iter().map(|v| v.sin() as f32).collect(),
            target: t.iter().map(|v| v.cos() as f32).collect(),
        })
    }

    fn len(&self) -> usize {
        self.windows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_continuous() {
        let data = SinCos::new(3, 10).unwrap();
        let (a, b) = (data.get(0).unwrap(), data.get(1).unwrap());
        let step = std::f32::consts::PI / 10.0;
        assert!((b.t[0] - a.t[9] - step).abs() < 1e-5);
        assert!((a.t[0]).abs() < 1e-7 && (b.t[0] - std::f32::consts::PI).abs() < 1e-5);
        for i in 0..10 {
            assert!((a.input[i] - a.t[i].sin()).abs() < 1e-6);
            assert!((a.target[i] - a.t[i].cos()).abs() < 1e-6);
        }
        assert!(data.get(3).is_err());
        assert!(SinCos::new(0, 10).is_err());
    }
}

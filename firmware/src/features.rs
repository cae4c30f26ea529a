//! Vibration features from a window of accelerometer samples, computed incrementally so the
//! firmware needs no sample buffer (and no `libm`: only sums, squares and extremes).

/// Number of features [`FeatureWindow::finish`] produces.
pub const FEATURE_COUNT: usize = 8;

/// Running statistics over one window of single-axis samples.
#[derive(Debug, Clone, Copy)]
pub struct FeatureWindow {
    count: u32,
    sum: f32,
    sum_sq: f32,
    min: f32,
    max: f32,
    zero_crossings: u32,
    last: f32,
    sum_abs_diff: f32,
}

impl Default for FeatureWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl FeatureWindow {
    /// An empty window.
    pub const fn new() -> Self {
        Self {
            count: 0,
            sum: 0.0,
            sum_sq: 0.0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            zero_crossings: 0,
            last: 0.0,
            sum_abs_diff: 0.0,
        }
    }

    /// Adds one sample (non-finite samples are ignored: a glitching ADC must not poison the
    /// window).
    pub fn push(&mut self, sample: f32) {
        if !sample.is_finite() {
            return;
        }
        if self.count > 0 {
            if (self.last < 0.0) != (sample < 0.0) {
                self.zero_crossings += 1;
            }
            let diff = sample - self.last;
            self.sum_abs_diff += if diff < 0.0 { -diff } else { diff };
        }
        self.count += 1;
        self.sum += sample;
        self.sum_sq += sample * sample;
        self.min = self.min.min(sample);
        self.max = self.max.max(sample);
        self.last = sample;
    }

    /// Samples in the window.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The feature vector `[mean, mean_square, variance, peak, peak_to_peak,
    /// crest_factor_squared, zero_crossing_rate, mean_abs_diff]`, or `None` for an empty window.
    /// Resets the window.
    pub fn finish(&mut self) -> Option<[f32; FEATURE_COUNT]> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f32;
        let mean = self.sum / n;
        let mean_square = self.sum_sq / n;
        let variance = (mean_square - mean * mean).max(0.0);
        let peak = self.max.max(-self.min);
        let peak_to_peak = self.max - self.min;
        // Crest factor is peak / RMS; its square avoids a square root on the MCU.
        let crest_squared = if mean_square > 0.0 { peak * peak / mean_square } else { 0.0 };
        let zero_crossing_rate = self.zero_crossings as f32 / n;
        let mean_abs_diff = if self.count > 1 { self.sum_abs_diff / (n - 1.0) } else { 0.0 };
        *self = Self::new();
        Some([mean, mean_square, variance, peak, peak_to_peak, crest_squared, zero_crossing_rate, mean_abs_diff])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_wave_features() {
        let mut window = FeatureWindow::new();
        for i in 0..100 {
            window.push(if i % 2 == 0 { 1.0 } else { -1.0 });
        }
        window.push(f32::NAN);
        let f = window.finish().unwrap();
        assert_eq!(f[0], 0.0); // mean
        assert_eq!(f[1], 1.0); // mean square
        assert_eq!(f[3], 1.0); // peak
        assert_eq!(f[4], 2.0); // peak to peak
        assert_eq!(f[5], 1.0); // crest factor² of a square wave
        assert!((f[6] - 0.99).abs() < 1e-6); // 99 crossings over 100 samples
        assert_eq!(f[7], 2.0);
        assert_eq!(window.count(), 0);
        assert!(window.finish().is_none());
    }
}

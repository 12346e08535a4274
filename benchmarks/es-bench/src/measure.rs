//! What a measurement prints, and the arithmetic of runs and latencies.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One measurement over several runs: one JSON line, as `benchmarks/README.md` says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub system: String,
    pub backend: String,
    pub workload: String,
    pub unit: String,
    pub runs: Vec<f64>,
    pub durability: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p50_us: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p99_us: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Record {
    pub fn new(system: &str, backend: &str, workload: &str, unit: &str, durability: &str) -> Self {
        Record {
            system: system.into(),
            backend: backend.into(),
            workload: workload.into(),
            unit: unit.into(),
            runs: Vec::new(),
            durability: durability.into(),
            p50_us: Vec::new(),
            p99_us: Vec::new(),
            conflicts: Vec::new(),
            note: None,
        }
    }

    /// Adds a run's latencies (any order).
    pub fn latencies(&mut self, mut latencies: Vec<Duration>) {
        latencies.sort_unstable();
        self.p50_us.push(percentile(&latencies, 0.50));
        self.p99_us.push(percentile(&latencies, 0.99));
    }

    /// Adds the runs of `other`, the same measurement made again later.
    pub fn merge(&mut self, other: Record) {
        self.runs.extend(other.runs);
        self.p50_us.extend(other.p50_us);
        self.p99_us.extend(other.p99_us);
        self.conflicts.extend(other.conflicts);
    }

    /// Adds `measured` to `records`: each merged into the record of the
    /// same system, backend and workload, or added.
    pub fn merge_all(records: &mut Vec<Record>, measured: Vec<Record>) {
        for record in measured {
            let same = records.iter_mut().find(|r| {
                (&r.system, &r.backend, &r.workload)
                    == (&record.system, &record.backend, &record.workload)
            });
            match same {
                Some(same) => same.merge(record),
                None => records.push(record),
            }
        }
    }

    pub fn print(&self) {
        println!(
            "{}",
            serde_json::to_string(self).expect("a record is plain data")
        );
    }
}

/// The `q` quantile of sorted latencies, in microseconds.
fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// How many per second `count` things done in `elapsed` make.
pub fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Runs `f` and returns its result with the time it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

/// The median time of `times` calls of `f`.
pub fn median_time<E>(times: usize, mut f: impl FnMut() -> Result<(), E>) -> Result<Duration, E> {
    let mut seconds = Vec::with_capacity(times);
    for _ in 0..times {
        let (result, elapsed) = timed(&mut f);
        result?;
        seconds.push(elapsed.as_secs_f64());
    }
    Ok(Duration::from_secs_f64(median(&seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let latencies: Vec<_> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&latencies, 0.5).round(), 51.0);
        assert_eq!(percentile(&latencies, 0.99).round(), 99.0);
    }
}

//! Counters for `GET /metrics`, in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    benchmarks: AtomicU64,
    benchmark_failures: AtomicU64,
    reads: AtomicU64,
    read_errors: AtomicU64,
    inserts: AtomicU64,
    insert_errors: AtomicU64,
    last: Mutex<Option<(f64, f64)>>,
}

impl Metrics {
    /// Records a finished benchmark.
    pub fn record_run(&self, reads: u64, read_errors: u64, inserts: u64, insert_errors: u64) {
        self.benchmarks.fetch_add(1, Ordering::Relaxed);
        self.reads.fetch_add(reads, Ordering::Relaxed);
        self.read_errors.fetch_add(read_errors, Ordering::Relaxed);
        self.inserts.fetch_add(inserts, Ordering::Relaxed);
        self.insert_errors
            .fetch_add(insert_errors, Ordering::Relaxed);
    }

    /// Records the medians of the last successful run.
    pub fn record_medians(&self, read_p50_ms: f64, insert_p50_ms: f64) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some((read_p50_ms, insert_p50_ms));
        }
    }

    /// Records a benchmark that could not run.
    pub fn record_failure(&self) {
        self.benchmark_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, region: &str) -> String {
        let mut out = String::new();
        let counters = [
            (
                "edge_agent_benchmarks_total",
                "Benchmarks run.",
                &self.benchmarks,
            ),
            (
                "edge_agent_benchmark_failures_total",
                "Benchmarks that could not run.",
                &self.benchmark_failures,
            ),
            (
                "edge_agent_select_queries_total",
                "Timed SELECTs that succeeded.",
                &self.reads,
            ),
            (
                "edge_agent_select_errors_total",
                "Timed SELECTs that failed.",
                &self.read_errors,
            ),
            (
                "edge_agent_insert_queries_total",
                "Timed INSERTs that succeeded.",
                &self.inserts,
            ),
            (
                "edge_agent_insert_errors_total",
                "Timed INSERTs that failed.",
                &self.insert_errors,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(
                out,
                "{name}{{region=\"{region}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        if let Some((r, w)) = self.last.lock().ok().and_then(|l| *l) {
            for (name, v) in [
                ("edge_agent_last_select_p50_ms", r),
                ("edge_agent_last_insert_p50_ms", w),
            ] {
                let _ = writeln!(
                    out,
                    "# HELP {name} Median of the last benchmark.\n# TYPE {name} gauge"
                );
                let _ = writeln!(out, "{name}{{region=\"{region}\"}} {v}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let m = Metrics::default();
        m.record_run(10, 1, 9, 2);
        m.record_medians(1.5, 2.5);
        let text = m.render("lhr");
        assert!(text.contains("edge_agent_benchmarks_total{region=\"lhr\"} 1"));
        assert!(text.contains("edge_agent_insert_errors_total{region=\"lhr\"} 2"));
        assert!(text.contains("edge_agent_last_insert_p50_ms{region=\"lhr\"} 2.5"));
    }
}

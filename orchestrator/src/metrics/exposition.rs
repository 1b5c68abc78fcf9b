//! The Prometheus text exposition format (0.0.4), as a stock Prometheus
//! scrapes it: families with their HELP and TYPE, samples with escaped
//! label values, an optional timestamp in milliseconds; and the
//! histograms written into it.

use std::fmt::Write;

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A page of metric families being written.
#[derive(Debug, Default)]
pub struct Page {
    text: String,
}

impl Page {
    /// Starts a family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample of the family begun last.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64, at_ms: Option<i64>) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = write!(self.text, " {}", number(value));
        if let Some(at) = at_ms {
            let _ = write!(self.text, " {at}");
        }
        self.text.push('\n');
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A value as Go's Prometheus client writes it (the shortest `%g`:
/// `0.005`, `131072`, `1e-08`, `2.4576e+07`), so that values and bucket
/// bounds read the same as a Kubernetes component's; `+Inf`.
fn number(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if value.is_nan() {
        return "NaN".into();
    }
    if value == 0.0 {
        return "0".into();
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} writes an exponent");
    let exponent: i32 = exponent.parse().expect("{:e} writes a number");
    if (-4..6).contains(&exponent) {
        return format!("{value}");
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// A Prometheus histogram over fixed bounds.
pub struct Histogram {
    bounds: &'static [f64],
    /// Counts per bucket (not cumulative; summed when written).
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += value;
    }

    /// Writes `name`'s `_bucket`, `_sum` and `_count` samples.
    pub fn write(&self, page: &mut Page, name: &str, labels: &[(&str, &str)]) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.buckets) {
            cumulative += count;
            let le = number(*bound);
            let mut with = labels.to_vec();
            with.push(("le", &le));
            page.sample(&bucket, &with, cumulative as f64, None);
        }
        let mut with = labels.to_vec();
        with.push(("le", "+Inf"));
        page.sample(&bucket, &with, self.count as f64, None);
        page.sample(&format!("{name}_sum"), labels, self.sum, None);
        page.sample(&format!("{name}_count"), labels, self.count as f64, None);
    }
}

/// Asserts that `page` has each of `lines`, whole.
#[cfg(test)]
pub(crate) fn assert_lines(page: &str, lines: &[&str]) {
    for line in lines {
        assert!(page.lines().any(|l| l == *line), "{line} in {page}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_gos_client_writes_them() {
        for (value, written) in [
            (0.0, "0"),
            (1.0, "1"),
            (0.005, "0.005"),
            (0.0001, "0.0001"),
            (1e-8, "1e-08"),
            (131072.0, "131072"),
            (1048576.0, "1.048576e+06"),
            (24576000.0, "2.4576e+07"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(number(value), written, "{value}");
        }
    }

    #[test]
    fn families_and_samples_as_prometheus_reads_them() {
        let mut page = Page::default();
        page.family("up_total", "counter", "How many.\nReally.");
        page.sample("up_total", &[("a", "x\"y"), ("b", "1\\2")], 3.0, None);
        page.sample("up_total", &[], 0.25, Some(1700000000000));
        page.sample("up_total", &[("le", "+Inf")], f64::INFINITY, None);
        assert_eq!(
            page.finish(),
            "# HELP up_total How many.\\nReally.\n# TYPE up_total counter\n\
             up_total{a=\"x\\\"y\",b=\"1\\\\2\"} 3\nup_total 0.25 1700000000000\nup_total{le=\"+Inf\"} +Inf\n"
        );
    }
}

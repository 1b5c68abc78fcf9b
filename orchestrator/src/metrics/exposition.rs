//! The Prometheus text exposition format (0.0.4), as a stock Prometheus
//! scrapes it: families with their HELP and TYPE, samples with escaped
//! label values, an optional timestamp in milliseconds.

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

/// A value as Prometheus reads it: integers without a fraction, `+Inf`.
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
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    format!("{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

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

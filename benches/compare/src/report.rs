//! Pure parts: percentiles, number formatting, Markdown tables and the docs section.

use std::time::Duration;

/// The `p`-th percentile (0–100) of `sorted` by nearest rank; zero if empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A rate with a k/M/G suffix: `4.5k`, `1.23M`.
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() {
        return "–".into();
    }
    let (v, suffix) = match per_sec.abs() {
        x if x >= 1e9 => (per_sec / 1e9, "G"),
        x if x >= 1e6 => (per_sec / 1e6, "M"),
        x if x >= 1e3 => (per_sec / 1e3, "k"),
        _ => (per_sec, ""),
    };
    if suffix.is_empty() {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}{suffix}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}{suffix}")
    } else {
        format!("{v:.2}{suffix}")
    }
}

/// A duration in the unit that suits it: `94 µs`, `12.3 ms`, `1.25 s`.
pub fn duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// `a ÷ b` with two decimals, or `–` when either side is missing or zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 && a.is_finite() && b.is_finite() => {
            format!("{:.2}", a / b)
        }
        _ => "–".into(),
    }
}

/// A Markdown table: a header row, then rows; columns after the first `left` are
/// right-aligned.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    left: usize,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names, the first `left` left-aligned.
    pub fn new(header: &[&str], left: usize) -> Self {
        Table { header: header.iter().map(|s| (*s).to_string()).collect(), left, rows: Vec::new() }
    }

    /// Adds a row (padded or cut to the header's width).
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// No rows yet.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as Markdown, one line per row, ending in a newline.
    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.header);
        let rule: Vec<String> = (0..self.header.len())
            .map(|i| if i < self.left { "---".into() } else { "---:".into() })
            .collect();
        out.push_str(&format!("|{}|\n", rule.join("|")));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// Start marker of the generated section in `docs/benchmarks.md`.
pub const BEGIN: &str = "<!-- compare:begin -->";
/// End marker of the generated section.
pub const END: &str = "<!-- compare:end -->";

/// `doc` with the text between [`BEGIN`] and [`END`] replaced by `section` (markers
/// kept); if the markers are missing, the marked section is appended at the end.
pub fn replace_section(doc: &str, section: &str) -> String {
    let body = format!("{BEGIN}\n{}\n{END}", section.trim_end());
    match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{body}{}", &doc[..b], &doc[e + END.len()..])
        }
        _ => {
            let sep = if doc.ends_with('\n') || doc.is_empty() { "" } else { "\n" };
            format!("{doc}{sep}\n{body}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&x| Duration::from_micros(x)).collect()
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v = us(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&v, 50.0), Duration::from_micros(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_micros(99));
        assert_eq!(percentile(&v, 100.0), Duration::from_micros(100));
        assert_eq!(percentile(&v, 0.0), Duration::from_micros(1));
        assert_eq!(percentile(&us(&[7]), 99.0), Duration::from_micros(7));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        let v = us(&[1, 2, 3]);
        assert_eq!(percentile(&v, 50.0), Duration::from_micros(2));
    }

    #[test]
    fn formats_rates_durations_and_ratios() {
        assert_eq!(rate(4_512.0), "4.51k");
        assert_eq!(rate(189_000.0), "189k");
        assert_eq!(rate(3_210_000.0), "3.21M");
        assert_eq!(rate(12.0), "12");
        assert_eq!(rate(f64::NAN), "–");
        assert_eq!(duration(Duration::from_micros(94)), "94 µs");
        assert_eq!(duration(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(duration(Duration::from_millis(1_250)), "1.25 s");
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50");
        assert_eq!(ratio(Some(3.0), Some(0.0)), "–");
        assert_eq!(ratio(None, Some(2.0)), "–");
    }

    #[test]
    fn renders_markdown_tables() {
        let mut t = Table::new(&["system", "batch", "rate"], 1);
        assert!(t.is_empty());
        t.row(vec!["sqlite".into(), "1".into(), "4.5k".into()]);
        t.row(vec!["fjall".into()]);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.markdown(),
            "| system | batch | rate |\n|---|---:|---:|\n| sqlite | 1 | 4.5k |\n| fjall |  |  |\n"
        );
    }

    #[test]
    fn replaces_the_marked_section_only() {
        let doc = format!("# T\n\nbefore\n{BEGIN}\nold\n{END}\nafter\n");
        let new = replace_section(&doc, "new table\n");
        assert_eq!(new, format!("# T\n\nbefore\n{BEGIN}\nnew table\n{END}\nafter\n"));
        // Idempotent.
        assert_eq!(replace_section(&new, "new table"), new);
    }

    #[test]
    fn appends_the_section_when_markers_are_missing() {
        let new = replace_section("# T\ntext", "s");
        assert_eq!(new, format!("# T\ntext\n\n{BEGIN}\ns\n{END}\n"));
        assert_eq!(replace_section(&new, "t"), format!("# T\ntext\n\n{BEGIN}\nt\n{END}\n"));
    }
}

//! The run's summary as a text table and as SVG plots, written by hand (a
//! plotting crate would outweigh the rest of the binary).

use std::fmt::Write as _;

use super::metrics::percentile;
use super::results::{CellSummary, TaskResult};

/// One row per cell, aligned columns.
pub fn table(cells: &[CellSummary]) -> String {
    let header = [
        "model",
        "benchmark",
        "context",
        "tasks",
        "pass@1",
        "exact",
        "edit-sim",
        "id-em",
        "id-f1",
        "p50 ms",
        "p90 ms",
        "timeouts",
        "errors",
    ];
    let fraction = |v: f64| format!("{v:.3}");
    let rows: Vec<Vec<String>> = cells
        .iter()
        .map(|c| {
            vec![
                c.model.clone(),
                c.benchmark.clone(),
                c.context.clone(),
                c.tasks.to_string(),
                c.pass_at_1.map_or_else(|| "-".to_owned(), fraction),
                fraction(c.exact_match),
                fraction(c.edit_similarity),
                fraction(c.identifier_em),
                fraction(c.identifier_f1),
                c.latency_ms.as_ref().map_or_else(|| "-".to_owned(), |l| format!("{:.0}", l.p50)),
                c.latency_ms.as_ref().map_or_else(|| "-".to_owned(), |l| format!("{:.0}", l.p90)),
                c.timed_out.to_string(),
                c.errors.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            // Names left-aligned, numbers right-aligned.
            .map(|(i, c)| if i < 3 { format!("{c:<w$}", w = widths[i]) } else { format!("{c:>w$}", w = widths[i]) })
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut out, header.to_vec());
    for row in &rows {
        line(&mut out, row.iter().map(String::as_str).collect());
    }
    out
}

const COLORS: [&str; 8] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Grouped bars: one group per (benchmark, metric), one bar per (model,
/// context). HumanEval shows pass@1 and exact match, the repo-level
/// benchmark exact match and edit similarity.
pub fn metrics_svg(cells: &[CellSummary]) -> String {
    let mut groups: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    let mut series: Vec<String> = Vec::new();
    for cell in cells {
        let name = format!("{} / {}", cell.model, cell.context);
        if !series.contains(&name) {
            series.push(name.clone());
        }
        let metrics: Vec<(&str, Option<f64>)> = if cell.benchmark == "repo" {
            vec![("exact match", Some(cell.exact_match)), ("edit similarity", Some(cell.edit_similarity))]
        } else {
            vec![("pass@1", cell.pass_at_1), ("exact match", Some(cell.exact_match))]
        };
        for (metric, value) in metrics {
            let Some(value) = value else { continue };
            let group = format!("{} {metric}", cell.benchmark);
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, bars)) => bars.push((name.clone(), value)),
                None => groups.push((group, vec![(name.clone(), value)])),
            }
        }
    }
    let bar_width = 22.0;
    let group_width = (series.len().max(1) as f64) * bar_width + 30.0;
    let (left, top, plot_height) = (50.0, 30.0, 240.0);
    let width = left + group_width * groups.len().max(1) as f64 + 20.0;
    let legend_top = top + plot_height + 60.0;
    let height = legend_top + 18.0 * series.len() as f64 + 10.0;
    let mut svg = svg_open(width, height, "metric per model and context mode");
    for tick in 0..=5 {
        let value = f64::from(tick) / 5.0;
        let y = top + plot_height * (1.0 - value);
        let _ =
            writeln!(svg, r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##, width - 20.0);
        let _ = writeln!(svg, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{value:.1}</text>"#, left - 6.0, y + 4.0);
    }
    for (g, (group, bars)) in groups.iter().enumerate() {
        let x0 = left + group_width * g as f64 + 15.0;
        for (name, value) in bars {
            let s = series.iter().position(|n| n == name).unwrap_or(0);
            let x = x0 + bar_width * s as f64;
            let h = plot_height * value.clamp(0.0, 1.0);
            let y = top + plot_height - h;
            let color = COLORS[s % COLORS.len()];
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{color}"><title>{}: {value:.3}</title></rect>"#,
                bar_width - 4.0,
                escape(name)
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="9">{value:.2}</text>"#,
                x + (bar_width - 4.0) / 2.0,
                y - 3.0
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x0 + bar_width * bars.len() as f64 / 2.0,
            top + plot_height + 18.0,
            escape(group)
        );
    }
    legend(&mut svg, &series, left, legend_top);
    svg.push_str("</svg>\n");
    svg
}

/// Box plots of completion latency per (model, benchmark, context): the box
/// spans the 25th to 75th percentile, the whiskers the 5th to 95th, the
/// line is the median.
pub fn latency_svg(results: &[TaskResult]) -> String {
    let mut series: Vec<(String, Vec<f64>)> = Vec::new();
    for r in results {
        let Some(value) = r.latency_ms() else { continue };
        let name = format!("{} {} {}", r.model, r.benchmark, r.context);
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => series.push((name, vec![value])),
        }
    }
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let (left, top, plot_width, row) = (20.0, 40.0, 560.0, 44.0);
    let width = left + plot_width + 40.0;
    let height = top + row * series.len().max(1) as f64 + 40.0;
    let mut svg = svg_open(width, height, "completion latency (ms): box 25-75%, whiskers 5-95%, line median");
    let max = series.iter().filter_map(|(_, v)| percentile(v, 95.0)).fold(1.0, f64::max) * 1.05;
    let x = |ms: f64| left + plot_width * (ms / max).clamp(0.0, 1.0);
    let axis_y = top + row * series.len().max(1) as f64;
    for tick in 0..=5 {
        let ms = max * f64::from(tick) / 5.0;
        let _ = writeln!(svg, r##"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{axis_y:.1}" stroke="#ddd"/>"##, x(ms));
        let _ = writeln!(svg, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{ms:.0}</text>"#, x(ms), axis_y + 16.0);
    }
    for (i, (name, values)) in series.iter().enumerate() {
        let p = |q| percentile(values, q).unwrap_or(0.0);
        let y = top + row * i as f64;
        let mid = y + 28.0;
        let color = COLORS[i % COLORS.len()];
        let _ = writeln!(
            svg,
            r#"<text x="{left}" y="{:.1}">{} (n={}, median {:.0} ms)</text>"#,
            y + 12.0,
            escape(name),
            values.len(),
            p(50.0)
        );
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" stroke="{color}"/>"#,
            x(p(5.0)),
            x(p(95.0))
        );
        let _ = writeln!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="12" fill="{color}" fill-opacity="0.4" stroke="{color}"/>"#,
            x(p(25.0)),
            mid - 6.0,
            (x(p(75.0)) - x(p(25.0))).max(1.0)
        );
        let _ = writeln!(
            svg,
            r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{color}" stroke-width="2"/>"#,
            x(p(50.0)),
            mid - 7.0,
            mid + 7.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn svg_open(width: f64, height: f64, title: &str) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(svg, r#"<text x="10" y="18" font-size="13">{}</text>"#, escape(title));
    svg
}

fn legend(svg: &mut String, series: &[String], left: f64, top: f64) {
    for (i, name) in series.iter().enumerate() {
        let y = top + 18.0 * i as f64;
        let color = COLORS[i % COLORS.len()];
        let _ = writeln!(svg, r#"<rect x="{left}" y="{:.1}" width="12" height="12" fill="{color}"/>"#, y - 10.0);
        let _ = writeln!(svg, r#"<text x="{:.1}" y="{y:.1}">{}</text>"#, left + 18.0, escape(name));
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;
    use crate::eval::results::summarize;

    fn result(model: &str, task: &str, passed: bool, total_ms: f64) -> TaskResult {
        let json = serde_json::json!({
            "model": model, "benchmark": "humaneval-single", "context": "none", "task_id": task,
            "completion": "x", "ground_truth": "x", "exact_match": passed, "edit_similarity": 1.0,
            "identifier_em": true, "identifier_f1": 1.0, "passed": passed,
            "timings": {"queue_ms": 0.0, "tokenize_ms": 0.0, "prefill_ms": 0.0, "decode_ms": 0.0, "total_ms": total_ms},
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_table_aligns_names_left_and_numbers_right() {
        let results =
            [result("tiny", "a", true, 100.0), result("tiny", "b", false, 300.0), result("oracle", "a", true, 1.0)];
        expect![[r#"
            model   benchmark         context  tasks  pass@1  exact  edit-sim  id-em  id-f1  p50 ms  p90 ms  timeouts  errors
            oracle  humaneval-single  none         1   1.000  1.000     1.000  1.000  1.000       1       1         0       0
            tiny    humaneval-single  none         2   0.500  0.500     1.000  1.000  1.000     200     280         0       0
        "#]]
        .assert_eq(&table(&summarize(&results)));
    }

    #[test]
    fn plots_are_well_formed_svg() {
        let results = [result("tiny", "a", true, 100.0), result("a<b", "b", false, 300.0)];
        for svg in [metrics_svg(&summarize(&results)), latency_svg(&results)] {
            assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"), "{svg}");
            assert!(!svg.contains("a<b") && svg.contains("a&lt;b"));
            assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        }
    }
}

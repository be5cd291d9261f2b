//! Sweep output: the original's Markdown table (plus p95 and the leg split), CSV and an SVG
//! bar chart.

use std::fmt::Write as _;

use crate::config::Statistic;
use crate::sweep::RegionResult;

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

fn legs(net: Option<f64>, db: Option<f64>) -> String {
    match (net, db) {
        (Some(n), Some(d)) => format!("{n:.2} / {d:.2}"),
        _ => "-".to_owned(),
    }
}

/// The Markdown table: the original's columns (flag, region, location, insert, read, rank) with
/// the statistic named in the header, then p95 and the network/database split of each.
pub fn table(results: &[RegionResult], statistic: Statistic, iterations: u32) -> String {
    let s = statistic.name();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Statistic: {s} of {iterations} queries per region, both columns; rank by Read {s}.\n\
         Split = edge<->hub network / database time (medians, from the hub; - when unknown)."
    );
    let _ = writeln!(
        out,
        "| Flag | Region | Location | Insert {s} (ms) | Read {s} (ms) | Rank | Insert p95 (ms) | Read p95 (ms) | Insert split (ms) | Read split (ms) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let (insert, read) = match r.status {
            "ok" => (ms(r.insert_ms), ms(r.read_ms)),
            "timeout" => ("TIMEOUT".to_owned(), "TIMEOUT".to_owned()),
            _ => ("ERROR".to_owned(), "ERROR".to_owned()),
        };
        let rank = r.rank.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {insert} | {read} | {rank} | {} | {} | {} | {} |",
            r.flag,
            r.code,
            r.city,
            ms(r.insert_p95_ms),
            ms(r.read_p95_ms),
            legs(r.insert_network_ms, r.insert_server_ms),
            legs(r.read_network_ms, r.read_server_ms),
        );
    }
    out
}

fn csv_field(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn csv_text(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// CSV with a header line; empty cells for unknown values.
pub fn csv(results: &[RegionResult]) -> String {
    let mut out = String::from(
        "rank,flag,region,location,status,statistic,insert_ms,read_ms,insert_p95_ms,read_p95_ms,\
         insert_network_ms,insert_server_ms,read_network_ms,read_server_ms,errors,error\n",
    );
    for r in results {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.rank.map(|n| n.to_string()).unwrap_or_default(),
            r.flag,
            r.code,
            csv_text(&r.city),
            r.status,
            r.statistic,
            csv_field(r.insert_ms),
            csv_field(r.read_ms),
            csv_field(r.insert_p95_ms),
            csv_field(r.read_p95_ms),
            csv_field(r.insert_network_ms),
            csv_field(r.insert_server_ms),
            csv_field(r.read_network_ms),
            csv_field(r.read_server_ms),
            r.errors,
            csv_text(r.error.as_deref().unwrap_or("")),
        );
    }
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal bar chart: per region one Insert and one Read bar of the chosen statistic.
#[allow(clippy::cast_precision_loss)] // a handful of rows
pub fn svg(results: &[RegionResult], statistic: Statistic) -> String {
    const LABEL: f64 = 170.0;
    const WIDTH: f64 = 900.0;
    const ROW: f64 = 34.0;
    const TOP: f64 = 50.0;
    let max = results
        .iter()
        .flat_map(|r| [r.insert_ms, r.read_ms])
        .flatten()
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let scale = (WIDTH - LABEL - 90.0) / max;
    let height = TOP + ROW * results.len() as f64 + 20.0;
    let s = statistic.name();
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r##"<text x="10" y="20" font-size="15">Database latency by region ({s}, ms)</text><rect x="{LABEL}" y="28" width="10" height="10" fill="#d9534f"/><text x="{}" y="37">Insert</text><rect x="{}" y="28" width="10" height="10" fill="#337ab7"/><text x="{}" y="37">Read</text>"##,
        LABEL + 14.0,
        LABEL + 70.0,
        LABEL + 84.0
    );
    for (i, r) in results.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let _ = writeln!(
            out,
            r#"<text x="10" y="{}">{} {}</text>"#,
            y + 20.0,
            xml(&r.code),
            xml(&r.city)
        );
        if r.status != "ok" {
            let _ = writeln!(
                out,
                r##"<text x="{LABEL}" y="{}" fill="#999">{}</text>"##,
                y + 20.0,
                if r.status == "timeout" {
                    "TIMEOUT"
                } else {
                    "ERROR"
                }
            );
            continue;
        }
        for (j, (v, color)) in [(r.insert_ms, "#d9534f"), (r.read_ms, "#337ab7")]
            .into_iter()
            .enumerate()
        {
            let v = v.unwrap_or(0.0);
            let by = y + 3.0 + 14.0 * j as f64;
            let w = (v * scale).max(1.0);
            let _ = writeln!(
                out,
                r#"<rect x="{LABEL}" y="{by}" width="{w:.1}" height="12" fill="{color}"/><text x="{:.1}" y="{}">{v:.2}</text>"#,
                LABEL + w + 4.0,
                by + 10.0
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::fill_from_report;

    fn sample() -> Vec<RegionResult> {
        let regions = crate::regions::parse(crate::regions::DEFAULT_REGIONS).expect("regions");
        let (lhr, syd) = (&regions[0], regions.last().expect("syd"));
        let mut a = RegionResult::new(lhr, "a", Statistic::Median);
        let mut b = RegionResult::new(syd, "a", Statistic::Median);
        b.city = "Syd, \"AU\"".into();
        b.status = "timeout";
        fill_from_report(
            &mut a,
            &serde_json::json!({"read_latencies":[12.0],"insert_latencies":[12.5],
                "hub":{"read_network_p50_ms":11.0,"read_server_p50_ms":0.5}}),
            Statistic::Median,
        );
        a.rank = Some(1);
        vec![a, b]
    }

    #[test]
    fn table_names_statistic_and_shows_timeout() {
        let t = table(&sample(), Statistic::Median, 10);
        assert!(t.contains("| Insert median (ms) | Read median (ms) | Rank |"));
        assert!(t.contains("| lhr | London | 12.50 | 12.00 | 1 |"));
        assert!(t.contains("11.00 / 0.50"));
        assert!(t.contains("| TIMEOUT | TIMEOUT | - |"));
    }

    #[test]
    fn csv_quotes_and_columns() {
        let c = csv(&sample());
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines.len(), 3);
        let cols = lines[0].split(',').count();
        assert!(lines[1].starts_with("1,🇬🇧,lhr,London,ok,median,12.5,12,"));
        assert!(lines[2].contains("\"Syd, \"\"AU\"\"\""));
        assert_eq!(lines[1].split(',').count(), cols);
    }

    #[test]
    fn svg_has_bars() {
        let s = svg(&sample(), Statistic::Median);
        assert!(s.starts_with("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<rect").count(), 2 + 2);
        assert!(s.contains("TIMEOUT"));
    }
}

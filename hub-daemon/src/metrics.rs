//! `/metrics` in the Prometheus text exposition format (version 0.0.4), written by hand from
//! the same readings as `edgehub status`, and checked with a parser in the tests.

use std::fmt::Write as _;

use crate::{
    nat::{Counters, ServiceHistograms},
    status::Status,
};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders a status reading.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "edgehub_up",
        "gauge",
        "1 when the tunnel's implementation answers.",
    );
    let _ = writeln!(
        out,
        "edgehub_up {}",
        u8::from(status.interface_error.is_none())
    );

    if let Some(counters) = &status.counters {
        nat_counters(&mut out, counters);
    }
    family(
        &mut out,
        "edgehub_nat_flows",
        "gauge",
        "Flows in the conntrack table.",
    );
    let _ = writeln!(out, "edgehub_nat_flows {}", status.flows);
    family(
        &mut out,
        "edgehub_nat_flows_max",
        "gauge",
        "Capacity of the conntrack table.",
    );
    let _ = writeln!(out, "edgehub_nat_flows_max {}", status.max_flows);
    family(
        &mut out,
        "edgehub_nat_table_pressure",
        "gauge",
        "Flows over capacity (0 to 1).",
    );
    let _ = writeln!(out, "edgehub_nat_table_pressure {}", status.table_pressure);

    peers(&mut out, status);

    histograms(
        &mut out,
        "edgehub_db_handshake_seconds",
        "Hub to database TCP handshake (SYN forwarded to SYN-ACK seen).",
        &status.histograms,
        |h| &h.db_handshake,
    );
    histograms(
        &mut out,
        "edgehub_request_seconds",
        "Client payload forwarded to the first server payload back, seen at the hub.",
        &status.histograms,
        |h| &h.request,
    );
    out
}

/// Per-peer gauges and counters.
fn peers(out: &mut String, status: &Status) {
    family(
        out,
        "edgehub_peer_configured",
        "gauge",
        "1 when the device knows the peer.",
    );
    for p in &status.peers {
        let _ = writeln!(
            out,
            "edgehub_peer_configured{{peer=\"{}\"}} {}",
            label(&p.name),
            u8::from(p.configured)
        );
    }
    family(
        out,
        "edgehub_peer_handshake_age_seconds",
        "gauge",
        "Seconds since the peer's latest handshake (absent before the first).",
    );
    for p in &status.peers {
        if let Some(secs) = p.latest_handshake_secs {
            let _ = writeln!(
                out,
                "edgehub_peer_handshake_age_seconds{{peer=\"{}\"}} {secs}",
                label(&p.name)
            );
        }
    }
    family(
        out,
        "edgehub_peer_receive_bytes_total",
        "counter",
        "Bytes received from the peer.",
    );
    for p in &status.peers {
        let _ = writeln!(
            out,
            "edgehub_peer_receive_bytes_total{{peer=\"{}\"}} {}",
            label(&p.name),
            p.rx_bytes
        );
    }
    family(
        out,
        "edgehub_peer_transmit_bytes_total",
        "counter",
        "Bytes sent to the peer.",
    );
    for p in &status.peers {
        let _ = writeln!(
            out,
            "edgehub_peer_transmit_bytes_total{{peer=\"{}\"}} {}",
            label(&p.name),
            p.tx_bytes
        );
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Every counter field: `drop_<reason>` ones as `edgehub_nat_drops_total{reason}`, the
/// others as `edgehub_nat_<name>_total`.
fn nat_counters(out: &mut String, counters: &Counters) {
    let fields = serde_json::to_value(counters).unwrap_or_default();
    let fields = fields.as_object().cloned().unwrap_or_default();
    family(
        out,
        "edgehub_nat_drops_total",
        "counter",
        "Packets the NAT dropped, by reason.",
    );
    for (name, value) in &fields {
        if let Some(reason) = name.strip_prefix("drop_") {
            let _ = writeln!(
                out,
                "edgehub_nat_drops_total{{reason=\"{reason}\"}} {value}"
            );
        }
    }
    for (name, value) in fields.iter().filter(|(n, _)| !n.starts_with("drop_")) {
        let metric = format!("edgehub_nat_{name}_total");
        family(out, &metric, "counter", &format!("NAT counter {name}."));
        let _ = writeln!(out, "{metric} {value}");
    }
}

/// Log2 nanosecond buckets as a cumulative Prometheus histogram in seconds.
fn histograms(
    out: &mut String,
    name: &str,
    help: &str,
    all: &[ServiceHistograms],
    buckets: impl Fn(&ServiceHistograms) -> &Vec<u64>,
) {
    // TODO: no `_sum` series: the dataplane keeps log2 bucket counts only, not the total time.
    family(out, name, "histogram", help);
    for h in all {
        let mut cumulative = 0u64;
        for (i, count) in buckets(h).iter().enumerate() {
            cumulative += count;
            // Bucket i holds [2^i, 2^(i+1)) ns, so its upper bound is 2^(i+1) ns.
            let le = f64::from(2u32).powi(i32::try_from(i + 1).unwrap_or(i32::MAX)) / 1e9;
            let _ = writeln!(
                out,
                "{name}_bucket{{vip=\"{}\",le=\"{le:e}\"}} {cumulative}",
                h.vip
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{vip=\"{}\",le=\"+Inf\"}} {cumulative}",
            h.vip
        );
        let _ = writeln!(out, "{name}_count{{vip=\"{}\"}} {cumulative}", h.vip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{PeerStatus, Status};

    fn status() -> Status {
        Status {
            interface: "wg0".into(),
            interface_error: None,
            listen_port: Some(51820),
            peers: vec![PeerStatus {
                name: "fly-gru-1".into(),
                public_key: String::new(),
                allowed_ips: vec![],
                endpoint: None,
                latest_handshake_secs: Some(12),
                rx_bytes: 100,
                tx_bytes: 200,
                configured: true,
            }],
            services: vec![],
            nat_error: None,
            counters: Some(Counters {
                drop_not_peer: 3,
                forwarded: 9,
                ..Counters::default()
            }),
            flows: 2,
            max_flows: 65_536,
            table_pressure: 2.0 / 65_536.0,
            histograms: vec![ServiceHistograms {
                vip: "10.50.0.1:5432".parse().unwrap(),
                db_handshake: vec![0, 1, 2],
                request: vec![4, 0, 0],
            }],
        }
    }

    #[test]
    fn parses_as_prometheus_text() {
        let text = render(&status());
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("parses");

        let value = |name: &str, label: (&str, &str)| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
                .map(|s| s.value.clone())
        };
        assert_eq!(
            value("edgehub_nat_drops_total", ("reason", "not_peer")),
            Some(prometheus_parse::Value::Counter(3.0))
        );
        assert_eq!(
            value("edgehub_peer_handshake_age_seconds", ("peer", "fly-gru-1")),
            Some(prometheus_parse::Value::Gauge(12.0))
        );
        let handshake = scrape
            .samples
            .iter()
            .find(|s| s.metric == "edgehub_db_handshake_seconds")
            .expect("histogram present");
        let prometheus_parse::Value::Histogram(buckets) = &handshake.value else {
            panic!("not a histogram: {:?}", handshake.value);
        };
        let counts: Vec<f64> = buckets.iter().map(|b| b.count).collect();
        assert_eq!(counts, [0.0, 1.0, 3.0, 3.0], "cumulative, then +Inf");
        assert!(
            scrape
                .samples
                .iter()
                .any(|s| s.metric == "edgehub_nat_forwarded_total")
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}

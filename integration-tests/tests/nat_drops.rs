//! The NAT's drop paths with crafted frames: each kind of bad packet towards a VIP is
//! dropped and counted under its reason, and never reaches the database side; what is not
//! for a VIP:port passes.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use hub_common::{
    headers::tcp_flags::{ACK, SYN},
    stats::NatCounters,
};
use hub_daemon::nat::read_counters;
use integration_tests::{
    crafted::{Segment, mac, send},
    nat_lab::{HUB_TUNNEL_VETH, NatLab, PEER_L2, Tunnel, VIP},
    require_root,
};

const PORT: u16 = 7300;
const SENT: u64 = 3;

/// Sends `packet` `SENT` times and waits until `counter` rose by as much (the drop
/// counter of its reason; `passed` for what is not the NAT's, which other packets such as
/// IPv6 neighbour discovery may raise too).
fn dropped_as(lab: &NatLab, packet: &[u8], counter: fn(&NatCounters) -> u64, what: &str) {
    let hub_mac = mac(&lab.hub, HUB_TUNNEL_VETH).unwrap();
    let before = counter(&read_counters(lab.pins.path()).unwrap());
    for _ in 0..SENT {
        send(&lab.edge, "eh-et", hub_mac, packet).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = counter(&read_counters(lab.pins.path()).unwrap());
        if now >= before + SENT {
            let passing = what.ends_with("passes");
            assert!(
                passing || now == before + SENT,
                "{what}: counted more than sent"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {SENT} counted",
            now - before
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bad_packets_are_dropped_and_counted_by_reason() {
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _nat = lab.start_nat(&lab.config(PORT)).unwrap();
    let syn = Segment::new(PEER_L2, VIP, PORT, SYN);

    let spoofed = Segment {
        src: Ipv4Addr::new(10, 77, 0, 1),
        ..syn.clone()
    };
    dropped_as(
        &lab,
        &spoofed.ipv4(),
        |c| c.drop_not_peer,
        "source outside the peer ranges",
    );

    let stray_ack = Segment {
        flags: ACK,
        ..syn.clone()
    };
    dropped_as(
        &lab,
        &stray_ack.ipv4(),
        |c| c.drop_no_flow,
        "ACK without a flow",
    );

    let long_claim = Segment {
        tot_len: Some(1_000),
        ..syn.clone()
    };
    dropped_as(
        &lab,
        &long_claim.ipv4(),
        |c| c.drop_malformed,
        "total length past the end",
    );

    let short_tcp = Segment {
        doff: 2,
        ..syn.clone()
    };
    dropped_as(
        &lab,
        &short_tcp.ipv4(),
        |c| c.drop_malformed,
        "TCP data offset below 5",
    );

    let truncated = &syn.ipv4()[..12];
    dropped_as(
        &lab,
        truncated,
        |c| c.drop_malformed,
        "truncated IPv4 header",
    );

    let fragment = Segment {
        frag_off: 0x2000,
        ..syn.clone()
    };
    dropped_as(
        &lab,
        &fragment.ipv4(),
        |c| c.drop_fragment,
        "first fragment",
    );

    let mut with_options = Segment {
        version_ihl: 0x46,
        ..syn.clone()
    }
    .ipv4();
    with_options.splice(20..20, [1, 1, 1, 0]); // four bytes of NOP/EOL options
    dropped_as(&lab, &with_options, |c| c.drop_malformed, "IPv4 options");

    let udp = Segment {
        protocol: 17,
        ..syn.clone()
    };
    // Only VIP:port TCP is the NAT's; the VIP's address may be the hub's own.
    dropped_as(&lab, &udp.ipv4(), |c| c.passed, "UDP to a VIP passes");

    let expiring = Segment {
        ttl: 1,
        ..syn.clone()
    };
    dropped_as(&lab, &expiring.ipv4(), |c| c.drop_ttl, "TTL 1");

    let other_port = Segment {
        dport: PORT + 1,
        ..syn.clone()
    };
    dropped_as(
        &lab,
        &other_port.ipv4(),
        |c| c.passed,
        "VIP port without a service passes",
    );

    // None of it opened a flow.
    assert_eq!(read_counters(lab.pins.path()).unwrap().new_flows, 0);
}

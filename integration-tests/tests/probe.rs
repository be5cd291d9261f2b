//! The build chain end to end: the embedded `edgehub_count` program loads, attaches at tcx
//! ingress of a veth in a fresh namespace, and counts real traffic.

use std::{
    net::UdpSocket,
    time::{Duration, Instant},
};

use hub_daemon::probe::Probe;
use integration_tests::{Netns, require_root, veth_pair};

const PACKETS: u64 = 20;

#[test]
fn counter_rises_with_traffic_and_nothing_is_left_behind() {
    require_root();
    let (names, veth) = {
        // Arrange: two namespaces joined by a veth.
        let a = Netns::new("probe-a").unwrap();
        let b = Netns::new("probe-b").unwrap();
        veth_pair(&a, "eh-pa", "10.201.0.1/24", &b, "eh-pb", "10.201.0.2/24").unwrap();

        let probe = {
            let _inside = a.enter().unwrap();
            Probe::attach("eh-pa").unwrap()
        };
        let before = probe.read().unwrap();

        // Act: send UDP datagrams from b to a.
        {
            let _inside = b.enter().unwrap();
            let socket = UdpSocket::bind("10.201.0.2:0").unwrap();
            for i in 0..PACKETS {
                socket.send_to(&i.to_be_bytes(), "10.201.0.1:9").unwrap();
            }
        }

        // Assert: the counter grows by at least what was sent (plus ARP and the like).
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut after = probe.read().unwrap();
        while after.packets < before.packets + PACKETS && Instant::now() < deadline {
            std::thread::yield_now();
            after = probe.read().unwrap();
        }
        assert!(
            after.packets >= before.packets + PACKETS,
            "counter went from {} to {} packets after {PACKETS} sent",
            before.packets,
            after.packets
        );
        assert!(
            after.bytes > before.bytes + PACKETS * 28,
            "bytes did not grow: {after:?}"
        );
        ((a.name().to_owned(), b.name().to_owned()), "eh-pa")
    };

    // Everything the test made went away with its guards.
    assert!(!Netns::exists(&names.0), "{} left behind", names.0);
    assert!(!Netns::exists(&names.1), "{} left behind", names.1);
    let link = std::process::Command::new("ip")
        .args(["link", "show", veth])
        .output()
        .unwrap();
    assert!(
        !link.status.success(),
        "{veth} left behind in the root namespace"
    );
}

//! The NATS tests' own servers: that they start, answer, and come back after
//! a crash, so that a NATS store test failing says something about the store.

#[path = "nats_support/mod.rs"]
mod nats_support;

use std::net::TcpStream;

use nats_support::{NatsCluster, NatsNode};

fn healthz(node: &NatsNode) -> u16 {
    let url = format!("{}/healthz", node.monitor_url());
    match ureq::get(&url).call() {
        Ok(response) => response.status().as_u16(),
        Err(ureq::Error::StatusCode(status)) => status,
        Err(error) => panic!("GET {url}: {error}\n{}", node.log()),
    }
}

fn accepts_clients(node: &NatsNode) -> bool {
    TcpStream::connect(("127.0.0.1", node.port)).is_ok()
}

#[test]
fn a_single_node_starts_and_comes_back_after_a_kill() {
    let Some(mut node) = nats_support::single("a_single_node_starts_and_comes_back_after_a_kill")
    else {
        return;
    };
    assert!(node.is_running());
    assert_eq!(healthz(&node), 200, "{}", node.log());
    assert!(accepts_clients(&node));
    assert!(node.url().starts_with("nats://127.0.0.1:"));
    let varz = ureq::get(&format!("{}/varz", node.monitor_url()))
        .call()
        .expect("varz")
        .body_mut()
        .read_to_string()
        .expect("varz body");
    assert!(
        varz.contains("\"max_payload\": 8388608"),
        "large events would not fit: {varz}"
    );
    let (port, store) = (node.port, node.store_dir());

    node.kill();
    assert!(!node.is_running());
    assert!(
        !accepts_clients(&node),
        "a killed server still accepts clients"
    );

    node.restart();
    assert!(node.is_running());
    assert_eq!((node.port, node.store_dir()), (port, store));
    assert_eq!(healthz(&node), 200, "{}", node.log());
    assert!(accepts_clients(&node));
    assert!(node.log().contains("==== started again ===="));
}

#[test]
fn a_cluster_survives_a_node_killed_and_restarted() {
    let Some(mut cluster) = NatsCluster::start("a_cluster_survives_a_node_killed_and_restarted", 3)
    else {
        return;
    };
    assert_eq!(cluster.nodes.len(), 3);
    assert_eq!(cluster.urls().split(',').count(), 3);
    for node in &cluster.nodes {
        assert_eq!(healthz(node), 200, "{}", cluster.logs());
    }

    cluster.kill(1);
    assert!(!cluster.nodes[1].is_running());
    for i in [0, 2] {
        assert!(cluster.nodes[i].is_running());
        assert!(accepts_clients(&cluster.nodes[i]));
    }

    cluster.restart(1);
    for node in &cluster.nodes {
        assert_eq!(healthz(node), 200, "{}", cluster.logs());
    }
    assert!(accepts_clients(&cluster.nodes[1]));
}

//! Start-up and shutdown of the real process.

mod common;

use std::time::{Duration, Instant};

use common::{Closed, Server};

#[actix_rt::test]
async fn sigterm_closes_every_connection_with_1001_and_exits() {
    let mut server = Server::start("");
    let mut alice = server.connect("alice", &["r"]).await;
    let mut bob = server.connect("bob", &["r"]).await;
    alice.join("r").await;
    bob.join("r").await;

    server.terminate();
    let started = Instant::now();
    assert_eq!(
        alice.closed(Duration::from_secs(5)).await,
        Closed::Code(1001)
    );
    assert_eq!(bob.closed(Duration::from_secs(5)).await, Closed::Code(1001));
    let exit = server.wait_exit(Duration::from_secs(15));
    assert!(exit.success(), "exit status {exit:?}");
    assert!(started.elapsed() < Duration::from_secs(12));
    let log = server.log();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

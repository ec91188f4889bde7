//! Open connections against the real binary in its own process: a server that holds many idle
//! keep-alive connections (clients' pools, long polls between two waits) spends little memory
//! on each.

mod common;

use common::ServerProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens a keep-alive connection to `addr`, asks `GET /healthz` on it and reads the whole
/// answer, so that the server has served a request on it; answers the open connection.
async fn served_connection(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: stowage\r\n\r\n")
        .await
        .expect("ask");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"\"ok\"}") {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(
            n > 0,
            "the server closed the connection: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_idle_keep_alive_connections_cost_little_memory() {
    const CONNECTIONS: u64 = 200;
    let server = ServerProcess::spawn(&[]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    // Warm up: the first connections allocate what all share (the runtime's and allocator's
    // caches).
    let warm = vec![served_connection(&addr).await, served_connection(&addr).await];
    drop(warm);
    let before = server.status_kib("RssAnon");
    let mut open = Vec::new();
    for _ in 0..CONNECTIONS {
        open.push(served_connection(&addr).await);
    }
    let after = server.status_kib("RssAnon");
    let per_connection = after.saturating_sub(before) / CONNECTIONS;
    println!(
        "{CONNECTIONS} idle connections: RssAnon {before} KiB before, {after} KiB with them open ({per_connection} KiB each)"
    );
    // Each connection used to get its own copy of every route: about 4.5 MiB each.
    assert!(
        per_connection < 256,
        "{per_connection} KiB per idle connection ({before} KiB before, {after} KiB with {CONNECTIONS} open)"
    );
    drop(open);
}

//! What the end-to-end tests stand on: a database of the test's own, the switch process, its
//! API, and sipp peers.

mod api;
mod db;
mod sipp;
mod switch;

pub use api::Api;
pub use db::Db;
pub use sipp::{AuthMismatch, Sipp, Transport};
pub use switch::{Switch, options};

// Types the call tests (issue 11) name in helpers of their own; unused until those land.
#[allow(unused_imports, reason = "for the call tests of issue 11")]
pub use {
    api::Tenant,
    sipp::{Message, Outcome, Peer, Stats},
    switch::Stopped,
};

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

/// The sipp scenarios, `tests/e2e/sipp/NAME`.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/e2e/sipp")
        .join(name)
}

/// A port of 127.0.0.1 free for both UDP and TCP now (the switch and sipp listen on both, or
/// on either, at the same port). Someone may take it before it is used: whoever binds it must
/// be ready to try another ([`Switch::start`] is).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
        let port = udp.local_addr().expect("local address").port();
        if TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).is_ok() {
            return port;
        }
    }
}

/// Whether something has bound `port` of 127.0.0.1 (or every address) over `transport`: a UDP
/// socket, or a TCP socket listening. Read from /proc/net rather than probed by binding,
/// which would hold the port for an instant and could make the owner's own bind fail.
pub fn bound(port: u16, transport: Transport) -> bool {
    let (table, listening) = match transport {
        Transport::Udp => ("/proc/net/udp", "07"),
        Transport::Tcp => ("/proc/net/tcp", "0A"),
    };
    let Ok(text) = std::fs::read_to_string(table) else {
        return false;
    };
    let ours = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    text.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1);
        let state = fields.nth(1);
        local.is_some_and(|l| ours.iter().any(|o| o == l)) && state == Some(listening)
    })
}

/// A name no other test, run or process uses now (databases, files).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a test on SQLite and (when configured) PostgreSQL, as two `#[tokio::test]`s in a
/// module named after it; the body gets the [`Db`] to start the switch on.
#[macro_export]
macro_rules! both {
    ($(#[$m:meta])* async fn $name:ident($db:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$m])*
            async fn run($db: $crate::harness::Db) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::harness::Db::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match $crate::harness::Db::postgres().await {
                    Some(db) => run(db).await,
                    None => eprintln!(
                        "skipped: set WASMSWITCH_TEST_POSTGRES_URL to run on PostgreSQL"
                    ),
                }
            }
        }
    };
}

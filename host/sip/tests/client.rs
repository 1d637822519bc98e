//! Client transactions through the endpoint ([`Endpoint::request`]): responses come back on
//! the transaction's own stream, provisionals first, and silence ends in a timeout on the
//! transaction layer's clock (Timer F, 64 x T1).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use wasmswitch_sip::endpoint::{ClientEvent, Endpoint, EndpointConfig, NoFinal};
use wasmswitch_sip::transaction::{Flow, FlowTransport, Timers};
use wasmswitch_sip::{Message, Request};

async fn endpoint(t1: Duration) -> Endpoint {
    let (ep, _events) = Endpoint::start(EndpointConfig {
        udp: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        timers: Timers {
            t1,
            ..Timers::default()
        },
        ..EndpointConfig::default()
    })
    .await
    .expect("the endpoint starts");
    ep
}

fn register(from: SocketAddr, branch: &str) -> Request {
    let text = format!(
        "REGISTER sip:provider.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:acme@provider.example.com>;tag=1\r\n\
         To: <sip:acme@provider.example.com>\r\n\
         Call-ID: {branch}@test\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:acme@{from}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match Message::parse(text.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

/// The response to `request` with `status`, as a provider would send it.
fn answer(request: &[u8], status: &str) -> String {
    let text = String::from_utf8_lossy(request);
    let headers: String = text
        .lines()
        .filter(|l| {
            ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    format!("SIP/2.0 {status}\r\n{headers}Content-Length: 0\r\n\r\n")
}

#[tokio::test]
async fn responses_come_back_on_the_transactions_own_stream() {
    let ep = endpoint(Duration::from_millis(500)).await;
    let provider = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = ep.local_addr(FlowTransport::Udp).unwrap();
    let flow = Flow {
        transport: FlowTransport::Udp,
        remote: provider.local_addr().unwrap(),
        connection: None,
    };
    let mut tx = ep
        .request(register(local, "one"), flow)
        .await
        .expect("sent");
    let mut buf = [0u8; 4096];
    let (n, from) = provider.recv_from(&mut buf).await.unwrap();
    assert_eq!(from, local, "sent from the endpoint's socket");
    provider
        .send_to(answer(&buf[..n], "100 Trying").as_bytes(), from)
        .await
        .unwrap();
    provider
        .send_to(answer(&buf[..n], "200 OK").as_bytes(), from)
        .await
        .unwrap();
    match tx.next().await {
        Some(ClientEvent::Response(r)) => assert_eq!(r.status, 100),
        other => panic!("{other:?}"),
    }
    let ok = tx.final_response().await.expect("a final response");
    assert_eq!(ok.status, 200);
    ep.shutdown().await;
}

#[tokio::test]
async fn silence_ends_in_a_timeout() {
    // T1 = 10 ms: Timer F fires after 640 ms.
    let ep = endpoint(Duration::from_millis(10)).await;
    let provider = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = ep.local_addr(FlowTransport::Udp).unwrap();
    let flow = Flow {
        transport: FlowTransport::Udp,
        remote: provider.local_addr().unwrap(),
        connection: None,
    };
    let started = std::time::Instant::now();
    let mut tx = ep
        .request(register(local, "two"), flow)
        .await
        .expect("sent");
    let end = tokio::time::timeout(Duration::from_secs(5), tx.final_response())
        .await
        .expect("the transaction gives up on its own");
    assert_eq!(end, Err(NoFinal::Timeout));
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    // The request was retransmitted meanwhile.
    let mut buf = [0u8; 4096];
    let mut copies = 0;
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(50), provider.recv_from(&mut buf)).await
    {
        copies += 1;
    }
    assert!(copies >= 3, "{copies} copies");
    ep.shutdown().await;
}

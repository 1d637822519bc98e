//! Client transactions through the endpoint ([`Endpoint::request`]): responses come back on
//! the transaction's own stream, provisionals first, and silence ends in a timeout on the
//! transaction layer's clock (Timer F, 64 x T1). What a call layer adds: several
//! transactions reporting to one receiver ([`Endpoint::request_into`]), CANCEL of an INVITE,
//! the stateless ACK for a 2xx, and OPTIONS answered 503 while draining.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
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

fn invite(from: SocketAddr, branch: &str) -> Request {
    let text = format!(
        "INVITE sip:+15550100@provider.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+15550199@switch.example.com>;tag=a{branch}\r\n\
         To: <sip:+15550100@provider.example.com>\r\n\
         Call-ID: {branch}@test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:{from}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match Message::parse(text.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

/// The next datagram to `peer` whose first line starts with `method`, skipping others
/// (retransmissions).
async fn next_request(peer: &UdpSocket, method: &str) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 4096];
    loop {
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
            .await
            .expect("a request in time")
            .expect("the socket reads");
        if buf[..n].starts_with(method.as_bytes()) {
            return (buf[..n].to_vec(), from);
        }
    }
}

#[tokio::test]
async fn transactions_share_one_receiver_each_event_with_its_transaction() {
    let ep = endpoint(Duration::from_millis(500)).await;
    let provider = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = ep.local_addr(FlowTransport::Udp).unwrap();
    let flow = Flow {
        transport: FlowTransport::Udp,
        remote: provider.local_addr().unwrap(),
        connection: None,
    };
    let (sink, mut events) = mpsc::channel(16);
    let a = ep
        .request_into(register(local, "a1"), flow, sink.clone())
        .await
        .expect("sent");
    let b = ep
        .request_into(register(local, "b2"), flow, sink)
        .await
        .expect("sent");
    assert_ne!(a, b);
    let mut requests = Vec::new();
    for _ in 0..2 {
        requests.push(next_request(&provider, "REGISTER").await);
    }
    // Answered in the other order: each answer comes back with its own transaction.
    for (request, from) in requests.iter().rev() {
        let branch_b = String::from_utf8_lossy(request).contains("z9hG4bKb2");
        let status = if branch_b { "486 Busy Here" } else { "200 OK" };
        provider
            .send_to(answer(request, status).as_bytes(), from)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..2 {
        match events.recv().await {
            Some((tx, ClientEvent::Response(r))) => seen.push((tx, r.status)),
            other => panic!("{other:?}"),
        }
    }
    seen.sort();
    let mut want = vec![(a, 200), (b, 486)];
    want.sort();
    assert_eq!(seen, want);
    ep.shutdown().await;
}

#[tokio::test]
async fn a_cancelled_invite_ends_with_its_487_and_the_cancel_stays_quiet() {
    let ep = endpoint(Duration::from_millis(500)).await;
    let provider = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = ep.local_addr(FlowTransport::Udp).unwrap();
    let flow = Flow {
        transport: FlowTransport::Udp,
        remote: provider.local_addr().unwrap(),
        connection: None,
    };
    let (sink, mut events) = mpsc::channel(16);
    let tx = ep
        .request_into(invite(local, "inv1"), flow, sink)
        .await
        .expect("sent");
    let (request, from) = next_request(&provider, "INVITE").await;
    provider
        .send_to(answer(&request, "180 Ringing").as_bytes(), from)
        .await
        .unwrap();
    match events.recv().await {
        Some((id, ClientEvent::Response(r))) => assert_eq!((id, r.status), (tx, 180)),
        other => panic!("{other:?}"),
    }
    ep.cancel(tx).await.expect("cancellable once it rings");
    let (cancel, from) = next_request(&provider, "CANCEL").await;
    let text = String::from_utf8_lossy(&cancel);
    assert!(
        text.contains("z9hG4bKinv1"),
        "the CANCEL names the INVITE's branch: {text}"
    );
    provider
        .send_to(answer(&cancel, "200 OK").as_bytes(), from)
        .await
        .unwrap();
    provider
        .send_to(answer(&request, "487 Request Terminated").as_bytes(), from)
        .await
        .unwrap();
    match events.recv().await {
        Some((id, ClientEvent::Response(r))) => assert_eq!((id, r.status), (tx, 487)),
        other => panic!("{other:?}"),
    }
    // The layer ACKs the 487 itself; the CANCEL's 200 is not reported.
    let (ack, _) = next_request(&provider, "ACK").await;
    assert!(String::from_utf8_lossy(&ack).contains("CSeq: 1 ACK"));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), events.recv())
            .await
            .is_err(),
        "nothing more is reported"
    );
    // A transaction that has its final response cannot be cancelled.
    assert!(ep.cancel(tx).await.is_err());
    ep.shutdown().await;
}

#[tokio::test]
async fn a_stateless_request_goes_out_once() {
    let ep = endpoint(Duration::from_millis(10)).await;
    let provider = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = ep.local_addr(FlowTransport::Udp).unwrap();
    let flow = Flow {
        transport: FlowTransport::Udp,
        remote: provider.local_addr().unwrap(),
        connection: None,
    };
    let text = format!(
        "ACK sip:+15550100@{peer} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKack1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+15550199@switch.example.com>;tag=a\r\n\
         To: <sip:+15550100@provider.example.com>;tag=b\r\n\
         Call-ID: ack1@test\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n",
        peer = flow.remote
    );
    let Ok(Message::Request(ack)) = Message::parse(text.as_bytes()) else {
        panic!("the ACK parses");
    };
    ep.send_stateless(ack, flow).await.expect("sent");
    let (got, from) = next_request(&provider, "ACK").await;
    assert_eq!(from, local);
    assert!(String::from_utf8_lossy(&got).contains("Call-ID: ack1@test"));
    // Not retransmitted, even with T1 at 10 ms.
    let mut buf = [0u8; 2048];
    assert!(
        tokio::time::timeout(Duration::from_millis(100), provider.recv_from(&mut buf))
            .await
            .is_err()
    );
    ep.shutdown().await;
}

#[tokio::test]
async fn a_draining_endpoint_answers_options_503() {
    let ep = endpoint(Duration::from_millis(500)).await;
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = ep.local_addr(FlowTransport::Udp).unwrap();
    let mine = probe.local_addr().unwrap();
    let options = |n: u32| {
        format!(
            "OPTIONS sip:{target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {mine};branch=z9hG4bKopt{n}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:lb@{mine}>;tag=lb{n}\r\n\
             To: <sip:{target}>\r\n\
             Call-ID: opt{n}@lb\r\n\
             CSeq: {n} OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let status = |n: u32| {
        let probe = &probe;
        let text = options(n);
        async move {
            probe.send_to(text.as_bytes(), target).await.unwrap();
            let mut buf = [0u8; 4096];
            let (len, _) = tokio::time::timeout(Duration::from_secs(5), probe.recv_from(&mut buf))
                .await
                .expect("an answer")
                .unwrap();
            String::from_utf8_lossy(&buf[..len]).into_owned()
        }
    };
    assert!(status(1).await.starts_with("SIP/2.0 200"));
    ep.set_draining(true).await.expect("running");
    let busy = status(2).await;
    assert!(busy.starts_with("SIP/2.0 503"), "{busy}");
    assert!(busy.contains("Retry-After:"), "{busy}");
    ep.set_draining(false).await.expect("running");
    assert!(status(3).await.starts_with("SIP/2.0 200"));
    ep.shutdown().await;
}

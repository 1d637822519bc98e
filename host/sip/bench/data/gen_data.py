#!/usr/bin/env python3
"""Writes data/{invite,ok,register}.sip with CRLF line ends and exact Content-Length.
Re-running it is idempotent (fixed values, no randomness)."""
import hashlib, os

HERE = os.path.dirname(os.path.abspath(__file__))

def msg(head_lines, body_lines):
    body = "".join(l + "\r\n" for l in body_lines) if body_lines else ""
    head = [l.replace("{CL}", str(len(body.encode()))) for l in head_lines]
    return ("".join(l + "\r\n" for l in head) + "\r\n" + body).encode()

CALL_ID = "Yjc2ZmQ4NTI3MGE5ZDBmNzQ0"
VIA_PROXY = "Via: SIP/2.0/UDP 198.51.100.10;branch=z9hG4bK4b1c.9a7e0f2d1c3b5a68.0;rport"
VIA_UA = "Via: SIP/2.0/UDP 192.0.2.44:53124;received=192.0.2.44;rport=53124;branch=z9hG4bK-524287-1---9d2f6a1b7c3e4d50"
FROM = 'From: "Alice Carter" <sip:alice@carrier.example.com>;tag=8a2c41f9'
TO = "To: <sip:+14155550142@sbc.example.net;user=phone>"

invite = msg([
    "INVITE sip:+14155550142@sbc.example.net;user=phone SIP/2.0",
    VIA_PROXY,
    VIA_UA,
    "Record-Route: <sip:198.51.100.10;lr>",
    "Max-Forwards: 69",
    FROM,
    TO,
    "Call-ID: " + CALL_ID,
    "CSeq: 2 INVITE",
    "Contact: <sip:alice@192.0.2.44:53124>",
    "Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO",
    "Supported: replaces, timer",
    "User-Agent: Z 5.6.4 v2.10.20.4",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], [
    "v=0",
    "o=Z 0 135463851 IN IP4 192.0.2.44",
    "s=Z",
    "c=IN IP4 192.0.2.44",
    "t=0 0",
    "m=audio 8000 RTP/AVP 0 8 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
])

ok = msg([
    "SIP/2.0 200 OK",
    VIA_PROXY.replace(";rport", ";rport=5060;received=198.51.100.10"),
    VIA_UA,
    "Record-Route: <sip:198.51.100.10;lr>",
    FROM,
    TO + ";tag=as6f1c2d9e",
    "Call-ID: " + CALL_ID,
    "CSeq: 2 INVITE",
    "Contact: <sip:+14155550142@203.0.113.5:5060>",
    "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE",
    "Supported: replaces, timer",
    "Server: Asterisk PBX 20.5.2",
    "Content-Type: application/sdp",
    "Content-Length: {CL}",
], [
    "v=0",
    "o=- 1714556123 1714556124 IN IP4 203.0.113.5",
    "s=Asterisk",
    "c=IN IP4 203.0.113.5",
    "t=0 0",
    "m=audio 14582 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=maxptime:150",
    "a=sendrecv",
])

# RFC 8760 SHA-256 digest, computed for real (password "correct horse").
user, realm, pw = "alice", "sip.example.com", "correct horse"
nonce = "5f4c2a1d9b8e7f6a3c2b1a0d9e8f7a6b:1714556100"
cnonce, nc, uri = "a8f3c9e1d7b24f06", "00000001", "sip:sip.example.com"
h = lambda s: hashlib.sha256(s.encode()).hexdigest()
resp = h(f"{h(f'{user}:{realm}:{pw}')}:{nonce}:{nc}:{cnonce}:auth:{h(f'REGISTER:{uri}')}")

register = msg([
    "REGISTER sip:sip.example.com SIP/2.0",
    "Via: SIP/2.0/TLS 192.0.2.44:51234;branch=z9hG4bK-524287-1---c4e1f3a2b8d97c06;rport",
    "Max-Forwards: 70",
    'Contact: <sip:alice@192.0.2.44:51234;transport=TLS;ob>;reg-id=1;+sip.instance="<urn:uuid:6b2f1e0c-9d3a-4c5b-8e7f-0a1b2c3d4e5f>"',
    'To: "Alice Carter" <sip:alice@sip.example.com>',
    'From: "Alice Carter" <sip:alice@sip.example.com>;tag=3f1b9c7e',
    "Call-ID: ZmI4NzQ2MjljMTg3ZGQ4ZWE0NGE0ZDE4YTBjNmU1ODQ",
    "CSeq: 2 REGISTER",
    "Expires: 3600",
    "Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE",
    "Supported: replaces, outbound, path, gruu",
    "User-Agent: Z 5.6.4 v2.10.20.4",
    f'Authorization: Digest username="{user}",realm="{realm}",nonce="{nonce}",uri="{uri}",'
    f'response="{resp}",cnonce="{cnonce}",nc={nc},qop=auth,algorithm=SHA-256',
    "Content-Length: {CL}",
], [])

for name, data in [("invite.sip", invite), ("ok.sip", ok), ("register.sip", register)]:
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)

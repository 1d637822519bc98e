//! Session timers (RFC 4028): the session is refreshed by re-INVITE or UPDATE within an
//! interval the two sides agree on, so a call whose far end vanished is ended, and a call that
//! is alive is not cut by a carrier that expects refreshes. One [`SessionTimer`] per dialog,
//! sans-IO: it reads and writes `Session-Expires` and `Min-SE`, and tells the call layer when
//! to refresh ([`Event::Refresh`], at half the interval, on the refresher's side) and when the
//! session has expired ([`Event::Expired`], at `interval - min(32 s, interval / 3)` without a
//! refresh, on both sides: send BYE).
//!
//! Covered: the UAC (section 7: the headers of an INVITE or UPDATE, reading the 2xx, a 422
//! raising `Min-SE` for the retry), the UAS (section 9: granting, lowering, rejecting with 422
//! and `Min-SE`, choosing the refresher, `Require: timer` when the refresher is the UAC) and the
//! timers of section 10. Every 2xx to an INVITE or UPDATE of the dialog is a refresh, and one
//! without `Session-Expires` turns the timer off (section 7.2).
//!
//! Readings chosen:
//! - The refresher's side also expires: if its refreshes keep failing, the session ends on its
//!   side at the same instant as on the other.
//! - A request without `Supported: timer` cannot be refused 422 (its UAC would not know how to
//!   retry); a `Session-Expires` below our minimum that a proxy put in such a request is
//!   accepted, but never below the RFC's 90 s floor, and we refresh.
//! - A 2xx whose `Session-Expires` names no refresher (a UAS that breaks section 9) makes us,
//!   the UAC, the refresher: refreshing too often is harmless, being cut is not.
//! - As UAS, [`Config::always`] runs a timer even when the request asked for none (we refresh
//!   if the UAC does not support `timer`): a switch between carriers must not keep dead calls.
//!   Such a peer answers our refreshes with no `Session-Expires`, so under `always` a 2xx
//!   without one leaves a timer we refresh running instead of turning it off (section 7.2
//!   would turn it off after the first refresh).
//! - `Supported: timer` is the caller's to list (from the screening policy), not this module's.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::header::{HeaderName, Headers};
use crate::invite::has_option_tag;
use crate::message::{Request, Response};

/// The RFC's floor for any session interval and `Min-SE` (section 4): 90 s.
pub const MIN_INTERVAL: u32 = 90;

/// Session-timer settings of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The interval asked for as UAC and granted at most as UAS, in seconds. Default 1800
    /// (30 minutes, RFC 4028 section 4's recommendation): refreshes are rare, and a dead call
    /// is found within half an hour.
    pub interval: u32,
    /// The smallest interval accepted, in seconds (`Min-SE`). Default 90, the RFC's floor:
    /// some carriers ask for short intervals, and refusing them costs a 422 round trip.
    pub min_se: u32,
    /// Whether we want to be the refresher when the choice is ours. Default false: the peer
    /// refreshes, which costs us nothing, and we still end the call if it stops.
    pub refresh: bool,
    /// Whether the UAS runs a timer when the request asked for none. Default true (see the
    /// module docs).
    pub always: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            interval: 1800,
            min_se: MIN_INTERVAL,
            refresh: false,
            always: true,
        }
    }
}

/// Who refreshes: the UAC or the UAS of the request that set the interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// `refresher=uac`.
    Uac,
    /// `refresher=uas`.
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A `Session-Expires` value: `1800;refresher=uac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// The interval, in seconds.
    pub delta: u32,
    /// Who refreshes, if named.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Parses a value (other parameters are ignored, as RFC 4028 section 4 allows).
    pub fn parse(v: &[u8]) -> Option<SessionExpires> {
        let text = std::str::from_utf8(v).ok()?;
        let mut parts = text.split(';');
        let delta = seconds(parts.next()?)?;
        let mut refresher = None;
        for p in parts {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            if name.trim().eq_ignore_ascii_case("refresher") {
                refresher = match value.trim() {
                    v if v.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
                    v if v.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
                    _ => return None,
                };
            }
        }
        Some(SessionExpires { delta, refresher })
    }

    /// The first `Session-Expires` of a message, if readable.
    pub fn from_headers(headers: &Headers) -> Option<SessionExpires> {
        SessionExpires::parse(headers.get(&HeaderName::SessionExpires)?)
    }
}

impl std::fmt::Display for SessionExpires {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.delta)?;
        if let Some(r) = self.refresher {
            write!(f, ";refresher={}", r.as_str())?;
        }
        Ok(())
    }
}

/// A delta-seconds value: digits, at most 10, that fit 32 bits.
fn seconds(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The `Min-SE` of a message (its parameters ignored).
fn min_se(headers: &Headers) -> Option<u32> {
    let v = std::str::from_utf8(headers.get(&HeaderName::MinSe)?).ok()?;
    seconds(v.split(';').next()?)
}

/// What the call layer is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// We are the refresher and half the interval has passed: send a re-INVITE or UPDATE
    /// (the call layer chooses) with [`SessionTimer::request_headers`].
    Refresh,
    /// No refresh came in time: the session is over, send BYE.
    Expired,
}

/// The UAS's decision on a request, to put in its 2xx with [`SessionTimer::answer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The interval granted, in seconds.
    pub interval: u32,
    /// Who refreshes.
    pub refresher: Refresher,
}

/// A request's interval is below our minimum: answer 422 with [`TooSmall::response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("session interval too small, at least {min_se} s")]
pub struct TooSmall {
    /// The smallest interval we accept, for the `Min-SE` of the 422.
    pub min_se: u32,
}

impl TooSmall {
    /// The 422 Session Interval Too Small, with `Min-SE` (RFC 4028 section 6).
    pub fn response(&self, request: &Request, to_tag: Option<&str>) -> Response {
        let mut r = request.reply(422, "Session Interval Too Small", to_tag);
        r.headers_mut()
            .push(HeaderName::MinSe, self.min_se.to_string());
        r
    }
}

#[derive(Debug, Clone, Copy)]
struct Active {
    interval: u32,
    local_refresher: bool,
    refresh_at: Option<Instant>,
    expire_at: Instant,
}

/// The session timer of one dialog.
#[derive(Debug)]
pub struct SessionTimer {
    config: Config,
    /// The smallest interval we may ask for: our own, raised by any 422.
    min_se: u32,
    active: Option<Active>,
    events: VecDeque<Event>,
}

impl SessionTimer {
    /// An idle timer with these settings.
    pub fn new(config: Config) -> SessionTimer {
        SessionTimer {
            config,
            min_se: config.min_se.max(MIN_INTERVAL),
            active: None,
            events: VecDeque::new(),
        }
    }

    /// The interval in force, in seconds, if a timer runs.
    pub fn interval(&self) -> Option<u32> {
        self.active.map(|a| a.interval)
    }

    /// Whether we are the refresher (only meaningful while a timer runs).
    pub fn is_refresher(&self) -> bool {
        self.active.is_some_and(|a| a.local_refresher)
    }

    /// Stops the timer (the dialog ended).
    pub fn stop(&mut self) {
        self.active = None;
    }

    fn start(&mut self, now: Instant, interval: u32, local_refresher: bool) {
        let whole = Duration::from_secs(u64::from(interval));
        let before = Duration::from_secs(32).min(whole / 3);
        self.active = Some(Active {
            interval,
            local_refresher,
            refresh_at: local_refresher.then(|| now + whole / 2),
            expire_at: now + whole - before,
        });
    }

    // ----- as UAC (RFC 4028 section 7) -----

    /// The `Session-Expires` and `Min-SE` for an INVITE or UPDATE we send (initial or
    /// refresh). A running timer is asked again with its interval and refresher; otherwise
    /// we ask for our interval and leave the refresher to the UAS unless we want it.
    pub fn request_headers(&self) -> Headers {
        let se = match self.active {
            Some(a) => SessionExpires {
                delta: a.interval.max(self.min_se),
                refresher: Some(if a.local_refresher {
                    Refresher::Uac
                } else {
                    Refresher::Uas
                }),
            },
            None => SessionExpires {
                delta: self.config.interval.max(self.min_se),
                refresher: self.config.refresh.then_some(Refresher::Uac),
            },
        };
        let mut headers = Headers::with_capacity(2);
        headers.push(HeaderName::SessionExpires, se.to_string());
        headers.push(HeaderName::MinSe, self.min_se.to_string());
        headers
    }

    /// A final response to an INVITE or UPDATE we sent. A 2xx sets (or turns off) the timer;
    /// a 422 raises our `Min-SE` and asks for the request again
    /// ([`SessionTimer::request_headers`] then carries the larger value); anything else
    /// changes nothing (a failed refresh lets the session run to its expiry). So does a 422
    /// whose `Min-SE` is no more than we asked (zero, say): asking again would be refused
    /// again, for ever.
    pub fn receive_response(&mut self, now: Instant, response: &Response) -> Result<(), TooSmall> {
        match response.status {
            200..=299 => {
                match SessionExpires::from_headers(response.headers()) {
                    Some(se) => {
                        let local = se.refresher != Some(Refresher::Uas);
                        self.start(now, se.delta.max(MIN_INTERVAL), local);
                    }
                    None => match self.active {
                        // A peer without `timer` never sends it (see the module docs).
                        Some(a) if self.config.always && a.local_refresher => {
                            self.start(now, a.interval, true)
                        }
                        _ => self.active = None,
                    },
                }
                Ok(())
            }
            422 => {
                // What `request_headers` asked for.
                let asked = self
                    .active
                    .map_or(self.config.interval, |a| a.interval)
                    .max(self.min_se);
                // A 422 without a usable Min-SE still says "more": double what we asked.
                let wanted = min_se(response.headers()).unwrap_or(asked.saturating_mul(2));
                if wanted <= asked {
                    return Ok(());
                }
                self.min_se = wanted;
                Err(TooSmall { min_se: wanted })
            }
            _ => Ok(()),
        }
    }

    // ----- as UAS (RFC 4028 section 9) -----

    /// Decides on an INVITE or UPDATE we received: what to grant, or a 422 (only to a UAC
    /// that supports `timer`). `None`: no timer.
    pub fn receive_request(&self, request: &Request) -> Result<Option<Grant>, TooSmall> {
        let headers = request.headers();
        let supported = has_option_tag(headers, &HeaderName::Supported, "timer")
            || has_option_tag(headers, &HeaderName::Require, "timer");
        let floor = min_se(headers).unwrap_or(MIN_INTERVAL).max(MIN_INTERVAL);
        let ours = self.config.min_se.max(MIN_INTERVAL);
        let chosen = if supported && !self.config.refresh {
            Refresher::Uac
        } else {
            Refresher::Uas
        };
        let Some(se) = SessionExpires::from_headers(headers) else {
            return Ok(self.config.always.then(|| Grant {
                interval: self.config.interval.max(floor).max(ours),
                refresher: chosen,
            }));
        };
        if se.delta < ours && supported {
            return Err(TooSmall {
                min_se: ours.max(floor),
            });
        }
        let interval = if se.delta < ours {
            se.delta.max(MIN_INTERVAL)
        } else {
            // We may lower what was asked, but not below the request's Min-SE.
            se.delta.min(self.config.interval.max(floor).max(ours))
        };
        let refresher = match se.refresher {
            Some(r) if supported || r == Refresher::Uas => r,
            _ => chosen,
        };
        Ok(Some(Grant {
            interval,
            refresher,
        }))
    }

    /// Our 2xx to that request goes out: writes the grant into it (with `Require: timer`
    /// when the UAC refreshes) and starts the timer, or turns it off for `None`.
    pub fn answer(&mut self, now: Instant, grant: Option<Grant>, response: &mut Response) {
        let Some(grant) = grant else {
            self.active = None;
            return;
        };
        let headers = response.headers_mut();
        headers.set(
            HeaderName::SessionExpires,
            SessionExpires {
                delta: grant.interval,
                refresher: Some(grant.refresher),
            }
            .to_string(),
        );
        if grant.refresher == Refresher::Uac {
            headers.push(HeaderName::Require, "timer");
        }
        self.start(now, grant.interval, grant.refresher == Refresher::Uas);
    }

    // ----- timers (RFC 4028 section 10) -----

    /// When [`SessionTimer::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let a = self.active?;
        Some(a.refresh_at.map_or(a.expire_at, |r| r.min(a.expire_at)))
    }

    /// Fires what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(a) = &mut self.active else {
            return;
        };
        if a.refresh_at.is_some_and(|at| at <= now) {
            a.refresh_at = None;
            self.events.push_back(Event::Refresh);
        }
        if a.expire_at <= now {
            self.active = None;
            self.events.push_back(Event::Expired);
        }
    }

    /// The next event for the call layer.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn request(extra: &str) -> Request {
        let text = format!(
            "INVITE sip:bob@192.0.2.4 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n\
Call-ID: c1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match Message::parse(text.as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn grant(extra: &str, config: Config) -> Result<Option<Grant>, TooSmall> {
        SessionTimer::new(config).receive_request(&request(extra))
    }

    #[test]
    fn session_expires_reads_and_prints() {
        let se = SessionExpires::parse(b"1800 ; Refresher = UAS;x=y").unwrap();
        assert_eq!(
            se,
            SessionExpires {
                delta: 1800,
                refresher: Some(Refresher::Uas)
            }
        );
        assert_eq!(se.to_string(), "1800;refresher=uas");
        assert_eq!(SessionExpires::parse(b"90").unwrap().refresher, None);
        for bad in ["", "x", "90;refresher=proxy", "-1", "99999999999"] {
            assert_eq!(SessionExpires::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn the_uas_grants_lowers_and_refuses() {
        let c = Config::default();
        let uac_refreshes = |interval| {
            Ok(Some(Grant {
                interval,
                refresher: Refresher::Uac,
            }))
        };
        // Asked 1800 with timer support: granted, the UAC refreshes.
        assert_eq!(
            grant("Supported: timer\r\nSession-Expires: 1800\r\n", c),
            uac_refreshes(1800)
        );
        // Asked more than we like: lowered to ours, but not below the request's Min-SE.
        assert_eq!(
            grant("Supported: timer\r\nSession-Expires: 7200\r\n", c),
            uac_refreshes(1800)
        );
        assert_eq!(
            grant(
                "Supported: timer\r\nSession-Expires: 7200\r\nMin-SE: 3600\r\n",
                c
            ),
            uac_refreshes(3600)
        );
        // The refresher the UAC named is kept.
        assert_eq!(
            grant(
                "Supported: timer\r\nSession-Expires: 600;refresher=uas\r\n",
                c
            ),
            Ok(Some(Grant {
                interval: 600,
                refresher: Refresher::Uas
            }))
        );
        // Below our minimum: 422 with our Min-SE.
        let strict = Config {
            min_se: 300,
            ..Config::default()
        };
        assert_eq!(
            grant("Supported: timer\r\nSession-Expires: 120\r\n", strict),
            Err(TooSmall { min_se: 300 })
        );
        // ... unless the UAC does not support timer (a proxy asked): then we refresh.
        assert_eq!(
            grant("Session-Expires: 120\r\n", strict),
            Ok(Some(Grant {
                interval: 120,
                refresher: Refresher::Uas
            }))
        );
        // Nothing asked: our own timer, refreshed by whoever can.
        assert_eq!(grant("Supported: timer\r\n", c), uac_refreshes(1800));
        assert_eq!(
            grant("", c),
            Ok(Some(Grant {
                interval: 1800,
                refresher: Refresher::Uas
            }))
        );
        // A UAC without timer support cannot be made the refresher, whatever it names.
        assert_eq!(
            grant("Session-Expires: 1800;refresher=uac\r\n", c),
            Ok(Some(Grant {
                interval: 1800,
                refresher: Refresher::Uas
            }))
        );
        let accept_only = Config {
            always: false,
            ..Config::default()
        };
        assert_eq!(grant("", accept_only), Ok(None));
    }

    #[test]
    fn the_422_carries_min_se() {
        let req = request("Supported: timer\r\nSession-Expires: 60\r\n");
        let r = TooSmall { min_se: 90 }.response(&req, Some("t"));
        assert_eq!(r.status, 422);
        assert_eq!(r.headers().get(&HeaderName::MinSe).unwrap(), "90");
    }

    #[test]
    fn a_422_is_retried_only_when_it_asks_for_more() {
        let t0 = Instant::now();
        let req = request("Supported: timer\r\nSession-Expires: 1800\r\n");
        let too_small = |min_se: &str| {
            let mut r = req.reply(422, "Session Interval Too Small", Some("b"));
            if !min_se.is_empty() {
                r.headers_mut().push(HeaderName::MinSe, min_se.to_string());
            }
            r
        };
        let mut timer = SessionTimer::new(Config::default());
        // No more than we asked (1800 s): a retry would be refused again, so none.
        for min_se in ["90", "1800", "0"] {
            assert_eq!(timer.receive_response(t0, &too_small(min_se)), Ok(()));
        }
        assert_eq!(
            timer.request_headers().get(&HeaderName::MinSe).unwrap(),
            "90"
        );
        // More: retried with it. Unreadable: retried with double what we asked.
        assert_eq!(
            timer.receive_response(t0, &too_small("2400")),
            Err(TooSmall { min_se: 2400 })
        );
        assert_eq!(
            timer.receive_response(t0, &too_small("x")),
            Err(TooSmall { min_se: 4800 })
        );
        // The largest value saturates, and then nothing more can be asked.
        assert_eq!(
            timer.receive_response(t0, &too_small("4294967295")),
            Err(TooSmall { min_se: u32::MAX })
        );
        assert_eq!(timer.receive_response(t0, &too_small("")), Ok(()));
        // A running timer's refresh is what was asked.
        let mut timer = SessionTimer::new(Config::default());
        timer.start(t0, 3600, true);
        assert_eq!(timer.receive_response(t0, &too_small("1800")), Ok(()));
    }

    #[test]
    fn the_answer_names_the_refresher_and_requires_timer_of_a_refreshing_uac() {
        let t0 = Instant::now();
        let req = request("Supported: timer\r\nSession-Expires: 1800\r\n");
        let mut timer = SessionTimer::new(Config::default());
        let g = timer.receive_request(&req).unwrap();
        let mut ok = req.reply(200, "OK", Some("b"));
        timer.answer(t0, g, &mut ok);
        assert_eq!(
            ok.headers().get(&HeaderName::SessionExpires).unwrap(),
            "1800;refresher=uac"
        );
        assert_eq!(ok.headers().get(&HeaderName::Require).unwrap(), "timer");
        assert!(!timer.is_refresher());
        // The other side refreshes: we only expire, at 1800 - 32 s.
        assert_eq!(timer.poll_timeout(), Some(t0 + Duration::from_secs(1768)));
    }

    #[test]
    fn the_uac_refreshes_unless_the_2xx_names_the_uas() {
        let t0 = Instant::now();
        let req = request("Supported: timer\r\nSession-Expires: 1800\r\n");
        for (se, refresher) in [
            ("1800;refresher=uac", true),
            ("1800", true),
            ("1800;refresher=uas", false),
        ] {
            let mut ok = req.reply(200, "OK", Some("b"));
            ok.headers_mut().push(HeaderName::SessionExpires, se);
            let mut timer = SessionTimer::new(Config::default());
            timer.receive_response(t0, &ok).unwrap();
            assert_eq!(timer.interval(), Some(1800), "{se}");
            assert_eq!(timer.is_refresher(), refresher, "{se}");
        }
    }

    #[test]
    fn a_short_interval_expires_a_third_early() {
        let t0 = Instant::now();
        let mut timer = SessionTimer::new(Config::default());
        timer.start(t0, 90, true);
        assert_eq!(timer.poll_timeout(), Some(t0 + Duration::from_secs(45)));
        timer.handle_timeout(t0 + Duration::from_secs(45));
        assert_eq!(timer.poll_event(), Some(Event::Refresh));
        assert_eq!(timer.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        timer.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(timer.poll_event(), Some(Event::Expired));
        assert_eq!(timer.poll_timeout(), None);
    }
}

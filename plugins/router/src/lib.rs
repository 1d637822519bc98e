//! Routes calls by the called number's prefix and the time of day, to the tenant's trunks: a new
//! call is answered with a `dial` through the chosen trunk, or a 404 when no route matches. A
//! route may name several trunks: `a,b` tries `a` and, when that dial fails (busy, no answer,
//! unreachable, refused), `b` (the plugin hears `dial-completed` and decides again); `a+b` rings
//! both at once and bridges the first to answer. When the bridge ends the switch ends the call,
//! and a dial nobody answered, with no trunk left to try, gets the tenant's fallback.
//!
//! Build: `cargo build --target wasm32-wasip2 --profile plugin -p router`
//! Test:  `wasmswitch plugin test target/wasm32-wasip2/plugin/router.wasm plugins/scenarios/router.yaml`
//!
//! The table lives in `kv` under `routes`, one route a line: a prefix, the local hours it applies
//! to (`08-18` is 08:00 to 17:59, `22-06` wraps midnight, `*` is always) and a trunk. The longest
//! matching prefix wins; among its lines, the first whose hours match. `tz-offset-minutes` in
//! `kv` sets local time (default UTC).
//!
//! ```text
//! +44     *      uk-trunk,uk-backup
//! +1800   08-18  us-daytime
//! +1800   *      us-night
//! +1888   *      east+west
//! ```

use std::cell::RefCell;

use wasmswitch_plugin::*;

struct Plugin;

thread_local! {
    /// This call's number and the trunks still to try after the dial in progress fails (one
    /// instance runs per call, so this is the call's own state).
    static FAILOVER: RefCell<Option<(String, Vec<String>)>> = const { RefCell::new(None) };
}

struct Route<'a> {
    prefix: &'a str,
    hours: Option<(u32, u32)>,
    trunk: &'a str,
}

fn parse(table: &str) -> impl Iterator<Item = Route<'_>> {
    table.lines().filter_map(|line| {
        let mut f = line.split_whitespace();
        let prefix = f.next().filter(|p| !p.starts_with('#'))?;
        let hours = match f.next()? {
            "*" => None,
            h => {
                let (from, to) = h.split_once('-')?;
                Some((from.parse().ok()?, to.parse().ok()?))
            }
        };
        Some(Route {
            prefix,
            hours,
            trunk: f.next()?,
        })
    })
}

fn in_hours(hours: Option<(u32, u32)>, hour: u32) -> bool {
    match hours {
        None => true,
        Some((from, to)) if from <= to => (from..to).contains(&hour),
        Some((from, to)) => hour >= from || hour < to,
    }
}

impl CallHandler for Plugin {
    fn on_event(event: CallEvent) -> Vec<Action> {
        match event {
            CallEvent::Incoming(call) => vec![route(&call)],
            CallEvent::DialCompleted(result) if result.outcome != DialOutcome::Answered => {
                failover(result.outcome)
            }
            _ => Vec::new(),
        }
    }
}

fn route(call: &CallInfo) -> Action {
    let table = kv::get_string("routes").ok().flatten().unwrap_or_default();
    let offset: i64 = kv::get_string("tz-offset-minutes")
        .ok()
        .flatten()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let local_minutes = (call.received_at / 60_000) as i64 + offset;
    let hour = (local_minutes.rem_euclid(24 * 60) / 60) as u32;

    let best = parse(&table)
        .filter(|r| call.to.starts_with(r.prefix))
        .map(|r| r.prefix.len())
        .max();
    let chosen = best.and_then(|len| {
        parse(&table).find(|r| {
            r.prefix.len() == len && call.to.starts_with(r.prefix) && in_hours(r.hours, hour)
        })
    });
    match chosen {
        Some(r) => {
            log::info(&format!(
                "{} -> trunk {} (local hour {hour})",
                call.to, r.trunk
            ));
            metrics::incr("routed");
            if r.trunk.contains('+') {
                let targets = r
                    .trunk
                    .split('+')
                    .map(|t| DialTarget::new(call.to.clone()).via(t));
                return Action::Dial(Dial {
                    groups: vec![RingGroup {
                        strategy: RingStrategy::Simultaneous,
                        targets: targets.collect(),
                    }],
                    ..Dial::to(Vec::<String>::new())
                });
            }
            let mut trunks = r.trunk.split(',').map(str::to_owned);
            let first = trunks.next().unwrap_or_default();
            FAILOVER.with(|f| *f.borrow_mut() = Some((call.to.clone(), trunks.collect())));
            Action::Dial(Dial::to([call.to.clone()]).via(first))
        }
        None => {
            log::warn(&format!("no route for {}", call.to));
            metrics::incr("unroutable");
            Action::reject(404, "No Route")
        }
    }
}

/// The dial through one trunk failed: the next trunk of the route, if one is left.
fn failover(outcome: DialOutcome) -> Vec<Action> {
    FAILOVER
        .with(|f| {
            let mut state = f.borrow_mut();
            let (number, left) = state.as_mut()?;
            if left.is_empty() {
                return None;
            }
            let next = left.remove(0);
            let why = match outcome {
                DialOutcome::Busy => "busy",
                DialOutcome::NoAnswer => "no answer",
                _ => "failed",
            };
            log::info(&format!("{number}: {why} -> trunk {next}"));
            metrics::incr("failovers");
            Some(vec![Action::Dial(Dial::to([number.clone()]).via(next))])
        })
        .unwrap_or_default()
}

export_call_handler!(Plugin);

//! Caps on open TCP and TLS connections, in all and per address, so one address cannot hold
//! every socket and task the switch has: neither by connecting to it nor by having it
//! connect (a peer that can steer requests to addresses of its own, a phone registering
//! from many ports, would otherwise make the switch hold connections to it until the total
//! is spent and no phone can connect). Counted like the request limit ([`crate::limits`]):
//! an IPv4 address alone, an IPv6 /64 as one source.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::limits::source_key;

/// Why a connection was refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotRefused {
    /// The endpoint holds as many connections as it may.
    Total,
    /// The address holds as many connections as one address may.
    PerSource,
}

impl SlotRefused {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            SlotRefused::Total => "total",
            SlotRefused::PerSource => "per_source",
        }
    }
}

/// Counts open TCP and TLS connections, in all and per source (an IPv4 address or IPv6
/// /64), and refuses more than the caps. A connection holds a [`ConnectionSlot`] for its
/// life; dropping it gives the slot back. Shared by the listeners' tasks, hence the lock,
/// held for a hash update only.
#[derive(Debug)]
pub(crate) struct ConnectionSlots {
    max_total: usize,
    max_per_source: usize,
    exempt: Vec<IpAddr>,
    state: Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// One connection's place in [`ConnectionSlots`], given back when dropped.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    slots: Arc<ConnectionSlots>,
    /// The source it counts against.
    source: IpAddr,
}

impl ConnectionSlots {
    /// At most `max_total` connections, and `max_per_source` with one source (accepted from
    /// it and opened to it together) unless its address is in `exempt` (trunks, a load
    /// balancer).
    pub(crate) fn new(max_total: usize, max_per_source: usize, exempt: Vec<IpAddr>) -> Self {
        ConnectionSlots {
            max_total,
            max_per_source,
            exempt,
            state: Mutex::new(SlotState::default()),
        }
    }

    /// A slot for a connection accepted from `peer`.
    pub(crate) fn accept(self: &Arc<Self>, peer: IpAddr) -> Result<ConnectionSlot, SlotRefused> {
        self.take(peer)
    }

    /// A slot for a connection the endpoint opens to `peer`: counted with those `peer`
    /// opened to us.
    pub(crate) fn open(self: &Arc<Self>, peer: IpAddr) -> Result<ConnectionSlot, SlotRefused> {
        self.take(peer)
    }

    fn take(self: &Arc<Self>, peer: IpAddr) -> Result<ConnectionSlot, SlotRefused> {
        let exempt = self.exempt.contains(&peer);
        let source = source_key(peer);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.total >= self.max_total {
            return Err(SlotRefused::Total);
        }
        let held = state.by_source.entry(source).or_insert(0);
        if !exempt && *held >= self.max_per_source {
            return Err(SlotRefused::PerSource);
        }
        *held += 1;
        state.total += 1;
        Ok(ConnectionSlot {
            slots: self.clone(),
            source,
        })
    }

    /// Connections held now.
    pub(crate) fn held(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut state = self
            .slots
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.total = state.total.saturating_sub(1);
        if let Some(held) = state.by_source.get_mut(&self.source) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                state.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_slots_cap_each_source_and_the_total() {
        let a: IpAddr = "192.0.2.1".parse().expect("an address");
        let b: IpAddr = "192.0.2.2".parse().expect("an address");
        let trunk: IpAddr = "192.0.2.9".parse().expect("an address");
        let slots = Arc::new(ConnectionSlots::new(5, 2, vec![trunk]));
        let a1 = slots.accept(a).expect("first from a");
        let _a2 = slots.accept(a).expect("second from a");
        assert_eq!(slots.accept(a).err(), Some(SlotRefused::PerSource));
        // Another source is served; an exempt one is not capped per source.
        let _b1 = slots.accept(b).expect("b is served");
        let _t1 = slots.accept(trunk).expect("the trunk");
        let _t2 = slots.accept(trunk).expect("the trunk again");
        assert_eq!(slots.held(), 5);
        assert_eq!(slots.accept(trunk).err(), Some(SlotRefused::Total));
        assert_eq!(slots.open(b).err(), Some(SlotRefused::Total));
        // A closed connection gives its slot back, to its source and to the total.
        drop(a1);
        assert_eq!(slots.held(), 4);
        let _a3 = slots.accept(a).expect("a again after one closed");
        assert_eq!(slots.accept(b).err(), Some(SlotRefused::Total));
    }

    #[test]
    fn connection_slots_count_an_ipv6_64_as_one_source() {
        let one: IpAddr = "2001:db8::1".parse().expect("an address");
        let two: IpAddr = "2001:db8::2".parse().expect("an address");
        let other: IpAddr = "2001:db8:0:1::1".parse().expect("an address");
        let slots = Arc::new(ConnectionSlots::new(100, 1, Vec::new()));
        let _held = slots.accept(one).expect("first");
        assert_eq!(slots.accept(two).err(), Some(SlotRefused::PerSource));
        slots.accept(other).expect("another /64");
        let opened = slots.open(two).err();
        assert_eq!(opened, Some(SlotRefused::PerSource));
    }

    #[test]
    fn connections_opened_to_an_address_count_against_its_share() {
        let a: IpAddr = "192.0.2.1".parse().expect("an address");
        let trunk: IpAddr = "192.0.2.9".parse().expect("an address");
        let slots = Arc::new(ConnectionSlots::new(100, 2, vec![trunk]));
        let opened = slots.open(a).expect("first to a");
        let _accepted = slots.accept(a).expect("one from a");
        // Two with `a`, whichever side opened them: no third either way.
        assert_eq!(slots.open(a).err(), Some(SlotRefused::PerSource));
        assert_eq!(slots.accept(a).err(), Some(SlotRefused::PerSource));
        drop(opened);
        let _again = slots.open(a).expect("a place was given back");
        // An exempt address (a trunk) is capped by the total only.
        for _ in 0..3 {
            std::mem::forget(slots.open(trunk).expect("the trunk"));
        }
        assert_eq!(slots.held(), 5);
    }
}

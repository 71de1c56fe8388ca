//! Which connections the embedded MQTT endpoint takes: at most so many in all and from one
//! client network, fitted to the open-file limit, and, at a cap, a newcomer takes the place
//! of the oldest connection that has not signed in yet. So connections that never send a
//! `CONNECT` (or never a valid one) cannot lock publishers out, and the endpoint cannot use
//! up the descriptors the HTTP server, the database and the journal need.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use crate::net::client_network;

/// The caps in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Caps {
    pub total: usize,
    pub per_ip: usize,
}

impl Caps {
    /// `max_connections` and `max_connections_per_ip`, fitted to a process that may open
    /// `open_files` descriptors: the endpoint takes at most an eighth of them (the HTTP
    /// server at most three quarters; the rest is the database's, the journal's and the
    /// webhooks').
    pub fn new(max_connections: usize, max_connections_per_ip: usize, open_files: Option<u64>) -> Self {
        let budget = open_files.map_or(usize::MAX, |n| usize::try_from(n / 8).unwrap_or(usize::MAX));
        let total = max_connections.min(budget).max(1);
        if total < max_connections {
            tracing::warn!(
                mqtt_max_connections = max_connections,
                open_files = open_files.unwrap_or_default(),
                lowered_to = total,
                "mqtt_max_connections is over an eighth of the open-file limit (ulimit -n); lowered"
            );
        }
        Caps { total, per_ip: max_connections_per_ip.clamp(1, total) }
    }
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    MaxConnections,
    MaxConnectionsPerIp,
}

impl Refused {
    pub fn setting(self) -> &'static str {
        match self {
            Refused::MaxConnections => "mqtt_max_connections",
            Refused::MaxConnectionsPerIp => "mqtt_max_connections_per_ip",
        }
    }
}

#[derive(Default)]
struct State {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Connections not signed in yet, oldest first (ids grow), with their network.
    waiting: BTreeMap<u64, (IpAddr, CancellationToken)>,
    next_id: u64,
}

impl State {
    /// Take the place of the oldest connection not signed in yet for which `matches` holds:
    /// it is told to go and no longer counted.
    fn evict_oldest(&mut self, matches: impl Fn(IpAddr) -> bool) -> bool {
        let Some(id) = self.waiting.iter().find(|(_, (ip, _))| matches(*ip)).map(|(id, _)| *id) else {
            return false;
        };
        let (ip, evict) = self.waiting.remove(&id).expect("found above");
        evict.cancel();
        self.release(ip);
        true
    }

    fn release(&mut self, ip: IpAddr) {
        self.total -= 1;
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// The endpoint's connections.
pub(super) struct Admission {
    caps: Caps,
    state: Mutex<State>,
}

impl Admission {
    pub fn new(caps: Caps) -> Arc<Self> {
        Arc::new(Admission { caps, state: Mutex::default() })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admit a connection from `peer`, making room by evicting a connection that has not
    /// signed in yet if a cap is reached.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refused> {
        let ip = client_network(peer);
        let mut state = self.state();
        if state.per_ip.get(&ip).copied().unwrap_or(0) >= self.caps.per_ip && !state.evict_oldest(|other| other == ip) {
            return Err(Refused::MaxConnectionsPerIp);
        }
        if state.total >= self.caps.total && !state.evict_oldest(|_| true) {
            return Err(Refused::MaxConnections);
        }
        state.total += 1;
        *state.per_ip.entry(ip).or_default() += 1;
        let id = state.next_id;
        state.next_id += 1;
        let evict = CancellationToken::new();
        state.waiting.insert(id, (ip, evict.clone()));
        Ok(Slot { admission: self.clone(), id, ip, evict })
    }
}

/// One admitted connection; counted until dropped (or evicted).
pub(super) struct Slot {
    admission: Arc<Admission>,
    id: u64,
    ip: IpAddr,
    evict: CancellationToken,
}

impl Slot {
    /// Resolves when a newcomer took this connection's place (only before it signed in).
    pub fn evicted(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.evict.cancelled()
    }

    /// The client signed in: no newcomer takes its place from now on. False if one took it
    /// meanwhile (while its credentials were being checked): the connection must end, as it
    /// is no longer counted.
    #[must_use]
    pub fn signed_in(&self) -> bool {
        let mut state = self.admission.state();
        if self.evict.is_cancelled() {
            return false;
        }
        state.waiting.remove(&self.id);
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.admission.state();
        // An evicted connection was released when it was evicted (under this lock).
        if !self.evict.is_cancelled() {
            state.waiting.remove(&self.id);
            state.release(self.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn the_caps_fit_an_eighth_of_the_open_file_limit() {
        assert_eq!(Caps::new(10_000, 1_024, None), Caps { total: 10_000, per_ip: 1_024 });
        assert_eq!(Caps::new(10_000, 1_024, Some(256)), Caps { total: 32, per_ip: 32 });
        assert_eq!(Caps::new(10_000, 8, Some(1_048_576)), Caps { total: 10_000, per_ip: 8 });
        assert_eq!(Caps::new(10_000, 8, Some(4)), Caps { total: 1, per_ip: 1 });
    }

    #[test]
    fn a_newcomer_takes_the_place_of_the_oldest_connection_not_signed_in() {
        let admission = Admission::new(Caps { total: 3, per_ip: 3 });
        let first = admission.admit(ip(1)).unwrap();
        assert!(first.signed_in());
        let second = admission.admit(ip(2)).unwrap();
        let third = admission.admit(ip(3)).unwrap();
        let fourth = admission.admit(ip(4)).unwrap();
        assert!(second.evict.is_cancelled(), "the oldest waiting one went");
        assert!(!first.evict.is_cancelled() && !third.evict.is_cancelled());
        assert!(third.signed_in() && fourth.signed_in());
        assert!(!second.signed_in(), "evicted before it signed in");
        assert_eq!(admission.admit(ip(5)).err(), Some(Refused::MaxConnections), "all signed in");
        drop(second);
        assert_eq!(admission.admit(ip(5)).err(), Some(Refused::MaxConnections), "an evicted one counts no more");
        drop(first);
        assert!(admission.admit(ip(5)).is_ok(), "a closed one makes room");
    }

    #[test]
    fn one_network_holds_at_most_its_share() {
        let admission = Admission::new(Caps { total: 10, per_ip: 2 });
        let a = admission.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        let b = admission.admit("2001:db8:1:2::2".parse().unwrap()).unwrap();
        assert!(a.signed_in());
        let c = admission.admit("2001:db8:1:2::3".parse().unwrap()).unwrap();
        assert!(b.evict.is_cancelled(), "the same /64's waiting connection went");
        assert!(c.signed_in());
        let refused = admission.admit("2001:db8:1:2::4".parse().unwrap()).err();
        assert_eq!(refused, Some(Refused::MaxConnectionsPerIp));
        let other = admission.admit("2001:db8:1:3::1".parse().unwrap());
        assert!(other.is_ok(), "another network is unaffected");
        assert_eq!(admission.state().total, 3);
        drop((a, c, other));
        let state = admission.state();
        assert_eq!((state.total, state.per_ip.len(), state.waiting.len()), (0, 0, 0), "all released");
    }
}

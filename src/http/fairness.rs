//! Per-client-address limits, so that one client cannot starve the others (transmitters above
//! all): how many connections an address may hold open on a listener, and how many requests
//! with a wrong token it may make in a minute before it is answered 429 until the minute is over.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The peer address of the connection a request came on, put into the request's extensions by
/// the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Most addresses tracked at once: beyond that, entries are dropped oldest window first, so that
/// a flood of spoofed-looking addresses cannot grow the map without bound.
const MAX_TRACKED: usize = 65_536;

/// The key an address is counted under: an IPv4 address (also when written IPv4-mapped), or an
/// IPv6 /64, the block one client usually holds whole, so that it cannot step around its
/// limits by changing the low bits.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(std::net::Ipv6Addr::from(segments))
            }
        },
    }
}

/// Open connections per address on one listener.
#[derive(Debug, Clone)]
pub struct ConnectionsPerAddress {
    limit: u32,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// Held while a connection is open; gives its slot back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    addr: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl ConnectionsPerAddress {
    pub fn new(limit: u32) -> ConnectionsPerAddress {
        ConnectionsPerAddress {
            limit,
            open: Arc::default(),
        }
    }

    /// A slot for one more connection from `addr`, or `None` when it holds `limit` already.
    pub fn try_acquire(&self, addr: IpAddr) -> Option<ConnectionSlot> {
        let addr = limit_key(addr);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(addr).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            addr,
            open: self.open.clone(),
        })
    }

    /// Connections `addr` holds open now.
    pub fn open(&self, addr: IpAddr) -> u32 {
        let addr = limit_key(addr);
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&addr).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.addr) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

/// Failed authentications per address in fixed one-minute windows.
#[derive(Debug)]
pub struct FailedAuth {
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Default for FailedAuth {
    fn default() -> Self {
        FailedAuth::with_window(Duration::from_secs(60))
    }
}

impl FailedAuth {
    pub fn with_window(window: Duration) -> FailedAuth {
        FailedAuth {
            window,
            failures: Mutex::default(),
        }
    }

    /// When `addr` has used up `limit` failures in its current window: how long until the
    /// window ends (for `Retry-After`). `None`: it may try.
    pub fn blocked(&self, addr: IpAddr, limit: u32, now: Instant) -> Option<Duration> {
        let addr = limit_key(addr);
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (start, count) = failures.get(&addr)?;
        let elapsed = now.saturating_duration_since(*start);
        (elapsed < self.window && *count >= limit).then(|| self.window - elapsed)
    }

    /// Counts one failed authentication from `addr`.
    pub fn record(&self, addr: IpAddr, now: Instant) {
        let addr = limit_key(addr);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&addr) {
            failures.retain(|_, (start, _)| now.saturating_duration_since(*start) < self.window);
            if failures.len() >= MAX_TRACKED {
                if let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, (s, _))| *s)
                    .map(|(a, _)| *a)
                {
                    failures.remove(&oldest);
                }
            }
        }
        let entry = failures.entry(addr).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn connection_slots_are_per_address_and_given_back() {
        let limits = ConnectionsPerAddress::new(2);
        let a1 = limits.try_acquire(ip(1)).unwrap();
        let _a2 = limits.try_acquire(ip(1)).unwrap();
        assert!(limits.try_acquire(ip(1)).is_none());
        // Another address is not affected by the first one's use.
        assert!(limits.try_acquire(ip(2)).is_some());
        drop(a1);
        assert_eq!(limits.open(ip(1)), 1);
        assert!(limits.try_acquire(ip(1)).is_some());
    }

    #[test]
    fn failures_block_until_the_window_ends() {
        let f = FailedAuth::with_window(Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(f.blocked(ip(1), 3, t0), None);
            f.record(ip(1), t0);
        }
        let left = f.blocked(ip(1), 3, t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(left, Duration::from_secs(50));
        assert_eq!(f.blocked(ip(2), 3, t0), None);
        // A new window starts afresh.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(f.blocked(ip(1), 3, later), None);
        f.record(ip(1), later);
        assert_eq!(f.blocked(ip(1), 3, later), None);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(limit_key(mapped), ip(1));
        let limits = ConnectionsPerAddress::new(1);
        let _held = limits.try_acquire(a).unwrap();
        assert!(limits.try_acquire(b).is_none());
        assert!(limits.try_acquire(other).is_some());
    }

    #[test]
    fn tracked_addresses_stay_bounded() {
        let f = FailedAuth::with_window(Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            f.record(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(f.failures.lock().unwrap().len() <= MAX_TRACKED);
    }
}

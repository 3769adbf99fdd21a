//! Short-lived, single-use WebSocket tickets (SPEC §9). Browsers cannot set headers on a
//! WebSocket, and a long-lived token in a URL ends up in access logs; so a client holding a
//! token asks `POST /api/v1/ws/ticket` for a ticket and connects with `?ticket=`. A ticket is
//! good for one upgrade within its lifetime, with the rights of the token that asked for it.
//! Tickets live in this process's memory: one is redeemed on the node that issued it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;

use super::tokens::Identity;

/// Outstanding tickets are capped, so asking for many cannot exhaust memory.
const MAX_OUTSTANDING: usize = 10_000;

/// Ticket → who asked for it (`None` with authentication off) and when it expires.
type Outstanding = HashMap<String, (Option<Identity>, Instant)>;

/// The outstanding tickets.
#[derive(Clone)]
pub struct Tickets {
    ttl: Duration,
    live: Arc<Mutex<Outstanding>>,
}

/// A freshly issued ticket.
pub struct Issued {
    pub ticket: String,
    pub expires_in: Duration,
}

impl Tickets {
    pub fn new(ttl: Duration) -> Self {
        Tickets {
            ttl,
            live: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outstanding> {
        match self.live.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A new ticket for `who` (`None` when authentication is off), or `None` when too many
    /// are outstanding.
    pub fn issue(&self, who: Option<Identity>) -> Option<Issued> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let ticket = hex::encode(bytes);
        let now = Instant::now();
        let mut live = self.lock();
        live.retain(|_, (_, expires)| *expires > now);
        if live.len() >= MAX_OUTSTANDING {
            return None;
        }
        live.insert(ticket.clone(), (who, now + self.ttl));
        Some(Issued {
            ticket,
            expires_in: self.ttl,
        })
    }

    /// Uses up a ticket: the identity it was issued to, or `None` if it is unknown, already
    /// used or expired.
    pub fn redeem(&self, ticket: &str) -> Option<Option<Identity>> {
        let (who, expires) = self.lock().remove(ticket)?;
        (expires > Instant::now()).then_some(who)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tokens::Role;

    fn someone() -> Option<Identity> {
        Some(Identity {
            name: "ci".into(),
            role: Role::Viewer,
        })
    }

    #[test]
    fn a_ticket_is_good_once() {
        let t = Tickets::new(Duration::from_secs(60));
        let issued = t.issue(someone()).unwrap();
        assert_eq!(issued.ticket.len(), 64);
        assert_eq!(t.redeem(&issued.ticket), Some(someone()));
        assert_eq!(t.redeem(&issued.ticket), None);
        assert_eq!(t.redeem("made-up"), None);
    }

    #[test]
    fn an_expired_ticket_is_refused() {
        let t = Tickets::new(Duration::ZERO);
        let issued = t.issue(someone()).unwrap();
        assert_eq!(t.redeem(&issued.ticket), None);
    }
}

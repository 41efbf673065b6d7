//! [`IdPool`]: ids the run has created (memberships, API keys, alert rules) and the org's free
//! users, shared between generator and driver (thread-safe, one mutex, short critical sections).
//!
//! The driver calls [`IdPool::observe`] with every sent request and its response; the generator
//! *takes* ids for the stateful routes so that valid requests never collide:
//! - `members-add` takes a free user (returned if the add does not get 201; kept while the
//!   membership exists, returned when a `member-remove` of it gets 200);
//! - `member-remove` takes a membership the run created (put back unless it gets 200);
//! - `alert-rule-delete` takes a rule the run created (never a fixture rule).
//!
//! Which id a request takes is `pool[draw % len]` with `draw` from the request's seed, so those
//! routes are a pure function of (seed, stream, index, pool contents). Lists are kept in insertion
//! order (no hash iteration anywhere).
//!
//! Memory is bounded for long runs: memberships are bounded by the org's users; API keys, rules
//! and rules being deleted keep the newest [`POOL_MAX`] (older ones are simply not reused).

use crate::api::RouteId;
use crate::db::Fixtures;
use crate::model::HttpRequest;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Most API keys, rules and rules being deleted the pool remembers (the newest ones).
pub const POOL_MAX: usize = 1024;

/// Append, dropping the oldest beyond [`POOL_MAX`].
fn push_bounded(v: &mut Vec<String>, x: String) {
    if v.len() >= POOL_MAX {
        v.drain(..v.len() + 1 - POOL_MAX);
    }
    v.push(x);
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct PoolSnapshot {
    /// Users not currently members (fixture free users, in fixture order, then returned ones).
    pub free_users: Vec<String>,
    /// Users handed to a `members-add` whose outcome is not known yet or that are members now.
    pub taken_users: Vec<String>,
    /// Memberships created by the run: (membership id, user id).
    pub memberships: Vec<(String, String)>,
    /// Memberships handed to a `member-remove` not yet observed: membership id → user id.
    pub removing: BTreeMap<String, String>,
    /// Raw values of API keys created by the run.
    pub api_keys: Vec<String>,
    /// Alert rules created by the run.
    pub rules: Vec<String>,
    /// Rules handed to an `alert-rule-delete` not yet observed.
    pub deleting: Vec<String>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct IdPool {
    inner: Mutex<PoolSnapshot>,
}

impl IdPool {
    pub fn new(f: &Fixtures) -> IdPool {
        let snap = PoolSnapshot { free_users: f.free_users().map(str::to_string).collect(), ..Default::default() };
        IdPool { inner: Mutex::new(snap) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolSnapshot> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> PoolSnapshot {
        self.lock().clone()
    }

    pub fn take_free_user(&self, draw: u64) -> Option<String> {
        let mut p = self.lock();
        if p.free_users.is_empty() {
            return None;
        }
        let i = (draw % p.free_users.len() as u64) as usize;
        let u = p.free_users.remove(i);
        p.taken_users.push(u.clone());
        Some(u)
    }

    pub fn take_membership(&self, draw: u64) -> Option<(String, String)> {
        let mut p = self.lock();
        if p.memberships.is_empty() {
            return None;
        }
        let i = (draw % p.memberships.len() as u64) as usize;
        let m = p.memberships.remove(i);
        p.removing.insert(m.0.clone(), m.1.clone());
        Some(m)
    }

    pub fn take_rule(&self, draw: u64) -> Option<String> {
        let mut p = self.lock();
        if p.rules.is_empty() {
            return None;
        }
        let i = (draw % p.rules.len() as u64) as usize;
        let r = p.rules.remove(i);
        // A delete that never gets an answer (transport failure) stays here: bounded.
        push_bounded(&mut p.deleting, r.clone());
        Some(r)
    }

    /// A created API key value (not taken: keys are shared).
    pub fn api_key(&self, draw: u64) -> Option<String> {
        let p = self.lock();
        (!p.api_keys.is_empty()).then(|| p.api_keys[(draw % p.api_keys.len() as u64) as usize].clone())
    }

    pub fn add_membership(&self, id: String, user: String) {
        let mut p = self.lock();
        p.free_users.retain(|u| *u != user);
        p.memberships.push((id, user));
    }

    pub fn add_rule(&self, id: String) {
        push_bounded(&mut self.lock().rules, id);
    }

    pub fn add_api_key(&self, value: String) {
        push_bounded(&mut self.lock().api_keys, value);
    }

    /// Feed one request and the status and body of its response (the driver calls this for
    /// every response; requests of other routes are ignored).
    pub fn observe(&self, req: &HttpRequest, status: u16, body: &[u8]) {
        let Some(route) = req.route else { return };
        let resp_str = |key: &str| -> Option<String> {
            let v: serde_json::Value = serde_json::from_slice(body).ok()?;
            v.get(key)?.as_str().map(str::to_string)
        };
        let req_user = || -> Option<String> {
            let v: serde_json::Value = serde_json::from_slice(&req.body).ok()?;
            v.get("user_id")?.as_str().map(str::to_string)
        };
        match route {
            RouteId::MembersAdd => {
                let Some(user) = req_user() else { return };
                let mut p = self.lock();
                let taken = p.taken_users.iter().position(|u| *u == user);
                if status == 201 {
                    if let Some(id) = resp_str("id") {
                        p.free_users.retain(|u| *u != user);
                        p.memberships.push((id, user));
                    }
                } else if let Some(i) = taken {
                    let u = p.taken_users.remove(i);
                    p.free_users.push(u);
                }
            }
            RouteId::MemberRemove => {
                let Some(mid) = path_arg(req, 1) else { return };
                let mut p = self.lock();
                if let Some(user) = p.removing.remove(&mid) {
                    if status == 200 {
                        p.taken_users.retain(|u| *u != user);
                        p.free_users.push(user);
                    } else {
                        p.memberships.push((mid, user));
                    }
                }
            }
            RouteId::ApiKeysCreate if status == 201 => {
                if let Some(k) = resp_str("key_value") {
                    self.add_api_key(k);
                }
            }
            RouteId::AlertRulesCreate if status == 201 => {
                if let Some(id) = resp_str("id") {
                    self.add_rule(id);
                }
            }
            RouteId::AlertRuleDelete => {
                let Some(rid) = path_arg(req, 0) else { return };
                let mut p = self.lock();
                if let Some(i) = p.deleting.iter().position(|r| *r == rid) {
                    let r = p.deleting.remove(i);
                    if status != 200 {
                        push_bounded(&mut p.rules, r);
                    }
                }
            }
            _ => {}
        }
    }
}

fn path_arg(req: &HttpRequest, i: usize) -> Option<String> {
    let path = req.target.split('?').next()?;
    let m = crate::api::match_route(&req.method, path)?;
    m.args.get(i).map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_rules_keep_the_newest_pool_max() {
        let p = IdPool::default();
        for i in 0..3 * POOL_MAX {
            p.add_api_key(format!("k{i}"));
            p.add_rule(format!("r{i}"));
        }
        let s = p.snapshot();
        assert_eq!(s.api_keys.len(), POOL_MAX);
        assert_eq!(s.rules.len(), POOL_MAX);
        assert_eq!(s.api_keys.last().unwrap(), &format!("k{}", 3 * POOL_MAX - 1));
        assert_eq!(s.api_keys[0], format!("k{}", 2 * POOL_MAX));
        // Deletes that are never answered do not pile up either.
        for i in 0..2 * POOL_MAX as u64 {
            p.take_rule(i);
            p.add_rule(format!("n{i}"));
        }
        assert!(p.snapshot().deleting.len() <= POOL_MAX);
    }
}

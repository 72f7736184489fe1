//! The Lua scripts: each reads and writes one account's hash (`KEYS[1]`, one slot), and
//! announces a change on the notification channel in the same atomic step, so a change
//! costs no extra round trip and is never announced before it is visible. (PUBLISH takes
//! no key: a script may call it on a Redis Cluster, which broadcasts it to every node.)
//!
//! A connection id is compared as `%.0f` of the decoded number, which is exact up to
//! 2^53; Lua's `tostring` would turn 1e14 and above into exponent notation.

use redis::{Cmd, Script};

/// HSET the new value, announce; return the old one.
/// ARGV: resource, record, channel, bare JID.
pub(super) const BIND: &str = "local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return old";

/// HDEL only when the stored connection matches (and the edge, when one is given),
/// announce; return the removed value.
/// ARGV: resource, conn, edge or '' for any, channel, bare JID.
pub(super) const UNBIND: &str = "local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local s = cjson.decode(v)
if string.format('%.0f', s.conn) ~= ARGV[2] then return false end
if ARGV[3] ~= '' and s.edge ~= ARGV[3] then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return v";

/// Replace only when the stored value is exactly what the edit started from; announce.
/// ARGV: resource, old record, new record, channel, bare JID.
pub(super) const SWAP: &str = "if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1";

/// Count one message stored offline, announce (cached lookups hold the count); return
/// the new count. KEYS[1]: the account's pending key. ARGV: channel, bare JID.
pub(super) const PENDING_ADD: &str = "local n = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return n";

/// Clear the count only if it still is what the flusher read (a missing key is 0);
/// announce a clearing. Return 1 when clear. ARGV: seen count, channel, bare JID.
pub(super) const PENDING_CLEAR: &str = "local n = redis.call('GET', KEYS[1]) or '0'
if n ~= ARGV[1] then return 0 end
if redis.call('DEL', KEYS[1]) == 1 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return 1";

/// Take the flush lock (SET NX PX), or renew it for the holder that has it; 1 when held.
/// KEYS[1]: the account's flush lock. ARGV: holder, TTL in milliseconds.
pub(super) const FLUSH_LOCK: &str = "local by = redis.call('GET', KEYS[1])
if by == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if by then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1";

/// Release the flush lock if the holder still has it. ARGV: holder.
pub(super) const FLUSH_UNLOCK: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then
redis.call('DEL', KEYS[1])
end
return 1";

/// A script, run by hash (EVALSHA, loaded on first NOSCRIPT) for single calls, or as
/// source (EVAL) inside pipelines, where one NOSCRIPT reply could not be retried alone.
pub(super) struct Lua {
    pub(super) script: Script,
    source: &'static str,
}

impl Lua {
    pub(super) fn new(source: &'static str) -> Self {
        Self {
            script: Script::new(source),
            source,
        }
    }

    /// `EVAL source 1 key args…`, for a pipeline.
    pub(super) fn eval(&self, key: &str, args: &[&str]) -> Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(self.source).arg(1).arg(key).arg(args);
        cmd
    }
}

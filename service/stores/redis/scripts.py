"""The Redis store's Lua scripts: each runs as one step in Redis, on keys of one slot (`keys`).

A script is how a write checks and changes in one step what a client could only do in
two round trips, racing the other replicas: append only while the writer holds the job's
lease, grant a share only while the others leave room, claim a batch of jobs to purge so
that no two replicas purge the same. They go by SHA1 (EVALSHA) in the batches of `wire`:
a batch carries a script's hash, not its body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from service.stores.redis.wire import Client, Command

__all__ = [
    "ADOPT",
    "APPEND",
    "CLAIM",
    "CLAIM_EXPIRED",
    "DROP_ENDED",
    "DROP_JOB",
    "GRANT",
    "INDEX",
    "RELEASE",
    "RENEW",
    "SAVE_JOB",
    "SCRIPTS",
    "SEAL_LOG",
    "UNINDEX",
    "Script",
    "load",
]


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, run by its SHA1 (EVALSHA): loaded on every master at open, and again if Redis forgot it."""

    body: str
    sha: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.body.encode()).hexdigest())

    def call(self, keys: Sequence[str], *args: str | bytes | int) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


# KEYS[1] the partition's stream; KEYS[2], for a job's log, its owner (the fencing token of the engine that
# runs it), for a session, its stream ends.
# ARGV: maxlen, ttl ms (0: leave the expiry alone), lease token ('': none), number of ends;
# then expiry (ms) and member per end; then id, stream, has data, data per event.
APPEND = Script("""
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return redis.error_reply('FENCED another engine runs the job now')
end
local first = 5 + 2 * tonumber(ARGV[4])
for i = 5, first - 1, 2 do redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1]) end
local written = 0
for i = first, #ARGV, 4 do
  local r
  if ARGV[i + 2] == '1' then
    r = redis.pcall('XADD', KEYS[1], 'MAXLEN', ARGV[1], ARGV[i] .. '-0', 's', ARGV[i + 1], 'd', ARGV[i + 3])
  else
    r = redis.pcall('XADD', KEYS[1], 'MAXLEN', ARGV[1], ARGV[i] .. '-0', 's', ARGV[i + 1])
  end
  if type(r) == 'table' and r.err then
    if not string.find(r.err, 'equal or smaller', 1, true) then return r end
  else
    written = written + 1
  end
end
if ARGV[2] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if #KEYS == 2 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
end
return written
""")

# KEYS: a session's stream, its stream ends. ARGV: now (ms), entries to read at most.
# Drops the events of the ends that expired, oldest first. An end whose range was not read
# to its last id stays, from where the reading stopped. Returns the events dropped and when
# the next end expires (ms; -1: none left).
DROP_ENDED = Script("""
local budget = tonumber(ARGV[2])
local dropped = 0
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, 64)
for i = 1, #due, 2 do
  local from, last, stream = string.match(due[i], '^(%S+) (%d+) (.*)$')
  local entries = redis.call('XRANGE', KEYS[1], from, last .. '-0', 'COUNT', budget)
  local ids = {}
  for _, entry in ipairs(entries) do
    if entry[2][2] == stream then ids[#ids + 1] = entry[1] end
  end
  if #ids > 0 then dropped = dropped + redis.call('XDEL', KEYS[1], unpack(ids)) end
  redis.call('ZREM', KEYS[2], due[i])
  if #entries == budget then
    redis.call('ZADD', KEYS[2], due[i + 1], '(' .. entries[#entries][1] .. ' ' .. last .. ' ' .. stream)
    break
  end
  budget = budget - #entries
end
local next = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #next == 0 then return {dropped, -1} end
return {dropped, next[2]}
""")

# KEYS: record, log, lease, owner. ARGV: record JSON, ttl ms of a finished job (0 while it runs), the lease
# token to release ('' for none), '1' to seal the log, the fencing token of the engine writing ('' for none).
# A finished job's record, its log's seal and its lease's release are one step: a follower woken by the seal
# finds the record final. An engine that another one has replaced (it stood still past its lease) writes nothing.
SAVE_JOB = Script("""
if ARGV[5] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[5] then
  return redis.error_reply('FENCED another engine runs the job now')
end
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[4] == '1' then redis.call('XADD', KEYS[2], '*', 's', '') end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[4], ARGV[2])
if ARGV[3] ~= '' and redis.call('GET', KEYS[3]) == ARGV[3] then redis.call('DEL', KEYS[3]) end
return 1
""")

# KEYS: log, owner. ARGV: the fencing token of the engine sealing it ('' for none).
SEAL_LOG = Script("""
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('FENCED another engine runs the job now')
end
redis.call('XADD', KEYS[1], '*', 's', '')
return 1
""")

# The indexes' scripts take the owner's and the session's keys only when the job has them
# (`Keys.optional`): ARGV[1] and ARGV[2] say which of the two follow the fixed keys.
_OPTIONAL_KEYS = """
local owner, session, k = nil, nil, FIXED + 1
if ARGV[1] == '1' then owner = KEYS[k]; k = k + 1 end
if ARGV[2] == '1' then session = KEYS[k] end
"""

# KEYS: created, unfinished, finished, [owner], [session].
# ARGV: has owner, has session, id, created (us), admitted or finished time (us), '1' if finished, ttl ms.
INDEX = Script(
    "local FIXED = 3"
    + _OPTIONAL_KEYS
    + """
redis.call('ZADD', KEYS[1], 'NX', ARGV[4], ARGV[3])
if owner then redis.call('ZADD', owner, 'NX', ARGV[4], ARGV[3]) end
if ARGV[6] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[3])
  if session then redis.call('SREM', session, ARGV[3]) end
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
else
  redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[3])
  if session then
    redis.call('SADD', session, ARGV[3])
    redis.call('PEXPIRE', session, ARGV[7])
  end
end
return 1
"""
)

# KEYS: shares, alive, [the session's shares].
# ARGV: runner, now (ms), alive until (ms), then need, want and limit for max jobs, [and for the session, its ttl ms].
# Returns {verdict, share of max jobs, share of the session}: 0 granted at least `need` (at most `want`), 1 no room
# in max jobs, 2 none in the session; a refusal changes nothing. A runner not renewed in `alive` loses its shares.
GRANT = Script("""
local runner = ARGV[1]
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], runner)
local function room(key, limit)
  local left = tonumber(limit)
  local shares = redis.call('HGETALL', key)
  for i = 1, #shares, 2 do
    if shares[i] ~= runner then
      if redis.call('ZSCORE', KEYS[2], shares[i]) then left = left - tonumber(shares[i + 1])
      else redis.call('HDEL', key, shares[i]) end
    end
  end
  return left
end
local jobs = room(KEYS[1], ARGV[6])
if jobs < tonumber(ARGV[4]) then return {1, 0, 0} end
local session = 0
if #KEYS == 3 then
  session = room(KEYS[3], ARGV[9])
  if session < tonumber(ARGV[7]) then return {2, 0, 0} end
  session = math.min(session, tonumber(ARGV[8]))
  redis.call('HSET', KEYS[3], runner, session)
  redis.call('PEXPIRE', KEYS[3], ARGV[10])
end
jobs = math.min(jobs, tonumber(ARGV[5]))
redis.call('HSET', KEYS[1], runner, jobs)
return {0, jobs, session}
""")

# KEYS: created, unfinished, finished, [owner], [session]. ARGV: has owner, has session, id.
UNINDEX = Script(
    "local FIXED = 3"
    + _OPTIONAL_KEYS
    + """
redis.call('ZREM', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
if owner then redis.call('ZREM', owner, ARGV[3]) end
if session then redis.call('SREM', session, ARGV[3]) end
return 1
"""
)

# KEYS: finished, created, purged. ARGV: finished before (us), cap (-1: none), batch.
# Claims (removes from the indexes) a batch of jobs to purge, so two replicas never purge the same.
CLAIM_EXPIRED = Script("""
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local cap = tonumber(ARGV[2])
if cap >= 0 and #ids < tonumber(ARGV[3]) then
  local over = redis.call('ZCARD', KEYS[1]) - #ids - cap
  if over > 0 then
    local more = redis.call('ZRANGE', KEYS[1], #ids, #ids + math.min(over, tonumber(ARGV[3]) - #ids) - 1)
    for _, id in ipairs(more) do table.insert(ids, id) end
  end
end
local newest = redis.call('GET', KEYS[3]) or ''
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  if id > newest then newest = id end
end
if #ids > 0 then redis.call('SET', KEYS[3], newest) end
return ids
""")

# KEYS: record, log, lease, cancel, owner. Returns the log's length before it went.
DROP_JOB = Script("""
local events = redis.call('XLEN', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return events
""")

# KEYS: lease, cancel, owner. ARGV: token, ttl ms. 1: renewed, 2: renewed and asked to stop, 0: lost.
# The owner decides, not the lease: a lease that expired while nobody took the job over (Redis stood still,
# or this engine did, for less than another's turn to claim it) is taken again.
RENEW = Script("""
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
return 1
""")

# KEYS: lease. ARGV: token.
RELEASE = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
""")

# KEYS: record, lease, log, owner. ARGV: finished_at, ttl ms, log stream name, the claiming engine's runner
# id, lease ms, its replica.
# An unfinished job without a lease: its engine is gone. A movable job (`JobRecord.movable`: REST, or a call on a
# resumable MCP session) is taken over: its next fencing token (`<runner>:<epoch + 1>`) becomes its owner, so the
# old engine, if it only stood still, can write nothing more; it goes on from the notifications its log holds.
# Any other job is recorded as interrupted, its log sealed. Returns {record, token ('' when interrupted), the log's
# top id (the new engine's ids go above it)};
# 'gone' for a job admitted whose record was never written (its engine died first); false when there is nothing
# to do.
CLAIM = Script("""
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local raw = redis.call('GET', KEYS[1])
if not raw then return 'gone' end
local job = cjson.decode(raw)
if job.status ~= 'pending' and job.status ~= 'running' then return false end
local sent = 0
local top = '0-0'
for _, entry in ipairs(redis.call('XRANGE', KEYS[3], '-', '+')) do
  if entry[2][2] == ARGV[3] then sent = sent + 1 end
  top = entry[1]
end
job.sent = sent
if job.origin == 'rest' or type(job.call) == 'table' or (type(job.task) == 'table' and job.task.resumable) then
  local epoch = tonumber(string.match(redis.call('GET', KEYS[4]) or '', ':(%d+)$')) or 1
  local token = ARGV[4] .. ':' .. (epoch + 1)
  redis.call('SET', KEYS[4], token)
  redis.call('SET', KEYS[2], token, 'PX', ARGV[5])
  job.status = 'running'
  job.runner = ARGV[4]
  job.replica = ARGV[6]
  job.takeovers = (tonumber(job.takeovers) or 0) + 1
  local out = cjson.encode(job)
  redis.call('SET', KEYS[1], out)
  return {out, token, top}
end
job.status = 'interrupted'
job.finished_at = ARGV[1]
local out = cjson.encode(job)
redis.call('SET', KEYS[1], out, 'PX', ARGV[2])
redis.call('XADD', KEYS[3], '*', 's', '')
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('PEXPIRE', KEYS[4], ARGV[2])
return {out, '', top}
""")

# KEYS: a session's record. ARGV: its holder as read, the new holder ('' to release it), the new holder's replica
# ('' to leave it: a released session is still reached through its last replica's inbox, which says it is gone).
# The session moves only if nobody moved it since it was read: of the replicas that adopt it at once, one wins.
ADOPT = Script("""
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'holder', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'replica', ARGV[3]) end
return 1
""")


SCRIPTS = (
    ADOPT,
    APPEND,
    DROP_ENDED,
    SAVE_JOB,
    INDEX,
    GRANT,
    UNINDEX,
    CLAIM_EXPIRED,
    DROP_JOB,
    RENEW,
    RELEASE,
    CLAIM,
    SEAL_LOG,
)


async def load(client: Client) -> None:
    """Every script, on every master (redis-py's cluster client sends SCRIPT LOAD to each)."""
    for script in SCRIPTS:
        await client.script_load(script.body)

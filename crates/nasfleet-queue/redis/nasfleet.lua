#!lua name=nasfleet
--
-- nasfleet job queue: every state transition of a job, as one Redis Function
-- library. Loaded with `FUNCTION LOAD REPLACE` (by an admin user) and called
-- with FCALL / FCALL_RO. The Rust side (src/redis_queue.rs) is the only caller
-- that is supported; the reply shapes below are its contract.
--
-- Why functions and not client-side MULTI: each transition reads state
-- (ownership in the pending list, the outcome hash) and writes depending on
-- it; a function does that atomically on the server, and Redis 7 checks every
-- command it runs against the *caller's* ACL, so a worker can be given FCALL
-- without EVAL (it cannot run arbitrary Lua) and still be denied the keys it
-- has no business with (it cannot enqueue).
--
-- Keys are always passed in KEYS (never built here) so that the cluster slot
-- and ACL key checks see them; all keys of a run share the `{run}` hash tag.
-- The one exception is the SCAN over worker hashes in nasfleet_status.
--
-- Bump VERSION whenever a reply shape or a key layout changes: clients refuse
-- to work against a library whose version differs from theirs.

local VERSION = '3'
local GROUP = 'workers'
local RESULTS_GROUP = 'controller'
local MAX_DELIVERIES_REASON = 'max_deliveries'
-- How many expired leases one fetch may dead-letter before giving up and
-- letting the caller read new entries; bounds the time spent in the script.
local MAX_DEAD_PER_FETCH = 64
-- XAUTOCLAIM examines at most COUNT*10 pending entries per call; this bounds
-- how many calls one fetch makes while looking for an expired lease.
local MAX_AUTOCLAIM_ROUNDS = 1000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fields_to_map(f)
  local m = {}
  if type(f) == 'table' then
    for i = 1, #f, 2 do m[f[i]] = f[i + 1] end
  end
  return m
end

-- Owner / idle / delivery count of one pending entry, or nil when the entry is
-- not pending (acknowledged, never delivered, or the group does not exist).
local function pending(stream, group, id)
  local p = redis.pcall('XPENDING', stream, group, id, id, 1)
  if type(p) ~= 'table' or p.err or #p == 0 then return nil end
  return { owner = p[1][2], idle = tonumber(p[1][3]), count = tonumber(p[1][4]) }
end

-- The job id stored in an entry; an entry without one (written by hand) is
-- named after its own id so that it can still reach a terminal state.
local function entry_job(map, id)
  local j = map['job']
  if j == nil or j == '' then return id end
  return j
end

local function read_entry(stream, id)
  local e = redis.call('XRANGE', stream, id, id)
  if #e == 0 then return nil end
  return fields_to_map(e[1][2])
end

local function decode_outcome(raw)
  local ok, v = pcall(cjson.decode, raw)
  if ok and type(v) == 'table' then return v end
  return {}
end

-- Clear the "current job" part of a worker's state after a terminal
-- transition. Only touches a hash that exists: writing to an expired one would
-- resurrect it without a TTL.
local function clear_worker_job(worker_key, now)
  if worker_key and redis.call('EXISTS', worker_key) == 1 then
    redis.call('HDEL', worker_key, 'job', 'entry', 'progress')
    redis.call('HSET', worker_key, 'last_seen', now)
  end
end

-- Records a dead letter for a pending entry this script already checked.
-- Returns true when this call recorded the outcome (first writer).
local function record_dead(k, consumer, id, job, payload, deliveries, reason, err, now)
  local rec = cjson.encode({ kind = 'dead', reason = reason, error = err,
                             by = consumer, entry = id, deliveries = deliveries, at = now })
  local first = redis.call('HSETNX', k.outcome, job, rec) == 1
  if first then
    redis.call('XADD', k.dead, '*', 'job', job, 'reason', reason, 'error', err,
               'deliveries', deliveries, 'payload', payload, 'consumer', consumer, 'entry', id)
    redis.call('XADD', k.results, '*', 'job', job, 'kind', 'dead', 'reason', reason,
               'error', err, 'by', consumer, 'entry', id, 'deliveries', deliveries)
  end
  -- Terminal either way: a job that already has an outcome must not be
  -- delivered again.
  redis.call('XACK', k.jobs, GROUP, id)
  redis.call('XDEL', k.jobs, id)
  return first
end

-- Create a consumer group (and its stream) when missing. EXISTS first so the
-- common path does not produce a BUSYGROUP error on every call.
local function ensure_group(stream, group)
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  end
end

---------------------------------------------------------------------------
-- Controller side
---------------------------------------------------------------------------

-- KEYS: jobs, results, outcome, enqueued   ARGV: job, payload
-- -> {'enqueued', entry} | {'already', entry} | {'finished'}
local function enqueue(keys, args)
  local jobs, results, outcome, enqueued = keys[1], keys[2], keys[3], keys[4]
  local job, payload = args[1], args[2]
  if redis.call('HEXISTS', outcome, job) == 1 then return { 'finished' } end
  local existing = redis.call('HGET', enqueued, job)
  if existing then return { 'already', existing } end
  ensure_group(jobs, GROUP)
  ensure_group(results, RESULTS_GROUP)
  local id = redis.call('XADD', jobs, '*', 'job', job, 'payload', payload)
  redis.call('HSET', enqueued, job, id)
  return { 'enqueued', id }
end

-- KEYS: jobs, results  -> 'OK'. Creates both groups, tolerating existing ones
-- (a stream can exist without its group if an operator deleted the group).
local function setup(keys, args)
  local pairs_ = { { keys[1], GROUP }, { keys[2], RESULTS_GROUP } }
  for _, p in ipairs(pairs_) do
    local r = redis.pcall('XGROUP', 'CREATE', p[1], p[2], '0', 'MKSTREAM')
    if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP', 1, true) then
      return redis.error_reply(r.err)
    end
  end
  return 'OK'
end

-- KEYS: results   ARGV: consumer, cursor, count
-- -> {next_cursor, {id, job, kind, result, reason, error, by}, ...}
-- Claims every pending result of the group (any consumer, min-idle 0), so a
-- restarted controller with a new name still sees what its predecessor read
-- but never acknowledged.
local function results_claim(keys, args)
  local results, consumer, cursor, count = keys[1], args[1], args[2], args[3]
  ensure_group(results, RESULTS_GROUP)
  local r = redis.call('XAUTOCLAIM', results, RESULTS_GROUP, consumer, 0, cursor, 'COUNT', count)
  local out = { r[1] }
  for _, e in ipairs(r[2]) do
    if type(e) == 'table' and type(e[2]) == 'table' then
      local m = fields_to_map(e[2])
      out[#out + 1] = { e[1], m['job'] or '', m['kind'] or '', m['result'] or '',
                        m['reason'] or '', m['error'] or '', m['by'] or '' }
    end
  end
  return out
end

-- KEYS: results   ARGV: ids...  -> number acknowledged
local function results_ack(keys, args)
  if #args == 0 then return 0 end
  return redis.call('XACK', keys[1], RESULTS_GROUP, unpack(args))
end

---------------------------------------------------------------------------
-- Operator side
---------------------------------------------------------------------------

-- KEYS: jobs, results, dead, outcome, enqueued   ARGV: job...
-- -> {{tag, entry}...}, one per job, tag: 'requeued' (entry: the new one) |
--    'finished' | 'pending' | 'unknown'
-- Puts dead-lettered jobs back after a fix: the dead outcome and the job's
-- dead letters go, its payload (from the latest dead letter) becomes a new
-- entry whose deliveries start at zero (a job named twice is requeued once:
-- the second time it is 'pending'). One pass over the dead stream finds
-- the payloads of every asked job, so a call is O(dead letters + jobs).
local function requeue(keys, args)
  local k = { jobs = keys[1], results = keys[2], dead = keys[3], outcome = keys[4], enqueued = keys[5] }
  local wanted, letters = {}, {}
  for _, job in ipairs(args) do wanted[job] = true end
  if redis.call('EXISTS', k.dead) == 1 then
    for _, e in ipairs(redis.call('XRANGE', k.dead, '-', '+')) do
      local m = fields_to_map(e[2])
      local job = m['job']
      if job and wanted[job] then
        -- XRANGE runs oldest first: the last payload seen is the latest.
        local l = letters[job] or { ids = {} }
        l.ids[#l.ids + 1] = e[1]
        l.payload = m['payload']
        letters[job] = l
      end
    end
  end
  local out = {}
  for _, job in ipairs(args) do
    local rec = redis.call('HGET', k.outcome, job)
    if rec then
      local l = letters[job]
      if decode_outcome(rec).kind ~= 'dead' then
        out[#out + 1] = { 'finished', '' }
      elseif l == nil or l.payload == nil then
        out[#out + 1] = { 'unknown', '' }
      else
        redis.call('HDEL', k.outcome, job)
        redis.call('XDEL', k.dead, unpack(l.ids))
        ensure_group(k.jobs, GROUP)
        ensure_group(k.results, RESULTS_GROUP)
        local id = redis.call('XADD', k.jobs, '*', 'job', job, 'payload', l.payload)
        redis.call('HSET', k.enqueued, job, id)
        out[#out + 1] = { 'requeued', id }
      end
    elseif redis.call('HEXISTS', k.enqueued, job) == 1 then
      out[#out + 1] = { 'pending', '' }
    else
      out[#out + 1] = { 'unknown', '' }
    end
  end
  return out
end

---------------------------------------------------------------------------
-- Worker side
---------------------------------------------------------------------------

-- KEYS: jobs, results, dead, outcome
-- ARGV: consumer, lease_ms, max_deliveries, known entry ids...
-- -> {'lease', entry, job, payload, deliveries} | {'none', dead_lettered}
--
-- 1. Adopt: an entry pending for this consumer, younger than the lease, that
--    the client does not know it holds was delivered by a call whose reply
--    was lost (a timed-out XREADGROUP, a retried fetch). Hand it out again
--    instead of letting it sit until the lease expires. JUSTID: the worker
--    never saw it, so no delivery is counted. Entries at or past the lease
--    are not adopted: those are released/abandoned ones (idle = lease) or
--    truly expired ones, and step 2 claims them with the delivery counted.
-- 2. Claim an expired lease (idle >= lease) with XAUTOCLAIM; if its delivery
--    count now exceeds the limit, dead-letter it (max_deliveries) and go on.
-- 3. Otherwise reply 'none': the client then blocks in XREADGROUP '>' on its
--    dedicated connection (a function cannot block).
local function fetch(keys, args)
  local k = { jobs = keys[1], results = keys[2], dead = keys[3], outcome = keys[4] }
  local consumer, lease_ms, max_deliveries = args[1], tonumber(args[2]), tonumber(args[3])
  local known = {}
  for i = 4, #args do known[args[i]] = true end

  local mine = redis.pcall('XPENDING', k.jobs, GROUP, '-', '+', 64, consumer)
  if type(mine) ~= 'table' or mine.err then
    -- NOGROUP: nothing was ever enqueued in this run.
    return { 'none', 0 }
  end
  for _, p in ipairs(mine) do
    local id = p[1]
    if not known[id] and tonumber(p[3]) < lease_ms then
      local m = read_entry(k.jobs, id)
      if m == nil then
        -- Pending but deleted from the stream: nothing to hand out.
        redis.call('XACK', k.jobs, GROUP, id)
      else
        redis.call('XCLAIM', k.jobs, GROUP, consumer, 0, id, 'JUSTID')
        return { 'lease', id, entry_job(m, id), m['payload'] or '', tonumber(p[4]) }
      end
    end
  end

  local cursor = '0-0'
  local dead = 0
  local now = nil
  for _ = 1, MAX_AUTOCLAIM_ROUNDS do
    local r = redis.call('XAUTOCLAIM', k.jobs, GROUP, consumer, lease_ms, cursor, 'COUNT', 1)
    cursor = r[1]
    for _, e in ipairs(r[2]) do
      if type(e) == 'table' and type(e[2]) == 'table' then
        local id = e[1]
        local m = fields_to_map(e[2])
        local job = entry_job(m, id)
        local info = pending(k.jobs, GROUP, id)
        local count = info and info.count or 1
        if count > max_deliveries then
          now = now or now_ms()
          record_dead(k, consumer, id, job, m['payload'] or '', count, MAX_DELIVERIES_REASON,
                      'delivered ' .. count .. ' times, limit ' .. max_deliveries, now)
          dead = dead + 1
          if dead >= MAX_DEAD_PER_FETCH then return { 'none', dead } end
        elseif redis.call('HEXISTS', k.outcome, job) == 1 then
          -- Already terminal (only possible after manual surgery): clean up.
          redis.call('XACK', k.jobs, GROUP, id)
          redis.call('XDEL', k.jobs, id)
        else
          return { 'lease', id, job, m['payload'] or '', count }
        end
      end
    end
    if cursor == '0-0' then break end
  end
  return { 'none', dead }
end

-- Write host/device/last_seen (and optionally the current job) to a worker's
-- hash and refresh its TTL.
local function touch_worker(worker_key, host, device, ttl_ms, now)
  redis.call('HSET', worker_key, 'host', host, 'device', device, 'last_seen', now)
  redis.call('PEXPIRE', worker_key, ttl_ms)
end

-- KEYS: jobs, worker   ARGV: consumer, entry, job, progress, host, device, ttl_ms
-- -> 1 (still the owner; lease extended) | 0 (lost it: abort the job)
local function heartbeat(keys, args)
  local jobs, worker_key = keys[1], keys[2]
  local consumer, id, job, progress = args[1], args[2], args[3], args[4]
  local host, device, ttl_ms = args[5], args[6], tonumber(args[7])
  local now = now_ms()
  local p = pending(jobs, GROUP, id)
  local owned = p ~= nil and p.owner == consumer
  if owned then
    -- XCLAIM to self with min-idle 0 resets the idle time (the lease) and,
    -- with JUSTID, leaves the delivery count alone.
    redis.call('XCLAIM', jobs, GROUP, consumer, 0, id, 'JUSTID')
  end
  touch_worker(worker_key, host, device, ttl_ms, now)
  if owned then
    redis.call('HSET', worker_key, 'job', job, 'entry', id, 'progress', progress)
    return 1
  end
  redis.call('HDEL', worker_key, 'job', 'entry', 'progress')
  return 0
end

-- KEYS: worker   ARGV: host, device, ttl_ms -> 'OK' (idle worker keep-alive)
local function worker_alive(keys, args)
  touch_worker(keys[1], args[1], args[2], tonumber(args[3]), now_ms())
  return 'OK'
end

-- Shared checks of complete / dead_letter.
-- -> status, pending_info, entry_map
--    status: 'ok' | 'already' | 'duplicate' | 'lost' | 'mismatch'
local function terminal_checks(k, consumer, id, job)
  local rec = redis.call('HGET', k.outcome, job)
  if rec then
    local d = decode_outcome(rec)
    if d.by == consumer and d.entry == id then return 'already' end
    return 'duplicate'
  end
  -- XACK does not check the owner (pitfall 1): check it here.
  local p = pending(k.jobs, GROUP, id)
  if p == nil or p.owner ~= consumer then return 'lost' end
  local m = read_entry(k.jobs, id)
  if m == nil then return 'lost' end
  if entry_job(m, id) ~= job then return 'mismatch' end
  return 'ok', p, m
end

local function mismatch_reply(id, job)
  return redis.error_reply('NASFLEET entry ' .. id .. ' does not hold job ' .. job)
end

-- KEYS: jobs, results, outcome, worker   ARGV: consumer, entry, job, result
-- -> 'recorded' | 'already' | 'duplicate' | 'lost'
local function complete(keys, args)
  local k = { jobs = keys[1], results = keys[2], outcome = keys[3] }
  local worker_key = keys[4]
  local consumer, id, job, result = args[1], args[2], args[3], args[4]
  local status, p = terminal_checks(k, consumer, id, job)
  if status == 'mismatch' then return mismatch_reply(id, job) end
  if status ~= 'ok' then return status end
  local now = now_ms()
  local rec = cjson.encode({ kind = 'ok', result = result, by = consumer, entry = id,
                             deliveries = p.count, at = now })
  -- HSETNX: first writer wins even if two transitions were ever to race.
  if redis.call('HSETNX', k.outcome, job, rec) == 0 then return 'duplicate' end
  redis.call('XADD', k.results, '*', 'job', job, 'kind', 'ok', 'result', result,
             'by', consumer, 'entry', id, 'deliveries', p.count)
  redis.call('XACK', k.jobs, GROUP, id)
  redis.call('XDEL', k.jobs, id)
  clear_worker_job(worker_key, now)
  return 'recorded'
end

-- KEYS: jobs, results, dead, outcome, worker
-- ARGV: consumer, entry, job, reason, error
-- -> 'recorded' | 'already' | 'duplicate' | 'lost'
local function dead_letter(keys, args)
  local k = { jobs = keys[1], results = keys[2], dead = keys[3], outcome = keys[4] }
  local worker_key = keys[5]
  local consumer, id, job, reason, err = args[1], args[2], args[3], args[4], args[5]
  local status, p, m = terminal_checks(k, consumer, id, job)
  if status == 'mismatch' then return mismatch_reply(id, job) end
  if status ~= 'ok' then return status end
  local now = now_ms()
  if not record_dead(k, consumer, id, job, m['payload'] or '', p.count, reason, err, now) then
    return 'duplicate'
  end
  clear_worker_job(worker_key, now)
  return 'recorded'
end

-- Make a pending entry of `consumer` claimable at once (idle = lease, which
-- XAUTOCLAIM's min-idle accepts) and clear the worker's current job.
-- -> 1 | 0 (not the owner any more)
local function give_back(keys, args, keep_delivery)
  local jobs, worker_key = keys[1], keys[2]
  local consumer, id = args[1], args[2]
  local lease_ms, lease_deliveries = tonumber(args[3]), tonumber(args[4])
  local p = pending(jobs, GROUP, id)
  if p == nil or p.owner ~= consumer then return 0 end
  if keep_delivery then
    -- The next claim adds one: give back the one this lease spent. The new
    -- count is min(current, lease_deliveries - 1) so that a retried release
    -- (lost reply) does not subtract twice.
    local count = math.min(p.count, lease_deliveries - 1)
    if count < 0 then count = 0 end
    redis.call('XCLAIM', jobs, GROUP, consumer, 0, id, 'IDLE', lease_ms, 'RETRYCOUNT', count, 'JUSTID')
  else
    redis.call('XCLAIM', jobs, GROUP, consumer, 0, id, 'IDLE', lease_ms, 'JUSTID')
  end
  clear_worker_job(worker_key, now_ms())
  return 1
end

-- KEYS: jobs, worker   ARGV: consumer, entry, lease_ms, lease_deliveries
-- Graceful preemption: claimable now, this delivery not counted.
local function release(keys, args)
  return give_back(keys, args, true)
end

-- Same KEYS / ARGV. Retryable failure: claimable now, this delivery counted
-- (so a job failing every time still reaches max_deliveries).
local function abandon(keys, args)
  return give_back(keys, args, false)
end

---------------------------------------------------------------------------
-- Inspection (read-only; callable with FCALL_RO by a viewer)
---------------------------------------------------------------------------

local function xlen(key)
  if redis.call('EXISTS', key) == 0 then return 0 end
  return redis.call('XLEN', key)
end

-- KEYS: jobs, results, dead, outcome, enqueued   ARGV: worker_key_prefix, limit
-- -> {now_ms, stream_len, pending_total,
--     {{entry, job, owner, idle_ms, deliveries}...},
--     {{key, host, device, job, progress, last_seen}...},
--     {{dead_id, job, reason, error, deliveries, payload, consumer}...},
--     dead_total, results_total, outcomes, enqueued}
local function status(keys, args)
  local jobs, results, dead, outcome, enqueued = keys[1], keys[2], keys[3], keys[4], keys[5]
  local prefix, limit = args[1], tonumber(args[2])
  local len = xlen(jobs)
  local pending_total = 0
  local inflight = {}
  local summary = redis.pcall('XPENDING', jobs, GROUP)
  if type(summary) == 'table' and not summary.err then
    pending_total = tonumber(summary[1])
    if pending_total > 0 and limit > 0 then
      local list = redis.call('XPENDING', jobs, GROUP, '-', '+', limit)
      for _, p in ipairs(list) do
        local m = read_entry(jobs, p[1]) or {}
        inflight[#inflight + 1] = { p[1], entry_job(m, p[1]), p[2], p[3], p[4] }
      end
    end
  end
  local workers = {}
  local cursor = '0'
  repeat
    local r = redis.call('SCAN', cursor, 'MATCH', prefix .. '*', 'COUNT', 1000)
    cursor = r[1]
    for _, key in ipairs(r[2]) do
      local h = fields_to_map(redis.call('HGETALL', key))
      workers[#workers + 1] = { key, h['host'] or '', h['device'] or '', h['job'] or '',
                                h['progress'] or '', h['last_seen'] or '0' }
    end
  until cursor == '0'
  local deads = {}
  if limit > 0 then
    for _, e in ipairs(redis.call('XREVRANGE', dead, '+', '-', 'COUNT', limit)) do
      local m = fields_to_map(e[2])
      deads[#deads + 1] = { e[1], m['job'] or '', m['reason'] or '', m['error'] or '',
                            m['deliveries'] or '0', m['payload'] or '', m['consumer'] or '' }
    end
  end
  return { now_ms(), len, pending_total, inflight, workers, deads, xlen(dead), xlen(results),
           redis.call('HLEN', outcome), redis.call('HLEN', enqueued) }
end

local function version(keys, args)
  return VERSION
end

---------------------------------------------------------------------------
-- Early stopping (rungs)
---------------------------------------------------------------------------

-- The decision at a rung: a line-for-line mirror of
-- nasfleet_util::rung::decide (crates/nasfleet-util/src/rung.rs); the queue
-- conformance suite runs the same cases against this and the memory backend.
-- `value` and `peers` are finite doubles (the client maps NaN to the most
-- negative one), so comparisons, the sort and the one mean agree bit for bit.
local function rung_decide(kind, eta, min_peers, value, peers)
  if min_peers < 1 then min_peers = 1 end
  if #peers < min_peers then return 'continue' end
  if kind == 'median' then
    table.sort(peers)
    local n = #peers
    local median
    if n % 2 == 1 then
      median = peers[(n + 1) / 2]
    else
      median = (peers[n / 2] + peers[n / 2 + 1]) / 2
    end
    if value < median then return 'stop' end
    return 'continue'
  end
  -- asha
  if eta < 2 then eta = 2 end
  local n = #peers + 1
  local better = 0
  for _, p in ipairs(peers) do
    if p > value then better = better + 1 end
  end
  local keep = math.floor(n / eta)
  if keep < 1 then keep = 1 end
  if better < keep then return 'continue' end
  return 'stop'
end

-- KEYS: jobs, outcome, rung (nasfleet:{run}:rung:<epoch>, a hash
--       job -> '<decision> <value> <peers>')
-- ARGV: consumer, entry, job, value, rule ('median' | 'asha'), eta, min_peers
-- -> {'decided', decision, value, peers, first (1 | 0)} | {'lost'} | {'finished'}
--
-- Records a child's score at a rung and decides, once per (job, rung): a
-- repeated call (a resumed child, a retry after a lost reply) returns the
-- recorded decision. Ownership is checked as complete() checks it, so a
-- stale worker whose lease was taken over records nothing. Does not touch
-- the lease (heartbeats do).
local function rung(keys, args)
  local k = { jobs = keys[1], outcome = keys[2] }
  local rung_key = keys[3]
  local consumer, id, job = args[1], args[2], args[3]
  local value, kind = tonumber(args[4]), args[5]
  local eta, min_peers = tonumber(args[6]), tonumber(args[7])
  if value == nil or (kind ~= 'median' and kind ~= 'asha') or eta == nil or min_peers == nil then
    return redis.error_reply('NASFLEET bad rung arguments')
  end
  local status = terminal_checks(k, consumer, id, job)
  if status == 'mismatch' then return mismatch_reply(id, job) end
  if status == 'already' or status == 'duplicate' then return { 'finished' } end
  if status ~= 'ok' then return { 'lost' } end
  local existing = redis.call('HGET', rung_key, job)
  if existing then
    local d, v, n = string.match(existing, '^(%S+) (%S+) (%S+)$')
    return { 'decided', d, v, n, 0 }
  end
  local peers = {}
  for _, rec in ipairs(redis.call('HVALS', rung_key)) do
    local _, v = string.match(rec, '^(%S+) (%S+) ')
    local x = tonumber(v)
    if x ~= nil then peers[#peers + 1] = x end
  end
  local n = #peers
  local d = rung_decide(kind, eta, min_peers, value, peers)
  redis.call('HSET', rung_key, job, d .. ' ' .. args[4] .. ' ' .. n)
  return { 'decided', d, args[4], tostring(n), 1 }
end

redis.register_function{ function_name = 'nasfleet_version', callback = version,
                         flags = { 'no-writes', 'allow-stale' } }
redis.register_function{ function_name = 'nasfleet_status', callback = status, flags = { 'no-writes' } }
redis.register_function('nasfleet_enqueue', enqueue)
redis.register_function('nasfleet_setup', setup)
redis.register_function('nasfleet_requeue', requeue)
redis.register_function('nasfleet_results_claim', results_claim)
redis.register_function('nasfleet_results_ack', results_ack)
redis.register_function('nasfleet_worker_fetch', fetch)
redis.register_function('nasfleet_worker_heartbeat', heartbeat)
redis.register_function('nasfleet_worker_alive', worker_alive)
redis.register_function('nasfleet_worker_complete', complete)
redis.register_function('nasfleet_worker_dead_letter', dead_letter)
redis.register_function('nasfleet_worker_release', release)
redis.register_function('nasfleet_worker_abandon', abandon)
redis.register_function('nasfleet_worker_rung', rung)

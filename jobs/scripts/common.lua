-- Shared helpers, prepended to every script (see scripts.rs). Every key a script touches
-- belongs to one queue and carries its hash tag; job keys are built from the queue's job
-- prefix plus the id, which keeps them in the same slot on Redis Cluster.

-- A field of `h` that is set and not empty (else nil).
local function str(h, k) local x = h[k]; if x and x ~= '' then return x end end

-- `,"k":x` for an integer field that is set (written by these scripts or by a worker from a
-- Rust integer), else ''.
local function int_field(k, x)
  if x and x ~= '' and tonumber(x) then return ',"' .. k .. '":' .. x end
  return ''
end

-- The event for a job whose fields are already at hand (`h`: field -> value; missing or
-- false values are left out), so a script that has just read or written them does not read
-- the hash again. Built by one concatenation rather than a table through cjson: that was a
-- table of twelve fields and a `sprintf` per number, twice per job. No escaping is needed
-- for what is written raw: ids and owners are UUIDs, kind and queue are checked names of
-- a-z, 0-9, `_` and `-` (in Rust, before a job reaches Redis), statuses and event types are
-- these scripts' own words; the error code, the one free string, goes through cjson.
local function publish_fields(channel, h, etype, now)
  local code = str(h, 'error_code')
  local owner = str(h, 'owner')
  redis.call('PUBLISH', channel, '{"id":"' .. (h.id or '') .. '","type":"' .. etype ..
    '","status":"' .. (h.status or '') .. '","kind":"' .. (h.kind or '') ..
    '","queue":"' .. (h.queue or '') .. '"' .. int_field('attempts', h.attempts) ..
    ',"at":' .. now .. int_field('progress_done', h.progress_done) ..
    int_field('progress_total', h.progress_total) .. int_field('started_at', h.started_at) ..
    (code and (',"error_code":' .. cjson.encode(code)) or '') ..
    (owner and (',"owner":"' .. owner .. '"') or '') .. '}')
end

local EVENT_FIELDS = { 'id', 'status', 'kind', 'queue', 'attempts', 'progress_done',
  'progress_total', 'error_code', 'owner', 'started_at' }

local function publish(channel, jk, etype, now)
  local f = redis.call('HMGET', jk, unpack(EVENT_FIELDS))
  if not f[1] then return end
  local h = {}
  for i, k in ipairs(EVENT_FIELDS) do h[k] = f[i] end
  publish_fields(channel, h, etype, now)
end

-- `redis.call(cmd, key, ...)` over `args` in calls of at most 1,000 arguments (unpack's
-- stack is limited): one call per thousand values, not one per job. 1,000 is even, so
-- score/member pairs are never split.
local function in_chunks(cmd, key, args)
  for a = 1, #args, 1000 do
    redis.call(cmd, key, unpack(args, a, math.min(a + 999, #args)))
  end
end

-- Record a state change: bump the version and hand the job to the PostgreSQL persister.
local function changed(jk, persist_key, id, now)
  redis.call('HINCRBY', jk, 'v', 1)
  redis.call('ZADD', persist_key, now, id)
end

-- After a failed attempt: 'retry' or 'fail'. limit_on/global_max are the global setting as
-- read from PostgreSQL by the caller; the job's own cap (if any) can only lower it.
local function decide(jk, retryable, limit_on, global_max)
  if retryable ~= 1 then return 'fail' end
  local attempts = tonumber(redis.call('HGET', jk, 'attempts')) or 0
  local job_cap = tonumber(redis.call('HGET', jk, 'max_retries'))
  local cap = job_cap
  if limit_on == 1 then
    cap = global_max
    if job_cap and job_cap < cap then cap = job_cap end
  end
  if cap == nil or (attempts - 1) < cap then return 'retry' end
  return 'fail'
end

-- Exponential backoff with equal jitter (mirrors retry::backoff in Rust).
local function backoff_ms(jk, base, max, rand01)
  local attempts = tonumber(redis.call('HGET', jk, 'attempts')) or 1
  local exp = math.min(math.max(attempts - 1, 0), 20)
  local full = math.min(base * (2 ^ exp), max)
  return math.floor(full / 2 + (full / 2) * rand01)
end

local function fail_or_retry(jk, id, keys_delayed, now, code, message, retryable,
                             limit_on, global_max, delay)
  redis.call('HSET', jk, 'error_code', code, 'error_message', message)
  if decide(jk, retryable, limit_on, global_max) == 'retry' then
    redis.call('HSET', jk, 'status', 'retrying', 'due_at', now + delay)
    redis.call('ZADD', keys_delayed, now + delay, id)
    return 'retrying'
  end
  redis.call('HSET', jk, 'status', 'failed', 'finished_at', now)
  return 'failed'
end

-- Promote due retries (at most 100), then take up to `count` queued jobs, highest priority
-- first, leasing each to `worker`. Returns a list of HGETALL arrays and the time the next
-- retry is due ('-1' if none). Cost per call is bounded whatever the queue length. `now` is
-- the caller's string (ms): it is written as it is, never formatted from a number.
local function claim_jobs(k_high, k_normal, k_low, k_delayed, k_leases, now, lease_ms, worker,
                          prefix, channel, count)
  local pending = { k_high, k_normal, k_low }
  local lease_until = tostring(tonumber(now) + lease_ms)
  local due = redis.call('ZRANGEBYSCORE', k_delayed, '-inf', now, 'LIMIT', 0, 100)
  in_chunks('ZREM', k_delayed, due)
  for _, id in ipairs(due) do
    local jk = prefix .. id
    local prio = tonumber(redis.call('HGET', jk, 'priority'))
    if prio and redis.call('HGET', jk, 'status') == 'retrying' then
      redis.call('HSET', jk, 'status', 'queued')
      -- a due retry has waited already: it goes to the front of its priority
      redis.call('RPUSH', pending[1 + prio], id)
    end
  end
  local out = {}
  local leased = {}
  local skipped = 0
  for i = 1, 3 do
    -- ids are popped as many at a time as slots are left (one call, not one per job); one
    -- that is no longer queued (cancelled while it waited) is dropped, as a single pop would
    while #out < count and skipped < 100 do
      local ids = redis.call('RPOP', pending[i], count - #out)
      if not ids then break end
      for _, id in ipairs(ids) do
        local jk = prefix .. id
        -- one read of the whole hash serves the check, the update, the event and the reply
        local flat = redis.call('HGETALL', jk)
        local h = {}
        for j = 1, #flat, 2 do h[flat[j]] = flat[j + 1] end
        if h.status == 'queued' then
          h.attempts = tostring((tonumber(h.attempts) or 0) + 1)
          h.v = tostring((tonumber(h.v) or 0) + 1)
          h.status, h.worker, h.started_at = 'running', worker, now
          redis.call('HSET', jk, 'attempts', h.attempts, 'v', h.v, 'status', 'running',
            'worker', worker, 'started_at', h.started_at)
          if h.progress_done or h.progress_total or h.progress_at or h.due_at then
            redis.call('HDEL', jk, 'progress_done', 'progress_total', 'progress_at', 'due_at')
            h.progress_done, h.progress_total, h.progress_at, h.due_at = nil, nil, nil, nil
          end
          leased[#leased + 1] = lease_until
          leased[#leased + 1] = id
          publish_fields(channel, h, 'status', now)
          local job = {}
          for k, x in pairs(h) do
            job[#job + 1] = k
            job[#job + 1] = x
          end
          out[#out + 1] = job
        else
          skipped = skipped + 1
        end
      end
    end
  end
  -- every lease in one ZADD, not one per job
  in_chunks('ZADD', k_leases, leased)
  local first = redis.call('ZRANGE', k_delayed, 0, 0, 'WITHSCORES')
  return out, (first[2] or '-1')
end

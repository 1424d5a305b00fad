-- Shared helpers, prepended to every script (see scripts.rs). Every key a script touches
-- belongs to one queue and carries its hash tag; job keys are built from the queue's job
-- prefix plus the id, which keeps them in the same slot on Redis Cluster.

local function publish(channel, jk, etype, now)
  local f = redis.call('HMGET', jk, 'id', 'status', 'kind', 'queue', 'attempts',
    'progress_done', 'progress_total', 'error_code', 'owner', 'started_at')
  if not f[1] then return end
  local ev = { id = f[1], type = etype, status = f[2], kind = f[3], queue = f[4],
    attempts = tonumber(f[5]) or 0, at = now }
  if f[6] and f[6] ~= '' then ev.progress_done = tonumber(f[6]) end
  if f[7] and f[7] ~= '' then ev.progress_total = tonumber(f[7]) end
  if f[8] and f[8] ~= '' then ev.error_code = f[8] end
  if f[9] and f[9] ~= '' then ev.owner = f[9] end
  if f[10] and f[10] ~= '' then ev.started_at = tonumber(f[10]) end
  redis.call('PUBLISH', channel, cjson.encode(ev))
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
-- retry is due ('-1' if none). Cost per call is bounded whatever the queue length.
local function claim_jobs(k_high, k_normal, k_low, k_delayed, k_leases, now, lease_ms, worker,
                          prefix, channel, count)
  local pending = { k_high, k_normal, k_low }
  local due = redis.call('ZRANGEBYSCORE', k_delayed, '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(due) do
    redis.call('ZREM', k_delayed, id)
    local jk = prefix .. id
    local prio = tonumber(redis.call('HGET', jk, 'priority'))
    if prio and redis.call('HGET', jk, 'status') == 'retrying' then
      redis.call('HSET', jk, 'status', 'queued')
      -- a due retry has waited already: it goes to the front of its priority
      redis.call('RPUSH', pending[1 + prio], id)
    end
  end
  local out = {}
  local skipped = 0
  for i = 1, 3 do
    while #out < count and skipped < 100 do
      local id = redis.call('RPOP', pending[i])
      if not id then break end
      local jk = prefix .. id
      if redis.call('HGET', jk, 'status') == 'queued' then
        redis.call('HINCRBY', jk, 'attempts', 1)
        redis.call('HINCRBY', jk, 'v', 1)
        redis.call('HSET', jk, 'status', 'running', 'worker', worker, 'started_at', now)
        redis.call('HDEL', jk, 'progress_done', 'progress_total', 'progress_at', 'due_at')
        redis.call('ZADD', k_leases, now + lease_ms, id)
        publish(channel, jk, 'status', now)
        table.insert(out, redis.call('HGETALL', jk))
      else
        skipped = skipped + 1
      end
    end
  end
  local first = redis.call('ZRANGE', k_delayed, 0, 0, 'WITHSCORES')
  return out, (first[2] or '-1')
end

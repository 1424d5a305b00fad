-- KEYS: leases, persist, delayed, pending high, pending normal, pending low, wake
-- ARGV: id, worker, now, job prefix, events channel, outcome
--       (succeeded | cancelled | release | error), result or error code, error message,
--       retryable (0/1), backoff ms, limit_on (0/1), global max retries,
--       then how many jobs to claim next (0 or more) and the lease ms for them
-- Returns {{new status, or 'lost' when this worker no longer holds the job}, claimed jobs'
-- HGETALL arrays...}: a worker slot that frees up takes its next job in the same round trip.
local id, worker, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local jk = ARGV[4] .. id
local f = redis.call('HMGET', jk, 'status', 'worker', 'priority')
local claim_count = tonumber(ARGV[13]) or 0
local function next_jobs(status)
  local out = {}
  if claim_count > 0 then
    out = claim_jobs(KEYS[4], KEYS[5], KEYS[6], KEYS[3], KEYS[1], now, tonumber(ARGV[14]),
      worker, ARGV[4], ARGV[5], claim_count)
  end
  table.insert(out, 1, { status })
  return out
end
if f[1] ~= 'running' or f[2] ~= worker then return next_jobs('lost') end
redis.call('ZREM', KEYS[1], id)
local outcome = ARGV[6]
local status
if outcome == 'succeeded' then
  redis.call('HSET', jk, 'status', 'succeeded', 'result', ARGV[7], 'finished_at', now)
  redis.call('HDEL', jk, 'error_code', 'error_message')
  status = 'succeeded'
elseif outcome == 'cancelled' then
  redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', now,
    'error_code', 'cancelled', 'error_message', 'cancelled on request')
  status = 'cancelled'
elseif outcome == 'release' then
  -- a draining worker gives the job back: not an attempt, and it goes to the front
  redis.call('HINCRBY', jk, 'attempts', -1)
  redis.call('HSET', jk, 'status', 'queued')
  redis.call('HDEL', jk, 'worker', 'started_at')
  redis.call('RPUSH', KEYS[4 + (tonumber(f[3]) or 1)], id)
  redis.call('LPUSH', KEYS[7], '1')
  redis.call('LTRIM', KEYS[7], 0, 255)
  status = 'queued'
else
  status = fail_or_retry(jk, id, KEYS[3], now, ARGV[7], ARGV[8], tonumber(ARGV[9]),
    tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[10]))
end
changed(jk, KEYS[2], id, now)
publish(ARGV[5], jk, 'status', now)
return next_jobs(status)

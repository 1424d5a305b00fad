-- KEYS: leases, persist, delayed
-- ARGV: now, job prefix, events channel, limit_on, global max retries, backoff base ms,
--       backoff max ms, random 0..1
-- Jobs whose lease expired (their worker died or hung) count the attempt as `worker_lost`
-- and retry or fail by the same rule as any retryable error. At most 100 per call.
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)
local out = {}
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local jk = ARGV[2] .. id
  local f = redis.call('HMGET', jk, 'status', 'worker', 'cancel')
  if f[1] == 'running' then
    local status
    if f[3] == '1' then
      redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', now,
        'error_code', 'cancelled', 'error_message', 'cancelled; its worker was lost')
      status = 'cancelled'
    else
      local delay = backoff_ms(jk, tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]))
      status = fail_or_retry(jk, id, KEYS[3], now, 'worker_lost',
        'worker ' .. (f[2] or '?') .. ' stopped renewing its lease', 1,
        tonumber(ARGV[4]), tonumber(ARGV[5]), delay)
    end
    changed(jk, KEYS[2], id, now)
    publish(ARGV[3], jk, 'status', now)
    table.insert(out, id)
    table.insert(out, status)
  end
end
return out

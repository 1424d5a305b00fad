-- KEYS: pending high, pending normal, pending low, delayed, leases, persist
-- ARGV: now, lease_ms, worker, job prefix, events channel
-- Returns {'job', field, value, ...} or {'empty', next_due_ms or -1}.
-- Per-claim cost does not depend on queue length: at most 100 due retries are promoted and
-- at most 100 stale ids skipped per list per call.
local now = tonumber(ARGV[1])
local prefix = ARGV[4]
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[4], id)
  local jk = prefix .. id
  local prio = tonumber(redis.call('HGET', jk, 'priority'))
  if prio and redis.call('HGET', jk, 'status') == 'retrying' then
    redis.call('HSET', jk, 'status', 'queued')
    -- a due retry has waited already: it goes to the front of its priority
    redis.call('RPUSH', KEYS[1 + prio], id)
  end
end
for i = 1, 3 do
  for _ = 1, 100 do
    local id = redis.call('RPOP', KEYS[i])
    if not id then break end
    local jk = prefix .. id
    if redis.call('HGET', jk, 'status') == 'queued' then
      redis.call('HINCRBY', jk, 'attempts', 1)
      redis.call('HSET', jk, 'status', 'running', 'worker', ARGV[3], 'started_at', now)
      redis.call('HDEL', jk, 'progress_done', 'progress_total', 'progress_at', 'due_at')
      redis.call('ZADD', KEYS[5], now + tonumber(ARGV[2]), id)
      changed(jk, KEYS[6], id, now)
      publish(ARGV[5], jk, 'status', now)
      local out = redis.call('HGETALL', jk)
      table.insert(out, 1, 'job')
      return out
    end
  end
end
local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
if first[2] then return {'empty', first[2]} end
return {'empty', '-1'}

-- KEYS: leases, persist, delayed, pending high, pending normal, pending low, wake
-- ARGV: worker, now, job prefix, events channel, limit_on (0/1), global max retries,
--       lease ms, how many jobs to claim next, then 6 values per finished job:
--       id, outcome (succeeded | cancelled | release | error), result or error code,
--       error message, retryable (0/1), backoff ms
-- Returns {{new status per job, or 'lost' where this worker no longer held it}, {three values
-- per job: the version written and the progress fields where it succeeded, else '', '', ''},
-- then the HGETALL arrays of the jobs claimed next}. The second list lets the worker write a
-- success to PostgreSQL without reading the hash back. Finishing many jobs in one call (a
-- worker batches the outcomes that arrive while its previous call is in flight) and claiming
-- the freed slots' next jobs in the same call keeps Redis work per job small.
-- `now` is also kept as the caller's string, written as it is (formatting a Lua number costs
-- more than most of a success's work)
local worker, now, now_s, prefix, channel = ARGV[1], tonumber(ARGV[2]), ARGV[2], ARGV[3], ARGV[4]
local limit_on, global_max = tonumber(ARGV[5]), tonumber(ARGV[6])
local statuses = {}
local written = {}
-- leases given up and successes to persist, each removed / added in one call after the loop
local unleased, persist = {}, {}
for i = 9, #ARGV, 6 do
  local id, outcome = ARGV[i], ARGV[i + 1]
  local jk = prefix .. id
  -- the event's fields are read with the check, so a success (the common case) is written
  -- and announced without reading the hash again
  -- (status and error_code are among EVENT_FIELDS: each field is looked up once)
  local f = redis.call('HMGET', jk, 'worker', 'priority', 'v', 'error_message',
    unpack(EVENT_FIELDS))
  local h = {}
  for j, k in ipairs(EVENT_FIELDS) do h[k] = f[4 + j] end
  local status
  if h.status ~= 'running' or f[1] ~= worker then
    status = 'lost'
  else
    unleased[#unleased + 1] = id
    if outcome == 'succeeded' then
      local v = (tonumber(f[3]) or 0) + 1
      redis.call('HSET', jk, 'status', 'succeeded', 'result', ARGV[i + 2], 'finished_at', now_s,
        'v', v)
      if h.error_code or f[4] then redis.call('HDEL', jk, 'error_code', 'error_message') end
      persist[#persist + 1] = now_s
      persist[#persist + 1] = id
      h.status, h.error_code = 'succeeded', nil
      publish_fields(channel, h, 'status', now_s)
      status = 'succeeded'
      written[#written + 1] = v
      written[#written + 1] = h.progress_done or ''
      written[#written + 1] = h.progress_total or ''
    else
      if outcome == 'cancelled' then
        redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', now,
          'error_code', 'cancelled', 'error_message', 'cancelled on request')
        status = 'cancelled'
      elseif outcome == 'release' then
        -- a draining worker gives the job back: not an attempt, and it goes to the front
        redis.call('HINCRBY', jk, 'attempts', -1)
        redis.call('HSET', jk, 'status', 'queued')
        redis.call('HDEL', jk, 'worker', 'started_at')
        redis.call('RPUSH', KEYS[4 + (tonumber(f[2]) or 1)], id)
        redis.call('LPUSH', KEYS[7], '1')
        redis.call('LTRIM', KEYS[7], 0, 255)
        status = 'queued'
      else
        status = fail_or_retry(jk, id, KEYS[3], now, ARGV[i + 2], ARGV[i + 3],
          tonumber(ARGV[i + 4]), limit_on, global_max, tonumber(ARGV[i + 5]))
      end
      changed(jk, KEYS[2], id, now)
      publish(channel, jk, 'status', now)
    end
  end
  table.insert(statuses, status)
  if status ~= 'succeeded' then
    written[#written + 1] = ''
    written[#written + 1] = ''
    written[#written + 1] = ''
  end
end
-- before the claim below: it may lease again a job released above
in_chunks('ZREM', KEYS[1], unleased)
in_chunks('ZADD', KEYS[2], persist)
local out = {}
local claim_count = tonumber(ARGV[8]) or 0
if claim_count > 0 then
  out = claim_jobs(KEYS[4], KEYS[5], KEYS[6], KEYS[3], KEYS[1], now_s, tonumber(ARGV[7]), worker,
    prefix, channel, claim_count)
end
table.insert(out, 1, written)
table.insert(out, 1, statuses)
return out

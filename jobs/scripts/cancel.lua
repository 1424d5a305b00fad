-- KEYS: pending high, pending normal, pending low, delayed, persist
-- ARGV: id, now, job prefix, events channel
-- Returns 'cancelled' (removed from the queue), 'cancelling' (running: its handler is told at
-- its next checkpoint), 'missing', or the terminal status it already has.
local id, now = ARGV[1], tonumber(ARGV[2])
local jk = ARGV[3] .. id
local f = redis.call('HMGET', jk, 'status', 'priority')
if not f[1] then return 'missing' end
local status = f[1]
if status == 'queued' or status == 'retrying' then
  if status == 'queued' then
    redis.call('LREM', KEYS[1 + (tonumber(f[2]) or 1)], 1, id)
  else
    redis.call('ZREM', KEYS[4], id)
  end
  redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', now,
    'error_code', 'cancelled', 'error_message', 'cancelled on request')
  changed(jk, KEYS[5], id, now)
  publish(ARGV[4], jk, 'status', now)
  return 'cancelled'
elseif status == 'running' then
  redis.call('HSET', jk, 'cancel', '1')
  changed(jk, KEYS[5], id, now)
  return 'cancelling'
end
return 'finished:' .. status

-- KEYS: leases
-- ARGV: now, lease_ms, worker, job prefix, ids...
-- Extends the leases this worker still holds. Returns {lost ids, ids asked to cancel}.
local now = tonumber(ARGV[1])
local lost, cancel = {}, {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local f = redis.call('HMGET', ARGV[4] .. id, 'status', 'worker', 'cancel')
  if f[1] == 'running' and f[2] == ARGV[3] then
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), id)
    if f[3] == '1' then table.insert(cancel, id) end
  else
    table.insert(lost, id)
  end
end
return {lost, cancel}

-- KEYS: persist
-- ARGV: job prefix, ttl seconds, then id, version pairs that were written to PostgreSQL
-- Drops ids from the persist set when PostgreSQL has their latest version; a finished job's
-- hash then expires after the TTL (its record stays in PostgreSQL).
local ttl = ARGV[2]
local done = {}
for i = 3, #ARGV, 2 do
  local id, v = ARGV[i], ARGV[i + 1]
  local jk = ARGV[1] .. id
  local f = redis.call('HMGET', jk, 'v', 'status')
  if not f[1] or f[1] == v then
    done[#done + 1] = id
    if f[2] == 'succeeded' or f[2] == 'failed' or f[2] == 'cancelled' then
      redis.call('EXPIRE', jk, ttl)
    end
  end
end
in_chunks('ZREM', KEYS[1], done)
return #done

-- KEYS: pending high, pending normal, pending low, wake (all of one queue)
-- ARGV: job prefix, events channel, guard (1: queue a job only while Redis has no hash for it,
--       for jobs PostgreSQL holds as queued that Redis lost), then per job: id, priority
--       (0 high, 1 normal, 2 low), its `queued` event as JSON, n, and n field/value values of
--       its hash
-- Returns 1 per job queued (its hash rebuilt, a failed job's included), 0 per job the guard
-- left alone. Many jobs per call: the per-job work is the hash and the event, while the
-- pushes onto the pending lists and the wake tokens are one call each. The event is encoded
-- by the caller (it knows every field of a new job), so Redis only publishes it.
local prefix, channel, guard = ARGV[1], ARGV[2], ARGV[3] == '1'
local ids = { {}, {}, {} }
local out = {}
local queued = 0
local i = 4
while i <= #ARGV do
  local id, prio, ev, n = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3])
  local jk = prefix .. id
  local first, last = i + 4, i + 3 + n
  i = last + 1
  if guard and redis.call('EXISTS', jk) == 1 then
    out[#out + 1] = 0
  else
    redis.call('DEL', jk)
    redis.call('HSET', jk, unpack(ARGV, first, last))
    local list = ids[1 + prio]
    list[#list + 1] = id
    redis.call('PUBLISH', channel, ev)
    out[#out + 1] = 1
    queued = queued + 1
  end
end
-- in submission order: LPUSH puts each id at the head, and workers pop from the tail
for p = 1, 3 do in_chunks('LPUSH', KEYS[p], ids[p]) end
if queued > 0 then
  -- a token per job, as many as the list keeps (one wakes one idle worker)
  local tokens = {}
  for t = 1, math.min(queued, 256) do tokens[t] = '1' end
  redis.call('LPUSH', KEYS[4], unpack(tokens))
  redis.call('LTRIM', KEYS[4], 0, 255)
end
return out

-- KEYS: job hash
-- ARGV: worker, done, total, now, events channel, event payload
-- Records a running attempt's progress, only while this worker still holds the job: a worker
-- whose job was lost (reaped, queued again, or forgotten by a Redis that restarted empty)
-- must neither recreate the hash (a hash of progress fields alone would hide the job from
-- the sweep that queues lost jobs again) nor write into the next attempt's record.
local f = redis.call('HMGET', KEYS[1], 'status', 'worker')
if f[1] ~= 'running' or f[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'progress_done', ARGV[2], 'progress_total', ARGV[3],
  'progress_at', ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1

-- KEYS: job hash, pending list, wake list
-- ARGV: id, events channel, now, then field/value pairs of the job hash
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[3], '1')
redis.call('LTRIM', KEYS[3], 0, 255)
publish(ARGV[2], KEYS[1], 'status', ARGV[3])
return 1

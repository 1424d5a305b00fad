-- KEYS: pending high, pending normal, pending low, delayed, leases
-- ARGV: now, lease_ms, worker, job prefix, events channel, count
-- Returns {{next_due_ms or '-1'}, job1 HGETALL, job2 HGETALL, ...}.
-- A claim is not written to PostgreSQL (the API reads live state from Redis); the outcome is.
local jobs, next_due = claim_jobs(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1],
  tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]))
table.insert(jobs, 1, { next_due })
return jobs

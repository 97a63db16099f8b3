-- release.lua: return a concurrency lease early.
-- KEYS[1]: sorted set of leases. ARGV[1]: lease id.
-- Returns 1 if the lease was held, 0 if it had expired or was unknown.
return redis.call('ZREM', KEYS[1], ARGV[1])

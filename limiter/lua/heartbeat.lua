-- heartbeat.lua: mark this instance alive and count the live ones, timed by
-- Redis TIME. KEYS[1]: sorted set of instances scored by last beat (µs).
-- ARGV: instance id, ttl (µs) after which a silent instance is dead.
-- Returns the number of live instances, this one included.
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(ttl / 1000)))
return redis.call('ZCARD', KEYS[1])

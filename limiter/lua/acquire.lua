-- acquire.lua: take a concurrency lease, timed by Redis TIME.
-- KEYS[1]: sorted set of leases scored by expiry (µs).
-- ARGV: max leases, ttl (µs), lease id.
-- Returns: allowed (1/0), remaining, retry_after (µs), reset_after (µs).
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= max then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  return { 0, 0, math.ceil(tonumber(first[2]) - now), math.ceil(tonumber(last[2]) - now) }
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local reset = tonumber(last[2]) - now
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(reset / 1000)))
return { 1, max - n - 1, 0, math.ceil(reset) }

-- decide.lua: a batch of rate-limit decisions, run atomically and timed by
-- Redis TIME (never the client's clock).
--
-- KEYS[i] is the state key of decision i. ARGV holds 6 values per decision:
--   group, algorithm (0 gcra, 1 sliding window, 2 fixed window),
--   rate, period (microseconds), burst, cost.
-- Consecutive decisions with the same group are all-or-nothing: if one is
-- denied, none of the group consumes anything. A negative cost refunds.
-- Returns 4 integers per decision:
--   allowed (1/0), remaining, retry_after (µs), reset_after (µs).
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function gcra(st, rate, period, burst, cost)
  local em = period / rate
  local tat = st.tat
  if tat == nil or tat < now then tat = now end
  if cost < 0 then
    st.tat = math.max(tat + cost * em, now)
    st.exp = st.tat - now
    return 1, 0, 0, st.exp
  end
  local new_tat = tat + cost * em
  local diff = now - (new_tat - burst * em)
  if diff < 0 then
    local avail = math.floor((now - (tat - burst * em)) / em)
    if avail < 0 then avail = 0 end
    return 0, avail, -diff, tat - now
  end
  st.tat = new_tat
  st.exp = new_tat - now
  return 1, math.floor(diff / em), 0, st.exp
end

local function window_state(st, idx)
  local cur, prev = 0, 0
  if st.i == idx then
    cur, prev = st.c, st.p
  elseif st.i == idx - 1 then
    prev = st.c
  end
  return cur, prev
end

local function fixed(st, rate, period, cost)
  local idx = math.floor(now / period)
  local cur = window_state(st, idx)
  local reset = (idx + 1) * period - now
  if cost < 0 then
    st.i, st.c, st.p, st.exp = idx, math.max(cur + cost, 0), 0, reset
    return 1, rate - st.c, 0, reset
  end
  if cur + cost > rate then
    return 0, rate - cur, reset, reset
  end
  st.i, st.c, st.p, st.exp = idx, cur + cost, 0, reset
  return 1, rate - cur - cost, 0, reset
end

local function sliding(st, rate, period, cost)
  local idx = math.floor(now / period)
  local cur, prev = window_state(st, idx)
  local elapsed = now - idx * period
  local w = 1 - elapsed / period
  if cost < 0 then
    if st.i == idx - 1 then prev = math.max(prev + cost, 0) else cur = math.max(cur + cost, 0) end
    st.i, st.c, st.p, st.exp = idx, cur, prev, 2 * period - elapsed
    return 1, 0, 0, st.exp
  end
  local est = prev * w + cur
  if est + cost <= rate then
    st.i, st.c, st.p, st.exp = idx, cur + cost, prev, 2 * period - elapsed
    return 1, math.floor(rate - est - cost), 0, st.exp
  end
  local retry
  if cur + cost <= rate then
    -- prev > 0: wait until its weight has shrunk enough inside this window.
    retry = (1 - (rate - cur - cost) / prev) * period - elapsed
  else
    -- wait for the next window, where this window's count becomes prev.
    retry = (period - elapsed) + (1 - (rate - cost) / cur) * period
  end
  if retry < 1 then retry = 1 end
  local reset = period - elapsed
  if cur > 0 then reset = reset + period end
  local rem = math.floor(rate - est)
  if rem < 0 then rem = 0 end
  return 0, rem, retry, reset
end

local cache = {}
local function load(key, alg)
  local st = cache[key]
  if st ~= nil then return st end
  if alg == 0 then
    st = { tat = tonumber(redis.call('GET', key)) }
  else
    local v = redis.call('HMGET', key, 'i', 'c', 'p')
    st = { i = tonumber(v[1]), c = tonumber(v[2]) or 0, p = tonumber(v[3]) or 0 }
  end
  st.alg = alg
  cache[key] = st
  return st
end

local function copy(st)
  local c = {}
  for k, v in pairs(st) do c[k] = v end
  return c
end

local out = {}
local dirty = {}
local n = #KEYS
local i = 1
while i <= n do
  local gid = ARGV[(i - 1) * 6 + 1]
  local work = {}
  local ok = true
  local j = i
  while j <= n and ARGV[(j - 1) * 6 + 1] == gid do
    local b = (j - 1) * 6
    local key = KEYS[j]
    local alg = tonumber(ARGV[b + 2])
    local rate = tonumber(ARGV[b + 3])
    local period = tonumber(ARGV[b + 4])
    local burst = tonumber(ARGV[b + 5])
    local cost = tonumber(ARGV[b + 6])
    local st = work[key]
    if st == nil then
      st = copy(load(key, alg))
      work[key] = st
    end
    local a, rem, retry, reset
    if alg == 0 then
      a, rem, retry, reset = gcra(st, rate, period, burst, cost)
    elseif alg == 1 then
      a, rem, retry, reset = sliding(st, rate, period, cost)
    else
      a, rem, retry, reset = fixed(st, rate, period, cost)
    end
    if a == 0 then ok = false end
    local o = (j - 1) * 4
    out[o + 1] = a
    out[o + 2] = rem
    out[o + 3] = math.ceil(retry)
    out[o + 4] = math.ceil(reset)
    j = j + 1
  end
  if ok then
    for key, st in pairs(work) do
      cache[key] = st
      dirty[key] = true
    end
  else
    for k = i, j - 1 do
      local o = (k - 1) * 4
      if out[o + 1] == 1 then
        out[o + 1] = 0
        out[o + 2] = out[o + 2] + tonumber(ARGV[(k - 1) * 6 + 6])
      end
    end
  end
  i = j
end

for key in pairs(dirty) do
  local st = cache[key]
  local ms = math.ceil(st.exp / 1000)
  if ms < 1 then ms = 1 end
  if st.alg == 0 then
    redis.call('SET', key, st.tat, 'PX', ms)
  else
    redis.call('HSET', key, 'i', st.i, 'c', st.c, 'p', st.p)
    redis.call('PEXPIRE', key, ms)
  end
end
return out

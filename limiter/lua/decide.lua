-- decide.lua: a batch of rate-limit decisions, run atomically and timed by
-- Redis TIME (never the client's clock).
--
-- KEYS[i] is the state key of line i. ARGV starts with the batch's
-- distinct limits: their count L, then 4 values each: algorithm (0 gcra,
-- 1 sliding window, 2 fixed window), rate, period (microseconds), burst.
-- Then 4 values per line: group, limit number (1..L), cost, count.
-- A line is count decisions of the same cost on its key, decided one after
-- the other ("how many of these count fit, in order"): once one is denied
-- the rest are too, on the same unchanged state. Consecutive lines with the
-- same group are all-or-nothing (their count is 1): if one is denied, none
-- of the group consumes anything. A negative cost refunds. A limit with a
-- negative burst raises instead of deciding: the key's state is made at
-- least cost used (never lowered), and the decision is allowed.
-- Returns 4 integers per line: allowed (how many of count; 1/0 for a line
-- of one), remaining after them, retry_after (µs) of the first denied one
-- (0 if none), reset_after (µs) after the allowed ones.
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

-- All state is read with one MGET: a GCRA key holds its theoretical arrival
-- time (µs), a window key "index:current:previous".
local raw = {}
local vals = redis.call('MGET', unpack(KEYS))
for k = 1, #KEYS do raw[KEYS[k]] = vals[k] end

local cache = {}
local function load(key, alg)
  local st = cache[key]
  if st ~= nil then return st end
  local v = raw[key]
  if alg == 0 then
    st = { tat = tonumber(v) }
  else
    st = { c = 0, p = 0 }
    if v then
      local i, c, p = string.match(v, '^(%d+):(%d+):(%d+)$')
      st.i, st.c, st.p = tonumber(i), tonumber(c) or 0, tonumber(p) or 0
    end
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

-- raise makes st at least used (in units of the limit) consumed at now.
local function raise(st, alg, rate, period, used)
  if alg == 0 then
    local tat = st.tat
    if tat == nil or tat < now then tat = now end
    local want = now + used * period / rate
    if want > tat then tat = want end
    st.tat = tat
    st.exp = tat - now
    return 1, 0, 0, st.exp
  end
  local idx = math.floor(now / period)
  local cur, prev = window_state(st, idx)
  local elapsed = now - idx * period
  local need = used
  if alg == 1 then
    need = used - prev * (1 - elapsed / period)
    st.exp = 2 * period - elapsed
  else
    prev = 0
    st.exp = period - elapsed
  end
  if cur < need then cur = math.ceil(need) end
  st.i, st.c, st.p = idx, cur, prev
  return 1, 0, 0, st.exp
end

local nlim = tonumber(ARGV[1])
local lims = {}
for k = 1, nlim do
  local b = 1 + (k - 1) * 4
  lims[k] = { tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]) }
end
local base = 1 + nlim * 4

local function decide(st, lim, cost)
  local alg = lim[1]
  if lim[4] < 0 then
    return raise(st, alg, lim[2], lim[3], cost)
  end
  if alg == 0 then
    return gcra(st, lim[2], lim[3], lim[4], cost)
  elseif alg == 1 then
    return sliding(st, lim[2], lim[3], cost)
  end
  return fixed(st, lim[2], lim[3], cost)
end

-- line decides count decisions of cost one after the other and returns how
-- many were allowed and the last decision's answer (the first denied one's,
-- if any). Each algorithm allows m such decisions in a row exactly when it
-- allows one of cost m × cost, and leaves the same state; a denial's
-- remaining is the capacity left, so at most three evaluations decide any
-- count: all at once, else as many as fit, then the first denied one. The
-- loop only finishes what rounding could leave undecided.
local function line(st, lim, cost, count)
  local a, rem, retry, reset = decide(st, lim, cost * count)
  if a == 1 then return count, rem, retry, reset end
  if count == 1 then return 0, rem, retry, reset end
  local allowed = 0
  if cost > 0 then
    local fit = math.min(math.floor(rem / cost), count - 1)
    if fit > 0 then
      a, rem, retry, reset = decide(st, lim, cost * fit)
      if a == 1 then allowed = fit end
    end
  end
  while allowed < count do
    a, rem, retry, reset = decide(st, lim, cost)
    if a == 0 then break end
    allowed = allowed + 1
  end
  return allowed, rem, retry, reset
end

local out = {}
local dirty = {}
local n = #KEYS
local i = 1
while i <= n do
  local b = base + (i - 1) * 4
  local gid = ARGV[b + 1]
  local j = i + 1
  while j <= n and ARGV[base + (j - 1) * 4 + 1] == gid do j = j + 1 end
  if j == i + 1 then
    -- A group of one line (every plain Allow, or several on one key):
    -- decide on the cached state, which the algorithms only change when
    -- they allow.
    local lim = lims[tonumber(ARGV[b + 2])]
    local key = KEYS[i]
    local st = load(key, lim[1])
    local cost, count = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
    local allowed, rem, retry, reset = line(st, lim, cost, count)
    if allowed > 0 then dirty[key] = true end
    local o = (i - 1) * 4
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = allowed, rem, math.ceil(retry), math.ceil(reset)
  else
    local work = {}
    local ok = true
    for k = i, j - 1 do
      local bk = base + (k - 1) * 4
      local lim = lims[tonumber(ARGV[bk + 2])]
      local key = KEYS[k]
      local st = work[key]
      if st == nil then
        st = copy(load(key, lim[1]))
        work[key] = st
      end
      local a, rem, retry, reset = decide(st, lim, tonumber(ARGV[bk + 3]))
      if a == 0 then ok = false end
      local o = (k - 1) * 4
      out[o + 1], out[o + 2], out[o + 3], out[o + 4] = a, rem, math.ceil(retry), math.ceil(reset)
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
          out[o + 2] = out[o + 2] + tonumber(ARGV[base + (k - 1) * 4 + 3])
        end
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
    redis.call('SET', key, string.format('%.0f:%.0f:%.0f', st.i, st.c, st.p), 'PX', ms)
  end
end
return out

-- A DDoS filter, the Lua twin of ddos_filter.c: the same maps, the same verdicts and the same counters.
--
-- - blocked_v4 / blocked_v6: LPM tries of source prefixes to drop (filled by the operator).
-- - rate_v4: per-source token buckets in an LRU hash; tokens are packets; config.rate_pps and config.burst set the
--   refill rate and the burst (`sluice run ddos_filter.lua --set rate_pps=...`), as the C version's .rodata knobs.
-- - stats: per-CPU counters of each verdict.
-- Written in the Lua both engines speak (5.1 syntax: no //, no bit operators), so it runs on Lua 5.4 and LuaJIT.

local verdict_passed, verdict_blocked_prefix, verdict_rate_limited, verdict_not_ip, verdict_malformed = 0, 1, 2, 3, 4

local blocked_v4 = maps.declare{name = "blocked_v4", type = "lpm_trie", key = "u32 prefixlen, be32 address",
                                value = "u32 value", max_entries = 1024, flags = BPF_F_NO_PREALLOC}
local blocked_v6 = maps.declare{name = "blocked_v6", type = "lpm_trie", key = "u32 prefixlen, u8[16] address",
                                value = "u32 value", max_entries = 1024, flags = BPF_F_NO_PREALLOC}
local rate_v4 = maps.declare{name = "rate_v4", type = "lru_hash", key = "be32 source",
                             value = "u64 last_refill_ns, u64 tokens", max_entries = 65536}
local stats = maps.declare{name = "stats", type = "percpu_array", key = "u32 index", value = "u64 count",
                           max_entries = 5}

local rate_pps = config.rate_pps or 1000
local burst = config.burst or 100

-- Reused for every packet: no allocation on the common path.
local key_v4 = blocked_v4:key{prefixlen = 32}
local key_v6 = blocked_v6:key{prefixlen = 128}
local fresh = rate_v4:value()
local floor = math.floor

local function count(index, action)
    stats:add(index, "count", 1) -- the worker's per-CPU slot, in place: no atomic needed
    return action
end

-- Token bucket: refill by elapsed time, spend one token per packet.
local function over_rate(source)
    local now = ktime_ns()
    local bucket = rate_v4:lookup(source)
    if not bucket then
        fresh.last_refill_ns = now
        fresh.tokens = burst - 1
        rate_v4:update(source, fresh, BPF_ANY)
        return false
    end
    local earned = floor((now - bucket.last_refill_ns) * rate_pps / 1000000000)
    if earned > 0 then
        local tokens = bucket.tokens + earned
        bucket.tokens = tokens > burst and burst or tokens
        bucket.last_refill_ns = now
    end
    if bucket.tokens == 0 then
        return true
    end
    bucket.tokens = bucket.tokens - 1
    return false
end

function xdp(pkt)
    local proto = pkt:be16(12)
    if not proto then
        return count(verdict_malformed, XDP_DROP)
    end
    local l3 = 14
    if proto == 0x8100 or proto == 0x88a8 then
        proto = pkt:be16(16)
        if not proto then
            return count(verdict_malformed, XDP_DROP)
        end
        l3 = 18
    end
    if proto == 0x0800 then
        if pkt:len() < l3 + 20 then
            return count(verdict_malformed, XDP_DROP)
        end
        local source = pkt:be32(l3 + 12)
        key_v4.address = source
        if blocked_v4:lookup(key_v4) then
            return count(verdict_blocked_prefix, XDP_DROP)
        end
        if over_rate(source) then
            return count(verdict_rate_limited, XDP_DROP)
        end
        return count(verdict_passed, XDP_PASS)
    end
    if proto == 0x86dd then
        if pkt:len() < l3 + 40 then
            return count(verdict_malformed, XDP_DROP)
        end
        key_v6:fill("address", pkt, l3 + 8)
        if blocked_v6:lookup(key_v6) then
            return count(verdict_blocked_prefix, XDP_DROP)
        end
        return count(verdict_passed, XDP_PASS)
    end
    return count(verdict_not_ip, XDP_PASS)
end

-- A protocol counter, the Lua twin of proto_count.c: packets and bytes per protocol layer (Ethernet, VLAN, IPv4,
-- IPv6, TCP, UDP, ICMP, ICMPv6) in a per-CPU array; every packet passes. IPv4 options are skipped by the header
-- length; IPv6 extension headers are walked, at most four deep, exactly as the C version walks them.
-- Written in the Lua both engines speak, so it runs on Lua 5.4 and LuaJIT.

local protocol_ethernet, protocol_vlan, protocol_ipv4, protocol_ipv6 = 0, 1, 2, 3
local protocol_tcp, protocol_udp, protocol_icmp, protocol_icmpv6 = 4, 5, 6, 7
local protocol_other_l3, protocol_other_l4, protocol_truncated = 8, 9, 10

local protocols = maps.declare{name = "protocols", type = "percpu_array", key = "u32 index",
                               value = "u64 packets, u64 bytes", max_entries = 11}

local function count(index, bytes)
    protocols:add(index, "packets", 1, "bytes", bytes) -- in place, as entry->packets += 1 in C
end

local function count_l4(protocol, bytes)
    if protocol == 6 then
        count(protocol_tcp, bytes)
    elseif protocol == 17 then
        count(protocol_udp, bytes)
    elseif protocol == 1 then
        count(protocol_icmp, bytes)
    elseif protocol == 58 then
        count(protocol_icmpv6, bytes)
    else
        count(protocol_other_l4, bytes)
    end
end

function xdp(pkt)
    local bytes = pkt:len()
    if bytes < 14 then
        count(protocol_truncated, bytes)
        return XDP_PASS
    end
    count(protocol_ethernet, bytes)
    local proto, next = pkt:be16(12), 14
    for _ = 1, 2 do
        if proto ~= 0x8100 and proto ~= 0x88a8 then
            break
        end
        if next + 4 > bytes then
            count(protocol_truncated, bytes)
            return XDP_PASS
        end
        count(protocol_vlan, bytes)
        proto = pkt:be16(next + 2)
        next = next + 4
    end
    if proto == 0x0800 then
        if next + 20 > bytes or pkt:u8(next) % 16 < 5 then
            count(protocol_truncated, bytes)
            return XDP_PASS
        end
        count(protocol_ipv4, bytes)
        count_l4(pkt:u8(next + 9), bytes)
        return XDP_PASS
    end
    if proto == 0x86dd then
        if next + 40 > bytes then
            count(protocol_truncated, bytes)
            return XDP_PASS
        end
        count(protocol_ipv6, bytes)
        local header, cursor = pkt:u8(next + 6), next + 40
        for _ = 1, 4 do
            if header ~= 0 and header ~= 43 and header ~= 44 and header ~= 60 then
                break
            end
            if cursor + 2 > bytes then
                count(protocol_truncated, bytes)
                return XDP_PASS
            end
            header = pkt:u8(cursor)
            -- As proto_count.c does: the fragment test looks at the header just read.
            cursor = cursor + (header == 44 and 8 or (pkt:u8(cursor + 1) + 1) * 8)
        end
        count_l4(header, bytes)
        return XDP_PASS
    end
    count(protocol_other_l3, bytes)
    return XDP_PASS
end

-- The Lua side of chain_to_lua.c: the eBPF program counts IPv4 packets in chain_calls and asks classify() for the
-- verdict. TCP is dropped, anything else passes.
local calls = maps.open("chain_calls")

function classify(pkt)
    local protocol = pkt:u8(23)
    if protocol == 6 then
        return XDP_DROP
    end
    assert(calls:get(0) > 0, "the eBPF program counted this packet before asking")
    return XDP_PASS
end

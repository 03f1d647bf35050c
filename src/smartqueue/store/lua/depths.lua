-- needs: depth
-- Jobs waiting for dispatch in each of KEYS (job streams). ARGV: group.
local group = ARGV[1]
local depths = {}
for i = 1, #KEYS do depths[i] = stream_depth(KEYS[i], group) end
return depths

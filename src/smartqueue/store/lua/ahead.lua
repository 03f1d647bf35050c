-- Entries ahead of one entry in its stream that no consumer has taken yet.
local stream = KEYS[1]
local group, entry = ARGV[1], ARGV[2]
local before = redis.call('XRANGE', stream, '-', '(' .. entry, 'COUNT', 100000)
local ok, pending = pcall(redis.call, 'XPENDING', stream, group, '-', '(' .. entry, 100000)
if ok then return #before - #pending end
return #before

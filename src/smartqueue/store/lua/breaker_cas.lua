-- Claim a GPU's half-open probe, or write any breaker change: compare-and-set on `version`.
-- ARGV: expected version, then field/value pairs. Returns 1, or 0 when someone changed it.
local breaker = KEYS[1]
local expected = ARGV[1]
local first_field = 2
local version = redis.call('HGET', breaker, 'version') or '0'
if version ~= expected then return 0 end
redis.call('DEL', breaker)
redis.call('HSET', breaker, 'version', tonumber(version) + 1, unpack(ARGV, first_field))
return 1

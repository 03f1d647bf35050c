-- A finalizing batch ends: its final status, counts and output files recorded, the files
-- listed for its owner, its kept lines dropped (they are in the files now), its input file
-- freed and the batch out of the open set, in one step. KEYS: batch record, lines hash, open
-- batches, owner's files, input file record, then each output file's record.
-- ARGV: status, its timestamp field, now, completed, failed, output file id, error file id
-- ('' when none), then per output file: its id, created_at, n fields, field/value pairs.
-- Returns 1, or 0 when the batch was not finalizing (another replica ended it).
local batch, lines, open, owner_files, input = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local first_file_key = 6
local status, at_field, now = ARGV[1], ARGV[2], ARGV[3]
local completed, failed, output_id, error_id = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local first_file_arg = 8

if redis.call('HGET', batch, 'status') ~= 'finalizing' then return 0 end
local i, key = first_file_arg, first_file_key
while i <= #ARGV do
  local file_id, created_at, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  redis.call('HSET', KEYS[key], unpack(ARGV, i + 3, i + 2 + n))
  redis.call('ZADD', owner_files, created_at, file_id)
  i, key = i + 3 + n, key + 1
end
redis.call('HSET', batch, 'status', status, at_field, now, 'completed', completed,
  'failed', failed, 'output_file_id', output_id, 'error_file_id', error_id)
redis.call('DEL', lines)
redis.call('ZREM', open, redis.call('HGET', batch, 'id'))
redis.call('HDEL', input, 'batch')
return 1

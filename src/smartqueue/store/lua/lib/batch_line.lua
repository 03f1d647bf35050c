-- A batch request ended: its output or error line is kept with its batch, once per custom_id
-- (an end replayed after a crash adds nothing), and the batch's count for `outcome`
-- ('completed' or 'failed') moves in the same step. `custom_id` is '' for a job outside any
-- batch, whose caller passes no batch keys.
local function record_batch_line(lines, batch, custom_id, outcome, line)
  if custom_id == '' then return end
  if redis.call('HSETNX', lines, custom_id, outcome .. ':' .. line) == 1 then
    redis.call('HINCRBY', batch, outcome, 1)
  end
end

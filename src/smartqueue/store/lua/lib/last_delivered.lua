-- The id of the last entry of `stream` delivered to `group`: '0-0' when none was, or when the
-- group does not exist yet (reading then fails with NOGROUP, and the caller creates it); nil
-- when the stream does not exist.
local function last_delivered(stream, group)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', stream)
  if not ok then return nil end
  for _, info in ipairs(groups) do
    local name, last = nil, '0-0'
    for i = 1, #info, 2 do
      if info[i] == 'name' then name = info[i + 1] end
      if info[i] == 'last-delivered-id' then last = info[i + 1] end
    end
    if name == group then return last end
  end
  return '0-0'
end

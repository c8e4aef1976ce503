-- bench/logs/passthrough.lua: the cheapest useful filter (adds one field),
-- to measure the cost of the Lua round trip per record.
function filter(record)
  record.bench = true
  return record
end

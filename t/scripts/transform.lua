-- Test script for the echo module: wraps each line in angle brackets.
function transform(line)
  return "<" .. line .. ">"
end

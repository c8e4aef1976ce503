-- Test script: misbehaves on purpose depending on the line.
function transform(line)
  if line == "loop" then
    while true do end
  elseif line == "pcall-loop" then
    while true do pcall(function() while true do end end) end
  elseif line == "pattern" then
    -- Lua's own matcher would take about 20 s here
    return tostring(string.find(string.rep("a", 200), ".-.-.-.-b"))
  elseif line == "bomb" then
    local t, s = {}, string.rep("x", 1024 * 1024)
    for i = 1, 1e9 do t[i] = s .. i end
  elseif line == "error" then
    error("bad line")
  elseif line == "env" then
    return string.format("io=%s os.execute=%s debug=%s require=%s dofile=%s", type(io), type(os and os.execute),
                         type(debug), type(require), type(dofile))
  end
  return "ok:" .. line
end

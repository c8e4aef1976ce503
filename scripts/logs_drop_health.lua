-- logs_drop_health.lua: a logs filter that drops the noise of health
-- checks and readiness probes (kube-probe requests, GET /healthz, /readyz,
-- /livez, /health, /ping answered 200), and tags what it keeps with the
-- severity it can read from the message.
--   "logs": {"filter": {"script": "logs_drop_health.lua"}}

local probe_paths = { "/healthz", "/readyz", "/livez", "/health", "/ping" }

local function is_health_check(msg)
  if string.find(msg, "kube-probe/", 1, true) then
    return true
  end
  for _, p in ipairs(probe_paths) do
    -- "GET /healthz HTTP/1.1" 200 ... (common access log shapes)
    local s = string.find(msg, "GET " .. p, 1, true)
    if s then
      local after = string.sub(msg, s + 4 + #p, s + 4 + #p)
      if after == "" or after == " " or after == "?" or after == "\"" then
        return true
      end
    end
  end
  return false
end

function filter(record)
  local msg = record.message or ""
  if is_health_check(msg) then
    return nil
  end
  -- the proxy's access records (bus source) carry a path field
  if record.path then
    for _, p in ipairs(probe_paths) do
      if record.path == p then
        return nil
      end
    end
  end
  local level = string.match(msg, "^%s*%[?(%u%u%u%u?%u?)%]?[%s:]")
  if level == "ERROR" or level == "WARN" or level == "INFO" or level == "DEBUG" then
    record.level = string.lower(level)
  end
  return record
end

-- logs_redact.lua: a logs filter that masks secrets in messages before they
-- leave the node: bearer tokens, password=... / secret=... / token=...
-- pairs (also as JSON "password":"..."), and AWS access key ids.
--   "logs": {"filter": {"script": "logs_redact.lua"}}

local patterns = {
  -- Authorization: Bearer <token>
  { "([Bb]earer%s+)[%w%-%._~%+/]+=*", "%1[REDACTED]" },
  -- key=value and key: value for sensitive keys
  { "([%w_]*[Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd]%s*[=:]%s*)[^%s&,;\"]+", "%1[REDACTED]" },
  { "([%w_]*[Ss][Ee][Cc][Rr][Ee][Tt]%s*[=:]%s*)[^%s&,;\"]+", "%1[REDACTED]" },
  { "([%w_]*[Tt][Oo][Kk][Ee][Nn]%s*[=:]%s*)[^%s&,;\"]+", "%1[REDACTED]" },
  -- JSON members: "password":"..."
  { "(\"[%w_]*[Pp]assword\"%s*:%s*\")[^\"]*", "%1[REDACTED]" },
  { "(\"[%w_]*[Ss]ecret\"%s*:%s*\")[^\"]*", "%1[REDACTED]" },
  -- AWS access key ids
  { "AKIA[0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z]", "[REDACTED-AWS-KEY]" },
}

function filter(record)
  local msg = record.message
  if msg == nil then
    return record
  end
  local changed = 0
  for _, p in ipairs(patterns) do
    local n
    msg, n = string.gsub(msg, p[1], p[2])
    changed = changed + n
  end
  if changed > 0 then
    record.message = msg
    record.redacted = changed
  end
  return record
end

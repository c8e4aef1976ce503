-- proxy route(req): tenant routing.
-- The tenant comes from the "x-tenant" header or else from a path of the
-- form /t/<tenant>/...; known tenants go to the cluster "tenant-<name>"
-- with "x-tenant" set, unknown ones get 404, requests without a tenant
-- route as configured.
local tenants = { acme = true, globex = true }

function route(req)
  local t = req.headers["x-tenant"] or string.match(req.path, "^/t/([%w-]+)/")
  if t == nil then
    return nil
  end
  if not tenants[t] then
    return { deny = 404, reason = "unknown tenant " .. t }
  end
  return { cluster = "tenant-" .. t, set_headers = { ["x-tenant"] = t } }
end

-- proxy route(req): deny by caller namespace.
-- Callers whose pod lives in one of these namespaces get 403 (gRPC callers:
-- PERMISSION_DENIED); the rest route as configured. The caller is the
-- sidecar's own pod, or in node role the pod owning the source address.
local denied = { untrusted = true, sandbox = true }

function route(req)
  local ns = req.caller.namespace
  if denied[ns] then
    return { deny = 403, reason = "namespace " .. ns .. " may not call " .. req.authority }
  end
  return nil
end

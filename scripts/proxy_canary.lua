-- proxy route(req): canary by header.
-- Requests with "x-canary: 1" go to the cluster named "canary" and are
-- marked with "x-routed-by: proxy_canary.lua"; every other request routes
-- as the configuration says.
function route(req)
  local v = req.headers["x-canary"]
  if v == "1" or v == "always" then
    return { cluster = "canary", set_headers = { ["x-routed-by"] = "proxy_canary.lua" } }
  end
  return nil
end

-- Example relabel hook for the metrics module (metrics.relabel.script).
--
-- relabel(sample) runs for every scraped sample. sample is
--   { name = "<family name>", type = "counter|gauge|histogram|summary|untyped|...",
--     value = <number>, labels = { <name> = "<value>", ... } }
-- Return the sample (changed or not) to keep it, or nil to drop it.
-- Renaming works per family: a histogram's _bucket/_sum/_count samples
-- all get the new name.

-- Runtime metrics of the apps' languages are not wanted here.
local drop_prefixes = { "go_", "process_" }

-- Old names to new ones.
local renames = { app_temp_celsius = "room_temperature_celsius" }

function relabel(sample)
    for _, prefix in ipairs(drop_prefixes) do
        if string.sub(sample.name, 1, #prefix) == prefix then
            return nil
        end
    end
    sample.name = renames[sample.name] or sample.name
    -- Every series of this node belongs to the shop team.
    sample.labels.team = "shop"
    -- A label with unbounded values: remove it.
    sample.labels.request_id = nil
    return sample
end

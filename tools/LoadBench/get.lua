-- wrk script: GET /v1/jobs/{id} as a tenant, cycling through the ids in LB_JOB_IDS (comma-separated).
package.path = package.path .. ";" .. (os.getenv("LB_DIR") or ".") .. "/?.lua"
require("common").install("get_job", 200)

local ids = {}
for id in string.gmatch(os.getenv("LB_JOB_IDS") or "", "[^,]+") do table.insert(ids, id) end
local headers = { ["Authorization"] = "Bearer " .. os.getenv("LB_KEY") }
local n = 0

function request()
  n = n + 1
  -- threads start at different offsets so they do not read the same row in lockstep
  local id = ids[((n + (thread_id or 0) * 37) % #ids) + 1]
  return wrk.format("GET", "/v1/jobs/" .. id, headers)
end

-- wrk script: POST /v1/jobs as a tenant, a valid SFT job on builtin:tiny-llama with
-- sequence_parallel_size 2 on the dataset LB_DATASET, each with a new idempotency_key (the full
-- path: replay lookup, validation, capacity check, insert of the job and its two events).
package.path = package.path .. ";" .. (os.getenv("LB_DIR") or ".") .. "/?.lua"
require("common").install("post_job", 201)

local headers = { ["Authorization"] = "Bearer " .. os.getenv("LB_KEY"), ["Content-Type"] = "application/json" }
local dataset = os.getenv("LB_DATASET")
local run = os.getenv("LB_RUN") or "run"
local n = 0

function request()
  n = n + 1
  local body = string.format('{"model_name_or_path":"builtin:tiny-llama","dataset":"%s","stage":"sft","sequence_parallel_size":2,"idempotency_key":"%s-%d-%d"}',
    dataset, run, thread_id or 0, n)
  return wrk.format("POST", "/v1/jobs", headers, body)
end

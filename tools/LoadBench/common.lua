-- Shared by get.lua and post.lua: counts answers other than the expected status per wrk thread, and
-- prints one machine-readable line at the end:
--   RESULT <name> p50_ms=… p90_ms=… p99_ms=… max_ms=… rps=… requests=… unexpected=… socket_errors=…
local M = {}
local threads = {}

function M.install(name, expected)
  function setup(thread)
    table.insert(threads, thread)
    thread:set("thread_id", #threads)
  end
  function response(status, headers, body)
    if status ~= expected then
      unexpected = (unexpected or 0) + 1
      if (unexpected or 0) <= 3 then io.stderr:write(string.format("%s: status %d: %s\n", name, status, string.sub(body or "", 1, 300))) end
    end
  end
  function done(summary, latency, requests)
    local bad = 0
    for _, t in ipairs(threads) do bad = bad + (t:get("unexpected") or 0) end
    local e = summary.errors
    local socket = e.connect + e.read + e.write + e.timeout
    print(string.format("RESULT %s p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f rps=%.1f requests=%d unexpected=%d socket_errors=%d",
      name, latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
      summary.requests / (summary.duration / 1e6), summary.requests, bad, socket))
  end
end

return M

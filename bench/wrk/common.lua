-- Shared by the scenario scripts of bench.http_load (each loads it with dofile).
--
-- From the environment, not from wrk's command line (which every user of the machine can read):
--   BENCH_AUTHORIZATION  the Authorization header, if any
--   BENCH_BODY_BYTES     the length of the answer bench.http_load checked before the run: every answer
--                        must be a 200 of that length (the data do not change during a run), so a GraphQL
--                        error under a 200 counts as an unexpected answer
-- done() prints the run's figures as one JSON line after the marker "WRK_JSON ", so that bench.http_load
-- reads numbers rather than wrk's report for people.

local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
   wrk.headers["Authorization"] = authorization
end
local body_bytes = tonumber(os.getenv("BENCH_BODY_BYTES") or "")

local common = {}

function common.read(path)
   local file = assert(io.open(path, "rb"))
   local content = file:read("*a")
   file:close()
   return content
end

-- In each thread's own Lua state: the answers unlike the checked one, and the first of them.
unexpected = 0
first_unexpected = nil

function response(status, headers, body)
   if status ~= 200 or (body_bytes and #body ~= body_bytes) then
      unexpected = unexpected + 1
      first_unexpected = first_unexpected or (status .. " " .. body:sub(1, 300))
   end
end

-- In the main Lua state, where done() runs: the threads, to read their counts.
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local function json_string(text)
   if text == nil then
      return "null"
   end
   return '"' .. text:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, requests)
   local count, sample = 0, nil
   for _, thread in ipairs(threads) do
      count = count + thread:get("unexpected")
      sample = sample or thread:get("first_unexpected")
   end
   local errors = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, '
         .. '"errors": {"connect": %.0f, "read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f}, '
         .. '"unexpected": %.0f, "first_unexpected": %s, '
         .. '"latency_us": {"min": %.0f, "mean": %.1f, "p50": %.0f, "p90": %.0f, "p99": %.0f, '
         .. '"p999": %.0f, "max": %.0f}}\n',
      summary.requests, summary.duration, summary.bytes,
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      count, json_string(sample),
      latency.min, latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max
   ))
end

return common

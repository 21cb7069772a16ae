-- cache-hit: POST the same TaskPage request body every time, the one a response cache answers.
--
--   wrk ... -s cache_hit.lua URL -- BODY_FILE

local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
   wrk.body = common.read(assert(args[1], "missing BODY_FILE argument"))
end

-- uncached: POST the TaskPage query with a variable that differs on every request ("nonce", which the
-- query does not declare: GraphQL execution ignores it, a response cache's key cannot), so that no
-- response cache can answer it.
--
--   wrk ... -s uncached.lua URL -- BODY_FILE RUN_ID
--
-- BODY_FILE: the JSON request body, with the placeholder @NONCE@ where the nonce goes (inside a string);
-- RUN_ID: a prefix unique to this run, so that a cache kept from an earlier run cannot answer either.

local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local head, tail, run_id
local counter = 0

function init(args)
   head, tail = common.read(args[1]):match("^(.*)@NONCE@(.*)$")
   assert(head, "no @NONCE@ placeholder in " .. args[1])
   run_id = assert(args[2], "missing RUN_ID argument")
end

function request()
   counter = counter + 1
   return wrk.format(nil, nil, nil, head .. run_id .. counter .. tail)
end

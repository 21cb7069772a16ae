-- writes: POST createTask or updateTask as many users in turn (bench.write_load).
--
--   wrk ... -s writes.lua URL -- MODE DATA_FILE RUN_ID
--
-- MODE: create or update.
-- DATA_FILE: written by bench.write_load for this run, in a folder only this user can read (the tokens are
--   secrets: never on wrk's command line). Its first line is the request body's template, with @TITLE@,
--   @ID@ and @STATUS@ where each request's values go; every other line is one user: their access token,
--   then (tab-separated) the global ids of some of their tasks, which updates change.
-- RUN_ID: a prefix unique to this run, in every title.
--
-- Every answer must be a 200 whose body holds the mutation's field ("createTask":{ or "updateTask":{) and no
-- "errors" key; the others are counted. done() (common.lua's) prints the figures as one JSON line after
-- "WRK_JSON ".

local statuses = { "TODO", "IN_PROGRESS", "DONE" }
local template, field, run_id
local users = {}
local counter = 0

-- setup() and done(), and the counts of unexpected answers they report: common.lua's; response() below
-- replaces its check (a successful mutation, not an answer of a known length).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local function split(line)
   local parts = {}
   for part in line:gmatch("[^\t]+") do
      table.insert(parts, part)
   end
   return parts
end

function init(args)
   local mode = assert(args[1], "missing MODE argument")
   assert(mode == "create" or mode == "update", "MODE must be create or update")
   field = '"' .. mode .. 'Task":{'
   run_id = assert(args[3], "missing RUN_ID argument")
   local lines = assert(io.open(assert(args[2], "missing DATA_FILE argument"), "rb"))
   template = lines:read("*l")
   for line in lines:lines() do
      local parts = split(line)
      local user = { authorization = "Bearer " .. parts[1], tasks = {} }
      for i = 2, #parts do
         table.insert(user.tasks, parts[i])
      end
      table.insert(users, user)
   end
   lines:close()
   assert(#users > 0, "no users in " .. args[2])
   math.randomseed(os.time())
end

function request()
   counter = counter + 1
   local user = users[(counter % #users) + 1]
   local values = {
      ["@TITLE@"] = "bench write " .. run_id .. counter,
      ["@ID@"] = #user.tasks > 0 and user.tasks[math.random(#user.tasks)] or "",
      ["@STATUS@"] = statuses[math.random(#statuses)],
   }
   local body = template:gsub("@%u+@", values)
   return wrk.format("POST", nil, { ["Authorization"] = user.authorization,
                                    ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
   if status ~= 200 or not body:find(field, 1, true) or body:find('"errors"', 1, true) then
      unexpected = unexpected + 1
      first_unexpected = first_unexpected or (status .. " " .. body:sub(1, 300))
   end
end

-- apq-get and ceiling: GET the URL as given (for apq-get, the query string carries operationName,
-- variables and the persisted query's hash).
--
--   wrk ... -s get.lua URL

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

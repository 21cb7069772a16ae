-- apq-get and ceiling: GET the URL as given (for apq-get, the query string carries operationName,
-- variables and the persisted query's hash).
--
--   wrk ... -s get.lua URL

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

-- As Apollo Client does on its GETs: without it (or an Apollo-Require-Preflight header), production's
-- CSRF prevention refuses the request.
wrk.headers["Content-Type"] = "application/json"

-- GET one contact by a random id. The URL given to wrk is the path prefix (".../contacts/");
-- BENCH_IDS_FILE names a Lua file returning a table of contact ids sampled from the database.
local ids = dofile(os.getenv("BENCH_IDS_FILE"))
local prefix = wrk.path

function init(args)
   math.randomseed(os.time())
end

function request()
   return wrk.format(nil, prefix .. ids[math.random(#ids)])
end

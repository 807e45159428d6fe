-- POST a new contact; every request needs an email no live contact has. An email is
-- <run tag>-<thread>.<counter>@bench-post.example: the tag (BENCH_RUN_TAG) differs per wrk run,
-- the thread number per thread, the counter per request.
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("thread_number", threads)
end

local prefix
local counter = 0

function init(args)
   prefix = os.getenv("BENCH_RUN_TAG") .. "-" .. thread_number
end

function request()
   counter = counter + 1
   local body = string.format(
      '{"first_name":"Bench","last_name":"Post","email":"%s.%d@bench-post.example"}',
      prefix, counter)
   return wrk.format("POST", nil, nil, body)
end

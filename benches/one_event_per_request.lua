-- wrk script: POST /v1/events with one event per request, each work event exactly once.
--
--   wrk -t T -c C -d 600s --latency -s one_event_per_request.lua URL -- FILE T [TOKEN] [PATH]
--
-- PATH (default /v1/events) other than /v1/events is a webhook (/v1/hooks/psa): each line
-- of FILE is then `SIGNATURE<TAB>BODY` (benches/to_webhooks.py), sent as the body with the
-- header X-Signature, and an entry's key is its object's id.
--
-- Slices. Every thread reads FILE (JSON lines) and keeps its own slice: the events whose
-- entry or expense id hashes to it, in file order. The slices are disjoint, and every event
-- about one entry (its approval, a re-send, a rejection, a re-approval) is in one slice.
--
-- Order. A thread sends its slice in file order, except that an event whose entry has an
-- event in flight waits until that one is answered (the next events of other entries go
-- first). So the events of one entry reach the server one after the other, in file order,
-- and the outcome is the one of sending the file in order, whatever the connections do. The
-- answer names the event's id, which is how a response is matched to its entry. Two events
-- of one entry can be adjacent in the file (a late rejection and its re-approval), so
-- without this, 16 or 64 connections would reorder some of them.
--
-- Each body is a JSON array of one event. When its slice is sent and every answer is in,
-- the thread stops (wrk.thread:stop()) and writes `WRK_THREAD_DONE` on stderr; after
-- reading its slice it writes `WRK_THREAD_READY`. wrk itself sleeps for the whole -d
-- duration, so the driver (benches/drive_wrk.py) times the run from these marks and then
-- interrupts wrk, whose `done` prints one line, `WRK_RESULT {json}`.
--
-- wrk calls request() once on thread 0 before it starts, only to check the request's shape
-- (script_verify_request); that call does not use up the event it returns.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local function key_of(line, number)
   local key = line:match('"entry_id"%s*:%s*"([^"]*)"') or line:match('"expense_id"%s*:%s*"([^"]*)"')
      or line:match('"object"%s*:%s*{%s*"id"%s*:%s*"([^"]*)"')
   return key or ("#" .. number)
end

local function hash(text)
   local h = 5381
   for i = 1, #text do
      h = (h * 33 + text:byte(i)) % 2147483647
   end
   return h
end

local texts, keys, ids = {}, {}, {}
local issued = {}
local busy = {}        -- entry key -> true while one of its events is in flight
local in_flight = {}   -- event id -> entry key
local head = 1         -- the first event not yet issued
local n = 0
local stopped = false
local SCAN = 4096

sent, answered, held_back, fillers, unmatched = 0, 0, 0, 0, 0
non200, n_accepted, n_duplicate, n_quarantined, n_conflict, n_other = 0, 0, 0, 0, 0, 0

function init(args)
   local file = args[1]
   local total = tonumber(args[2])
   local token = args[3]
   local path = args[4] or "/v1/events"
   local hook = path ~= "/v1/events"
   assert(file and total, "give the work file and the number of threads (-t) after --")
   local headers = { ["Content-Type"] = "application/json" }
   if token and token ~= "" then
      headers["Authorization"] = "Bearer " .. token
   end
   local mine = tonumber(tid)
   verifying = (mine == 0)
   local number = 0
   for line in io.lines(file) do
      if line:match("%S") then
         number = number + 1
         local key = key_of(line, number)
         if hash(key) % total == mine then
            n = n + 1
            keys[n] = key
            ids[n] = line:match('"id"%s*:%s*"([^"]*)"') or ("#" .. number)
            if hook then
               local signature, body = line:match("^([^\t]*)\t(.*)$")
               assert(body, "line " .. number .. " is not SIGNATURE<TAB>BODY")
               headers["X-Signature"] = signature
               texts[n] = wrk.format("POST", path, headers, body)
            else
               texts[n] = wrk.format("POST", path, headers, "[" .. line .. "]")
            end
         end
      end
   end
   slice = n
   io.stderr:write(string.format("WRK_THREAD_READY %d %d\n", mine, n))
   io.stderr:flush()
end

-- The next event that may go now: the first not issued whose entry has nothing in flight.
local function next_sendable()
   while head <= n and issued[head] do
      head = head + 1
   end
   local last = math.min(n, head + SCAN)
   for i = head, last do
      if not issued[i] and not busy[keys[i]] then
         return i
      end
   end
   return nil
end

local reserved = {}    -- events chosen by delay() for the request() that follows it

local order, oldest = {}, 1  -- ids in the order they were issued

local function take(i)
   issued[i] = true
   busy[keys[i]] = true
   in_flight[ids[i]] = keys[i]
   order[#order + 1] = ids[i]
end

-- An answer that names no event in flight (an error page, say) still ends one request: the
-- oldest one in flight is let go, so that the run cannot stall. The run is reported as
-- having a problem anyway (`unmatched`).
local function release_oldest()
   while oldest <= #order do
      local id = order[oldest]
      oldest = oldest + 1
      local key = in_flight[id]
      if key then
         in_flight[id] = nil
         busy[key] = nil
         return
      end
   end
end

local function emit(i)
   sent = sent + 1
   local text = texts[i]
   texts[i] = nil
   return text
end

function request()
   if verifying then
      verifying = false
      return texts[1] or wrk.format("GET", "/healthz")
   end
   local i = table.remove(reserved)
   if i == nil then
      i = next_sendable()
      if i == nil then
         -- Only when a connection woke from a short wait and still nothing can go: a health
         -- check, harmless, counted as a filler and left out of the event counts.
         fillers = fillers + 1
         return wrk.format("GET", "/healthz")
      end
      if i ~= head then
         held_back = held_back + 1
      end
      take(i)
   end
   return emit(i)
end

-- After an answer, a connection waits before its next request: not at all when an event can
-- go (it is reserved for this connection's request()), 2 ms when every remaining event waits
-- for an answer, and for good once the slice is sent (the thread stops when the last answer
-- is in). wrk starts a request's latency clock when it writes the request, so the wait is
-- not counted as latency.
function delay()
   local i = next_sendable()
   if i ~= nil then
      if i ~= head then
         held_back = held_back + 1
      end
      take(i)
      table.insert(reserved, i)
      return 0
   end
   if head > n then
      return 600000
   end
   return 2
end

function response(status, headers, body)
   body = body or ""
   if body:find('"status"%s*:%s*"ok"') and not body:find('"results"') then
      return -- a filler's health check
   end
   answered = answered + 1
   local id = body:match('"id"%s*:%s*"([^"]*)"')
   local key = id and in_flight[id]
   if key then
      in_flight[id] = nil
      busy[key] = nil
   else
      unmatched = unmatched + 1
      release_oldest()
      if unmatched <= 3 then
         io.stderr:write(string.format("wrk: an answer names no event in flight (HTTP %d): %s\n", status, body:sub(1, 300)))
      end
   end
   if status ~= 200 then
      non200 = non200 + 1
      if non200 <= 3 then
         io.stderr:write(string.format("wrk: HTTP %d: %s\n", status, body:sub(1, 300)))
      end
   else
      local s = body:match('"status"%s*:%s*"(%a+)"')
      if s == "accepted" then n_accepted = n_accepted + 1
      elseif s == "duplicate" then n_duplicate = n_duplicate + 1
      elseif s == "quarantined" then n_quarantined = n_quarantined + 1
      elseif s == "conflict" then n_conflict = n_conflict + 1
      else n_other = n_other + 1 end
   end
   if head > n and answered >= sent and not stopped then
      stopped = true
      io.stderr:write(string.format("WRK_THREAD_DONE %d %d\n", tonumber(tid), sent))
      io.stderr:flush()
      wrk.thread:stop()
   end
end

function done(summary, latency, requests_done)
   local names = { "slice", "sent", "answered", "held_back", "fillers", "unmatched", "non200",
                   "n_accepted", "n_duplicate", "n_quarantined", "n_conflict", "n_other" }
   local total = {}
   for _, name in ipairs(names) do total[name] = 0 end
   local per_thread = {}
   for _, t in ipairs(threads) do
      for _, name in ipairs(names) do
         total[name] = total[name] + (tonumber(t:get(name)) or 0)
      end
      table.insert(per_thread, string.format('{"slice":%d,"sent":%d,"answered":%d}',
         tonumber(t:get("slice")) or 0, tonumber(t:get("sent")) or 0, tonumber(t:get("answered")) or 0))
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"events_in_file":%d,"events_sent":%d,"answered":%d,"requests_completed":%d,' ..
      '"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
      '"non_200":%d,"unmatched":%d,"held_back":%d,"fillers":%d,' ..
      '"statuses":{"accepted":%d,"duplicate":%d,"quarantined":%d,"conflict":%d,"other":%d},' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"threads":[%s]}\n',
      total.slice, total.sent, total.answered, summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
      total.non200, total.unmatched, total.held_back, total.fillers,
      total.n_accepted, total.n_duplicate, total.n_quarantined, total.n_conflict, total.n_other,
      e.connect, e.read, e.write, e.status, e.timeout, table.concat(per_thread, ",")))
end

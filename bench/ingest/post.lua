-- wrk script: POST corpus-like SendNotification bodies (or, with BENCH_PROTOCOL=graph, Graph
-- change-notification batches), two events each, every request unique.
--
-- Settings come from the environment and are read at chunk level: wrk decides whether the
-- script paces requests (has a delay function) in its main Lua state, before any thread runs.
-- The thread number is the one value set per thread (thread:set in setup); it must stay a
-- global, because a chunk-level `local` of the same name would shadow the value set there.

BENCH_PATH = os.getenv("BENCH_PATH") or "/Webservices/SyncNotification.svc?Default"
BENCH_PROTOCOL = os.getenv("BENCH_PROTOCOL") or "ews" -- or "graph": Graph change notifications
BENCH_CLIENT_STATE = os.getenv("BENCH_CLIENT_STATE") or ""
BENCH_RUN = os.getenv("BENCH_RUN") or tostring(os.time())
BENCH_DELAY_MS = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

HEADERS = {
  ["Content-Type"] = "text/xml; charset=utf-8",
  ["SOAPAction"] = '"http://schemas.microsoft.com/exchange/services/2006/messages/SendNotification"',
}

-- Opaque ids about as long as Exchange's (base64 of ~70 bytes); the unique part goes in front.
PAD = "XQ1Z8uyb4Lzqi/pFrdV0263ErdOiqxf/qdTFSGh/GpSQE4Qsfns0KZsOMSxQv9l4pYR7imCdbhH5l4Jnp"
ITEM = "uaCg0pKU3IHs1ns4knNyo1Am0E2Dhe15lf0TScYe9HreFwLkjf7YF9T3ExLezHJIijjefKqm3P/aIouUQmi2aO"
FOLDER = "6+uHt3UevGZoLeKb2AjsiXoD9vMD20ukw0TmMYCjY0tq43NDY19QXcy/QX/ODCasdWcTNkD9sm+er1/8yvAf"

HEAD = '<?xml version="1.0" encoding="utf-8"?>'
  .. '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
  .. '<soap:Header><t:RequestServerVersion Version="V2017_07_11" '
  .. 'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"/></soap:Header>'
  .. '<soap:Body><m:SendNotification '
  .. 'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
  .. 'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
  .. '<m:ResponseMessages><m:SendNotificationResponseMessage ResponseClass="Success">'
  .. '<m:ResponseCode>NoError</m:ResponseCode><m:Notification>'

-- The event's time is now, as Exchange stamps it: the redelivery index is led by it.
function event(kind, key, n)
  return "<t:" .. kind .. "Event>"
    .. "<t:Watermark>" .. key .. "-" .. n .. "AQAAAGJb3QAAAAAAAAAAAAA=</t:Watermark>"
    .. "<t:TimeStamp>" .. os.date("!%Y-%m-%dT%H:%M:%SZ") .. "</t:TimeStamp>"
    .. '<t:ItemId Id="' .. ITEM .. key .. '" ChangeKey="jhNPdQ=="/>'
    .. '<t:ParentFolderId Id="' .. FOLDER .. '" ChangeKey="n9CYWg=="/>'
    .. "</t:" .. kind .. "Event>"
end

function body(thread_number, n)
  local key = BENCH_RUN .. "-" .. thread_number .. "-" .. n
  -- 500 subscriptions per thread, like a building's rooms; watermarks are unique per request
  local subscription = BENCH_RUN .. "-" .. thread_number .. "-" .. (n % 500) .. PAD
  return HEAD
    .. "<t:SubscriptionId>" .. subscription .. "</t:SubscriptionId>"
    .. "<t:PreviousWatermark>" .. key .. "-0AQAAAGJb3QAAAAAAAAAAAAA=</t:PreviousWatermark>"
    .. "<t:MoreEvents>false</t:MoreEvents>"
    .. event("Created", key, 1) .. event("Modified", key, 2)
    .. "</m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages>"
    .. "</m:SendNotification></soap:Body></soap:Envelope>"
end

-- Graph: a batch of two items (created, updated) of one of 500 subscriptions, as Graph posts.
GRAPH_HEADERS = { ["Content-Type"] = "application/json" }

function graph_item(subscription, change, key, n)
  local id = ITEM .. key .. "-" .. n
  return '{"subscriptionId":"' .. subscription .. '",'
    .. '"subscriptionExpirationDateTime":"2026-11-26T18:23:45.9356913+00:00",'
    .. '"clientState":"' .. BENCH_CLIENT_STATE .. '","changeType":"' .. change .. '",'
    .. '"resource":"Users/room-001@contoso.example/Events/' .. id .. '",'
    .. '"tenantId":"84bd8158-6d4d-4958-8b9f-9d6445542f95",'
    .. '"resourceData":{"@odata.type":"#Microsoft.Graph.Event",'
    .. '"@odata.id":"Users/room-001@contoso.example/Events/' .. id .. '",'
    .. '"@odata.etag":"W/\\"DwAAABYAAAB\\"","id":"' .. id .. '"}}'
end

function graph_body(thread_number, n)
  local key = BENCH_RUN .. "-" .. thread_number .. "-" .. n
  local subscription = BENCH_RUN .. "-" .. thread_number .. "-" .. (n % 500)
  return '{"value":[' .. graph_item(subscription, "created", key, 1) .. ","
    .. graph_item(subscription, "updated", key, 2) .. "]}"
end

threads_started = 0

function setup(thread)
  threads_started = threads_started + 1
  thread:set("thread_number", threads_started)
end

sent = 0

function request()
  sent = sent + 1
  if BENCH_PROTOCOL == "graph" then
    return wrk.format("POST", BENCH_PATH, GRAPH_HEADERS, graph_body(thread_number, sent))
  end
  return wrk.format("POST", BENCH_PATH, HEADERS, body(thread_number, sent))
end

if BENCH_DELAY_MS > 0 then
  -- Paced: each connection waits a think time before its next request, drawn uniformly from
  -- 0 to twice BENCH_DELAY_MS. A constant think time keeps the connections in step: they all
  -- start together, their answers come back within a few ms of each other, so they all send
  -- again at once, and the server sees waves of every connection each think time (measured:
  -- the empty handler's p99 at half its peak rate was 8-12 ms, 2.1 ms with this).
  -- Random think times spread the arrivals the way independent mailboxes do.
  function delay()
    return math.random(0, 2 * BENCH_DELAY_MS)
  end
end

function init(args)
  math.randomseed(thread_number * 7919 + os.time())  -- each thread its own sequence
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end

-- wrk script of `make bench-peers`: tracking-pixel GETs shaped like the
-- harness' `pixel` preset (bench/traffic.go): a query string of ~800 B on
-- average (400 to 1200 B), with site, page URL, referrer, a user id out
-- of a fixed set of 1024 UUID-shaped ids, session, event, screen, a
-- timestamp, a run id and a per-thread sequence number, then padding;
-- a browser's User-Agent and Referer. Every server gets the same
-- requests (fixed seed). done() prints the counts run.sh reads.

local users_n, templates_n, mean_bytes = 1024, 256, 800

local sites = { "shop.example.com", "news.example.org", "www.example.net", "app.example.io", "blog.example.com" }
local paths = { "/", "/products/running-shoes-x2?color=blue&size=42", "/cart", "/checkout/payment",
  "/articles/2024/05/city-council-votes-on-budget", "/search?q=winter+jacket&page=2", "/account/orders",
  "/category/electronics/laptops" }
local events = { "page_view", "page_view", "page_view", "click", "scroll", "add_to_cart", "purchase", "video_progress" }
local screens = { { 1920, 1080 }, { 1366, 768 }, { 390, 844 }, { 1536, 864 }, { 2560, 1440 }, { 414, 896 }, { 412, 915 } }
local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
}
local alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

local function esc(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local function pick(t) return t[math.random(#t)] end

local users, templates = {}, {}
local rid = "peers"
-- Globals of each thread's Lua state: setup() sets thread_id, done()
-- reads seq (wrk's thread:set and thread:get see globals only).
thread_id, seq = 0, 0

-- Every thread's Lua state builds the same users and templates.
local function build()
  math.randomseed(20261207)
  for i = 1, users_n do
    users[i] = string.format("%08x-%04x-4%03x-a%03x-%04x%08x", math.random(0, 0x7fffffff), math.random(0, 0xffff),
      math.random(0, 0xfff), math.random(0, 0xfff), math.random(0, 0xffff), math.random(0, 0x7fffffff))
  end
  local host = wrk.host .. ":" .. wrk.port
  for i = 1, templates_n do
    local site, ua = pick(sites), pick(agents)
    local url = "https://" .. site .. pick(paths)
    local scr = pick(screens)
    local q = "sid=" .. esc(site) .. "&url=" .. esc(url)
    local r = math.random(3)
    if r == 2 then
      q = q .. "&ref=" .. esc("https://www.google.com/search?q=" .. site .. "&hl=en")
    elseif r == 3 then
      q = q .. "&ref=" .. esc("https://" .. site .. pick(paths))
    end
    local head = "GET /i?" .. q .. "&uid="
    local mid = string.format("&sess=s%08x%08x&ev=%s&sw=%d&sh=%d&ts=", math.random(0, 0x7fffffff),
      math.random(0, 0x7fffffff), pick(events), scr[1], scr[2])
    -- Sizes spread evenly over [mean/2, 3*mean/2]; the holes (uid 36,
    -- ts 13, seq ~5) are budgeted.
    local target = math.floor(mean_bytes / 2 + (2 * i - 1) * mean_bytes / (2 * templates_n))
    local fixed = #q + 5 + 36 + #mid - 1 + 13 + #("&rid=" .. rid .. "&seq=") + 5 + 5
    local pad = {}
    for _ = 1, math.max(0, target - fixed) do
      local k = math.random(#alphabet)
      pad[#pad + 1] = alphabet:sub(k, k)
    end
    local tail = "&pad=" .. table.concat(pad) .. " HTTP/1.1\r\nHost: " .. host .. "\r\nUser-Agent: " .. ua ..
        "\r\nReferer: " .. url .. "\r\nAccept: image/avif,image/webp,image/*,*/*;q=0.8\r\n\r\n"
    templates[i] = { head, mid, tail }
  end
end

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
  threads[#threads + 1] = thread
end

function init(args)
  build()
  seq = 0
  rid = "peers" .. thread_id
end

function request()
  seq = seq + 1
  local t = templates[(seq * 7 + thread_id) % templates_n + 1]
  local uid = users[(seq * 31 + thread_id * 512) % users_n + 1]
  return t[1] .. uid .. t[2] .. os.time() .. "000&rid=" .. rid .. "&seq=" .. seq .. t[3]
end

function done(summary, latency, requests)
  local e, sent = summary.errors, 0
  for _, t in ipairs(threads) do
    sent = sent + t:get("seq")
  end
  -- Requests written, answered or not: the ones in flight when wrk
  -- stops reach the server without being counted in requests.
  io.write(string.format("peers sent %d\n", sent))
  io.write(string.format("peers requests %d\n", summary.requests))
  io.write(string.format("peers non2xx %d\n", e.status))
  io.write(string.format("peers socket_errors %d\n", e.connect + e.read + e.write + e.timeout))
  io.write(string.format("peers duration_us %d\n", summary.duration))
  io.write(string.format("peers latency_p50_us %d\n", latency:percentile(50)))
  io.write(string.format("peers latency_p99_us %d\n", latency:percentile(99)))
end

-- Request shape and result summary for wrk, driven by environment variables so one
-- script serves every scenario. The summary is one JSON line, latencies in µs.
local body = tonumber(os.getenv("BENCH_BODY") or "0")
wrk.method = os.getenv("BENCH_METHOD") or "GET"
if body > 0 then
  wrk.body = string.rep("b", body)
  wrk.headers["Content-Type"] = "application/octet-stream"
end
wrk.headers["Accept"] = os.getenv("BENCH_ACCEPT") or "*/*"
if os.getenv("BENCH_CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"bytes":%d,"errors":%d,"p50":%d,"p99":%d,"p999":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end

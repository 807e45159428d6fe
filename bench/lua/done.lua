-- Appended to every scenario script: wrk calls done() once, after the run, so it costs nothing
-- per request. It prints one machine-readable line that run.py parses (latencies in µs).
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
      '"max_us": %d, "mean_us": %.1f, "non_2xx_3xx": %d, "connect_errors": %d, ' ..
      '"read_errors": %d, "write_errors": %d, "timeouts": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      latency.max, latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end

// Seeds past data for the history benchmarks: METRICS metrics x AGENTS agents, one point every
// INTERVAL_S seconds over the last DAYS days, POSTed with past timestamps in bulk requests of
// 1000 (rollups are kept as points are written, so the history view is ready when this ends).
// usage: node bench/seed-history.mjs URL TOKEN [DAYS=7] [METRICS=10] [AGENTS=4] [INTERVAL_S=60]
const [url, token, days = '7', metricCount = '10', agentCount = '4', interval = '60'] = process.argv.slice(2);
const names = ['cpu.usage_percent', 'mem.used_bytes', 'mem.used_percent', 'disk.used_percent', 'net.rx_bytes_per_s',
  'net.tx_bytes_per_s', 'load.1m', 'load.5m', 'load.15m', 'uptime_s', 'app.requests', 'app.latency_ms'];
const metrics = Array.from({ length: Number(metricCount) }, (_, i) => names[i] ?? `bench.metric_${i}`);
const end = Math.floor(Date.now() / 1000);
const start = end - Number(days) * 86_400;
const step = Number(interval);
let batch = [];
let sent = 0;
const started = performance.now();
const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
const flush = async () => {
  const body = JSON.stringify(batch);
  for (;;) {
    const response = await fetch(`${url}/api/v1/metrics`, { method: 'POST', headers, body });
    if (response.status === 202) break;
    // A full queue answers 503 with Retry-After: back off as told, then send again.
    if (response.status !== 503) throw new Error(`push failed: ${response.status} ${await response.text()}`);
    await new Promise((r) => setTimeout(r, 1000 * Number(response.headers.get('retry-after') ?? 1)));
  }
  sent += batch.length;
  batch = [];
};
// Stored, not only queued: the last metric's rollups count every point of it.
async function stored(metric, expected) {
  const deadline = Date.now() + 120_000;
  const query = new URLSearchParams({ metric_name: metric, start_time: String(start), resolution: 'auto', limit: '100000' });
  for (;;) {
    const answer = await (await fetch(`${url}/api/v1/metrics?${query}`, { headers })).json();
    const count = answer.data.reduce((n, p) => n + (p.count ?? 1), 0);
    if (count === expected) return;
    if (Date.now() > deadline) throw new Error(`only ${count} of ${expected} points of ${metric} stored`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
for (let t = start; t < end; t += step) {
  for (let a = 0; a < Number(agentCount); a++) {
    for (const [m, metric] of metrics.entries()) {
      const value = 50 + 30 * Math.sin(t / 7200 + a + m) + 5 * Math.sin(t / 97);
      batch.push({ metric_name: metric, agent_id: `bench-${a}`, value, timestamp: t });
      if (batch.length === 1000) await flush();
    }
  }
}
if (batch.length) await flush();
await stored(metrics[metrics.length - 1], Math.ceil((end - start) / step) * Number(agentCount));
console.log(JSON.stringify({ seeded_points: sent, days: Number(days), metrics: metrics.length, agents: Number(agentCount),
  interval_s: step, seconds: Math.round((performance.now() - started) / 100) / 10 }));

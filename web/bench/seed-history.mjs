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
const flush = async () => {
  const response = await fetch(`${url}/api/v1/metrics`, {
    method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(batch),
  });
  if (response.status !== 202) throw new Error(`push failed: ${response.status} ${await response.text()}`);
  sent += batch.length;
  batch = [];
};
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
console.log(JSON.stringify({ seeded_points: sent, days: Number(days), metrics: metrics.length, agents: Number(agentCount),
  interval_s: step, seconds: Math.round((performance.now() - started) / 100) / 10 }));

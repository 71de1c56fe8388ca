// Dashboard benchmarks in headless Chromium against a running server (scripts/bench/dashboard.sh):
// 1. cold first load: a fresh browser context (empty cache) opening a tenant page, until the
//    first chart shows data;
// 2. POST-to-drawn: probe metrics POSTed with their send time as value, timed until the
//    legend shows them, while other load runs.
//    With RANGE=7d (any range the picker offers: 1h, 24h, 7d, 30d) the cold loads open that
//    range instead (seed it first with bench/seed-history.mjs) and time them until the first
//    chart with data has been drawn by the chart library, then once until all CHARTS (10)
//    charts are.
// usage: [COLD_ONLY=1] [RANGE=7d] node bench/dashboard.mjs URL TOKEN PASSWORD [SECONDS]
import { chromium } from 'playwright';

const [url, token, password, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg ?? 30);
const range = process.env.RANGE;
const browser = await chromium.launch({
  executablePath: process.env.MICRODASH_CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };

async function signedInContext() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const response = await context.request.post(`${url}/api/v1/session`, { data: { username: 'demo', password } });
  if (response.status() !== 200) throw new Error(`sign-in failed: ${response.status()}`);
  return context;
}

// 1. Cold loads, timed inside the page: navigation start to the frame painted after the first
//    legend value appeared (a MutationObserver installed before any script runs).
const loads = [];
for (let i = 0; i < 10; i++) {
  const context = await signedInContext();
  const page = await context.newPage();
  await page.addInitScript((history) => {
    // Live: the first legend value. History: the first chart with points that uPlot has drawn.
    const seen = history
      ? () => document.querySelector('[data-testid="chart"]:not([data-points="0"]) [data-drawn]')
      : () => document.querySelector('[data-testid="last-value"]:not([data-value=""])');
    const observer = new MutationObserver(() => {
      if (window.__firstChart === undefined && seen()) {
        window.__firstChart = null;
        observer.disconnect();
        requestAnimationFrame(() => requestAnimationFrame(() => (window.__firstChart = performance.now())));
      }
    });
    observer.observe(document, { subtree: true, childList: true, attributes: true });
  }, Boolean(range));
  await page.goto(`${url}/#/t/demo${range ? `?range=${range}` : ''}`);
  await page.waitForFunction(() => typeof window.__firstChart === 'number');
  loads.push(await page.evaluate(() => window.__firstChart));
  await context.close();
}

// What a history view holds once every chart is drawn: charts, points, resolutions.
async function firstChartsOf(range) {
  const context = await signedInContext();
  const page = await context.newPage();
  const started = Date.now();
  await page.goto(`${url}/#/t/demo?range=${range}`);
  // As many charts as the tenant has metrics (CHARTS, 10 by default), each drawn with points.
  await page.waitForFunction((expected) => {
    const charts = [...document.querySelectorAll('[data-testid="chart"]')];
    return charts.length >= expected && charts.every((c) => c.dataset.points !== '0' && c.querySelector('[data-drawn]'));
  }, Number(process.env.CHARTS ?? 10), { timeout: 60_000 });
  const all_charts_drawn_ms = Date.now() - started;
  const charts = await page.locator('[data-testid="chart"]').evaluateAll((els) => els.map((e) => ({ resolution: e.dataset.resolution, points: Number(e.dataset.points) })));
  await context.close();
  return { all_charts_drawn_ms, charts: charts.length, resolutions: [...new Set(charts.map((c) => c.resolution))], points: charts.reduce((n, c) => n + c.points, 0) };
}

if (process.env.COLD_ONLY || range) {
  const charts = range ? await firstChartsOf(range) : undefined;
  await browser.close();
  console.log(JSON.stringify({ range: range ?? 'live', cold_load_to_first_chart_ms: { p50: quantile(loads, 0.5), max: Math.max(...loads), runs: loads.length }, ...charts }));
  process.exit(0);
}

// 2. POST-to-drawn.
const context = await signedInContext();
const page = await context.newPage();
await page.goto(`${url}/#/t/demo`);
await page.waitForSelector('[data-testid="link-status"][data-connected="true"]');
await page.evaluate(() => {
  window.__lags = [];
  let last = 0;
  const read = () => {
    for (const cell of document.querySelectorAll('[data-metric="bench.probe"] [data-testid="last-value"]')) {
      const sent = Number(cell.getAttribute('data-value'));
      // Drawn = the frame after the DOM changed has been painted (two animation frames).
      if (sent > last) { last = sent; requestAnimationFrame(() => requestAnimationFrame(() => window.__lags.push(Date.now() - sent))); }
    }
  };
  new MutationObserver(read).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-value'] });
});
const deadline = Date.now() + seconds * 1000;
while (Date.now() < deadline) {
  const sent = Date.now();
  const response = await fetch(`${url}/api/v1/metrics`, {
    method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ metric_name: 'bench.probe', value: sent, agent_id: 'bench' }),
  });
  if (response.status !== 202) throw new Error(`push failed: ${response.status}`);
  await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - sent))));
}
await new Promise((r) => setTimeout(r, 1000));
const lags = await page.evaluate(() => window.__lags);
const widgets = await page.locator('[data-metric]').count();
const series = await page.locator('[data-testid="last-value"]').count();
await browser.close();

console.log(JSON.stringify({
  cold_load_to_first_chart_ms: { p50: quantile(loads, 0.5), max: Math.max(...loads), runs: loads.length },
  post_to_drawn_ms: { p50: quantile(lags, 0.5), p90: quantile(lags, 0.9), p99: quantile(lags, 0.99), max: Math.max(...lags), samples: lags.length },
  charts_on_page: widgets,
  series_on_page: series,
}, null, 2));

import { chromium } from 'playwright';
import fs from 'fs';
const [url, password, range] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-quic'] });
for (let run = 0; run < 2; run++) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.request.post(`${url}/api/v1/session`, { data: { username: 'demo', password } });
  const page = await context.newPage();
  await page.addInitScript(() => {
    const seen = () => document.querySelector('[data-testid="chart"]:not([data-points="0"]) [data-drawn]');
    const observer = new MutationObserver(() => {
      if (window.__firstChart === undefined && seen()) {
        window.__firstChart = null; observer.disconnect();
        requestAnimationFrame(() => requestAnimationFrame(() => (window.__firstChart = performance.now())));
      }
    });
    observer.observe(document, { subtree: true, childList: true, attributes: true });
  });
  await browser.startTracing(page, { path: `/tmp/trace${run}.json`, categories: ['devtools.timeline', 'v8.execute', 'disabled-by-default-devtools.timeline', 'blink.user_timing', 'loading'] });
  await page.goto(`${url}/#/t/demo?range=${range}`);
  await page.waitForFunction(() => typeof window.__firstChart === 'number');
  const first = await page.evaluate(() => [Math.round(window.__firstChart), performance.timeOrigin]);
  await browser.stopTracing();
  const trace = JSON.parse(fs.readFileSync(`/tmp/trace${run}.json`));
  const events = trace.traceEvents ?? trace;
  const origin = first[1] * 1000; // us
  // main thread: the renderer's CrRendererMain
  const names = events.filter((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain');
  const mains = new Set(names.map((e) => `${e.pid}:${e.tid}`));
  const top = events.filter((e) => mains.has(`${e.pid}:${e.tid}`) && e.ph === 'X' && e.dur > 1000);
  // find tasks (RunTask) and their children names
  const tasks = top.filter((e) => e.name === 'RunTask' || e.name === 'ThreadControllerImpl::RunTask');
  const lines = [];
  for (const t of tasks) {
    if (t.dur < 8000) continue;
    const kids = top.filter((e) => e !== t && e.ts >= t.ts && e.ts + e.dur <= t.ts + t.dur && e.dur > 3000 && e.name !== 'RunTask');
    const sum = {};
    for (const k of kids) sum[k.name] = (sum[k.name] ?? 0) + k.dur;
    // timestamps relative to navigation: trace ts is in us, monotonic; use first navigationStart mark
    lines.push({ ts: t.ts, dur: Math.round(t.dur / 1000), kids: Object.fromEntries(Object.entries(sum).map(([k, v]) => [k, Math.round(v / 1000)])) });
  }
  const nav = events.find((e) => e.name === 'navigationStart' && mains.has(`${e.pid}:${e.tid}`)) ?? events.find((e) => e.name === 'navigationStart');
  const t0 = nav ? nav.ts : lines[0]?.ts;
  console.log(`run ${run}: first chart ${first[0]} ms`);
  for (const l of lines) console.log(`  ${Math.round((l.ts - t0) / 1000)}+${l.dur} ${JSON.stringify(l.kids)}`);
  await context.close();
}
await browser.close();

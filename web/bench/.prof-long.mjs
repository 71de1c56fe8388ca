// Where a cold load's time goes: every request's start and end (Resource Timing) and when the
// first chart was drawn, for one fresh browser context on a tenant page (the demo tenant, live
// or over RANGE); with `overview` instead of a range, when the fleet overview's last host row
// (of HOSTS, 200) was drawn.
// usage: node bench/profile-load.mjs URL PASSWORD [RANGE|overview]
import { chromium } from 'playwright';

const [url, password, view] = process.argv.slice(2);
const overview = view === 'overview';
const range = overview ? undefined : view;
const browser = await chromium.launch({
  executablePath: process.env.MICRODASH_CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
for (let run = 0; run < Number(process.env.RUNS ?? 3); run++) {
  const context = await browser.newContext({ viewport: overview ? { width: 1920, height: 1080 } : { width: 1280, height: 800 } });
  const response = await context.request.post(`${url}/api/v1/session`, { data: { username: 'demo', password } });
  if (response.status() !== 200) throw new Error(`sign-in failed: ${response.status()}`);
  const page = await context.newPage();
  await page.addInitScript(([history, overview, hosts]) => {
    const seen = overview
      ? () => document.querySelectorAll('[data-testid="host-row"]').length >= hosts
      : history
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
    window.__long = []; new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(`${Math.round(e.startTime)}+${Math.round(e.duration)}`); }).observe({ type: "longtask", buffered: true });
  }, [Boolean(range), overview, Number(process.env.HOSTS ?? 200)]);
  await page.goto(overview ? `${url}/#/` : `${url}/#/t/demo${range ? `?range=${range}` : ''}`);
  await page.waitForFunction(() => typeof window.__firstChart === 'number');
  const report = await page.evaluate(() => ({
    first_chart: Math.round(window.__firstChart),
    long_tasks: window.__long, dom_content_loaded: Math.round(performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd),
    resources: performance.getEntriesByType('resource').map((r) => `${Math.round(r.startTime)}-${Math.round(r.responseEnd)} ${r.name.replace(location.origin, '')}`),
  }));
  console.log(JSON.stringify(report, null, 1));
  await context.close();
}
await browser.close();

// The fleet overview's benchmark in headless Chromium against a running server
// (scripts/bench/dashboard.sh runs it after the tenant page's):
// 1. HOSTS (200) hosts of the `demo` tenant report CPU, memory, disk, network and uptime once;
// 2. cold first draw: a fresh browser context (empty cache) opening the overview, timed inside
//    the page from navigation start to the frame painted after the last host's row appeared;
// 3. input delay under load: while RATE (1,000) fleet metrics/s flow in (the same hosts, their
//    points arriving live on the page), the search field is typed into, one key every 100 ms,
//    and each key's input delay is measured in the page: from the key event's timestamp to its
//    first handler running (what the Event Timing API calls the input delay).
// usage: [HOSTS=200] [RATE=1000] node bench/overview.mjs URL TOKEN PASSWORD [SECONDS]
import { chromium } from 'playwright';

const [url, token, password, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg ?? 20);
const hosts = Number(process.env.HOSTS ?? 200);
const rate = Number(process.env.RATE ?? 1000);
const browser = await chromium.launch({
  executablePath: process.env.MICRODASH_CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };

/** One host's report: the fleet metrics an agent sends, with values that differ per host. */
const report = (i, tick) => {
  const agent_id = `bench-host-${String(i).padStart(3, '0')}`;
  const wave = (i * 7 + tick * 3) % 100;
  return [
    { metric_name: 'cpu.usage_percent', value: wave, agent_id },
    { metric_name: 'mem.used_percent', value: (wave + 30) % 100, agent_id },
    { metric_name: 'mem.used_bytes', value: 2 ** 30 * (1 + (i % 8)), agent_id },
    { metric_name: 'disk.used_percent', value: (i * 13) % 100, agent_id, tags: { mount: '/' } },
    { metric_name: 'net.rx_bytes_per_s', value: 1000 * wave, agent_id },
    { metric_name: 'uptime_s', value: 3600 * (1 + i), agent_id },
    { metric_name: 'agent.interval_s', value: 10, agent_id },
  ];
};
const METRICS_PER_REPORT = report(0, 0).length;

async function push(points) {
  const response = await fetch(`${url}/api/v1/metrics`, {
    method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(points),
  });
  if (response.status !== 202) throw new Error(`push failed: ${response.status} ${await response.text()}`);
}

async function signedInContext() {
  const context = await browser.newContext({ viewport: { width: 1920, height: 1080 } });
  const response = await context.request.post(`${url}/api/v1/session`, { data: { username: 'demo', password } });
  if (response.status() !== 200) throw new Error(`sign-in failed: ${response.status()}`);
  return context;
}

// 1. Every host reports once.
for (let i = 0; i < hosts; i += 10) {
  await push(Array.from({ length: Math.min(10, hosts - i) }, (_, k) => report(i + k, 0)).flat());
}

// 2. Cold first draws.
const draws = [];
for (let run = 0; run < 10; run++) {
  const context = await signedInContext();
  const page = await context.newPage();
  await page.addInitScript((expected) => {
    const observer = new MutationObserver(() => {
      if (window.__drawn === undefined && document.querySelectorAll('[data-testid="host-row"]').length >= expected) {
        window.__drawn = null;
        observer.disconnect();
        requestAnimationFrame(() => requestAnimationFrame(() => (window.__drawn = performance.now())));
      }
    });
    observer.observe(document, { subtree: true, childList: true });
  }, hosts);
  await page.goto(`${url}/#/`);
  await page.waitForFunction(() => typeof window.__drawn === 'number', null, { timeout: 30_000 });
  draws.push(await page.evaluate(() => window.__drawn));
  await context.close();
}

// 3. Input delay while RATE fleet metrics/s arrive: reports in batches of 50 metrics, paced.
let sending = true;
let sent = 0;
const loadBegan = Date.now();
const load = (async () => {
  const batchReports = Math.max(1, Math.round(50 / METRICS_PER_REPORT));
  const perSecond = rate / (batchReports * METRICS_PER_REPORT);
  let tick = 1;
  let host = 0;
  const started = Date.now();
  let batches = 0;
  while (sending) {
    const points = [];
    for (let k = 0; k < batchReports; k++) {
      points.push(...report(host, tick));
      host = (host + 1) % hosts;
      if (host === 0) tick++;
    }
    await push(points);
    sent += points.length;
    batches++;
    const due = started + (batches * 1000) / perSecond;
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
  }
})();

const context = await signedInContext();
const page = await context.newPage();
await page.goto(`${url}/#/`);
await page.waitForFunction((expected) => document.querySelectorAll('[data-testid="host-row"]').length >= expected, hosts);
await page.evaluate(() => {
  window.__delays = [];
  // Capture phase on the window: the first handler that runs for the key.
  for (const type of ['keydown', 'keyup']) {
    window.addEventListener(type, (event) => window.__delays.push(performance.now() - event.timeStamp), { capture: true });
  }
});
const search = page.getByLabel('Search hosts');
await search.focus();
const deadline = Date.now() + seconds * 1000;
const letters = 'bench-host-1';
let typed = 0;
while (Date.now() < deadline) {
  if (typed === letters.length) {
    await search.fill('');
    typed = 0;
  }
  await page.keyboard.press(letters[typed++]);
  await new Promise((r) => setTimeout(r, 100));
}
const delays = await page.evaluate(() => window.__delays);
const rows = await page.locator('[data-testid="host-row"]').count();
sending = false;
await load;
const achieved = Math.round(sent / ((Date.now() - loadBegan) / 1000));
await browser.close();

console.log(JSON.stringify({
  hosts,
  cold_first_draw_ms: { p50: quantile(draws, 0.5), max: Math.max(...draws), runs: draws.length },
  under_load: {
    metrics_per_s: achieved,
    input_delay_ms: { p50: quantile(delays, 0.5), p99: quantile(delays, 0.99), max: Math.max(...delays), keys: delays.length },
    rows_after_last_search: rows,
  },
}, null, 2));

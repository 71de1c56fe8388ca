import { execSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { expect, type APIRequestContext, type Locator, type Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { createBdd } from 'playwright-bdd';

const { Given, When, Then } = createBdd();

type Server = {
  url: string;
  token: string;
  password: string;
  other: { username: string; password: string };
  admin: { username: string; password: string };
  agent: { bin: string; broker: string; topicRoot: string };
};
const server = (): Server => JSON.parse(readFileSync(join(__dirname, '.server.json'), 'utf8'));

async function signIn(page: Page, username: string, password: string) {
  await page.goto(server().url + '/');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Overview' })).toBeVisible();
}

Given('the browser\'s event streams are blocked', async ({ page }) => {
  // What a buffering or SSE-hostile proxy does: the stream never gets through.
  await page.route(/\/api\/v1\/stream\/[^/?]+(\?|$)/, (route) => route.abort('connectionrefused'));
});

Given('a tenant exists and I am signed in to its dashboard', async ({ page }) => {
  await signIn(page, 'demo', server().password);
  await page.goto(server().url + '/#/t/demo');
  await expect(page.getByTestId('link-status')).toHaveAttribute('data-connected', 'true', { timeout: 10_000 });
});

Given('I am signed in as the user of tenant {string}', async ({ page }, _tenant: string) => {
  await signIn(page, server().other.username, server().other.password);
});

When('I POST the metric {string} with value {float}', async ({ page, request }, metric: string, value: number) => {
  const response = await request.post(server().url + '/api/v1/metrics', {
    headers: { Authorization: `Bearer ${server().token}` },
    data: { metric_name: metric, value, agent_id: 'e2e-host' },
  });
  expect(response.status()).toBe(202);
  await page.evaluate(() => ((window as any).__postedAt = performance.now()));
});

When('I open the dashboard of tenant {string}', async ({ page }, tenant: string) => {
  await page.goto(`${server().url}/#/t/${tenant}`);
});

Then('the value {float} is on the {string} chart within {int} ms', async ({ page }, value: number, metric: string, ms: number) => {
  const cell = page.locator(`[data-metric="${metric}"] [data-testid="last-value"][data-value="${value}"]`);
  await expect(cell).toBeVisible({ timeout: ms });
});

Then('the live status shows polling within {int} ms', async ({ page }, ms: number) => {
  const status = page.getByTestId('link-status');
  await expect(status).toHaveAttribute('data-transport', 'polling', { timeout: ms });
  await expect(status).toHaveAttribute('data-connected', 'true', { timeout: ms });
  await expect(status).toContainText('polling');
});

Then('I am told I have no access to tenant {string}', async ({ page }, tenant: string) => {
  await expect(page.getByRole('alert')).toContainText(`no read access to tenant "${tenant}"`);
  await expect(page.getByTestId('last-value')).toHaveCount(0);
});

Then('the stream of tenant {string} refuses my session with 403', async ({ page }, tenant: string) => {
  // page.request shares the signed-in browser context's cookies.
  const stream = await page.request.get(`${server().url}/api/v1/stream/${tenant}`);
  expect(stream.status()).toBe(403);
  const poll = await page.request.get(`${server().url}/api/v1/stream/${tenant}/latest`);
  expect(poll.status()).toBe(403);
});

When('I open the {string} screen', async ({ page }, name: string) => {
  await page.getByRole('link', { name }).click();
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  await page.waitForLoadState('networkidle');
});

When('I sign out', async ({ page }) => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
});

/** The screen as it is now, at a desktop and at a phone size: axe-core finds no WCAG 2.2 A or
 * AA violation at either; at the phone size nothing scrolls sideways, the header stays on one
 * line and every control is a target of at least 44 x 44 px (its label counts; links inside
 * running text are exempt, as WCAG 2.5.8 has it). The viewport is put back afterwards. */
async function checkScreen(page: Page, screen: string) {
  const original = page.viewportSize();
  for (const size of [{ width: 1920, height: 1080 }, { width: 390, height: 844 }]) {
    await page.setViewportSize(size);
    // From the top: nothing is under the sticky header (which would cover targets).
    await page.evaluate(() => window.scrollTo(0, 0));
    // Two frames: layout and the charts' resize observers settle.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']).analyze();
    const found = results.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
    expect(found, `${screen} at ${size.width}x${size.height}`).toEqual([]);
    if (size.width > 400) continue;
    const phone = await page.evaluate(() => {
      const small: string[] = [];
      for (const el of document.querySelectorAll<HTMLElement>('a[href], button, input:not([type="hidden"]), select, textarea, [role="button"]')) {
        const box = el.getBoundingClientRect();
        const style = getComputedStyle(el);
        // Not rendered, or visually hidden until focused (the skip link).
        if (box.width <= 1 || box.height <= 1 || style.visibility === 'hidden') continue;
        if (el.tagName === 'A' && style.display === 'inline') continue;
        const target = (el.closest('label') ?? el).getBoundingClientRect();
        if (target.width < 43.5 || target.height < 43.5) {
          small.push(`${el.tagName.toLowerCase()} "${(el.getAttribute('aria-label') ?? el.textContent ?? '').trim().slice(0, 30)}" ${Math.round(target.width)}x${Math.round(target.height)}`);
        }
      }
      const header = document.querySelector('header');
      return {
        overflow: document.documentElement.scrollWidth - window.innerWidth,
        header: header ? header.getBoundingClientRect().height : 0,
        small,
      };
    });
    expect(phone.overflow, `${screen} scrolls sideways at 390 px`).toBeLessThanOrEqual(0);
    expect(phone.small, `${screen}: targets under 44 px at 390 px`).toEqual([]);
    expect(phone.header, `${screen}: the header is on one line at 390 px`).toBeLessThanOrEqual(64);
  }
  if (original) await page.setViewportSize(original);
}

Then('the {string} screen has no WCAG 2.2 AA violations at desktop and phone sizes', async ({ page }, screen: string) => {
  await checkScreen(page, screen);
});

Given('an agent {string} is running', async ({ page }, agentId: string) => {
  const { bin, broker, topicRoot } = server().agent;
  const agent = spawn(bin, ['--url', broker, '--tenant', 'demo', '--agent-id', agentId, '--interval-s', '1', '--topic-root', topicRoot], {
    stdio: 'ignore',
  });
  page.on('close', () => agent.kill('SIGTERM'));
});

When('it publishes', async () => {
  // Every second, by itself.
});

// The agent stops when the page closes, at the end of the scenario.
Then('the {string} chart draws its one point as a dot', async ({ page }, metric: string) => {
  // Set by chart-bridge.js each time uPlot draws: the series shown as a lone dot.
  await expect(page.locator(`[data-metric="${metric}"] [data-drawn]`)).toHaveAttribute('data-dots', '1', { timeout: 5000 });
});

Then('the {string} chart shows agent {string} within {int} ms', async ({ page }, metric: string, agentId: string, ms: number) => {
  const legend = page.locator(`[data-metric="${metric}"]`).getByText(agentId, { exact: true });
  await expect(legend).toBeVisible({ timeout: ms });
});

Then('the agent {string} is listed as {string} within {int} ms', async ({ page }, agentId: string, status: string, ms: number) => {
  const row = page.locator(`[data-testid="host-row"][data-agent="${agentId}"]`);
  await expect(row).toHaveAttribute('data-status', status, { timeout: ms });
  // In words, not only in colour.
  await expect(row.getByTestId('host-status')).toContainText(status);
});

When('I click the agent {string}', async ({ page }, agentId: string) => {
  await page.getByRole('link', { name: agentId, exact: true }).click();
});

Then('the {string} chart shows only agent {string} within {int} ms', async ({ page }, metric: string, agentId: string, ms: number) => {
  const chart = page.locator(`[data-metric="${metric}"]`);
  await expect(chart.getByText(agentId, { exact: true })).toBeVisible({ timeout: ms });
  await expect(chart.getByRole('list', { name: 'Latest values' }).getByRole('listitem')).toHaveCount(1);
});

// --- History: ranges, rollups, zoom, gaps ---------------------------------------------------

type MetricIn = { metric_name: string; agent_id: string; value: number; timestamp: number };

/** POST through the API with the tenant token, in bulk requests of up to 1000 metrics, and
 * wait until all are stored (a 202 means queued): the API counts them back, raw points or,
 * where raw is no longer kept (a day ago), rollup buckets' counts. */
async function postMetrics(request: APIRequestContext, metrics: MetricIn[]) {
  const headers = { Authorization: `Bearer ${server().token}` };
  for (let i = 0; i < metrics.length; i += 1000) {
    const response = await request.post(server().url + '/api/v1/metrics', { headers, data: metrics.slice(i, i + 1000) });
    expect(response.status()).toBe(202);
  }
  const first = Math.min(...metrics.map((m) => m.timestamp));
  const stored = async () => {
    const params = new URLSearchParams({
      metric_name: metrics[0].metric_name,
      start_time: String(Math.floor(first)),
      resolution: 'raw',
      limit: String(metrics.length + 1),
    });
    const answer = await request.get(`${server().url}/api/v1/metrics?${params}`, { headers });
    if (!answer.ok()) return -1;
    const points: { count?: number }[] = (await answer.json()).data;
    return points.reduce((n, p) => n + (p.count ?? 1), 0);
  };
  await expect.poll(stored, { timeout: 15_000 }).toBe(metrics.length);
}

/** The scenario's spike and the span dragged across it, Unix seconds / milliseconds. */
const seen: { spike?: { start: number; end: number }; dragged?: { start: number; end: number; tolerance: number } } = {};

/** A day of points every 30 s, alternating 5 above and below a slow wave, so every minute has
 * a minimum and a maximum apart; optionally a 4-minute spike to 95 starting `spikeAt`. */
function dayOfHistory(metric: string, agent: string, spikeAt?: number): MetricIn[] {
  const end = Math.floor(Date.now() / 60_000) * 60;
  const out: MetricIn[] = [];
  for (let t = end - 86_400; t < end; t += 30) {
    const wiggle = (t / 30) % 2 === 0 ? -5 : 5;
    let value = 40 + 15 * Math.sin((2 * Math.PI * t) / 21_600) + wiggle;
    if (spikeAt !== undefined && t >= spikeAt && t < spikeAt + 240) value = 95 + wiggle / 5;
    out.push({ metric_name: metric, agent_id: agent, value, timestamp: t });
  }
  return out;
}

/** The chart of a metric: the expanded one when it is open, else the card's. */
const chartOf = (page: Page, metric: string) => page.locator(`[data-metric="${metric}"]`).last().getByTestId('chart');

Given('a day of history of {string} from agent {string}', async ({ request }, metric: string, agent: string) => {
  await postMetrics(request, dayOfHistory(metric, agent));
});

Given(
  'a day of history of {string} from agent {string} with a spike {int} hours ago',
  async ({ request }, metric: string, agent: string, hours: number) => {
    const start = Math.floor(Date.now() / 60_000) * 60 - hours * 3600;
    seen.spike = { start, end: start + 240 };
    await postMetrics(request, dayOfHistory(metric, agent, start));
  },
);

When('I choose the range {string}', async ({ page }, label: string) => {
  await page.getByRole('group', { name: 'Time range' }).last().getByRole('button', { name: label, exact: true }).click();
});

When('I reload the page', async ({ page }) => {
  await page.reload();
});

Then('the URL holds {string}', async ({ page }, fragment: string) => {
  await expect(page).toHaveURL(new RegExp(fragment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
});

Then('the range {string} is chosen', async ({ page }, label: string) => {
  const button = page.getByRole('group', { name: 'Time range' }).last().getByRole('button', { name: label, exact: true });
  await expect(button).toHaveAttribute('aria-pressed', 'true');
});

When('I expand the {string} chart', async ({ page }, metric: string) => {
  await page.getByRole('button', { name: `Expand ${metric}`, exact: true }).click();
  await expect(page.getByRole('dialog')).toBeVisible();
});

When('I close the expanded chart', async ({ page }) => {
  await page.getByRole('dialog').getByRole('button', { name: 'Close', exact: true }).click();
  await expect(page.getByRole('dialog')).toHaveCount(0);
});

/** Pixels of the chart's canvas in the plot area, read in the page: `columns` are fractions
 * of the plot's width; returns per column the count of pixels `match` accepts. */
async function countPixels(chart: Locator, columns: number[], match: 'band' | [number, number, number]): Promise<number[]> {
  return chart.evaluate(
    (el, { columns, match }) => {
      const canvas = el.querySelector('canvas') as HTMLCanvasElement;
      const over = el.querySelector('.u-over') as HTMLElement;
      const c = canvas.getBoundingClientRect();
      const o = over.getBoundingClientRect();
      const scale = canvas.width / c.width;
      const ctx = canvas.getContext('2d')!;
      const top = Math.round((o.top - c.top) * scale);
      const height = Math.round(o.height * scale);
      return columns.map((f) => {
        const x = Math.round((o.left - c.left + f * o.width) * scale);
        const px = ctx.getImageData(x, top, 1, height).data;
        let n = 0;
        for (let i = 0; i < px.length; i += 4) {
          const [r, g, b, a] = [px[i], px[i + 1], px[i + 2], px[i + 3]];
          // A band is filled at 22% opacity (alpha ~56) and alone there; lines are opaque.
          if (match === 'band' ? a >= 40 && a <= 75 : a >= 150 && Math.abs(r - match[0]) + Math.abs(g - match[1]) + Math.abs(b - match[2]) < 60) n++;
        }
        return n;
      });
    },
    { columns, match },
  );
}

/** A time (Unix ms) as a fraction of the chart's time axis, as the chart shows it now. */
async function fractionOf(chart: Locator, ms: number): Promise<number> {
  const [start, end] = await Promise.all([chart.getAttribute('data-window-start'), chart.getAttribute('data-window-end')]);
  return (ms - Number(start)) / (Number(end) - Number(start));
}

Then(
  'the {string} chart shows {string} data with a min-max band within {int} ms',
  async ({ page }, metric: string, resolution: string, ms: number) => {
    const chart = chartOf(page, metric);
    await expect(chart).toHaveAttribute('data-resolution', resolution, { timeout: ms });
    await expect(chart).toHaveAttribute('data-bands', '1');
    // A day at one minute: some 1,440 buckets.
    expect(Number(await chart.getAttribute('data-points'))).toBeGreaterThan(1_300);
    await expect(chart.locator('[data-drawn]')).toBeAttached();
    // Drawn, not only configured: band-filled pixels in most columns of the plot.
    await expect
      .poll(async () => (await countPixels(chart, [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], 'band')).filter((n) => n >= 3).length, {
        timeout: 5_000,
      })
      .toBeGreaterThanOrEqual(5);
  },
);

When('I drag across the spike on the {string} chart', async ({ page }, metric: string) => {
  const chart = chartOf(page, metric);
  const box = (await chart.locator('.u-over').boundingBox())!;
  const spike = seen.spike!;
  const [from, to] = [(spike.start - 25 * 60) * 1000, (spike.end + 25 * 60) * 1000];
  const [a, b] = [await fractionOf(chart, from), await fractionOf(chart, to)];
  const msPerPixel = (to - from) / ((b - a) * box.width);
  seen.dragged = { start: from, end: to, tolerance: 3 * msPerPixel };
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + a * box.width, y);
  await page.mouse.down();
  await page.mouse.move(box.x + b * box.width, y, { steps: 10 });
  await page.mouse.up();
});

Then(
  'the {string} chart zooms to the span dragged across, with {string} data, within {int} ms',
  async ({ page }, metric: string, resolution: string, ms: number) => {
    const chart = chartOf(page, metric);
    await expect(page).toHaveURL(/from=.*&to=/, { timeout: ms });
    await expect(chart).toHaveAttribute('data-resolution', resolution, { timeout: ms });
    const { start, end, tolerance } = seen.dragged!;
    expect(Math.abs(Number(await chart.getAttribute('data-window-start')) - start)).toBeLessThan(tolerance);
    expect(Math.abs(Number(await chart.getAttribute('data-window-end')) - end)).toBeLessThan(tolerance);
    // 54 minutes of points every 30 s, the spike among them.
    expect(Number(await chart.getAttribute('data-points'))).toBeGreaterThan(90);
    await expect(chart).toHaveAttribute('data-bands', '0');
  },
);

When('I go back to live', async ({ page }) => {
  // Count every chart that goes from showing points to showing none while the view switches.
  await page.evaluate(() => {
    const w = window as any;
    w.__blanked = 0;
    const last = new WeakMap<Element, string>();
    const check = () => {
      for (const c of document.querySelectorAll('[data-testid="chart"]')) {
        const points = c.getAttribute('data-points') ?? '0';
        if (points === '0' && (last.get(c) ?? '0') !== '0') w.__blanked++;
        last.set(c, points);
      }
    };
    check();
    new MutationObserver(check).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-points'] });
  });
  await page.getByRole('button', { name: 'Back to live', exact: true }).last().click();
});

Then(
  'the {string} chart shows the live window without having gone blank within {int} ms',
  async ({ page }, metric: string, ms: number) => {
    const chart = chartOf(page, metric);
    await expect(page).not.toHaveURL(/range=|from=/);
    await expect(page.getByTestId('link-status')).toHaveAttribute('data-connected', 'true', { timeout: ms });
    await expect
      .poll(async () => Number(await chart.getAttribute('data-window-end')) - Number(await chart.getAttribute('data-window-start')), {
        timeout: ms,
      })
      .toBe(15 * 60 * 1000);
    expect(Math.abs(Number(await chart.getAttribute('data-window-end')) - Date.now())).toBeLessThan(5_000);
    await expect(chart).toHaveAttribute('data-resolution', 'raw');
    expect(Number(await chart.getAttribute('data-points'))).toBeGreaterThan(0);
    expect(await page.evaluate(() => (window as any).__blanked)).toBe(0);
  },
);

When(
  'the agent {string} reports {string} every {int} s for {int} minutes but stops for two of them',
  async ({ request }, agent: string, metric: string, every: number, minutes: number) => {
    const now = Date.now() / 1000;
    const stop = { start: now - minutes * 30 - 60, end: now - minutes * 30 + 60 };
    const metrics: MetricIn[] = [];
    for (let t = now - minutes * 60; t < now - every; t += every) {
      if (t > stop.start && t < stop.end) continue;
      metrics.push({ metric_name: metric, agent_id: agent, value: 50 + 10 * Math.sin(t / 40), timestamp: t });
    }
    seen.spike = { start: stop.start, end: stop.end };
    await postMetrics(request, metrics);
  },
);

Then('the {string} chart shows a gap where the agent stopped within {int} ms', async ({ page }, metric: string, ms: number) => {
  const chart = chartOf(page, metric);
  await expect(chart).toHaveAttribute('data-gaps', '1', { timeout: ms });
  const dot = page.locator(`[data-metric="${metric}"] li span[aria-hidden="true"]`).first();
  const rgb = (await dot.evaluate((el) => getComputedStyle(el).backgroundColor)).match(/\d+/g)!.slice(0, 3).map(Number) as [number, number, number];
  const { start, end } = seen.spike!;
  const at = async (seconds: number) => fractionOf(chart, seconds * 1000);
  const columns = [await at(start - 120), await at((start + end) / 2), await at(end + 120)];
  // The line is drawn before and after the outage, and not across it.
  const [before, during, after] = await countPixels(chart, columns, rgb);
  expect(before).toBeGreaterThan(0);
  expect(after).toBeGreaterThan(0);
  expect(during).toBe(0);
});

When('I enter a custom range from {int} hours ago to {int} hours ago', async ({ page }, from: number, to: number) => {
  // datetime-local inputs hold local time to the minute; the page reads them the same way.
  const [start, end] = await page.evaluate(
    ([from, to]) => {
      const local = (ms: number) => {
        const d = new Date(Math.floor(ms / 60_000) * 60_000);
        const p = (n: number) => String(n).padStart(2, '0');
        return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
      };
      return [local(Date.now() - from * 3_600_000), local(Date.now() - to * 3_600_000)];
    },
    [from, to],
  );
  const form = page.getByRole('form', { name: 'Custom range' });
  await form.getByLabel('From').fill(start);
  await form.getByLabel('To').fill(end);
  seen.dragged = {
    start: await page.evaluate((v) => new Date(v).getTime(), start),
    end: await page.evaluate((v) => new Date(v).getTime(), end),
    tolerance: 1,
  };
  await form.getByRole('button', { name: 'Apply' }).click();
});

Then(
  'the {string} chart shows the span entered with {string} data within {int} ms',
  async ({ page }, metric: string, resolution: string, ms: number) => {
    const chart = chartOf(page, metric);
    const { start, end } = seen.dragged!;
    await expect(chart).toHaveAttribute('data-window-start', String(start), { timeout: ms });
    await expect(chart).toHaveAttribute('data-window-end', String(end));
    await expect(chart).toHaveAttribute('data-resolution', resolution);
    // An hour of points every 30 s.
    expect(Number(await chart.getAttribute('data-points'))).toBe(120);
    await expect(page.getByRole('button', { name: 'Custom', exact: true })).toHaveAttribute('aria-pressed', 'true');
  },
);

// --- Alerting: rules, channels, the inbox, chart markers, keyboard use ---------------------

/** What a webhook receiver started by a scenario got: one entry per request. */
type Received = { method: string; path: string; body: any };
const receivers = new WeakMap<Page, { url: string; received: Received[] }>();

function receiverOf(page: Page) {
  const receiver = receivers.get(page);
  if (!receiver) throw new Error('no webhook receiver: start one with "Given a webhook receiver is listening"');
  return receiver;
}

Given('a webhook receiver is listening', async ({ page }) => {
  const received: Received[] = [];
  const http = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      let body: any = text;
      try {
        body = JSON.parse(text);
      } catch {
        // Kept as text.
      }
      received.push({ method: req.method ?? '', path: req.url ?? '', body });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((ok) => http.listen(0, '127.0.0.1', ok));
  const { port } = http.address() as AddressInfo;
  receivers.set(page, { url: `http://127.0.0.1:${port}/hook`, received });
  page.on('close', () => http.close());
});

/** POST a JSON body with the signed-in session (page.request shares the browser's cookies). */
async function create(page: Page, path: string, data: object): Promise<any> {
  const response = await page.request.post(server().url + path, { data });
  expect(response.status(), await response.text()).toBe(201);
  return response.json();
}

Given('a webhook channel {string} to the receiver', async ({ page }, name: string) => {
  await create(page, '/api/v1/channels', { name, kind: 'webhook', url: receiverOf(page).url });
});

Given('a webhook channel {string} to {string}', async ({ page }, name: string, url: string) => {
  await create(page, '/api/v1/channels', { name, kind: 'webhook', url });
});

Given(
  'a rule {string} on {string} of agent {string} above {int} notifying the webhook',
  async ({ page }, name: string, metric: string, agent: string, critical: number) => {
    const channel = await create(page, '/api/v1/channels', { name: `${name} hook`, kind: 'webhook', url: receiverOf(page).url });
    await create(page, '/api/v1/alert-rules', {
      name,
      metric_name: metric,
      agent_id: agent,
      operator: '>',
      critical,
      channels: [channel.id],
    });
  },
);

async function report(request: APIRequestContext, agent: string, metric: string, value: number) {
  const response = await request.post(server().url + '/api/v1/metrics', {
    headers: { Authorization: `Bearer ${server().token}` },
    data: { metric_name: metric, value, agent_id: agent },
  });
  expect(response.status()).toBe(202);
}

Given('the agent {string} reports {string} {float}', async ({ request }, agent: string, metric: string, value: number) => {
  await report(request, agent, metric, value);
});

Then(
  'the inbox shows {string} firing as critical on {string} within {int} ms',
  async ({ page }, rule: string, agent: string, ms: number) => {
    await page.goto(`${server().url}/#/t/demo/alerts`);
    const alert = page.locator(`[data-testid="alert"][data-rule="${rule}"][data-state="firing"]`);
    await expect(alert).toBeVisible({ timeout: ms });
    await expect(alert).toHaveAttribute('data-severity', 'critical');
    await expect(alert).toContainText(agent);
    await expect(alert).toContainText('critical');
  },
);

Then('the header counts at least {int} firing alert(s) within {int} ms', async ({ page }, n: number, ms: number) => {
  const count = page.getByTestId('firing-count');
  await expect.poll(async () => Number(await count.getAttribute('data-count')), { timeout: ms }).toBeGreaterThanOrEqual(n);
  await expect(count).toHaveAttribute('aria-live', 'polite');
  await expect(count).toContainText('firing');
});

/** The API's alert transitions, newest first. */
async function history(page: Page): Promise<{ rule_name: string; to: string; at: string }[]> {
  const answer = await page.request.get(`${server().url}/api/v1/alerts/history?limit=100`);
  expect(answer.ok()).toBe(true);
  return answer.json();
}

/** How much of a line through the plot is drawn in `rgb`, read from the chart's canvas: the
 * share of the plot's height in the column at time `ms`, or of its width in the row at
 * `rowFraction` of its height from the top (the best of a few columns or rows around it). */
async function lineCoverage(chart: Locator, rgb: [number, number, number], at: { ms?: number; rowFraction?: number }) {
  const [start, end] = await Promise.all([chart.getAttribute('data-window-start'), chart.getAttribute('data-window-end')]);
  return chart.evaluate(
    (el, { rgb, at, start, end }) => {
      const canvas = el.querySelector('canvas') as HTMLCanvasElement;
      const over = el.querySelector('.u-over') as HTMLElement;
      const c = canvas.getBoundingClientRect();
      const o = over.getBoundingClientRect();
      const scale = canvas.width / c.width;
      const ctx = canvas.getContext('2d')!;
      const left = Math.round((o.left - c.left) * scale);
      const top = Math.round((o.top - c.top) * scale);
      const width = Math.round(o.width * scale);
      const height = Math.round(o.height * scale);
      const near = (d: Uint8ClampedArray, i: number) =>
        d[i + 3] >= 150 && Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]) < 40;
      const count = (d: Uint8ClampedArray) => {
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (near(d, i)) n++;
        return n;
      };
      let best = 0;
      if (at.ms !== undefined) {
        const x = left + Math.round(((at.ms - start) / (end - start)) * width);
        for (let dx = -4; dx <= 4; dx++) best = Math.max(best, count(ctx.getImageData(x + dx, top, 1, height).data) / height);
      } else {
        const y = top + Math.round(at.rowFraction! * height);
        for (let dy = -3; dy <= 3; dy++) best = Math.max(best, count(ctx.getImageData(left, y + dy, width, 1).data) / width);
      }
      return best;
    },
    { rgb, at, start: Number(start), end: Number(end) },
  );
}

const RED: [number, number, number] = [0xef, 0x44, 0x44];

Then(
  'the {string} chart shows a red marker where {string} fired within {int} ms',
  async ({ page }, metric: string, rule: string, ms: number) => {
    const chart = chartOf(page, metric);
    await expect.poll(async () => Number(await chart.getAttribute('data-markers')), { timeout: ms }).toBeGreaterThanOrEqual(1);
    await expect(chart.getByRole('img')).toHaveAccessibleName(/alert change/);
    const fired = (await history(page)).find((e) => e.rule_name === rule && e.to === 'firing');
    expect(fired, 'a firing transition in the history').toBeTruthy();
    // Drawn, not only counted: a red line down most of the plot's height at that time.
    await expect.poll(async () => lineCoverage(chart, RED, { ms: Date.parse(fired!.at) }), { timeout: 5_000 }).toBeGreaterThan(0.8);
  },
);

Then("the {string} chart draws the rule's threshold", async ({ page }, metric: string) => {
  const chart = chartOf(page, metric);
  await expect(chart).toHaveAttribute('data-thresholds', '1');
  // 90 on a 0-100 % axis: a dashed red line a tenth of the way down, red along most of it.
  await expect.poll(async () => lineCoverage(chart, RED, { rowFraction: 0.1 }), { timeout: 5_000 }).toBeGreaterThan(0.4);
});

const notificationsFor = (page: Page, rule: string) =>
  receiverOf(page).received.filter((r) => r.method === 'POST' && r.body?.rule_name === rule);

Then('the webhook received one notification for {string} within {int} ms', async ({ page }, rule: string, ms: number) => {
  await expect.poll(() => notificationsFor(page, rule).length, { timeout: ms }).toBe(1);
  const [body] = notificationsFor(page, rule).map((r) => r.body);
  expect([body.status, body.severity, body.value]).toEqual(['firing', 'critical', 95]);
});

Then('the alert {string} shows the value {float} within {int} ms', async ({ page }, rule: string, value: number, ms: number) => {
  // The evaluator has seen the newer point: the firing instance carries it.
  const current = async () => {
    const answer = await page.request.get(`${server().url}/api/v1/alerts?state=firing`);
    const alerts: { rule_name: string; value: number | null }[] = await answer.json();
    return alerts.find((a) => a.rule_name === rule)?.value;
  };
  await expect.poll(current, { timeout: ms }).toBe(value);
});

Then('the webhook still has one notification for {string}', async ({ page }, rule: string) => {
  expect(notificationsFor(page, rule).length).toBe(1);
});

When('I open the alerting {string} screen of tenant {string}', async ({ page }, screen: string, tenant: string) => {
  const path = screen === 'Inbox' ? '' : `/${screen.toLowerCase()}`;
  await page.goto(`${server().url}/#/t/${tenant}/alerts${path}`);
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  await page.waitForLoadState('networkidle');
});

When('I send a test message to {string}', async ({ page }, channel: string) => {
  await page.getByRole('button', { name: `Send test to ${channel}`, exact: true }).click();
});

Then(
  'the channels screen says the test message to {string} was sent within {int} ms',
  async ({ page }, channel: string, ms: number) => {
    await expect(page.getByTestId('channel-status')).toContainText(`The test message to ${channel} was sent`, { timeout: ms });
  },
);

Then('the delivery log shows a sent {string} notification', async ({ page }, kind: string) => {
  await expect(page.getByLabel('Channel', { exact: true })).not.toHaveValue('');
  await expect(page.locator(`[data-testid="delivery-row"][data-kind="${kind}"][data-status="sent"]`).first()).toBeVisible();
});

Then('the webhook received a test message within {int} ms', async ({ page }, ms: number) => {
  const tests = () =>
    receiverOf(page).received.filter((r) => String(r.body?.rule_name ?? '').startsWith('microdash test notification')).length;
  await expect.poll(tests, { timeout: ms }).toBe(1);
});

/** Elements the keyboard reached without a visible focus indicator, per page. */
const unseenFocus = new WeakMap<Page, string[]>();

/** Press Tab until `target` has the focus, noting every element passed on the way that shows
 * no focus outline. */
async function tabTo(page: Page, target: Locator) {
  const unseen = unseenFocus.get(page) ?? [];
  unseenFocus.set(page, unseen);
  for (let i = 0; i < 200; i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      if (!el || el === document.body) return null;
      const style = getComputedStyle(el);
      const visible = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
      return { visible, what: `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''} "${(el.textContent ?? '').trim().slice(0, 40)}"` };
    });
    if (focused && !focused.visible) unseen.push(focused.what);
    if (await target.evaluate((el) => el === document.activeElement)) return;
  }
  throw new Error(`200 presses of Tab never reached ${target}`);
}

const field = (page: Page, label: string) => page.getByLabel(label);

When('I tab to the link {string} and press Enter', async ({ page }, name: string) => {
  await tabTo(page, page.getByRole('link', { name, exact: true }));
  await page.keyboard.press('Enter');
});

When('I tab to the button {string} and press Enter', async ({ page }, name: string) => {
  await tabTo(page, page.getByRole('button', { name, exact: true }));
  await page.keyboard.press('Enter');
});

When('I tab to the checkbox {string} and press Space', async ({ page }, name: string) => {
  const box = page.getByRole('checkbox', { name, exact: true });
  await tabTo(page, box);
  await page.keyboard.press('Space');
  await expect(box).toBeChecked();
});

Then('the {string} field has the focus', async ({ page }, label: string) => {
  await expect(field(page, label)).toBeFocused();
});

When('I type {string}', async ({ page }, text: string) => {
  await page.keyboard.type(text);
});

When('I tab to the {string} field and choose {string}', async ({ page }, label: string, option: string) => {
  const select = field(page, label);
  await tabTo(page, select);
  // Arrow keys move a closed select's choice (and fire its change event).
  for (let i = 0; i < 200 && (await select.inputValue()) !== option; i++) await page.keyboard.press('ArrowDown');
  await expect(select).toHaveValue(option);
});

When('I tab to the {string} field and type {string}', async ({ page }, label: string, text: string) => {
  await tabTo(page, field(page, label));
  await page.keyboard.type(text);
  await expect(field(page, label)).toHaveValue(text);
});

When('I select the text of the focused field and type {string}', async ({ page }, text: string) => {
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.type(text);
});

Then(
  'the {string} field shows the error {string} within {int} ms',
  async ({ page }, label: string, message: string, ms: number) => {
    const input = field(page, label);
    await expect(input).toHaveAttribute('aria-invalid', 'true', { timeout: ms });
    // The message is next to the field and is the field's description for screen readers.
    await expect(input).toHaveAccessibleDescription(new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  },
);

Then('the preview says {string} within {int} ms', async ({ page }, sentence: string, ms: number) => {
  await expect(page.getByTestId('preview-row').filter({ hasText: sentence })).toBeVisible({ timeout: ms });
});

Then('the rules list shows {string} notifying {string} within {int} ms', async ({ page }, rule: string, channel: string, ms: number) => {
  const row = page.locator(`[data-testid="rule-row"][data-rule="${rule}"]`);
  await expect(row).toBeVisible({ timeout: ms });
  await expect(row).toContainText(channel);
});

Then('every element I tabbed to showed a visible focus indicator', async ({ page }) => {
  expect(unseenFocus.get(page) ?? []).toEqual([]);
});

When('I click the link {string}', async ({ page }, name: string) => {
  await page.getByRole('link', { name, exact: true }).click();
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
});

When('I fill in {string} with {string}', async ({ page }, label: string, text: string) => {
  await field(page, label).fill(text);
});

When('I press the button {string}', async ({ page }, name: string) => {
  await page.getByRole('button', { name, exact: true }).click();
});

Then('the channels list shows {string} with a secret set within {int} ms', async ({ page }, name: string, ms: number) => {
  const row = page.locator(`[data-testid="channel-row"][data-channel="${name}"]`);
  await expect(row).toBeVisible({ timeout: ms });
  await expect(row.getByRole('cell').nth(3)).toHaveText('set');
});

Then('the {string} field is empty and says a secret is set', async ({ page }, label: string) => {
  const input = field(page, label);
  await expect(input).toHaveValue('');
  await expect(input).toHaveAccessibleDescription(/A secret is set/);
});

When('I delete the channel {string}, confirming', async ({ page }, name: string) => {
  page.once('dialog', (dialog) => dialog.accept());
  await page.getByRole('button', { name: `Delete channel ${name}`, exact: true }).click();
});

Then('the channels list does not show {string} within {int} ms', async ({ page }, name: string, ms: number) => {
  await expect(page.getByTestId('channel-status')).toContainText(`Deleted the channel ${name}.`, { timeout: ms });
  await expect(page.locator(`[data-testid="channel-row"][data-channel="${name}"]`)).toHaveCount(0);
});

Given('the server has no alerting API', async ({ page }) => {
  // What a server from before alerting answers.
  const missing = (route: import('@playwright/test').Route) =>
    route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":"not_found","message":"no such endpoint"}' });
  await page.route(/\/api\/v1\/(alert-rules|alerts|channels|notifications)([/?]|$)/, missing);
});

Then('the inbox says alerting is not available', async ({ page }) => {
  await expect(page.getByTestId('alerting-unavailable')).toBeVisible();
  await expect(page.getByText('No history: alerting is not available on this server yet.')).toBeVisible();
  await expect(page.getByRole('alert')).toHaveCount(0);
});

Then('the header shows no firing count', async ({ page }) => {
  await expect(page.getByTestId('firing-count')).toHaveAttribute('data-count', '');
  await expect(page.getByTestId('firing-count')).toHaveText('');
});

// --- The fleet overview ---------------------------------------------------------------------

/** Hosts reporting every second through the API, by page, so a scenario can stop them. */
const reporters = new WeakMap<Page, Map<string, ReturnType<typeof setInterval>>>();

When(
  'the host {string} reports CPU {float}, memory {float} and disk {float} on {string} every second',
  async ({ page }, agent: string, cpu: number, mem: number, disk: number, mount: string) => {
    const send = async () => {
      const response = await fetch(server().url + '/api/v1/metrics', {
        method: 'POST',
        headers: { Authorization: `Bearer ${server().token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify([
          { metric_name: 'cpu.usage_percent', value: cpu, agent_id: agent },
          { metric_name: 'mem.used_percent', value: mem, agent_id: agent },
          { metric_name: 'mem.used_bytes', value: 3 * 1024 ** 3, agent_id: agent },
          { metric_name: 'disk.used_percent', value: disk, agent_id: agent, tags: { mount } },
          { metric_name: 'net.rx_bytes_per_s', value: 2048, agent_id: agent },
          { metric_name: 'uptime_s', value: 90_000, agent_id: agent },
          { metric_name: 'agent.interval_s', value: 1, agent_id: agent },
        ]),
      });
      expect(response.status).toBe(202);
    };
    await send();
    const timers = reporters.get(page) ?? new Map();
    reporters.set(page, timers);
    timers.set(agent, setInterval(() => void send().catch(() => {}), 1000));
    page.on('close', () => timers.forEach((t) => clearInterval(t)));
  },
);

When('the host {string} stops reporting', async ({ page }, agent: string) => {
  clearInterval(reporters.get(page)?.get(agent));
});

const hostRow = (page: Page, agent: string) => page.locator(`[data-testid="host-row"][data-agent="${agent}"]`);

Then(
  'the host {string} shows CPU {float}, memory {float} and disk {float} within {int} ms',
  async ({ page }, agent: string, cpu: number, mem: number, disk: number, ms: number) => {
    const row = hostRow(page, agent);
    await expect(row.getByTestId('bar-cpu')).toHaveAttribute('data-value', String(cpu), { timeout: ms });
    await expect(row.getByTestId('bar-mem')).toHaveAttribute('data-value', String(mem));
    await expect(row.getByTestId('bar-disk')).toHaveAttribute('data-value', String(disk));
    // The values are written out beside the bars, not only drawn.
    await expect(row.getByTestId('bar-cpu')).toContainText(`${cpu}%`);
    await expect(row.getByTestId('bar-disk')).toContainText('/data');
    await expect(row.getByTestId('uptime')).toContainText('1d 1h');
  },
);

Then('the host {string} is {string} within {int} ms', async ({ page }, agent: string, status: string, ms: number) => {
  const row = hostRow(page, agent);
  await expect(row).toHaveAttribute('data-status', status, { timeout: ms });
  await expect(row.getByTestId('host-status')).toContainText(status);
});

Then('the overview uses the full width of a 1920 px screen', async ({ page }) => {
  await page.setViewportSize({ width: 1920, height: 1080 });
  const width = await page.locator('[data-testid="tenant-fleet"]').first().evaluate((el) => el.getBoundingClientRect().width);
  expect(width).toBeGreaterThan(1800);
  await page.setViewportSize({ width: 1280, height: 800 });
});

When('I search the hosts for {string}', async ({ page }, text: string) => {
  await page.getByLabel('Search hosts').fill(text);
});

Then('only the host {string} is listed', async ({ page }, agent: string) => {
  const rows = page.locator('[data-testid="tenant-fleet"][data-tenant="demo"] [data-testid="host-row"]');
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toHaveAttribute('data-agent', agent);
});

When('I sort the hosts by {string}', async ({ page }, label: string) => {
  await page.getByRole('columnheader', { name: label }).first().getByRole('button').click();
});

Then('the hosts of {string} are sorted by CPU, highest first', async ({ page }, tenant: string) => {
  const values = await page
    .locator(`[data-testid="tenant-fleet"][data-tenant="${tenant}"] [data-testid="bar-cpu"]`)
    .evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-value') ?? 'NaN')));
  const known = values.filter((v) => !Number.isNaN(v));
  expect(known.length).toBeGreaterThan(1);
  expect(known).toEqual([...known].sort((a, b) => b - a));
});

Then('the host {string} shows {int} firing alert(s) within {int} ms', async ({ page }, agent: string, n: number, ms: number) => {
  await expect(hostRow(page, agent).getByTestId('host-firing')).toHaveText(`${n} firing`, { timeout: ms });
});

// --- Onboarding in the browser ---------------------------------------------------------------

Given('I am signed in as an admin', async ({ page }) => {
  await signIn(page, server().admin.username, server().admin.password);
});

When('I create the tenant {string} named {string}', async ({ page }, slug: string, name: string) => {
  const form = page.getByRole('form', { name: 'Create a tenant' });
  await form.getByLabel('Slug').fill(slug);
  await form.getByLabel('Display name').fill(name);
  await form.getByRole('button', { name: 'Create tenant' }).click();
});

Then('the tenant {string} is listed', async ({ page }, slug: string) => {
  await expect(page.locator(`[data-testid="tenant-row"][data-tenant="${slug}"]`)).toBeVisible();
});

When('I create the tenant {string} again', async ({ page }, slug: string) => {
  const form = page.getByRole('form', { name: 'Create a tenant' });
  await form.getByLabel('Slug').fill(slug);
  await form.getByRole('button', { name: 'Create tenant' }).click();
});

Then('the form says {string}', async ({ page }, message: string) => {
  await expect(page.getByRole('alert').filter({ hasText: message })).toBeVisible();
});

When('I create the user {string} with password {string} in tenant {string}', async ({ page }, user: string, password: string, tenant: string) => {
  const form = page.getByRole('form', { name: 'Create a user' });
  await form.getByLabel('Username').fill(user);
  await form.getByLabel('Password').fill(password);
  await form.getByLabel('Tenant').selectOption(tenant);
  await form.getByRole('button', { name: 'Create user' }).click();
});

Then('the {string} field says {string}', async ({ page }, label: string, message: string) => {
  const input = page.getByLabel(label, { exact: false }).first();
  await expect(input).toHaveAttribute('aria-invalid', 'true');
  await expect(input).toHaveAccessibleDescription(new RegExp(message));
});

Then('the user {string} is listed in tenant {string}', async ({ page }, user: string, tenant: string) => {
  await expect(page.locator(`[data-testid="user-row"][data-user="${user}"]`)).toContainText(tenant);
});

When('I follow the link {string}', async ({ page }, name: string) => {
  await page.getByRole('link', { name, exact: true }).click();
});

When('I create a token named {string}', async ({ page }, name: string) => {
  const form = page.getByRole('form', { name: 'Create a token' });
  await form.getByLabel('Name').fill(name);
  await form.getByRole('button', { name: 'Create token' }).click();
});

/** The curl command the page shows for the new token, by page. */
const shownCurl = new WeakMap<Page, string>();

Then('the new token is shown once with a copy button and a curl snippet', async ({ page, context }) => {
  await expect(page.getByTestId('new-token')).toBeVisible();
  const token = (await page.getByTestId('new-token').textContent())!.trim();
  expect(token).toMatch(/^mdk_/);
  const curl = (await page.locator('#snippet-curl').textContent())!;
  expect(curl).toContain(token);
  for (const id of ['snippet-agent', 'snippet-rust']) await expect(page.getByTestId(id)).toContainText(token);
  shownCurl.set(page, curl);
  // The copy button puts the token on the clipboard and says so.
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await page.getByRole('button', { name: 'Copy token', exact: true }).click();
  await expect(page.getByText('Copied', { exact: true }).first()).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(token);
});

When('I run the curl snippet', async ({ page }) => {
  const curl = shownCurl.get(page)!;
  // Exactly as shown, through a shell: what a person pasting it would run.
  const out = execSync(curl, { encoding: 'utf8', shell: '/bin/sh' });
  expect(out).toContain('"accepted":1');
});

Then('the page says how to send the first metric', async ({ page }) => {
  await expect(page.getByTestId('first-metric')).toBeVisible();
  await expect(page.locator('#snippet-curl')).toContainText('$MICRODASH_TOKEN');
});

Then('the page no longer says how to send the first metric', async ({ page }) => {
  await expect(page.getByTestId('first-metric')).toHaveCount(0);
});

// --- Keyboard only ---------------------------------------------------------------------------

When('I sign in as {string} with the keyboard', async ({ page }, user: string) => {
  await page.goto(server().url + '/');
  await tabTo(page, page.getByLabel('Username'));
  await page.keyboard.type(user);
  await tabTo(page, page.getByLabel('Password'));
  await page.keyboard.type(server().password);
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'Overview', level: 1 })).toBeVisible();
});

Then('the heading {string} has the focus', async ({ page }, name: string) => {
  await expect(page.getByRole('heading', { name, level: 1 })).toBeFocused();
});

Then('the page is titled {string}', async ({ page }, title: string) => {
  await expect(page).toHaveTitle(title);
});

When('I press {string}', async ({ page }, key: string) => {
  await page.keyboard.press(key);
});

Then('the dialog {string} is open with the focus inside', async ({ page }, metric: string) => {
  const dialog = page.getByRole('dialog', { name: metric });
  await expect(dialog).toBeVisible();
  await expect.poll(() => dialog.evaluate((d) => d.contains(document.activeElement))).toBe(true);
  // Tab and Shift+Tab keep the focus inside.
  for (const key of ['Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Shift+Tab', 'Shift+Tab']) {
    await page.keyboard.press(key);
    expect(await dialog.evaluate((d) => d.contains(document.activeElement))).toBe(true);
  }
});

When('the focus leaves the dialog', async ({ page }) => {
  // What a click beside the panel's controls does: the focus falls to the page.
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
});

Then('no dialog is open and the focus is on the button {string}', async ({ page }, name: string) => {
  await expect(page.getByRole('dialog')).toHaveCount(0);
  await expect(page.getByRole('button', { name, exact: true })).toBeFocused();
});

/** The new token's prefix, by page. */
const newTokens = new WeakMap<Page, string>();

Then('a new token is shown within {int} ms', async ({ page }, ms: number) => {
  await expect(page.getByTestId('new-token')).toBeVisible({ timeout: ms });
  newTokens.set(page, (await page.getByTestId('new-token').textContent())!.trim().slice(0, 12));
});

When('I tab to the revoke button of the new token and press Enter, confirming', async ({ page }) => {
  page.once('dialog', (dialog) => dialog.accept());
  await tabTo(page, page.getByRole('button', { name: `Revoke token ${newTokens.get(page)}`, exact: true }));
  await page.keyboard.press('Enter');
});

Then('the new token is listed as revoked within {int} ms', async ({ page }, ms: number) => {
  const row = page.locator(`[data-testid="token-row"][data-prefix="${newTokens.get(page)}"]`);
  await expect(row).toHaveAttribute('data-revoked', 'true', { timeout: ms });
  await expect(row.getByTestId('revoked')).toHaveText('revoked');
});

// --- Widgets the tenant arranges --------------------------------------------------------------

When('I arrange the widgets', async ({ page }) => {
  await page.getByRole('button', { name: 'Arrange widgets', exact: true }).click();
});

When('I hide the {string} widget', async ({ page }, metric: string) => {
  await page.getByRole('button', { name: `Hide ${metric}`, exact: true }).click();
});

When('I show {string} as {string}', async ({ page }, metric: string, kind: string) => {
  await page.getByLabel(`Type of ${metric}`).selectOption({ label: kind });
});

When('I make {string} {string}', async ({ page }, metric: string, size: string) => {
  await page.getByLabel(`Size of ${metric}`).selectOption(size);
});

Then('the {string} widget is hidden', async ({ page }, metric: string) => {
  await expect(page.getByTestId('hidden-widgets')).toContainText(metric);
  await expect(page.locator(`[data-testid="widgets"] [data-metric="${metric}"]`)).toHaveCount(0);
});

Then('the {string} widget is drawn as {string} in size {string}', async ({ page }, metric: string, kind: string, size: string) => {
  const card = page.locator(`[data-testid="widgets"] [data-metric="${metric}"]`);
  await expect(card).toHaveAttribute('data-kind', kind, { timeout: 10_000 });
  await expect(card).toHaveAttribute('data-size', size);
  await expect(card.getByTestId(kind)).toBeVisible();
});

When('I open the dashboard of tenant {string} in a new browser, signed in as demo', async ({ browser, page }, tenant: string) => {
  const context = await browser.newContext();
  const fresh = await context.newPage();
  await signIn(fresh, 'demo', server().password);
  await fresh.goto(`${server().url}/#/t/${tenant}`);
  await expect(fresh.getByTestId('link-status')).toHaveAttribute('data-connected', 'true', { timeout: 10_000 });
  freshPages.set(page, fresh);
  page.on('close', () => void context.close());
});

/** The page of a second browser context a scenario opened, by the scenario's page. */
const freshPages = new WeakMap<Page, Page>();

Then('in the new browser the {string} widget is hidden', async ({ page }, metric: string) => {
  const fresh = freshPages.get(page)!;
  await expect(fresh.getByTestId('hidden-widgets')).toContainText(metric, { timeout: 10_000 });
  await expect(fresh.locator(`[data-testid="widgets"] [data-metric="${metric}"]`)).toHaveCount(0);
});

Then('in the new browser the {string} widget is drawn as {string}', async ({ page }, metric: string, kind: string) => {
  const fresh = freshPages.get(page)!;
  await expect(fresh.locator(`[data-testid="widgets"] [data-metric="${metric}"]`)).toHaveAttribute('data-kind', kind, { timeout: 10_000 });
});

// --- Live state -------------------------------------------------------------------------------

When('I pause live updates in the header', async ({ page }) => {
  await page.getByTestId('live-switch').click();
});

Then('the header, the badge and every card say paused', async ({ page }) => {
  await expect(page.getByTestId('live-switch')).toHaveText('Live: paused');
  await expect(page.getByTestId('link-status')).toHaveText('paused');
  const states = await page.getByTestId('card-live').evaluateAll((els) => els.map((e) => e.getAttribute('data-state')));
  expect(states.length).toBeGreaterThan(0);
  expect(new Set(states)).toEqual(new Set(['paused']));
});

Then('the header has no live switch', async ({ page }) => {
  await expect(page.getByTestId('live-switch')).toHaveCount(0);
});

/** The API requests of a page since `I load the overview afresh`, as path and query. */
const askedFor = new WeakMap<Page, string[]>();

When('I load the overview afresh', async ({ page }) => {
  // Opened first within the app (a change of the hash), which asks on its own; then loaded
  // anew, and only that load's requests are counted.
  await page.goto(server().url + '/#/');
  await expect(page.locator('[data-testid="host-row"]').first()).toBeVisible();
  const asked: string[] = [];
  askedFor.set(page, asked);
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (url.pathname.startsWith('/api/v1/')) asked.push(url.pathname + url.search);
  });
  await page.reload();
});

Then('the first load asked for the tenants and the fleet once each', async ({ page }) => {
  // prefetch.js asks for both before the app starts, and the app takes those answers rather
  // than asking again (the next fleet refresh is 10 s away).
  const asked = askedFor.get(page) ?? [];
  expect(asked.filter((a) => a === '/api/v1/tenants')).toHaveLength(1);
  expect(asked.filter((a) => a.startsWith('/api/v1/fleet')), asked.join(' ')).toEqual(['/api/v1/fleet']);
});

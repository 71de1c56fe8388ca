import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
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

Then('the {string} screen has no WCAG 2.1 AA violations', async ({ page }, _screen: string) => {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  const found = results.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  expect(found).toEqual([]);
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
Then('the {string} chart shows agent {string} within {int} ms', async ({ page }, metric: string, agentId: string, ms: number) => {
  const legend = page.locator(`[data-metric="${metric}"]`).getByText(agentId, { exact: true });
  await expect(legend).toBeVisible({ timeout: ms });
});

Then('the agent {string} is listed as {string} within {int} ms', async ({ page }, agentId: string, status: string, ms: number) => {
  // The innermost list item holding the agent's link (its tenant's item holds it too).
  const row = page.locator('li', { has: page.getByRole('link', { name: agentId, exact: true }) }).last();
  await expect(row).toContainText(status, { timeout: ms });
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

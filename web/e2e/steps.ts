import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, type Page } from '@playwright/test';
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

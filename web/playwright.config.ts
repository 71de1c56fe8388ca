// Browser tests of the dashboard: Gherkin scenarios (e2e/features) run by playwright-bdd in
// Debian's headless Chromium against the real microdash binary (started in global-setup.ts).
import { defineConfig } from '@playwright/test';
import { defineBddConfig } from 'playwright-bdd';

const testDir = defineBddConfig({
  features: 'e2e/features/*.feature',
  steps: 'e2e/steps.ts',
  outputDir: 'e2e/.features-gen',
});

export default defineConfig({
  testDir,
  globalSetup: './e2e/global-setup.ts',
  workers: 1,
  retries: 0,
  timeout: 30_000,
  reporter: [['list']],
  use: {
    browserName: 'chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    launchOptions: {
      executablePath: process.env.MICRODASH_CHROMIUM ?? '/usr/bin/chromium',
      // Without the background-networking switches Chromium keeps dialling the closed
      // network; no sandbox because CI runs as root.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});

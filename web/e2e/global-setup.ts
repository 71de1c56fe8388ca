// Starts the real `microdash serve --demo` on a free port with a fresh SQLite database and
// the built dashboard, adds a second tenant with its own user and an admin user, and hands the scenarios what
// they need through e2e/.server.json. Returns the teardown that stops the server.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '..', '..');
const bin = process.env.MICRODASH_BIN ?? join(root, 'target', 'debug', 'microdash');
const agentBin = process.env.MICRODASH_AGENT_BIN ?? join(root, 'target', 'debug', 'microdash-agent');
const broker = process.env.MICRODASH_TEST_MQTT_URL ?? 'tcp://127.0.0.1:1883';

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? ok(address.port) : fail(new Error('no port'))));
    });
  });
}

export default async function globalSetup() {
  const dir = mkdtempSync(join(tmpdir(), 'microdash-e2e-'));
  const port = await freePort();
  // Its own topic root on the machine's Mosquitto, so parallel runs do not mix.
  const topicRoot = `e2e-${port}-${process.pid}/metrics`;
  const env = {
    ...process.env,
    MICRODASH_DATABASE_URL: `sqlite://${join(dir, 'e2e.db')}`,
    MICRODASH_WEB_DIR: join(root, 'web', 'dist'),
    MICRODASH_LISTEN_ADDR: `127.0.0.1:${port}`,
    MICRODASH_LOG_FILTER: 'warn',
    MICRODASH_MQTT_URL: broker,
    MICRODASH_MQTT_TOPIC_ROOT: topicRoot,
    MICRODASH_MQTT_CLIENT_ID: `e2e-bridge-${port}-${process.pid}`,
    // Alerting is on by default; a fast evaluator tick keeps the alerting scenarios short.
    MICRODASH_ALERT_TICK_MS: '200',
  };
  const server = spawn(bin, ['serve', '--demo'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  await new Promise<void>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`microdash did not start: ${lines.join('\n')}`)), 20_000);
    server.on('exit', (code) => fail(new Error(`microdash exited with ${code}: ${lines.join('\n')}`)));
    server.stdout.setEncoding('utf8');
    server.stdout.on('data', (chunk: string) => {
      lines.push(...chunk.split('\n'));
      if (lines.some((l) => l.includes('sign in as demo'))) {
        clearTimeout(timer);
        ok();
      }
    });
  });
  const last = (needle: string) => lines.find((l) => l.includes(needle))!.trim().split(' ').pop()!;
  const cli = (args: string[], input?: string) => execFileSync(bin, args, { env, input, encoding: 'utf8' });
  cli(['tenant', 'create', 'other']);
  cli(['user', 'create', 'otheruser', '--tenant', 'other', '--password-stdin'], 'other tenant password\n');
  cli(['user', 'create', 'e2e-admin', '--admin', '--password-stdin'], 'e2e admin password\n');
  writeFileSync(
    join(__dirname, '.server.json'),
    JSON.stringify({
      url: `http://127.0.0.1:${port}`,
      token: last('demo token'),
      password: last('sign in as demo'),
      other: { username: 'otheruser', password: 'other tenant password' },
      admin: { username: 'e2e-admin', password: 'e2e admin password' },
      agent: { bin: agentBin, broker, topicRoot },
    }),
  );
  return async () => {
    const stopped = new Promise((ok) => server.on('exit', ok));
    server.kill('SIGTERM');
    await stopped;
    rmSync(dir, { recursive: true, force: true });
  };
}

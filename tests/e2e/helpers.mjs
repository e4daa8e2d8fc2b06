// Shared by the browser tests: Chromium's flags, free ports, starting
// processes and waiting for them, where artifacts go.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..', '..');
export const binary = process.env.GATEHOUSE_BIN ?? join(root, 'target', 'debug', 'gatehouse');
export const artifacts = join(root, 'artifacts');
mkdirSync(artifacts, { recursive: true });

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/**
 * A port nothing listens on, chosen below the kernel's ephemeral range so
 * that no outgoing connection takes it as its source port before the
 * server meant for it binds (a port from listen(0) is ephemeral and can be).
 * Each process walks its own stretch of the range, from its id.
 */
let nextPort = 0;
/** A new private directory in the system's temporary directory, removed
 * when this test file's process exits (with the configs, keys and stores
 * the test wrote there). */
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function freePort() {
  let [low, high] = [32768, 60999];
  try {
    const r = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (r[0] && r[1]) [low, high] = r;
  } catch {}
  // Below the ephemeral range, or above it when there is no room below.
  const [first, last] = low >= 11000 ? [10000, low] : [Math.min(high + 1, 64535), 65536];
  const span = last - first;
  const start = (process.pid * 7919) % span;
  for (let i = 0; i < span; i++) {
    const port = first + ((start + nextPort++) % span);
    if (await bindable(port)) return port;
  }
  throw new Error('no free port below the ephemeral range');
}

function bindable(port) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Spawns a process and waits until its output matches `ready`. */
export async function start(cmd, args, ready) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const deadline = Date.now() + 20000;
  while (!ready.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill();
      throw new Error(`${cmd} did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, output: () => out };
}

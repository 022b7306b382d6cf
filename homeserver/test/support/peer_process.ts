/**
 * What support/synapse.ts and support/dendrite.ts share: running another homeserver as a child
 * process in a temp dir for interop tests — finding its installed program, picking ports, starting
 * it with its output in a log file, waiting until its client API answers, a client-API request()
 * shaped like TestServer.request, and stopping it (SIGTERM, then SIGKILL) with temp-dir cleanup.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { promisify } from 'node:util';
import type { FederationCluster, IssuedCert } from './federation.js';
import type { RequestOptions, Response } from './harness.js';

const run = promisify(execFile);
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * The installed program: $<envVar> (scripts/test exports it) or the last line printed by
 * scripts/<installScript>, which is idempotent (fast when already installed).
 */
export async function installedProgram(envVar: string, installScript: string): Promise<string> {
  const fromEnv = process.env[envVar];
  if (fromEnv) return fromEnv;
  const { stdout } = await run(path.join(REPO_ROOT, 'scripts', installScript), [], { maxBuffer: 1 << 20 });
  return stdout.trim().split('\n').at(-1)!;
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * What a peer needs before it starts: a temp dir (`hearth-<first label>-…`), a federation and a
 * client port on 127.0.0.1, its server name `<hostname>:<federation port>`, a certificate for
 * `hostname` from the cluster's CA, and `hostname` known to the cluster's TestDns.
 */
export async function preparePeer(cluster: FederationCluster, hostname: string): Promise<{ dir: string; fedPort: number; clientPort: number; serverName: string; clientUrl: string; cert: IssuedCert }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `hearth-${hostname.split('.')[0]}-`));
  const [fedPort, clientPort] = [await freePort(), await freePort()];
  const cert = await cluster.ca.issue({ dns: [hostname] });
  cluster.dns.addHost(hostname, '127.0.0.1');
  return { dir, fedPort, clientPort, serverName: `${hostname}:${fedPort}`, clientUrl: `http://127.0.0.1:${clientPort}`, cert };
}

export interface PeerProcess {
  /** The last lines of the process's stderr/stdout and of any extra log files (for failure messages). */
  logTail(lines?: number): string;
  /** SIGTERM, then SIGKILL after a grace period; removes the temp dir unless $<keepDirEnv> is set. */
  stop(): Promise<void>;
}

/**
 * Spawns `command args` in `dir` with stdout and stderr appended to `dir`/stderr.log and polls
 * `readyUrl` until it answers 2xx. If the process exits or `startTimeoutMs` (default 120 s) passes
 * first, it is stopped and the error carries the log tail.
 */
export async function startPeerProcess(o: {
  /** For error messages: 'Synapse', 'Dendrite'. */
  name: string;
  command: string;
  args: string[];
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Log files besides stderr.log that logTail() shows, after it. */
  extraLogFiles?: string[];
  /** When this env var is set, stop() leaves the temp dir for inspection. */
  keepDirEnv: string;
  readyUrl: string;
  /** For the timeout message: what did not answer, e.g. '/health'. */
  readyWhat: string;
  startTimeoutMs?: number;
}): Promise<PeerProcess> {
  const stderrFile = path.join(o.dir, 'stderr.log');
  const stderr = fs.openSync(stderrFile, 'a');
  const child: ChildProcess = spawn(o.command, o.args, { cwd: o.dir, stdio: ['ignore', stderr, stderr], env: o.env });
  fs.closeSync(stderr);
  let exited: { code: number | null; signal: string | null } | null = null;
  const exit = new Promise<void>((resolve) => child.once('exit', (code, signal) => { exited = { code, signal }; resolve(); }));
  const tail = (file: string, lines: number) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n') : '');
  const logTail = (lines = 40) => [stderrFile, ...(o.extraLogFiles ?? [])].map((f) => tail(f, lines)).join('\n').trim();

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    }
    if (!process.env[o.keepDirEnv]) fs.rmSync(o.dir, { recursive: true, force: true });
  };

  // First start creates the peer's database schemas (several seconds on a busy machine).
  const deadline = Date.now() + (o.startTimeoutMs ?? 120_000);
  for (;;) {
    if (exited) {
      const log = logTail(60);
      await stop();
      throw new Error(`${o.name} exited during start-up (${JSON.stringify(exited)}):\n${log}`);
    }
    const ready = await fetch(o.readyUrl).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      const log = logTail(60);
      await stop();
      throw new Error(`${o.name} did not answer ${o.readyWhat} within the start timeout:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { logTail, stop };
}

/** A client-API request against `baseUrl`, shaped like TestServer.request so support/rooms.ts helpers work on a peer. */
export function clientRequester(baseUrl: string): (method: string, path: string, opts?: RequestOptions) => Promise<Response> {
  return async (method, p, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    let body: string | Buffer | undefined;
    if (o.rawBody !== undefined) body = o.rawBody;
    else if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(`${baseUrl}${p}`, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text.length ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON: leave the text */
    }
    return { status: res.status, body: parsed, headers: Object.fromEntries(res.headers) };
  };
}

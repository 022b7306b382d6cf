/**
 * Separate hosts on one machine: a private virtual network of Linux network namespaces (root only)
 * for real Hearth processes started inside them (support/netns_hearth.ts).
 *
 * Layout of one network (id = `<pid><letter>`, unique per process and per network in it), all in
 * 10.213.<x>.0/24 with <x> picked free:
 *   - a bridge `hnb<id>` in the root namespace, 10.213.x.1/25: the "internet" between the servers;
 *   - per server i, a namespace `hearthns-<id>-<label>` with loopback up and two links:
 *       `fed0` (veth to the bridge), 10.213.x.(10+i)/25: what the servers federate over, and what
 *         `cut`/`restore` take down and up (a real partition; the process keeps running);
 *       `ctl0` (veth straight to the root namespace), 10.213.x.(128+4i+2)/30: how the test process
 *         reaches the client API, also while the server is cut off from the others (its own users
 *         are on its side of the partition). Namespaces have no route to each other's ctl0.
 *   - /etc/netns/<ns>/hosts (bind-mounted over /etc/hosts by `ip netns exec`) maps every server's
 *     hostname to its fed0 address, so the system resolver (getaddrinfo) finds the other hosts, and
 *     /etc/netns/<ns>/resolv.conf points at the namespace's own loopback where no DNS server
 *     listens: SRV queries fail at once (ECONNREFUSED) and resolution falls back to A records.
 * The bridge does not pass its frames to the host firewall (nf_call_iptables 0): Docker hosts drop
 * forwarded traffic by default.
 *
 * Leftovers (namespaces, links, /etc/netns dirs, temp dirs) of networks whose process is gone are
 * removed before a new network is made; teardown is synchronous so it also runs from an exit hook.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const NS_PREFIX = 'hearthns-';
const NS_RE = /^hearthns-(\d+)([a-z])-/;
/** Root-namespace link names: hn + kind (b bridge, f/p fed veth ends, c/q ctl veth ends) + id + index. */
const LINK_RE = /^hn[bfpcq](\d+)([a-z])\d*$/;
const TMP_PREFIX = 'hearth-netns-';
const TMP_RE = /^hearth-netns-(\d+)([a-z])-/;
const ETC_NETNS = '/etc/netns';
const MAX_HOSTS = 30;

/** Why this machine cannot build namespaces (not root, no iproute2), or null when it can. */
export function netnsSkipReason(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'pipe' });
  } catch (err) {
    return `\`ip netns\` is unavailable (install iproute2): ${(err as Error).message.split('\n')[0]}`;
  }
  return null;
}

/** Runs `ip …`; a failure names the command and ip's own message. */
export function ip(...args: string[]): string {
  try {
    return execFileSync('ip', args, { stdio: 'pipe', encoding: 'utf8' });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr || e.message).trim()}`, { cause: err });
  }
}

const quietly = (f: () => unknown): void => {
  try {
    f();
  } catch {
    /* already gone */
  }
};

export interface NetnsHost {
  label: string;
  index: number;
  /** Network namespace name (`ip netns exec <ns> …`). */
  ns: string;
  /** `<label>.<domain>`, in every namespace's hosts file. */
  hostname: string;
  /** Address on the shared bridge (what the other servers reach). */
  fedIp: string;
  /** Address on the private link to the root namespace (what the test process reaches). */
  ctlIp: string;
}

export interface VirtualNetwork {
  id: string;
  /** `10.213.x` */
  subnet: string;
  /** The root namespace's address on the bridge. */
  bridgeIp: string;
  /** A temp directory removed with the network (data dirs, certificates, logs). */
  dir: string;
  hosts: Record<string, NetnsHost>;
  host(label: string): NetnsHost;
  /** Takes the server's bridge link down: it can no longer reach the others nor they it. */
  cut(label: string): void;
  restore(label: string): void;
  /** Starts `command args…` inside the server's namespace (`ip netns exec`, which execs in place: the child's pid is the command's). */
  spawn(label: string, command: string, args: string[], opts: { env: NodeJS.ProcessEnv; cwd: string }): ChildProcess;
  /** Kills what still runs in the namespaces, removes namespaces, links, /etc/netns dirs and the temp dir. Idempotent. */
  teardown(): void;
}

export interface NetworkOptions {
  /** Hostnames are `<label>.<domain>` (default `hearth.test`). */
  domain?: string;
  /** Overrides hosts-file entries in one namespace: `(label) => { hostname: address }` (deliberate breakage). */
  hostsOverride?: (label: string) => Record<string, string>;
}

let sequence = 0;
/** Networks of this process that are up (their names must survive the leftover sweep). */
const live = new Set<string>();
const exitHooked = new Map<string, () => void>();

export function createVirtualNetwork(labels: string[], opts: NetworkOptions = {}): VirtualNetwork {
  if (labels.length === 0 || labels.length > MAX_HOSTS) throw new Error(`between 1 and ${MAX_HOSTS} hosts, got ${labels.length}`);
  removeLeftovers();
  const id = `${process.pid}${String.fromCharCode(97 + (sequence++ % 26))}`;
  const subnet = `10.213.${pickFreeOctet()}`;
  const bridge = `hnb${id}`;
  const domain = opts.domain ?? 'hearth.test';
  const hosts: Record<string, NetnsHost> = {};
  labels.forEach((label, index) => {
    hosts[label] = { label, index, ns: `${NS_PREFIX}${id}-${label}`, hostname: `${label}.${domain}`, fedIp: `${subnet}.${10 + index}`, ctlIp: `${subnet}.${128 + 4 * index + 2}` };
  });
  live.add(id);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${id}-`));
  const children = new Set<ChildProcess>();
  let down = false;

  const teardown = () => {
    if (down) return;
    down = true;
    for (const c of children) if (c.exitCode === null && c.signalCode === null) quietly(() => c.kill('SIGKILL'));
    for (const h of Object.values(hosts)) {
      killNamespace(h.ns);
      // A namespace can outlive its deletion (orphaned sockets hold it): remove our ends of its links
      // explicitly (a veth goes with either end), so nothing of it stays attached here.
      for (const kind of ['f', 'c']) quietly(() => ip('link', 'del', `hn${kind}${id}${h.index}`));
    }
    quietly(() => ip('link', 'del', bridge));
    for (const h of Object.values(hosts)) fs.rmSync(path.join(ETC_NETNS, h.ns), { recursive: true, force: true });
    quietly(() => fs.rmdirSync(ETC_NETNS)); // only when empty: other runs' entries stay
    fs.rmSync(dir, { recursive: true, force: true });
    live.delete(id);
    const hook = exitHooked.get(id);
    if (hook) process.off('exit', hook);
    exitHooked.delete(id);
  };
  // A crash that skips the test's after hook must not leave servers and namespaces behind.
  exitHooked.set(id, teardown);
  process.on('exit', teardown);

  try {
    ip('link', 'add', bridge, 'type', 'bridge', 'nf_call_iptables', '0', 'nf_call_ip6tables', '0', 'nf_call_arptables', '0');
    ip('addr', 'add', `${subnet}.1/25`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    for (const h of Object.values(hosts)) {
      const n = h.ns;
      ip('netns', 'add', n);
      ip('-n', n, 'link', 'set', 'lo', 'up');
      // fed0: veth with one end on the bridge.
      const [fedRoot, fedPeer] = [`hnf${id}${h.index}`, `hnp${id}${h.index}`];
      ip('link', 'add', fedRoot, 'type', 'veth', 'peer', 'name', fedPeer);
      ip('link', 'set', fedPeer, 'netns', n);
      ip('-n', n, 'link', 'set', fedPeer, 'name', 'fed0');
      ip('-n', n, 'addr', 'add', `${h.fedIp}/25`, 'dev', 'fed0');
      ip('-n', n, 'link', 'set', 'fed0', 'up');
      ip('link', 'set', fedRoot, 'master', bridge);
      ip('link', 'set', fedRoot, 'up');
      // ctl0: a point-to-point /30 to the root namespace.
      const [ctlRoot, ctlPeer] = [`hnc${id}${h.index}`, `hnq${id}${h.index}`];
      ip('link', 'add', ctlRoot, 'type', 'veth', 'peer', 'name', ctlPeer);
      ip('addr', 'add', `${subnet}.${128 + 4 * h.index + 1}/30`, 'dev', ctlRoot);
      ip('link', 'set', ctlRoot, 'up');
      ip('link', 'set', ctlPeer, 'netns', n);
      ip('-n', n, 'link', 'set', ctlPeer, 'name', 'ctl0');
      ip('-n', n, 'addr', 'add', `${h.ctlIp}/30`, 'dev', 'ctl0');
      ip('-n', n, 'link', 'set', 'ctl0', 'up');
      // What `ip netns exec` bind-mounts over /etc/hosts and /etc/resolv.conf.
      const etc = path.join(ETC_NETNS, n);
      fs.mkdirSync(etc, { recursive: true });
      const entries = new Map(Object.values(hosts).map((o) => [o.hostname, o.fedIp]));
      for (const [name, addr] of Object.entries(opts.hostsOverride?.(h.label) ?? {})) entries.set(name, addr);
      const lines = ['127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback', ...[...entries].map(([name, addr]) => `${addr} ${name}`)];
      fs.writeFileSync(path.join(etc, 'hosts'), `# ${n}: Hearth test network ${id}\n${lines.join('\n')}\n`);
      fs.writeFileSync(path.join(etc, 'resolv.conf'), '# no DNS server in this namespace: queries are refused at once\nnameserver 127.0.0.1\noptions attempts:1 timeout:1\n');
    }
  } catch (err) {
    teardown();
    throw err;
  }

  return {
    id,
    subnet,
    bridgeIp: `${subnet}.1`,
    dir,
    hosts,
    host(label) {
      const h = hosts[label];
      if (!h) throw new Error(`no host '${label}' in network ${id}`);
      return h;
    },
    cut(label) {
      ip('-n', this.host(label).ns, 'link', 'set', 'fed0', 'down');
    },
    restore(label) {
      ip('-n', this.host(label).ns, 'link', 'set', 'fed0', 'up');
    },
    spawn(label, command, args, o) {
      const child = spawn('ip', ['netns', 'exec', this.host(label).ns, command, ...args], { cwd: o.cwd, env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    teardown,
  };
}

/** SIGKILLs every process in the namespace, waits (briefly) until they are gone, deletes it. */
function killNamespace(ns: string): void {
  for (let round = 0; round < 50; round++) {
    let pids: number[];
    try {
      pids = ip('netns', 'pids', ns).split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return; // no such namespace
    }
    if (pids.length === 0) break;
    for (const pid of pids) quietly(() => process.kill(pid, 'SIGKILL'));
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
  quietly(() => ip('netns', 'del', ns));
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** A network id left by a process that is gone (or by an earlier use of our pid), not one of ours that is up. */
const stale = (pid: string, letter: string): boolean => !live.has(`${pid}${letter}`) && (Number(pid) === process.pid || !alive(Number(pid)));

/** Removes what crashed or killed runs left behind: namespaces (and their processes), links, /etc/netns dirs, temp dirs. */
export function removeLeftovers(): void {
  for (const line of ip('netns', 'list').split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = NS_RE.exec(name);
    if (m && stale(m[1]!, m[2]!)) killNamespace(name);
  }
  for (const line of ip('-o', 'link', 'show').split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1] ?? '';
    const m = LINK_RE.exec(name);
    if (m && stale(m[1]!, m[2]!)) quietly(() => ip('link', 'del', name));
  }
  if (fs.existsSync(ETC_NETNS)) {
    for (const name of fs.readdirSync(ETC_NETNS)) {
      const m = NS_RE.exec(name);
      if (m && stale(m[1]!, m[2]!)) fs.rmSync(path.join(ETC_NETNS, name), { recursive: true, force: true });
    }
    quietly(() => fs.rmdirSync(ETC_NETNS));
  }
  for (const name of fs.readdirSync(os.tmpdir())) {
    const m = TMP_RE.exec(name);
    if (m && stale(m[1]!, m[2]!)) fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
  }
}

/** A third octet for 10.213.<x>.0/24 that no address of this host uses yet (starting from our pid). */
function pickFreeOctet(): number {
  const used = ip('-4', '-o', 'addr', 'show');
  for (let i = 0; i < 256; i++) {
    const x = (process.pid + sequence + i) % 256;
    if (!used.includes(` 10.213.${x}.`)) return x;
  }
  throw new Error('no free 10.213.x.0/24 for a test network');
}

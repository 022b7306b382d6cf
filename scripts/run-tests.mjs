#!/usr/bin/env node
// Root test runner, the `npm test` entry.
//
//   npm test                       every workspace's test folder
//   npm test -- login sync         only test files whose path matches /login/i or /sync/i
//   npm test -- --bail login       uvu flags (-b/--bail, -i/--ignore X, -r/--require X) pass through
//
// One uvu child process per test folder (homeserver/test, sfu/test, web-client/test,
// packages/*/test, plus any other workspace's test/), sequentially, output streamed.
// uvu's summaries are parsed and a final line `N passed, N failed[, N skipped]` is printed.
// Exit status is non-zero if any run failed, crashed, hung, or no test ran at all.
//
// Environment:
//   HEARTH_TEST_DIRS            list of test folders (':'-separated, relative to the repo
//                               root or absolute) replacing the workspace discovery
//   HEARTH_TEST_TIMEOUT_MS      kill a run after this long (default 1800000 = 30 min)
//   HEARTH_TEST_EXIT_GRACE_MS   a run that printed its summary but has not exited after this
//                               long (open handles) is killed and counted as failed (default 30000); before the
//                               kill it is asked (SIGUSR2) to print its open handles
//   HEARTH_TEST_TRACE_TIMERS=1   (debugging) that report also names where each live timer was created
//   HEARTH_TEST_EXIT_AFTER_SUMMARY_MS  a run still alive this long after uvu's summary prints its open
//                               resources and exits with uvu's code (default 5000; 0 disables)
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const uvuBin = path.join(root, 'node_modules', 'uvu', 'bin.js');
const tsxUrl = import.meta.resolve('tsx'); // absolute, so test folders outside the repo work too
const handlesUrl = new URL('./report-handles.mjs', import.meta.url).href;
const TEST_FILE = /\.test\.ts$/i;
const UVU_PATTERN = '\\.test\\.ts$';
const UVU_IGNORES = [/^.git/i, /node_modules/i]; // the names uvu itself never descends into
const TIMEOUT_MS = Number(process.env.HEARTH_TEST_TIMEOUT_MS ?? 30 * 60_000);
const EXIT_GRACE_MS = Number(process.env.HEARTH_TEST_EXIT_GRACE_MS ?? 30_000);

// ---- arguments: uvu flags pass through, positional arguments are file filters ----
const uvuFlags = [];
const filters = [];
{
  const args = process.argv.slice(2);
  const takesValue = new Set(['-i', '--ignore', '-r', '--require', '-C', '--cwd']);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') continue;
    if (a.startsWith('-')) {
      uvuFlags.push(a);
      if (takesValue.has(a) && i + 1 < args.length) uvuFlags.push(args[++i]);
    } else {
      filters.push(toRegex(a));
    }
  }
  const wantsColor = uvuFlags.some((f) => /^(-c|--color)(=|$)/.test(f) || f === '--no-color');
  if (!wantsColor && !process.stdout.isTTY) uvuFlags.push('--no-color');
}

function toRegex(s) {
  try {
    return new RegExp(s, 'i');
  } catch {
    return new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i');
  }
}
const escapeRegex = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

// ---- which test folders ----
function workspaceDirs() {
  const dirs = new Set(['homeserver', 'sfu', 'web-client']);
  const patterns = ['packages/*'];
  try {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
    const ws = Array.isArray(pkg.workspaces) ? pkg.workspaces : (pkg.workspaces?.packages ?? []);
    patterns.push(...ws);
  } catch {
    /* no or unreadable package.json: defaults only */
  }
  for (const p of patterns) {
    if (p.endsWith('/*')) {
      const parent = path.join(root, p.slice(0, -2));
      if (!isDir(parent)) continue;
      for (const name of readdirSync(parent).sort()) dirs.add(`${p.slice(0, -2)}/${name}`);
    } else {
      dirs.add(p.replace(/\/$/, ''));
    }
  }
  return [...dirs].map((d) => path.join(root, d, 'test'));
}

function isDir(p) {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

// Same walk as uvu's parser: names relative to the test folder, '.git*' and node_modules skipped.
function listTestFiles(dir, rel = '') {
  const out = [];
  for (const name of readdirSync(path.join(dir, rel))) {
    const relName = rel ? `${rel}/${name}` : name;
    if (UVU_IGNORES.some((r) => r.test(relName))) continue;
    if (isDir(path.join(dir, relName))) out.push(...listTestFiles(dir, relName));
    else if (TEST_FILE.test(relName)) out.push(relName);
  }
  return out.sort();
}

const testDirs = process.env.HEARTH_TEST_DIRS
  ? process.env.HEARTH_TEST_DIRS.split(':').filter(Boolean).map((d) => path.resolve(root, d))
  : workspaceDirs();

// ---- one uvu run ----
let current = null; // the running child, for signal forwarding
const killGroup = (child, sig) => {
  try {
    process.kill(-child.pid, sig);
    return true;
  } catch {
    return false;
  }
};
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (current) killGroup(current, 'SIGTERM');
    console.error(`\nrun-tests: ${sig}, stopping`);
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

// eslint-disable-next-line no-control-regex -- ANSI colour codes
const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

function runUvu(testDir, pattern) {
  const cwd = path.dirname(testDir); // the workspace folder, like `npm test -w <ws>` would use
  const env = { ...process.env };
  env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import ${tsxUrl} --import ${handlesUrl} --conditions=source`.trim();
  // Without a tsconfig.json tsx compiles decorators as TC39 ones; use the type-check config instead.
  if (!env.TSX_TSCONFIG_PATH && !existsSync(path.join(cwd, 'tsconfig.json'))) {
    const check = path.join(cwd, 'tsconfig.check.json');
    if (existsSync(check)) env.TSX_TSCONFIG_PATH = check;
  }
  const args = [uvuBin, path.basename(testDir), pattern, ...uvuFlags];

  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true, // own process group: a hung run can be killed with everything it started
    });
    current = child;
    let tail = '';
    let note = '';
    let graceTimer = null;
    const timeout = setTimeout(() => {
      note = `timed out after ${TIMEOUT_MS} ms`;
      killGroup(child, 'SIGKILL');
    }, TIMEOUT_MS);
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString('utf8')).slice(-65536);
      if (!graceTimer && /Duration:/.test(strip(tail))) {
        graceTimer = setTimeout(() => {
          note = `still running ${EXIT_GRACE_MS} ms after its summary (open handles?), killed`;
          try {
            child.kill('SIGUSR2'); // report-handles.mjs prints what is still open
          } catch {
            /* already gone */
          }
          setTimeout(() => killGroup(child, 'SIGKILL'), 1000);
        }, EXIT_GRACE_MS);
      }
    });
    child.on('error', (err) => {
      note = `could not start: ${err.message}`;
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timeout);
      clearTimeout(graceTimer);
      // Anything the tests started and left behind (servers, esbuild's service) dies with the run.
      killGroup(child, 'SIGKILL');
      const done = () => {
        current = null;
        resolve({ code, signal, text: strip(tail), note });
      };
      if (child.stdout.readableEnded) done();
      else {
        child.stdout.once('end', done);
        setTimeout(done, 2000).unref();
      }
    });
  });
}

function parseSummary(text) {
  const last = (re) => {
    const all = [...text.matchAll(re)];
    return all.length ? Number(all[all.length - 1][1]) : null;
  };
  const total = last(/^\s*Total:\s+(\d+)/gm);
  const passed = last(/^\s*Passed:\s+(\d+)/gm);
  const skipped = last(/^\s*Skipped:\s+(\d+)/gm);
  if (total === null || passed === null) return null;
  return { total, passed, skipped: skipped ?? 0 };
}

// ---- main ----
let passed = 0;
let failed = 0;
let skipped = 0;
let runs = 0;
const report = [];

for (const dir of testDirs) {
  const rel = path.relative(root, dir) || '.';
  if (!isDir(dir)) continue;
  let files = listTestFiles(dir);
  if (filters.length) {
    files = files.filter((f) => {
      const full = path.relative(root, path.join(dir, f)).split(path.sep).join('/');
      return filters.some((r) => r.test(f) || r.test(full));
    });
  }
  if (files.length === 0) {
    report.push(`  ${rel}: no ${filters.length ? 'matching ' : ''}test files`);
    continue;
  }
  const pattern = filters.length ? `^(?:${files.map(escapeRegex).join('|')})$` : UVU_PATTERN;

  console.log(`\n=== ${rel} (${files.length} file${files.length === 1 ? '' : 's'}) ===`);
  runs++;
  const r = await runUvu(dir, pattern);
  const s = parseSummary(r.text);
  let line;
  if (!s) {
    failed += 1;
    line = `crashed (${r.note || (r.signal ? `signal ${r.signal}` : `exit code ${r.code}`)}, no uvu summary)`;
  } else {
    let f = s.total - s.passed;
    const unclean = r.note || r.code !== 0;
    if (unclean && f === 0) f = 1; // the tests passed but the process did not end cleanly
    passed += s.passed;
    skipped += s.skipped;
    failed += f;
    line = `${s.passed} passed, ${f} failed, ${s.skipped} skipped`;
    if (unclean) line += ` — ${r.note || (r.signal ? `signal ${r.signal}` : `exit code ${r.code}`)}`;
  }
  report.push(`  ${rel}: ${line}`);
}

console.log('\n=== summary ===');
for (const l of report) console.log(l);
if (runs === 0 || (passed === 0 && failed === 0)) {
  console.log(
    filters.length
      ? `  no tests matched ${filters.map(String).join(' ')}`
      : `  no tests found (looked in: ${
          testDirs
            .filter(isDir)
            .map((d) => path.relative(root, d) || '.')
            .join(', ') || 'no test folder exists'
        })`,
  );
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;

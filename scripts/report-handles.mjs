// Loaded into test runs by run-tests.mjs: on SIGUSR2 it prints what keeps the process alive, so a
// run that hangs after its summary names its open handles before it is killed.
//
// uvu never exits by itself: it waits for the event loop to empty. Once its summary is printed the
// results are final, so a leftover timer must not turn a green run red (or hold CI): after
// HEARTH_TEST_EXIT_AFTER_SUMMARY_MS (default 5000) the run reports what was still open, loudly,
// and exits with uvu's own exit code.
const exitAfterSummaryMs = Number(process.env.HEARTH_TEST_EXIT_AFTER_SUMMARY_MS ?? 5000);
if (exitAfterSummaryMs > 0) {
  const write = process.stdout.write.bind(process.stdout);
  let armed = false;
  process.stdout.write = (chunk, ...rest) => {
    if (!armed && /Duration:/.test(String(chunk))) {
      armed = true;
      setTimeout(() => {
        process.stderr.write(`\n[warning] still running ${exitAfterSummaryMs} ms after the summary; open resources below. Exiting with uvu's code.\n`);
        process.emit('SIGUSR2');
        process.exit(process.exitCode ?? 0);
      }, exitAfterSummaryMs).unref();
    }
    return write(chunk, ...rest);
  };
}

process.on('SIGUSR2', () => {
  const describe = (h) => {
    const name = h?.constructor?.name ?? typeof h;
    if (name === 'Timeout') return `Timeout(${h._idleTimeout} ms${h._repeat ? ', repeating' : ''})`;
    if (name === 'Socket' || name === 'TLSSocket') return `${name}(${h.remoteAddress ?? h.localAddress ?? '?'}:${h.remotePort ?? h.localPort ?? '?'})`;
    if (name === 'Server') return `Server(${JSON.stringify(h.address?.())})`;
    return name;
  };
  const handles = process._getActiveHandles().map(describe);
  const requests = process._getActiveRequests().map(describe);
  const resources = process.getActiveResourcesInfo().join(', ');
  process.stderr.write(
    `\n[open resources] ${resources || 'none'}\n[open handles] ${handles.join(', ') || 'none'}\n[open requests] ${requests.join(', ') || 'none'}\n`,
  );
});

// With HEARTH_TEST_TRACE_TIMERS=1, also remember where each live timer, pipe and child process was created (costly: debug only).
if (process.env.HEARTH_TEST_TRACE_TIMERS === '1') {
  const { createHook } = await import('node:async_hooks');
  const live = new Map();
  createHook({
    init(id, type) {
      // Timers, and the pipes and processes behind child-process stdio (PipeWrap + Socket leftovers).
      if (type === 'Timeout' || type === 'PIPEWRAP' || type === 'PROCESSWRAP') live.set(id, `${type}: ${new Error().stack.split('\n').slice(3, 12).join(' | ')}`);
    },
    destroy(id) {
      live.delete(id);
    },
  }).enable();
  process.on('SIGUSR2', () => {
    for (const stack of live.values()) process.stderr.write(`[live] ${stack}\n`);
  });
}

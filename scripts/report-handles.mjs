// Loaded into test runs by run-tests.mjs: on SIGUSR2 it prints what keeps the process alive, so a
// run that hangs after its summary names its open handles before it is killed.
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

// With HEARTH_TEST_TRACE_TIMERS=1, also remember where each live timer was created (costly: debug only).
if (process.env.HEARTH_TEST_TRACE_TIMERS === '1') {
  const { createHook } = await import('node:async_hooks');
  const live = new Map();
  createHook({
    init(id, type) {
      if (type === 'Timeout') live.set(id, new Error().stack.split('\n').slice(3, 9).join(' | '));
    },
    destroy(id) {
      live.delete(id);
    },
  }).enable();
  process.on('SIGUSR2', () => {
    for (const stack of live.values()) process.stderr.write(`[live timer] ${stack}\n`);
  });
}

// Preloaded (--import) into the homeserver process the bench starts, which runs with --expose-gc and
// an IPC channel. On request it collects garbage and answers process.memoryUsage(), so the bench
// can measure the server's own memory (not its own) before and after opening connections.

interface MemRequest {
  type: 'hearth-bench-mem';
  id: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

if (process.send) {
  process.on('message', (m: MemRequest) => {
    if (!m || m.type !== 'hearth-bench-mem') return;
    // Two passes: the first can leave finalizable objects behind for the second.
    gc?.();
    gc?.();
    process.send!({ type: 'hearth-bench-mem', id: m.id, usage: process.memoryUsage(), gc: gc !== undefined });
  });
  // The channel alone must not keep the server alive once it decides to exit.
  process.channel?.unref();
}

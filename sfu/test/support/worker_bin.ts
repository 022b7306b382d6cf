// Imported first by every SFU test (before anything loads mediasoup, which reads
// MEDIASOUP_WORKER_BIN once when it loads): scripts/test exports it; a bare `npm test` finds or
// builds it with the same script.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

if (!process.env.MEDIASOUP_WORKER_BIN) {
  const script = fileURLToPath(new URL('../../../scripts/build-mediasoup-worker', import.meta.url));
  const out = execFileSync(script, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.env.MEDIASOUP_WORKER_BIN = out.trim().split('\n').pop();
}

/** Server discovery and identity (spec: wellknown.yaml, version.yaml). Unauthenticated. */
import fs from 'node:fs';
import type { AppDeps, AppRouter } from '../../app.js';

/** Read once from the homeserver's package.json (two levels above `api/federation`, in src/ and dist/ alike). */
function hearthVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export function discoveryRoutes(router: AppRouter, deps: AppDeps): void {
  const delegated = deps.config.federation.wellKnownServer;
  // Only when configured: without it, servers fall through to SRV and port 8448 as they should.
  if (delegated !== undefined) {
    router.get('/.well-known/matrix/server', (ctx) => {
      ctx.set('Cache-Control', 'max-age=86400');
      ctx.body = { 'm.server': delegated };
    });
  }
  const version = hearthVersion();
  router.get('/_matrix/federation/v1/version', (ctx) => {
    ctx.body = { server: { name: 'Hearth', version } };
  });
}

import type { AppRouter, AppDeps } from '../app.js';
import { SUPPORTED_VERSIONS } from './client/versions.js';

/** Unprefixed endpoints: discovery, spec versions, health. */
export function wellKnownRoutes(router: AppRouter, deps: AppDeps): void {
  router.get('/.well-known/matrix/client', (ctx) => {
    const sfu = deps.config.calls.sfuPublicUrl; // MSC4143 RTC focus discovery (protocol-spec/calls.md)
    ctx.body = {
      'm.homeserver': { base_url: deps.config.publicBaseUrl.replace(/\/$/, '') },
      ...(sfu ? { 'org.matrix.msc4143.rtc_foci': [{ type: 'hearth_sfu', url: sfu }] } : {}),
    };
  });
  router.get('/_matrix/client/versions', (ctx) => {
    ctx.body = { versions: SUPPORTED_VERSIONS, unstable_features: {} };
  });
  router.get('/health', async (ctx) => {
    const checks: Record<string, string> = {};
    try {
      await deps.db.query('select 1');
      checks.database = 'ok';
    } catch {
      checks.database = 'failed';
    }
    if (deps.bus.kind === 'redis') {
      try {
        await deps.bus.ping();
        checks.redis = 'ok';
      } catch {
        checks.redis = 'failed';
      }
    }
    const ok = Object.values(checks).every((v) => v === 'ok');
    ctx.status = ok ? 200 : 503;
    ctx.body = { status: ok ? 'ok' : 'unhealthy', checks };
  });
}

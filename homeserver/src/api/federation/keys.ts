/**
 * Key exchange (spec: "Retrieving server keys"; keys_server.yaml, keys_query.yaml). Unauthenticated
 * by design: anyone may ask for keys, and every answer is signed.
 */
import type { AppDeps, AppRouter } from '../../app.js';
import { badJson, invalidParam, missingParam } from '../../core/errors.js';
import { isObject } from '../../core/json.js';
import type { NotaryQuery } from '../../services/federation/notary.js';

function timestampParam(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d{1,16}$/.test(v) || !Number.isSafeInteger(Number(v))) throw invalidParam(`'${name}' must be a timestamp in milliseconds`);
  return Number(v);
}

export function keyRoutes(router: AppRouter, deps: AppDeps): void {
  const { notary, config } = deps.services.federation;

  router.get('/_matrix/key/v2/server', (ctx) => {
    ctx.body = notary.ownKeys();
  });

  router.get('/_matrix/key/v2/query/:serverName', async (ctx) => {
    const min = timestampParam(ctx.query.minimum_valid_until_ts, 'minimum_valid_until_ts') ?? Date.now();
    ctx.body = { server_keys: await notary.query([{ serverName: ctx.params.serverName!, keyIds: [], minimumValidUntilTs: min }]) };
  });

  router.post('/_matrix/key/v2/query', async (ctx) => {
    const body = ctx.request.json;
    if (body.server_keys === undefined) throw missingParam('server_keys');
    if (!isObject(body.server_keys)) throw badJson("'server_keys' must be an object");
    const entries = Object.entries(body.server_keys);
    if (entries.length > config.notaryMaxServers) throw badJson(`At most ${config.notaryMaxServers} servers per query`);
    const now = Date.now();
    const queries: NotaryQuery[] = entries.map(([serverName, criteria]) => {
      if (!isObject(criteria)) throw badJson(`'server_keys.${serverName}' must be an object`);
      let min = now;
      for (const [keyId, c] of Object.entries(criteria)) {
        if (!isObject(c)) throw badJson(`'server_keys.${serverName}.${keyId}' must be an object`);
        const ts = c.minimum_valid_until_ts;
        if (ts === undefined) continue;
        if (typeof ts !== 'number' || !Number.isSafeInteger(ts)) throw badJson("'minimum_valid_until_ts' must be an integer");
        min = Math.max(min, ts);
      }
      return { serverName, keyIds: Object.keys(criteria), minimumValidUntilTs: min };
    });
    ctx.body = { server_keys: await notary.query(queries) };
  });
}

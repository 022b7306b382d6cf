import type { Area } from '../../app.js';
import { missingParam } from '../../core/errors.js';
import { parseToken } from '../../services/sync/token.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { passwordStage } from './uia_stages.js';

/**
 * End-to-end encryption keys (spec: "End-to-End Encryption"; keys.yaml, cross_signing.yaml): device,
 * one-time and fallback keys, cross-signing keys and signatures, and which users' devices changed.
 */
export const keysArea: Area = (router, deps) => {
  const { services } = deps;
  const { keys, crossSigning, deviceLists } = services.e2e;
  const auth = requireAuth(services.sessions);

  router.post('/keys/upload', auth, async (ctx) => {
    const r = requesterOf(ctx);
    ctx.body = await keys.upload({ userId: r.userId, deviceId: r.deviceId }, ctx.request.json);
  });

  router.post('/keys/query', auth, async (ctx) => {
    ctx.body = await keys.query(requesterOf(ctx).userId, ctx.request.json);
  });

  router.post('/keys/claim', auth, async (ctx) => {
    ctx.body = await keys.claim(ctx.request.json);
  });

  router.get('/keys/changes', auth, async (ctx) => {
    const { from, to } = ctx.query;
    if (typeof from !== 'string' || from === '') throw missingParam('from');
    if (typeof to !== 'string' || to === '') throw missingParam('to');
    const after = parseToken(from, 'from token').deviceLists;
    const upTo = parseToken(to, 'to token').deviceLists;
    ctx.body = await deviceLists.changes(requesterOf(ctx).userId, after, upTo);
  });

  router.post('/keys/device_signing/upload', auth, async (ctx) => {
    const r = requesterOf(ctx);
    const body = ctx.request.json;
    let session: string | undefined;
    if (await crossSigning.needsAuth(r.userId, body)) {
      const result = await services.uia.authenticate({
        endpoint: 'POST /keys/device_signing/upload',
        userId: r.userId,
        auth: body.auth,
        flows: [['m.login.password']],
        validators: { 'm.login.password': passwordStage(deps, r.userId) },
      });
      session = result.session;
    }
    await crossSigning.uploadKeys(r.userId, body);
    if (session) await services.uia.finish(session);
    ctx.body = {};
  });

  router.post('/keys/signatures/upload', auth, async (ctx) => {
    ctx.body = await crossSigning.uploadSignatures(requesterOf(ctx).userId, ctx.request.json);
  });
};

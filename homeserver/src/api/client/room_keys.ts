import type { Area } from '../../app.js';
import { missingParam } from '../../core/errors.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { queryString } from './params.js';

/**
 * Server-side room key backups (spec: "Server-side key backups", key_backup.yaml): backup versions
 * and the encrypted room keys in them. Everything acts on the requester's own backups.
 */
export const roomKeysArea: Area = (router, { services }) => {
  const auth = requireAuth(services.sessions);
  const backup = services.keyBackup;
  const user = (ctx: Parameters<typeof requesterOf>[0]) => requesterOf(ctx).userId;
  /** `?version=`, required on every /room_keys/keys request. */
  const version = (query: Record<string, unknown>): string => {
    const v = queryString(query.version, 'version');
    if (v === undefined || v === '') throw missingParam('version');
    return v;
  };

  router.post('/room_keys/version', auth, async (ctx) => {
    ctx.body = await backup.createVersion(user(ctx), ctx.request.json);
  });
  router.get('/room_keys/version', auth, async (ctx) => {
    ctx.body = await backup.getVersion(user(ctx));
  });
  router.get('/room_keys/version/:version', auth, async (ctx) => {
    ctx.body = await backup.getVersion(user(ctx), ctx.params.version!);
  });
  router.put('/room_keys/version/:version', auth, async (ctx) => {
    ctx.body = await backup.updateVersion(user(ctx), ctx.params.version!, ctx.request.json);
  });
  router.delete('/room_keys/version/:version', auth, async (ctx) => {
    ctx.body = await backup.deleteVersion(user(ctx), ctx.params.version!);
  });

  router.put('/room_keys/keys', auth, async (ctx) => {
    const v = version(ctx.query);
    ctx.body = await backup.putKeys(user(ctx), v, backup.parseAllKeys(ctx.request.json));
  });
  router.put('/room_keys/keys/:roomId', auth, async (ctx) => {
    const v = version(ctx.query);
    ctx.body = await backup.putKeys(user(ctx), v, backup.parseRoomKeys(ctx.params.roomId!, ctx.request.json));
  });
  router.put('/room_keys/keys/:roomId/:sessionId', auth, async (ctx) => {
    const v = version(ctx.query);
    ctx.body = await backup.putKeys(user(ctx), v, backup.parseSessionKey(ctx.params.roomId!, ctx.params.sessionId!, ctx.request.json));
  });

  router.get('/room_keys/keys', auth, async (ctx) => {
    ctx.body = await backup.getAllKeys(user(ctx), version(ctx.query));
  });
  router.get('/room_keys/keys/:roomId', auth, async (ctx) => {
    ctx.body = await backup.getRoomKeys(user(ctx), version(ctx.query), ctx.params.roomId!);
  });
  router.get('/room_keys/keys/:roomId/:sessionId', auth, async (ctx) => {
    ctx.body = await backup.getSessionKey(user(ctx), version(ctx.query), ctx.params.roomId!, ctx.params.sessionId!);
  });

  router.delete('/room_keys/keys', auth, async (ctx) => {
    ctx.body = await backup.deleteKeys(user(ctx), version(ctx.query));
  });
  router.delete('/room_keys/keys/:roomId', auth, async (ctx) => {
    ctx.body = await backup.deleteKeys(user(ctx), version(ctx.query), ctx.params.roomId!);
  });
  router.delete('/room_keys/keys/:roomId/:sessionId', auth, async (ctx) => {
    ctx.body = await backup.deleteKeys(user(ctx), version(ctx.query), ctx.params.roomId!, ctx.params.sessionId!);
  });
};

/**
 * Third-party invites over federation (third_party_invite.yaml): `PUT /v1/3pid/onbind` from identity
 * servers (unauthenticated: the identity server's signatures inside are what is checked) and
 * `PUT /v1/exchange_third_party_invite/{roomId}` from other homeservers (X-Matrix).
 */
import type { AppDeps, AppRouter } from '../../app.js';
import { badJson } from '../../core/errors.js';
import { isObject } from '../../core/json.js';
import { originOf } from '../middleware/x_matrix.js';
import type { FederationArea } from './index.js';
import { strictBody } from './params.js';

export function onBindRoutes(router: AppRouter, deps: AppDeps): void {
  const thirdParty = deps.services.federatedThirdPartyInvites;
  router.put('/_matrix/federation/v1/3pid/onbind', async (ctx) => {
    const body = ctx.request.json;
    if (!isObject(body)) throw badJson('The body must be a JSON object');
    await thirdParty.onBind(body);
    ctx.body = {};
  });
}

export const exchangeThirdPartyArea: FederationArea = (router, deps) => {
  const thirdParty = deps.services.federatedThirdPartyInvites;
  router.put('/v1/exchange_third_party_invite/:roomId', async (ctx) => {
    await thirdParty.receiveExchange(originOf(ctx), ctx.params.roomId!, strictBody(ctx));
    ctx.body = {};
  });
};

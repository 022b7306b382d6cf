/** `PUT /v1/send/{txnId}` (spec: transactions.yaml): PDUs through the receipt checks, EDUs to their handler. */
import { originOf } from '../middleware/x_matrix.js';
import type { FederationArea } from './index.js';
import { strictBody } from './params.js';

export const sendArea: FederationArea = (router, deps) => {
  const { transactions } = deps.services.federationRooms;
  router.put('/v1/send/:txnId', async (ctx) => {
    ctx.body = await transactions.receive(originOf(ctx), ctx.params.txnId!, strictBody(ctx));
  });
};

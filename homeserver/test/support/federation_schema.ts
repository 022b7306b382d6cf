/**
 * Helpers for checking Hearth's server-server traffic against the spec's OpenAPI schemas
 * (federation_schema*.test.ts): 200 bodies, Matrix errors, PDUs per room version, signed requests.
 */
import * as assert from 'uvu/assert';
import type { Response } from './harness.js';
import type { FederationTestServer } from './federation.js';
import { responseErrors, schemaErrors } from './spec_schema.js';
import { signRequest } from '../../src/services/federation/x_matrix.js';
import type { RoomVersionId } from '../../src/services/rooms/pdu.js';

export const SS = (file: string) => `api/server-server/${file}`;
export const ERROR_SCHEMA = 'api/client-server/definitions/errors/error.yaml';
/** The PDU schema of each room version Hearth speaks (pdu_v6.yaml covers versions 4–10). */
export const PDU_SCHEMA: Record<RoomVersionId, string> = { '10': SS('definitions/pdu_v6.yaml'), '11': SS('definitions/pdu_v11.yaml'), '12': SS('definitions/pdu_v12.yaml') };

export function noErrors(errors: string[], what: string): void {
  assert.equal(errors, [], `${what} matches the spec:\n  ${errors.join('\n  ')}`);
}

/**
 * Spec schema bug: the membership templates and invite_event.yaml still require a top-level `origin`,
 * which the spec removed from the PDU format in v1.3 (pdu_base.yaml has none); Hearth sends none.
 */
export const withoutStaleOrigin = (errors: string[]) => errors.filter((e) => !/^\$(\.event)?: missing required 'origin'$/.test(e));

/** A 200 whose body matches the spec's response schema of `method route` in `file` (`tolerate` drops known spec-schema bugs). */
export function assertSpec(res: Response, file: string, route: string, method: string, tolerate: (errors: string[]) => string[] = (e) => e): any {
  assert.is(res.status, 200, `${method.toUpperCase()} ${route}: ${res.status} ${JSON.stringify(res.body)}`);
  noErrors(tolerate(responseErrors(SS(file), route, method, 200, res.body)), `${method.toUpperCase()} ${route}`);
  return res.body;
}

/** A Matrix error with this status and errcode, in the standard shape (and the endpoint's own schema for it when the spec lists the status). */
export function assertSpecError(res: Response, status: number, errcode: string, spec?: [file: string, route: string, method: string]): void {
  assert.is(res.status, status, `${res.status} ${JSON.stringify(res.body)}`);
  assert.is(res.body?.errcode, errcode, JSON.stringify(res.body));
  noErrors(schemaErrors(ERROR_SCHEMA, res.body), `error ${status}`);
  if (spec) noErrors(responseErrors(SS(spec[0]), spec[1], spec[2], status, res.body), `${spec[2].toUpperCase()} ${spec[1]} ${status}`);
}

export function assertPdus(pdus: unknown[], version: RoomVersionId, what: string): void {
  assert.ok(pdus.length > 0, `${what}: some PDUs`);
  pdus.forEach((pdu, i) => noErrors(schemaErrors(PDU_SCHEMA[version], pdu), `${what}[${i}] (PDU, room version ${version})`));
}

/** A signed request from `from` straight into `to`'s app (status and body as answered, arrays and errors included). */
export function signed(from: FederationTestServer, to: FederationTestServer, method: string, uri: string, body?: Record<string, unknown>): Promise<Response> {
  const authorization = signRequest(from.hs.deps.services.rooms.signingKey, { method, uri, destination: to.serverName, ...(body ? { content: body as never } : {}) });
  return to.request(method, uri, { headers: { authorization }, ...(body ? { body } : {}) });
}

export const F = '/_matrix/federation';
export const versionOf = async (s: FederationTestServer, roomId: string) =>
  (await s.hs.deps.db.query<{ room_version: RoomVersionId }>('select room_version from rooms where room_id = ?', [roomId]))[0]!.room_version;

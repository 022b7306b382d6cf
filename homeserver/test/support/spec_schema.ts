// A small JSON-schema checker for the Matrix spec's OpenAPI files (test/fixtures/matrix-spec):
// type, properties, required, items, patternProperties, additionalProperties, allOf/anyOf/oneOf,
// enum, pattern, minItems/maxItems and `$ref` to other files. Enough for the request, response and
// definition schemas the spec uses (client-server and server-server).
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

const SPEC_DATA = path.resolve(import.meta.dirname, '../fixtures/matrix-spec/data');

type Schema = Record<string, any>;
interface Located {
  schema: Schema;
  file: string;
}

const files = new Map<string, any>();
function load(file: string): any {
  let doc = files.get(file);
  if (doc === undefined) {
    doc = parse(fs.readFileSync(file, 'utf8'));
    files.set(file, doc);
  }
  return doc;
}

function resolve(ref: string, from: string): Located {
  const [rel, pointer] = ref.split('#');
  const file = rel ? path.resolve(path.dirname(from), rel) : from;
  let node = load(file);
  for (const part of (pointer ?? '').split('/').filter(Boolean)) node = node[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  if (node === undefined) throw new Error(`unresolvable $ref ${ref} from ${from}`);
  return { schema: node, file };
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function check(v: unknown, s: Schema, file: string, at: string, errors: string[]): void {
  if (s.$ref) {
    const r = resolve(s.$ref, file);
    check(v, r.schema, r.file, at, errors);
  }
  if (s.type) {
    const types: string[] = Array.isArray(s.type) ? s.type : [s.type];
    const t = typeOf(v);
    if (!types.some((x) => x === t || (x === 'number' && t === 'integer'))) {
      errors.push(`${at}: expected ${types.join('|')}, got ${t}`);
      return;
    }
  }
  if (s.enum && !s.enum.some((e: unknown) => JSON.stringify(e) === JSON.stringify(v))) errors.push(`${at}: ${JSON.stringify(v)} not in enum`);
  if (s.pattern && typeof v === 'string' && !new RegExp(s.pattern, 'u').test(v)) errors.push(`${at}: '${v}' does not match ${s.pattern}`);
  for (const sub of s.allOf ?? []) check(v, sub, file, at, errors);
  for (const key of ['anyOf', 'oneOf'] as const) {
    if (!s[key]) continue;
    const matching = (s[key] as Schema[]).filter((sub) => {
      const e: string[] = [];
      check(v, sub, file, at, e);
      return e.length === 0;
    }).length;
    if (key === 'anyOf' ? matching === 0 : matching !== 1) errors.push(`${at}: ${matching} of the ${key} schemas match`);
  }
  if (typeOf(v) === 'object') {
    const o = v as Record<string, unknown>;
    for (const r of s.required ?? []) if (!(r in o)) errors.push(`${at}: missing required '${r}'`);
    for (const [k, val] of Object.entries(o)) {
      let matched = false;
      if (s.properties?.[k]) {
        matched = true;
        check(val, s.properties[k], file, `${at}.${k}`, errors);
      }
      for (const [p, sub] of Object.entries<Schema>(s.patternProperties ?? {})) {
        if (new RegExp(p, 'u').test(k)) {
          matched = true;
          check(val, sub, file, `${at}.${k}`, errors);
        }
      }
      if (!matched && s.additionalProperties !== undefined) {
        if (s.additionalProperties === false) errors.push(`${at}: unexpected property '${k}'`);
        else if (typeof s.additionalProperties === 'object') check(val, s.additionalProperties, file, `${at}.${k}`, errors);
      }
    }
  }
  if (Array.isArray(v) && s.items) v.forEach((item, i) => check(item, s.items, file, `${at}[${i}]`, errors));
  if (Array.isArray(v) && typeof s.minItems === 'number' && v.length < s.minItems) errors.push(`${at}: fewer than ${s.minItems} items`);
  if (Array.isArray(v) && typeof s.maxItems === 'number' && v.length > s.maxItems) errors.push(`${at}: more than ${s.maxItems} items`);
}

/** The operation `method route` of an OpenAPI file (path relative to the spec's `data/`), with its file. */
function operation(apiFile: string, route: string, method: string): { op: Schema; file: string } {
  const file = path.join(SPEC_DATA, apiFile);
  const op = load(file).paths?.[route]?.[method];
  if (!op) throw new Error(`${apiFile} has no ${method.toUpperCase()} ${route}`);
  return { op, file };
}

/**
 * Checks `body` against the schema of an endpoint's response in one of the spec's OpenAPI files,
 * e.g. `responseErrors('api/client-server/sync.yaml', '/sync', 'get', 200, body)`; returns the problems.
 */
export function responseErrors(apiFile: string, route: string, method: string, status: number, body: unknown): string[] {
  const { op, file } = operation(apiFile, route, method);
  let response: Located = { schema: op.responses?.[String(status)], file };
  if (!response.schema) throw new Error(`${apiFile} ${method.toUpperCase()} ${route} documents no ${status} response`);
  if (response.schema.$ref) response = resolve(response.schema.$ref, file); // shared responses (components/responses)
  const schema = response.schema.content?.['application/json']?.schema;
  if (!schema) throw new Error(`${apiFile} ${method.toUpperCase()} ${route} ${status} has no JSON schema`);
  const errors: string[] = [];
  check(body, schema, response.file, '$', errors);
  return errors;
}

/** Checks a request body against the JSON `requestBody` schema of an endpoint (as `responseErrors`). */
export function requestErrors(apiFile: string, route: string, method: string, body: unknown): string[] {
  const { op, file } = operation(apiFile, route, method);
  const schema = op.requestBody?.content?.['application/json']?.schema;
  if (!schema) throw new Error(`${apiFile} ${method.toUpperCase()} ${route} has no JSON request body`);
  const errors: string[] = [];
  check(body, schema, file, '$', errors);
  return errors;
}

/** Checks a value against a whole schema file, e.g. `schemaErrors('api/server-server/definitions/pdu_v11.yaml', pdu)`. */
export function schemaErrors(schemaFile: string, value: unknown): string[] {
  const file = path.join(SPEC_DATA, schemaFile);
  const errors: string[] = [];
  check(value, load(file), file, '$', errors);
  return errors;
}

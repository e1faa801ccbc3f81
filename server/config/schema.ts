// JSON Schema validation (ajv) of configuration documents, with errors mapped
// back to file:line:column through the YAML source.

import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { ConfigError } from './errors.ts';
import type { YamlSource } from './yaml-source.ts';

const SCHEMA_DIR = new URL('../../policies/schema/', import.meta.url);

// ajv-formats ships CommonJS with a default export.
const addFormats = (addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true });
(addFormats as unknown as (a: Ajv) => void)(ajv);
const validators = new Map<string, ValidateFunction>();

/** Validator for policies/schema/<kind>.schema.json, compiled once per process. */
function schemaValidator(kind: string): ValidateFunction {
  let validate = validators.get(kind);
  if (!validate) {
    const schema = JSON.parse(readFileSync(new URL(`${kind}.schema.json`, SCHEMA_DIR), 'utf8'));
    validate = ajv.compile(schema);
    validators.set(kind, validate);
  }
  return validate;
}

/** Validates (and fills defaults into) `source.data`; returns the errors, most specific first. */
export function validateAgainstSchema(kind: string, source: YamlSource, code: string): ConfigError[] {
  const validate = schemaValidator(kind);
  if (validate(source.data)) return [];
  return simplify(validate.errors ?? []).map((e) => {
    const pointer = e.instancePath || '/';
    return new ConfigError(code, source.file, source.position(e.instancePath), pointer, describe(e, valueAt(source.data, e.instancePath)));
  });
}

/** oneOf/anyOf failures repeat one problem several times; keep the deepest, one per place. */
function simplify(errors: ErrorObject[]): ErrorObject[] {
  const byPath = new Map<string, ErrorObject>();
  for (const e of errors) {
    if (e.keyword === 'oneOf' || e.keyword === 'anyOf' || e.keyword === 'if') continue;
    // A oneOf branch of another shape (`match: default` against a map) says less than the branch that fits.
    const seen = byPath.get(e.instancePath);
    if (!seen || ((seen.keyword === 'const' || seen.keyword === 'type') && e.keyword !== 'const' && e.keyword !== 'type')) byPath.set(e.instancePath, e);
  }
  const result = [...byPath.values()];
  if (result.length === 0 && errors.length > 0) return [errors[0]];
  // Drop ancestors when a descendant explains the problem.
  return result.filter((e) => !result.some((o) => o !== e && o.instancePath.startsWith(e.instancePath + '/')));
}

/** The value at a JSON pointer (for messages that quote it). */
function valueAt(data: unknown, pointer: string): unknown {
  let value = data;
  for (const part of pointer.split('/').slice(1)) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return value;
}

function describe(e: ErrorObject, value: unknown): string {
  const p = e.params as Record<string, unknown>;
  if (/\/(resolver_)?asn\/\d+$/.test(e.instancePath) && ['type', 'minimum', 'maximum'].includes(e.keyword)) {
    return `${JSON.stringify(value)} is not an AS number: write a whole number from 1 to 4294967295, e.g. 3320 (not "AS3320")`;
  }
  switch (e.keyword) {
    case 'additionalProperties':
      return `unknown key "${String(p.additionalProperty)}" (remove it or check its spelling)`;
    case 'required':
      return `missing required key "${String(p.missingProperty)}"`;
    case 'enum':
      return `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'format':
      return `must be a valid ${String(p.format)}`;
    case 'propertyNames':
      return `key "${String(p.propertyName)}" is not allowed here`;
    default:
      return e.message ?? 'is not valid';
  }
}

import * as prometheusOperator from '@kubernetes-models/prometheus-operator';
import * as kubernetes from 'kubernetes-models';
import type { K8sObject } from './manifests.js';

/** A model class of kubernetes-models: built from an object, `validate()` throws on a schema error. */
interface ModelClass {
  readonly apiVersion: string;
  readonly kind: string;
  new (data: unknown): { validate(): void };
}

function isModelClass(value: unknown): value is ModelClass {
  return (
    typeof value === 'function' &&
    typeof (value as Partial<ModelClass>).apiVersion === 'string' &&
    typeof (value as Partial<ModelClass>).kind === 'string'
  );
}

/** Every model class of the packages, by `apiVersion/kind`, walking their nested namespaces. */
function collect(namespace: object, into: Map<string, ModelClass>): Map<string, ModelClass> {
  for (const value of Object.values(namespace)) {
    if (isModelClass(value)) into.set(`${value.apiVersion}/${value.kind}`, value);
    else if (typeof value === 'object' && value !== null) collect(value as object, into);
  }
  return into;
}

const models = collect(prometheusOperator, collect(kubernetes, new Map()));

/**
 * Validates `object` against the OpenAPI schema of its apiVersion and kind: Kubernetes' own
 * (kubernetes-models) or the Prometheus Operator CRDs' (@kubernetes-models/prometheus-operator).
 * Returns the problem, or undefined when valid; a kind neither package knows is a problem too.
 */
export function schemaProblem(object: K8sObject): string | undefined {
  const model = models.get(`${object.apiVersion}/${object.kind}`);
  if (!model) return `no schema for ${object.apiVersion} ${object.kind}`;
  try {
    new model(object).validate();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/** The repository root (this file runs from tests/deploy/dist). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Reads a repository file as text. */
export function readRepoFile(path: string): string {
  return readFileSync(`${ROOT}${path}`, 'utf8');
}

/** A Kubernetes object as rendered: only the fields every object has are typed. */
export interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly labels?: Record<string, string> };
  readonly [field: string]: unknown;
}

/** Parses a multi-document YAML text; throws on the first YAML error. */
export function parseDocuments(text: string): unknown[] {
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join('\n'));
    return doc.toJS() as unknown;
  });
}

/**
 * The objects of a kustomize overlay (`k8s/overlays/<name>`), rendered by `kubectl kustomize`
 * (kustomize 5, in kubectl 1.27+). Throws with kubectl's message when rendering fails.
 */
export function renderOverlay(name: string): K8sObject[] {
  const result = spawnSync('kubectl', ['kustomize', `k8s/overlays/${name}`], { cwd: ROOT, encoding: 'utf8' });
  if (result.error) throw new Error(`kubectl kustomize needs kubectl 1.27+ on PATH: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`kubectl kustomize k8s/overlays/${name} failed:\n${result.stderr}`);
  return parseDocuments(result.stdout).filter((d): d is K8sObject => d !== null);
}

/** The overlays under k8s/overlays. */
export const OVERLAYS = ['dev', 'prod'] as const;

/** The four deployables: their package folder under services/ and the port DESIGN.md §9 gives them. */
export const DEPLOYABLES: Readonly<Record<string, number>> = {
  'fanout-gateway': 8080,
  'post-service': 3001,
  'chat-service': 3002,
  'notification-service': 3003,
};

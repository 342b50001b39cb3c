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
 * (kustomize 5, in kubectl 1.27+) or, without kubectl, a standalone `kustomize build`. Throws
 * with the renderer's message when rendering fails.
 */
export function renderOverlay(name: string): K8sObject[] {
  const dir = `k8s/overlays/${name}`;
  let result = spawnSync('kubectl', ['kustomize', dir], { cwd: ROOT, encoding: 'utf8' });
  if (result.error) result = spawnSync('kustomize', ['build', dir], { cwd: ROOT, encoding: 'utf8' });
  if (result.error) throw new Error(`rendering ${dir} needs kubectl 1.27+ or kustomize 5 on PATH`);
  if (result.status !== 0) throw new Error(`rendering ${dir} failed:\n${result.stderr}`);
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

import { DockerfileParser } from 'dockerfile-ast';
import { readRepoFile } from './manifests.js';

/** One build stage of the Dockerfile: its name, base image and instructions (keyword, arguments). */
export interface Stage {
  readonly name: string;
  /** The base image with global ARG defaults substituted (`node:20.20-bookworm-slim`), or a stage name. */
  readonly from: string;
  readonly instructions: readonly { readonly keyword: string; readonly args: string }[];
}

/** The repository's Dockerfile, parsed by dockerfile-ast into its stages, in order. */
export function parseDockerfile(): Stage[] {
  const dockerfile = DockerfileParser.parse(readRepoFile('Dockerfile'));
  const globals = new Map<string, string>();
  const stages: { name: string; from: string; instructions: { keyword: string; args: string }[] }[] = [];
  for (const instruction of dockerfile.getInstructions()) {
    const keyword = instruction.getKeyword();
    // The whole instruction after its keyword: flags (`--from=deploy`) included.
    const args = instruction.getTextContent().slice(keyword.length).trim();
    if (keyword === 'FROM') {
      const [image = '', , name = ''] = args.split(/\s+/);
      const from = image.replace(/\$\{(\w+)\}/g, (_, v: string) => globals.get(v) ?? '');
      stages.push({ name, from, instructions: [] });
    } else if (stages.length === 0 && keyword === 'ARG') {
      const [name = '', value = ''] = args.split('=');
      globals.set(name, value);
    } else {
      stages.at(-1)?.instructions.push({ keyword, args });
    }
  }
  return stages;
}

/** Names of the Dockerfile's stages (the `--target`s it can build). */
export function dockerfileStages(): string[] {
  return parseDockerfile().map((s) => s.name);
}

import { Kind, KindGuard } from '@sinclair/typebox';
import type { TObject, TSchema } from '@sinclair/typebox';

// The README's configuration table read as data, and what its cells must say given the schemas
// the processes load their environment with (README "Configuration" describes the format).

/** One row of the configuration table: the variables it names and its other cells, trimmed. */
export interface ConfigRow {
  /** Every backticked name of the variable cell (`OTEL_*` included as written). */
  readonly variables: readonly string[];
  readonly defaultCell: string;
  readonly accepted: string;
  readonly usedBy: string;
  /** 1-based line number in the README, for messages. */
  readonly line: number;
}

const HEADER = /^\|\s*variable\s*\|\s*default\s*\|\s*accepted\s*\|\s*used by\s*\|\s*what it does\s*\|$/;

/**
 * The rows of the README's configuration table (the one headed `| variable | default | accepted |
 * used by | what it does |`). Throws when there is no such table or a row has another number of
 * cells (a `|` inside a cell).
 */
export function configTable(readme: string): ConfigRow[] {
  const lines = readme.split('\n');
  const header = lines.findIndex((l) => HEADER.test(l));
  if (header < 0) throw new Error('README.md has no | variable | default | accepted | used by | what it does | table');
  const rows: ConfigRow[] = [];
  for (let i = header + 2; lines[i]?.startsWith('|') === true; i++) {
    const cells = (lines[i] ?? '')
      .replace(/^\||\|$/g, '')
      .split('|')
      .map((c) => c.trim());
    const [names = '', defaultCell = '', accepted = '', usedBy = ''] = cells;
    if (cells.length !== 5) throw new Error(`README.md:${i + 1} has ${cells.length} cells, not 5`);
    const variables = [...names.matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? '');
    rows.push({ variables, defaultCell, accepted, usedBy, line: i + 1 });
  }
  return rows;
}

/** The processes (keys of `processes`) each word of a "used by" cell, or a per-process label, stands for. */
function processWords(processes: readonly string[]): ReadonlyMap<string, readonly string[]> {
  const words = new Map<string, readonly string[]>([
    ['all', processes],
    ['services', processes.filter((p) => p.endsWith('-service'))],
    ['gateway', ['fanout-gateway']],
  ]);
  for (const p of processes) if (p !== 'fanout-gateway') words.set(p, [p]);
  return words;
}

/** The processes a comma-separated list of process words names; undefined for an unknown word. */
function processesNamed(text: string, processes: readonly string[]): string[] | undefined {
  const words = processWords(processes);
  const named: string[] = [];
  for (const word of text.split(/\s*,\s*/)) {
    const stands = words.get(word);
    if (stands === undefined) return undefined;
    named.push(...stands);
  }
  return [...new Set(named)].sort();
}

const code = (value: unknown) => `\`${String(value)}\``;

/** What the default cell says for a setting: its default backticked, `empty` for '', `unset` for none. */
function defaultText(schema: TSchema): string {
  if (!('default' in schema)) return 'unset';
  return schema.default === '' ? 'empty' : code(schema.default);
}

/** `1 – 65535`, `≥ 1`, `> 0`: the bounds of a numeric setting, both ends included unless marked. */
function rangeText(schema: TSchema): string {
  const num = (key: string) => {
    const value: unknown = schema[key];
    return typeof value === 'number' ? value : undefined;
  };
  const [min, exclusiveMin, max, exclusiveMax] = [
    num('minimum'),
    num('exclusiveMinimum'),
    num('maximum'),
    num('exclusiveMaximum'),
  ];
  if (min !== undefined && max !== undefined) return code(`${min} – ${max}`);
  const bounds = [
    min !== undefined ? `≥ ${min}` : exclusiveMin !== undefined ? `> ${exclusiveMin}` : undefined,
    max !== undefined ? `≤ ${max}` : exclusiveMax !== undefined ? `< ${exclusiveMax}` : undefined,
  ].filter((b) => b !== undefined);
  return bounds.length === 0 ? 'any' : code(bounds.join(', '));
}

/**
 * What the accepted cell says for a numeric or enumerated setting: the integer range
 * (`` `1024 – 2147483647` ``, `` `≥ 1` ``), a number's range followed by ` (decimal)`, or the
 * literals (`` `auto`, `off` ``). Undefined for a string, whose pattern the cell describes in
 * words. Throws for a kind of schema this format does not cover yet.
 */
function acceptedText(schema: TSchema): string | undefined {
  if (KindGuard.IsInteger(schema)) return rangeText(schema);
  if (KindGuard.IsNumber(schema)) return `${rangeText(schema)} (decimal)`;
  if (KindGuard.IsString(schema)) return undefined;
  if (KindGuard.IsLiteral(schema)) return code(schema.const);
  if (KindGuard.IsUnion(schema) && schema.anyOf.every((s) => KindGuard.IsLiteral(s)))
    return schema.anyOf.map((s) => code(s.const)).join(', ');
  throw new Error(`no accepted-values format for a ${schema[Kind]} setting`);
}

/**
 * Compares a cell that states one text per process with what the code gives each reader: the
 * text alone when every reader has the same, else `; `-separated `<process word> <text>` segments
 * (as in: gateway `6000`; notification-service `30000`). Returns the differences, empty when none.
 */
function perProcessProblems(cell: string, expected: ReadonlyMap<string, string>, processes: readonly string[]) {
  const distinct = [...new Set(expected.values())];
  if (distinct.length === 1) return cell === distinct[0] ? [] : [`says ${cell}, the code ${distinct[0]}`];
  const stated = new Map<string, string>();
  for (const segment of cell.split('; ')) {
    const [, word = '', text = ''] = /^([a-z-]+) (.+)$/.exec(segment) ?? [];
    for (const p of processesNamed(word, processes) ?? [`"${segment}"`]) stated.set(p, text);
  }
  const problems = [...expected]
    .filter(([p, text]) => stated.get(p) !== text)
    .map(([p, text]) => `says ${stated.get(p) ?? 'nothing'} for ${p}, the code ${text}`);
  for (const p of stated.keys()) if (!expected.has(p)) problems.push(`names ${p}, which does not read it`);
  return problems;
}

/** Each variable the processes read, with its schema in each process that reads it. */
function readers(processes: Readonly<Record<string, TObject>>): Map<string, Map<string, TSchema>> {
  const byVariable = new Map<string, Map<string, TSchema>>();
  for (const [process, schema] of Object.entries(processes)) {
    for (const [variable, property] of Object.entries(schema.properties)) {
      const entry = byVariable.get(variable) ?? new Map<string, TSchema>();
      byVariable.set(variable, entry.set(process, property));
    }
  }
  return byVariable;
}

/** A default computed at start-up, which the README describes in words, and the form the code's takes. */
export interface ComputedDefault {
  readonly text: string;
  readonly form: RegExp;
}

/**
 * Every difference between the configuration table and the schemas `processes` (process name →
 * schema) load: a variable without a row of its own, a "used by" cell that is not exactly the
 * processes reading it, a default or accepted cell that is not what the schema gives (see
 * `defaultText`, `acceptedText`; a string's minimum length as `≥ N characters`), a default in
 * `computed` not in its form. Returns one line per problem, empty when the table is true.
 */
export function schemaRowProblems(
  rows: readonly ConfigRow[],
  processes: Readonly<Record<string, TObject>>,
  computed: Readonly<Record<string, ComputedDefault>>,
): string[] {
  const names = Object.keys(processes);
  const problems: string[] = [];
  for (const [variable, schemas] of readers(processes)) {
    const matching = rows.filter((r) => r.variables.includes(variable));
    const row = matching[0];
    if (row === undefined || matching.length > 1 || row.variables.length > 1) {
      const where = matching.map((r) => `README.md:${r.line}`).join(', ') || 'none';
      problems.push(`${variable}: needs a row of its own (rows naming it: ${where})`);
      continue;
    }
    const at = `${variable} (README.md:${row.line})`;
    const usedBy = processesNamed(row.usedBy, names);
    const readBy = [...schemas.keys()].sort();
    if (usedBy?.join() !== readBy.join()) problems.push(`${at}: used by "${row.usedBy}", read by ${readBy.join(', ')}`);
    const form = computed[variable];
    const defaults = new Map([...schemas].map(([p, s]) => [p, form ? form.text : defaultText(s)]));
    for (const problem of perProcessProblems(row.defaultCell, defaults, names))
      problems.push(`${at}: default ${problem}`);
    for (const [p, s] of schemas)
      if (form && !form.form.test(String(s.default)))
        problems.push(`${at}: ${p}'s default ${String(s.default)} is not ${form.text}`);
    const accepted = new Map([...schemas].map(([p, s]) => [p, acceptedText(s)] as const));
    const stated = new Map([...accepted].flatMap(([p, text]) => (text === undefined ? [] : [[p, text] as const])));
    if (stated.size > 0) {
      for (const problem of perProcessProblems(row.accepted, stated, names))
        problems.push(`${at}: accepted ${problem}`);
    } else if (row.accepted === '') problems.push(`${at}: accepted is empty`);
    const minLengths = new Set([...schemas.values()].map((s) => (typeof s.minLength === 'number' ? s.minLength : 0)));
    for (const minLength of minLengths)
      if (minLength > 1 && !row.accepted.includes(`≥ ${minLength} characters`))
        problems.push(`${at}: accepted does not say ≥ ${minLength} characters`);
  }
  return problems;
}

/**
 * Variables the table names that no schema in `processes` reads and `external` does not match
 * (variables read outside the schemas, by another program). Returns one line per name.
 */
export function unreadRowProblems(
  rows: readonly ConfigRow[],
  processes: Readonly<Record<string, TObject>>,
  external: RegExp,
): string[] {
  const read = new Set(Object.values(processes).flatMap((s) => Object.keys(s.properties)));
  return rows.flatMap((r) =>
    r.variables
      .filter((v) => !read.has(v) && !external.test(v))
      .map((v) => `${v} (README.md:${r.line}): no process reads it`),
  );
}

/** The processes a "used by" cell names (see the README); undefined when it has an unknown word. */
export function usedByProcesses(row: ConfigRow, processes: readonly string[]): string[] | undefined {
  return processesNamed(row.usedBy, processes);
}

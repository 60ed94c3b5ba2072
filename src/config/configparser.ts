// The INI dialect of Python's configparser.ConfigParser, which Mandos reads.
// The `ini` package does not fit it (no ":" delimiter, no indented continuation
// lines, no %(name)s interpolation, no case folding, no line numbers), so this
// module implements the dialect once, here, with positions for error messages.
//
// Unlike Python, which stops at the first structural error (missing section
// header, duplicate section or option), the parser records each problem as an
// issue charged to the section it appears in and keeps going, so that callers
// can refuse just the affected section and still load the others.

export const DEFAULT_SECTION = "DEFAULT";
/** Python's configparser.MAX_INTERPOLATION_DEPTH. */
export const MAX_INTERPOLATION_DEPTH = 10;

/** Characters Python's str.isspace() accepts; configparser strips and matches with them. */
const WS = "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const LEADING_WS = new RegExp(`^[${WS}]+`);
const TRAILING_WS = new RegExp(`[${WS}]+$`);
const NON_SPACE = new RegExp(`[^${WS}]`);
/** "[name]" at the start of a stripped line; text after the last "]" is ignored, as in Python. */
const SECTION_HEADER = /^\[(.+)\]/s;
/** "name = value" or "name: value"; the first "=" or ":" separates. */
const OPTION_LINE = new RegExp(`^(.*?)[${WS}]*([=:])[${WS}]*(.*)$`, "s");
const REFERENCE = /%\(([^)]+)\)s/y;

export function pyStrip(s: string): string {
  return s.replace(LEADING_WS, "").replace(TRAILING_WS, "");
}

export function pyRstrip(s: string): string {
  return s.replace(TRAILING_WS, "");
}

/** Python's str.split() with no arguments: split on runs of whitespace. */
export function pySplit(s: string): string[] {
  const stripped = pyStrip(s);
  return stripped === "" ? [] : stripped.split(new RegExp(`[${WS}]+`));
}

export interface IniOption {
  /** The raw value: stripped, continuation lines joined with "\n". */
  readonly value: string;
  /** Line of the "key = value" line (1-based). */
  readonly line: number;
}

export interface IniSection {
  readonly name: string;
  /** Line of the first "[name]" header; 0 for a [DEFAULT] the file never names. */
  readonly line: number;
  /** Keys are lower-cased, in the order they first appear. */
  readonly options: ReadonlyMap<string, IniOption>;
}

export interface IniIssue {
  readonly line: number;
  /** The section the line belongs to, or null before any section header. */
  readonly section: string | null;
  /** The option concerned, if any. */
  readonly key?: string;
  readonly message: string;
}

export interface IniDocument {
  /** [DEFAULT], all its blocks merged (Python allows the header more than once). */
  readonly defaults: IniSection;
  /** Every other section, in file order. */
  readonly sections: readonly IniSection[];
  readonly issues: readonly IniIssue[];
}

interface Builder {
  name: string;
  line: number;
  options: Map<string, { parts: string[]; line: number }>;
}

export function parseIni(text: string): IniDocument {
  const defaults: Builder = { name: DEFAULT_SECTION, line: 0, options: new Map() };
  const sections = new Map<string, Builder>();
  const issues: IniIssue[] = [];
  let current: Builder | null = null;
  // Where continuation lines go: the open option's parts, or null if none is open.
  let openValue: string[] | null = null;
  let indentLevel = 0;
  let reportedMissingHeader = false;

  const lines = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!;
    const stripped = pyStrip(line);
    const isComment = stripped.startsWith("#") || stripped.startsWith(";");
    if (stripped === "" || isComment) {
      // A blank line may be part of a value (if more indented lines follow);
      // a comment line never is, and does not end the value either.
      if (!isComment && openValue) openValue.push("");
      continue;
    }
    const indent = line.search(NON_SPACE);
    if (current && openValue && indent > indentLevel) {
      openValue.push(stripped);
      continue;
    }
    indentLevel = indent;

    const header = SECTION_HEADER.exec(stripped);
    if (header) {
      const name = header[1]!;
      openValue = null;
      if (name === DEFAULT_SECTION) {
        if (defaults.line === 0) defaults.line = lineNo;
        current = defaults;
      } else if (sections.has(name)) {
        issues.push({
          line: lineNo,
          section: name,
          message: `section [${name}] appears again (first at line ${sections.get(name)!.line})`,
        });
        // Collect its lines somewhere harmless; the section is refused anyway.
        current = { name, line: lineNo, options: new Map() };
      } else {
        current = { name, line: lineNo, options: new Map() };
        sections.set(name, current);
      }
      continue;
    }
    if (!current) {
      if (!reportedMissingHeader) {
        issues.push({
          line: lineNo,
          section: null,
          message: "text before the first section header (the file must start with a line like [DEFAULT])",
        });
        reportedMissingHeader = true;
      }
      continue;
    }
    const option = OPTION_LINE.exec(stripped);
    if (!option) {
      // Python keeps the previous option open here; so do we.
      issues.push({ line: lineNo, section: current.name, message: 'not a section header, comment or "key = value" line' });
      continue;
    }
    const key = option[1]!.toLowerCase();
    if (key === "") {
      issues.push({ line: lineNo, section: current.name, message: `line starts with "${option[2]}" but has no key before it` });
      openValue = null;
      continue;
    }
    const previous = current.options.get(key);
    if (previous) {
      issues.push({
        line: lineNo,
        section: current.name,
        key,
        message: `set again (first at line ${previous.line})`,
      });
      openValue = []; // swallow its continuation lines
      continue;
    }
    const parts = [option[3]!];
    current.options.set(key, { parts, line: lineNo });
    openValue = parts;
  }

  const finish = (b: Builder): IniSection => ({
    name: b.name,
    line: b.line,
    options: new Map(
      [...b.options].map(([k, o]) => [k, { value: pyRstrip(o.parts.join("\n")), line: o.line }] as const),
    ),
  });
  return { defaults: finish(defaults), sections: [...sections.values()].map(finish), issues };
}

/** Thrown by interpolate(); the message names no value, only the problem. */
export class InterpolationError extends Error {
  override name = "InterpolationError";
}

/**
 * Python's BasicInterpolation: "%(name)s" becomes the value of option `name`
 * (looked up lower-cased, itself interpolated), "%%" becomes "%", and any other
 * "%" is an error. References nest at most MAX_INTERPOLATION_DEPTH deep.
 */
export function interpolate(value: string, lookup: (name: string) => string | undefined): string {
  const out: string[] = [];
  const expand = (rest: string, depth: number): void => {
    if (depth > MAX_INTERPOLATION_DEPTH) {
      throw new InterpolationError(
        `%(name)s references nest more than ${MAX_INTERPOLATION_DEPTH} deep (does a value refer to itself?)`,
      );
    }
    let pos = 0;
    while (pos < rest.length) {
      const percent = rest.indexOf("%", pos);
      if (percent < 0) {
        out.push(rest.slice(pos));
        return;
      }
      out.push(rest.slice(pos, percent));
      const next = rest[percent + 1];
      if (next === "%") {
        out.push("%");
        pos = percent + 2;
      } else if (next === "(") {
        REFERENCE.lastIndex = percent;
        const ref = REFERENCE.exec(rest);
        if (!ref) throw new InterpolationError('"%(" must be followed by a name and ")s", as in %(host)s');
        const name = ref[1]!.toLowerCase();
        const referenced = lookup(name);
        if (referenced === undefined) throw new InterpolationError(`%(${ref[1]})s refers to no option named "${name}"`);
        if (referenced.includes("%")) expand(referenced, depth + 1);
        else out.push(referenced);
        pos = percent + ref[0].length;
      } else {
        throw new InterpolationError('a "%" must be followed by "%" or "(" (write "%%" for a percent sign)');
      }
    }
  };
  expand(value, 1);
  return out.join("");
}

const BOOLEANS: ReadonlyMap<string, boolean> = new Map([
  ["1", true],
  ["yes", true],
  ["true", true],
  ["on", true],
  ["0", false],
  ["no", false],
  ["false", false],
  ["off", false],
]);

/** ConfigParser.getboolean(): 1/yes/true/on and 0/no/false/off, any case; otherwise undefined. */
export function parseBoolean(value: string): boolean | undefined {
  return BOOLEANS.get(value.toLowerCase());
}

/**
 * Python's int(): optional surrounding whitespace, optional sign, decimal
 * digits with single underscores between them. Undefined if not an integer
 * or beyond what a JavaScript number holds exactly.
 */
export function parsePythonInt(value: string): number | undefined {
  const m = /^([+-]?)(\d+(?:_\d+)*)$/.exec(pyStrip(value));
  if (!m) return undefined;
  const n = Number(m[2]!.replaceAll("_", ""));
  if (!Number.isSafeInteger(n)) return undefined;
  return m[1] === "-" ? 0 - n : n; // "-0" is 0, not -0
}

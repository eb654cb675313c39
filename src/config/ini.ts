/**
 * An INI reader with Python configparser's default semantics, so that the files Inmanta
 * operators already write mean the same here: `key = value` and `key: value`, full-line `#` and
 * `;` comments, indented continuation lines (blank lines inside a value kept), `[section]`
 * headers, option names case-insensitive with `-` equal to `_`, duplicates an error (strict mode).
 * No interpolation and no DEFAULT section: values are taken literally.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";

/** One option's value and where it was set. */
export interface IniValue {
  /** The value, continuation lines joined with `\n`. */
  value: string;
  /** `file:line` of the option's key. */
  origin: string;
}

/** Sections (names as written, trimmed) to options (normalised names) to values. */
export type IniDocument = Map<string, Map<string, IniValue>>;

/** Normalises an option name: lower case, `-` as `_`. */
export function normaliseOption(name: string): string {
  return name.trim().toLowerCase().replaceAll("-", "_");
}

const SECTION = /^\[(?<name>[^\]]+)\]\s*$/;

/**
 * Parses INI text. `file` names the source in error messages, which have the form
 * `file:line: cause`.
 */
export function parseIni(text: string, file: string): IniDocument {
  const doc: IniDocument = new Map();
  let section: Map<string, IniValue> | undefined;
  let sectionName = "";
  // The option being read, to which indented lines continue.
  let current: { lines: string[]; indent: number; value: IniValue } | undefined;
  let pendingBlank = 0;

  const finish = () => {
    if (current) current.value.value = current.lines.join("\n").trimEnd();
    current = undefined;
    pendingBlank = 0;
  };

  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\n|\r/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const where = `${file}:${i + 1}`;
    const stripped = raw.trim();
    const indent = raw.length - raw.trimStart().length;

    if (stripped === "") {
      if (current) pendingBlank++;
      continue;
    }
    if (stripped.startsWith("#") || stripped.startsWith(";")) continue;

    if (current && indent > current.indent) {
      for (; pendingBlank > 0; pendingBlank--) current.lines.push("");
      current.lines.push(stripped);
      continue;
    }
    finish();

    const header = SECTION.exec(stripped);
    if (header) {
      sectionName = header.groups!.name.trim();
      if (sectionName === "") {
        throw new ConfigError("config.syntax", `${where}: empty section name`);
      }
      if (doc.has(sectionName)) {
        throw new ConfigError("config.syntax", `${where}: section [${sectionName}] appears twice`);
      }
      section = new Map();
      doc.set(sectionName, section);
      continue;
    }

    const delimiter = stripped.search(/[=:]/);
    if (delimiter <= 0) {
      const cause = delimiter === 0 ? "option without a name" : "expected 'key = value'";
      throw new ConfigError("config.syntax", `${where}: ${cause}, got '${clip(stripped)}'`);
    }
    if (!section) {
      throw new ConfigError(
        "config.syntax",
        `${where}: option '${
          clip(stripped.slice(0, delimiter).trim())
        }' before any [section] header`,
      );
    }
    const key = normaliseOption(stripped.slice(0, delimiter));
    if (section.has(key)) {
      throw new ConfigError(
        "config.syntax",
        `${where}: option '${key}' appears twice in section [${sectionName}]`,
      );
    }
    const value: IniValue = { value: "", origin: where };
    section.set(key, value);
    current = { lines: [stripped.slice(delimiter + 1).trim()], indent, value };
  }
  finish();
  return doc;
}

/** Writes a document back as INI text that {@link parseIni} reads to the same document. */
export function serialiseIni(doc: IniDocument): string {
  const out: string[] = [];
  for (const [name, options] of doc) {
    out.push(`[${name}]`);
    for (const [key, { value }] of options) {
      out.push(`${key} = ${value.split("\n").join("\n    ")}`.replace(/\n {4}$/gm, "\n"));
    }
    out.push("");
  }
  return out.join("\n");
}

function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

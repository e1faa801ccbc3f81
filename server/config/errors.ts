// Configuration errors carry a stable code, the file, the line and column,
// the JSON pointer inside the document, and what to change. Tests assert on
// codes; people read the formatted line.

export interface SourcePosition {
  line: number;
  column: number;
}

export class ConfigError extends Error {
  readonly code: string;
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly pointer: string;

  constructor(code: string, file: string, position: SourcePosition | null, pointer: string, message: string) {
    super(message);
    this.name = 'ConfigError';
    this.code = code;
    this.file = file;
    this.line = position?.line ?? 0;
    this.column = position?.column ?? 0;
    this.pointer = pointer;
  }

  /** "policies/zones/cdn.example.yaml:12:5: POPSTEER_ERR_ZONE_SCHEMA: /records/www/A: must be …" */
  format(): string {
    const where = this.line > 0 ? `${this.file}:${this.line}:${this.column}` : this.file;
    const pointer = this.pointer ? `${this.pointer}: ` : '';
    return `${where}: ${this.code}: ${pointer}${this.message}`;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, file: this.file, line: this.line, column: this.column, pointer: this.pointer, message: this.message };
  }
}

/** Several errors found in one load; the process exits 2 (start-up) or keeps the old set (reload). */
export class ConfigErrors extends Error {
  readonly errors: ConfigError[];
  constructor(errors: ConfigError[]) {
    super(errors.map((e) => e.format()).join('\n'));
    this.name = 'ConfigErrors';
    this.errors = errors;
  }
}

// Turns the children's pino JSON lines into one readable line each for a terminal. Anything that
// is not a pino line (a stack trace, tsx's own output) passes through with the prefix only.

const LEVELS: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO ",
  40: "WARN ",
  50: "ERROR",
  60: "FATAL",
};
const COLORS = [36, 35, 32, 33, 34, 96, 95, 92, 93, 94];
const LEVEL_COLORS: Record<number, number> = { 40: 33, 50: 31, 60: 31 };
// Shown through the prefix and the time column already, or noise in a terminal.
const HIDDEN = new Set(["level", "time", "msg", "pid", "hostname", "service", "v"]);

export interface LogFormat {
  json: boolean;
  color: boolean;
  /** Width the names are padded to so the columns line up. */
  nameWidth: number;
}

export function createLinePrefixer(name: string, index: number, format: LogFormat) {
  const paint = (code: number | undefined, text: string): string =>
    format.color && code !== undefined ? `\u001b[${code}m${text}\u001b[0m` : text;
  const prefix = paint(COLORS[index % COLORS.length], `${name.padEnd(format.nameWidth)} |`);
  return (line: string): string => {
    if (format.json || !line.startsWith("{")) return `${prefix} ${line}`;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return `${prefix} ${line}`;
    }
    const level = typeof record["level"] === "number" ? record["level"] : 30;
    const time =
      typeof record["time"] === "number" ? new Date(record["time"]).toISOString().slice(11, 23) : "";
    const rest = Object.fromEntries(
      Object.entries(record).filter(([key]) => !HIDDEN.has(key) && key !== "err"),
    );
    const err = record["err"] as { stack?: string; message?: string } | undefined;
    const parts = [
      prefix,
      time,
      paint(LEVEL_COLORS[level], LEVELS[level] ?? String(level)),
      typeof record["msg"] === "string" ? record["msg"] : "",
      Object.keys(rest).length > 0 ? JSON.stringify(rest) : "",
    ];
    const text = parts.filter(Boolean).join(" ");
    const stack = err?.stack ?? err?.message;
    return stack ? `${text}\n${stack.replace(/^/gm, `${prefix}   `)}` : text;
  };
}

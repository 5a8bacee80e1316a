import type { FieldViolation } from "@zero/kit/errors";
import Handlebars from "handlebars";

// Templates: what a valid one is, and how one is rendered. Pure (no I/O).
//
// Bodies are Handlebars. In `html_body` every `{{value}}` is HTML-escaped and raw output
// (`{{{value}}}`, `{{&value}}`) is refused, so a variable — a user's name, a failure message —
// can never inject markup. The subject and the text body are plain text (no escaping: it would
// show `&amp;` to the reader); the subject also loses its line breaks (header injection).
// Only the built-in helpers exist (if, unless, each, with, lookup); partials and decorators are
// refused, and Handlebars' prototype-access protection stays on.

export const DEFAULT_LOCALE = "en";
export const TEMPLATE_NAME = /^[a-z][a-z0-9-]{1,62}$/;
export const MAX_SUBJECT = 500;
export const MAX_BODY = 100_000;
export const MAX_DESCRIPTION = 500;
// RFC 5322 line limit; the rendered subject is cut there.
const MAX_RENDERED_SUBJECT = 998;

export interface TemplateContent {
  subject: string;
  html: string;
  text: string;
}

export interface RenderedMessage {
  subject: string;
  html: string;
  text: string;
}

// An isolated environment: nothing registered globally by any library reaches our templates.
const handlebars = Handlebars.create();
handlebars.unregisterHelper("log");
const COMPILE = { strict: false, knownHelpersOnly: true } as const;

/** Problems with a template's content, each on its request field (`subject`, `html_body`, …). */
export function templateProblems(
  content: TemplateContent,
  fields = { subject: "subject", html: "html_body", text: "text_body" },
): FieldViolation[] {
  const problems: FieldViolation[] = [];
  if (content.subject.trim() === "") problems.push({ field: fields.subject, description: "is required" });
  else if (content.subject.length > MAX_SUBJECT)
    problems.push({ field: fields.subject, description: `must be at most ${MAX_SUBJECT} characters` });
  if (content.html.trim() === "" && content.text.trim() === "") {
    problems.push({ field: fields.html, description: `is required when ${fields.text} is empty` });
  }
  for (const [field, source, html] of [
    [fields.subject, content.subject, false],
    [fields.html, content.html, true],
    [fields.text, content.text, false],
  ] as const) {
    if (source.length > MAX_BODY) {
      problems.push({ field, description: `must be at most ${MAX_BODY} characters` });
      continue;
    }
    const problem = syntaxProblem(source, html);
    if (problem !== undefined) problems.push({ field, description: problem });
  }
  return problems;
}

function syntaxProblem(source: string, html: boolean): string | undefined {
  let program: hbs.AST.Program;
  try {
    program = handlebars.parse(source);
    // Compiling catches what parsing does not: unknown helpers, malformed block params.
    handlebars.precompile(source, COMPILE);
  } catch (error) {
    return `is not a valid template: ${oneLine((error as Error).message)}`;
  }
  const found = forbiddenNode(program, html);
  return found === undefined ? undefined : `must not use ${found}`;
}

/** The first construct the template may not use, described for the admin; undefined when clean. */
function forbiddenNode(node: hbs.AST.Node, html: boolean): string | undefined {
  switch (node.type) {
    case "MustacheStatement":
      return html && !(node as hbs.AST.MustacheStatement).escaped
        ? "raw output ({{{…}}} or {{&…}}): values are always HTML-escaped"
        : undefined;
    case "PartialStatement":
    case "PartialBlockStatement":
      return "partials ({{> …}})";
    case "DecoratorBlock":
    case "Decorator":
      return "decorators ({{* …}})";
    case "Program":
      return firstDefined((node as hbs.AST.Program).body, (child) => forbiddenNode(child, html));
    case "BlockStatement": {
      const block = node as hbs.AST.BlockStatement;
      return firstDefined([block.program, block.inverse], (child) =>
        child === undefined || child === null ? undefined : forbiddenNode(child, html),
      );
    }
    default:
      return undefined;
  }
}

function firstDefined<T>(items: readonly T[], f: (item: T) => string | undefined): string | undefined {
  for (const item of items) {
    const found = f(item);
    if (found !== undefined) return found;
  }
  return undefined;
}

// Handlebars' parse errors span several lines (the source line, a caret, what was expected).
function oneLine(message: string): string {
  return message.replace(/\s+/g, " ").trim().slice(0, 300);
}

/** Renders a (valid) template with string variables. Throws only for a template that does not compile. */
export function renderTemplate(content: TemplateContent, variables: Record<string, string>): RenderedMessage {
  // A null-prototype copy: template lookups see the variables and nothing inherited.
  const data = Object.assign(Object.create(null) as Record<string, string>, variables);
  const text = (source: string): string =>
    source === "" ? "" : handlebars.compile(source, { ...COMPILE, noEscape: true })(data);
  const html = content.html === "" ? "" : handlebars.compile(content.html, COMPILE)(data);
  return {
    subject: text(content.subject)
      .replace(/[\r\n]+/g, " ")
      .trim()
      .slice(0, MAX_RENDERED_SUBJECT),
    html,
    text: text(content.text),
  };
}

/**
 * `locale` in canonical BCP 47 form (`fr-ca` → `fr-CA`); `""` means the default; undefined when
 * it is not a language tag.
 */
export function normaliseLocale(locale: string): string | undefined {
  const trimmed = locale.trim();
  if (trimmed === "") return DEFAULT_LOCALE;
  if (trimmed.length > 35 || !/^[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*$/.test(trimmed)) return undefined;
  try {
    return Intl.getCanonicalLocales(trimmed.replaceAll("_", "-"))[0];
  } catch {
    return undefined;
  }
}

/** The locales tried for a message, most specific first: `fr-CA` → `fr-CA`, `fr`, `en`. */
export function localeCandidates(locale: string): string[] {
  const parts = locale.split("-");
  const candidates: string[] = [];
  for (let i = parts.length; i >= 1; i--) candidates.push(parts.slice(0, i).join("-"));
  if (!candidates.includes(DEFAULT_LOCALE)) candidates.push(DEFAULT_LOCALE);
  return candidates;
}
